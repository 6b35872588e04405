"""Every encoder of data that crosses the wire lives here (see `_protocol` for the contract)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._protocol import HIST_FIELDS

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .stats import Histogram, Summaries

WireArray = dict[str, Any]


def array_to_wire(array: NDArray[Any]) -> WireArray:
    """`{"view", "dtype", "shape"}` with the data as little-endian C-ordered bytes.

    ipywidgets lifts the bytes out of the JSON into a binary buffer; JS decodes it in `codec.ts`.
    """
    little = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {"view": little.tobytes(), "dtype": little.dtype.name, "shape": list(little.shape)}


def array_from_wire(wire: WireArray) -> NDArray[Any]:
    """Inverse of `array_to_wire`, for tests and for reading state back."""
    dtype = np.dtype(wire["dtype"]).newbyteorder("<")
    flat: NDArray[Any] = np.frombuffer(bytes(wire["view"]), dtype=dtype)
    shaped: NDArray[Any] = flat.reshape(wire["shape"])
    return shaped


def summaries_to_wire(summaries: Summaries) -> tuple[WireArray, dict[str, WireArray]]:
    """The `stats` and `hist` traits of the state model."""
    hist = {field: array_to_wire(getattr(summaries, field)) for field in HIST_FIELDS}
    return array_to_wire(summaries.stats), hist


def histogram_to_message(histogram: Histogram) -> tuple[dict[str, Any], list[bytes]]:
    """A histogram as a response payload: JSON plus one binary buffer, referenced by index."""
    counts = np.ascontiguousarray(histogram.counts, dtype="<f8")
    payload = {
        "lo": histogram.lo,
        "width": histogram.width,
        "sample": histogram.sample,
        "counts": {"buffer": 0, "dtype": "float64", "shape": list(counts.shape)},
    }
    return payload, [counts.tobytes()]


class BufferPacker:
    """Arrays of one custom message: `{"buffer": i, "dtype", "shape"}` plus the buffers list.

    Custom messages are not lifted by ipywidgets as traits are, so each array refers to its
    buffer by index; `codec.ts` decodes either shape.
    """

    def __init__(self) -> None:
        self.buffers: list[bytes] = []
        self.nbytes = 0

    def add(self, array: NDArray[Any], dtype: str) -> WireArray:
        little = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
        data = little.tobytes()
        self.buffers.append(data)
        self.nbytes += len(data)
        return {"buffer": len(self.buffers) - 1, "dtype": dtype, "shape": list(little.shape)}
