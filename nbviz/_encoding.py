"""Lossless blob encodings of a record's statistics and of histogram counts (see `nbviz.store`)."""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Final

import numpy as np
from numpy.typing import NDArray

from ._protocol import HIST_BINS
from .records import RECORD_FIELDS

NFIELDS: Final = len(RECORD_FIELDS)


_NAN_TAG, _F32_TAG, _F64_TAG, _ZERO_TAG = 0, 1, 2, 3
_TAG_SHIFTS: Final = np.arange(NFIELDS, dtype=np.uint32) * 2
_COUNT_DTYPES: Final = (np.dtype("<u1"), np.dtype("<u2"), np.dtype("<u4"), np.dtype("<f8"))


def _stats_layout(n32: int, n64: int) -> np.dtype[np.void]:
    return np.dtype([("tags", "<u4"), ("f32", "<f4", (n32,)), ("f64", "<f8", (n64,))])


def _split(buf: bytes, n: int, size: int) -> list[bytes]:
    return [buf[i * size : (i + 1) * size] for i in range(n)]


def encode_stats(values: NDArray[np.float64]) -> list[bytes]:
    """One blob per row of `values` [n, NFIELDS]; rows with the same tags are encoded together."""
    v = np.ascontiguousarray(values, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        f32 = v.astype(np.float32)
    tags = np.full(v.shape, _F64_TAG, dtype=np.uint32)
    tags[f32.astype(np.float64) == v] = _F32_TAG
    tags[(v == 0) & ~np.signbit(v)] = _ZERO_TAG  # -0.0 keeps its sign as a float32
    tags[np.isnan(v)] = _NAN_TAG
    words = (tags << _TAG_SHIFTS).sum(axis=1, dtype=np.uint32)
    out: list[bytes] = [b""] * len(v)
    unique, inverse = np.unique(words, return_inverse=True)
    for g, word in enumerate(unique.tolist()):
        rows = np.flatnonzero(inverse == g)
        row_tags = tags[rows[0]]
        c32 = np.flatnonzero(row_tags == _F32_TAG)
        c64 = np.flatnonzero(row_tags == _F64_TAG)
        packed = np.empty(len(rows), dtype=_stats_layout(len(c32), len(c64)))
        packed["tags"] = word
        packed["f32"] = f32[np.ix_(rows, c32)]
        packed["f64"] = v[np.ix_(rows, c64)]
        blobs = _split(packed.tobytes(), len(rows), packed.itemsize)
        if len(unique) == 1:
            return blobs  # the common case: every row has the same tags
        for row, blob in zip(rows.tolist(), blobs, strict=True):
            out[row] = blob
    return out


def decode_stats(blobs: Sequence[bytes]) -> NDArray[np.float64]:
    """The [n, NFIELDS] values of `encode_stats` blobs; ValueError on a malformed blob."""
    out = np.empty((len(blobs), NFIELDS), dtype=np.float64)
    groups: dict[bytes, list[int]] = collections.defaultdict(list)
    for i, blob in enumerate(blobs):
        groups[blob[:4]].append(i)
    for head, rows in groups.items():
        if len(head) != 4:
            raise ValueError("malformed statistics record (shorter than its header)")
        word = int.from_bytes(head, "little")
        tags = (word >> _TAG_SHIFTS) & 3
        c32 = np.flatnonzero(tags == _F32_TAG)
        c64 = np.flatnonzero(tags == _F64_TAG)
        layout = _stats_layout(len(c32), len(c64))
        payload = b"".join([blobs[i] for i in rows])
        if len(payload) != layout.itemsize * len(rows):
            raise ValueError("malformed statistics record (wrong length)")
        packed = np.frombuffer(payload, dtype=layout)
        idx = np.asarray(rows)
        out[np.ix_(idx, c32)] = packed["f32"]
        out[np.ix_(idx, c64)] = packed["f64"]
        out[np.ix_(idx, np.flatnonzero(tags == _NAN_TAG))] = np.nan
        out[np.ix_(idx, np.flatnonzero(tags == _ZERO_TAG))] = 0.0
    return out


def encode_counts(counts: NDArray[np.float64]) -> list[bytes]:
    """One blob per histogram of `counts` [n, HIST_BINS]: the occupied bins, narrowest type."""
    c = np.ascontiguousarray(counts, dtype=np.float64)
    n = len(c)
    occupied = c != 0
    any_occupied = occupied.any(axis=1)
    first = np.where(any_occupied, occupied.argmax(axis=1), 0)
    last = np.where(any_occupied, HIST_BINS - 1 - occupied[:, ::-1].argmax(axis=1), -1)
    length = last - first + 1
    with np.errstate(invalid="ignore"):
        integral = np.all((c == np.floor(c)) & (c >= 0), axis=1)
        top = np.where(any_occupied, np.abs(c).max(axis=1, initial=0.0), 0.0)
    code = np.select([top < 2**8, top < 2**16, top < 2**32], [0, 1, 2], 3)
    code[~integral] = 3
    head = (code << 6) | first
    out: list[bytes] = [b""] * n
    keys = code * (HIST_BINS + 1) + length
    for key in np.unique(keys).tolist():
        rows = np.flatnonzero(keys == key)
        width_code, size = divmod(key, HIST_BINS + 1)
        dtype = _COUNT_DTYPES[width_code]
        packed = np.empty(len(rows), dtype=[("head", "u1"), ("bins", dtype, (size,))])
        packed["head"] = head[rows]
        bins = first[rows, None] + np.arange(size)
        packed["bins"] = c[rows[:, None], bins]
        for row, blob in zip(
            rows.tolist(), _split(packed.tobytes(), len(rows), packed.itemsize), strict=True
        ):
            out[row] = blob
    return out


def decode_counts(blobs: Sequence[bytes]) -> NDArray[np.float64]:
    """The [n, HIST_BINS] counts of `encode_counts` blobs; ValueError on a malformed blob."""
    out = np.zeros((len(blobs), HIST_BINS), dtype=np.float64)
    groups: dict[tuple[int, int], list[int]] = collections.defaultdict(list)
    for i, blob in enumerate(blobs):
        if not blob:
            raise ValueError("malformed histogram record (empty)")
        groups[(blob[0] >> 6, len(blob))].append(i)
    for (width_code, nbytes), rows in groups.items():
        dtype = _COUNT_DTYPES[width_code]
        size, rest = divmod(nbytes - 1, dtype.itemsize)
        first = np.array([blobs[i][0] & 63 for i in rows])
        if rest or np.any(first + size > HIST_BINS):
            raise ValueError("malformed histogram record (wrong length)")
        layout = np.dtype([("head", "u1"), ("bins", dtype, (size,))])
        packed = np.frombuffer(b"".join([blobs[i] for i in rows]), dtype=layout)
        idx = np.asarray(rows)
        out[idx[:, None], first[:, None] + np.arange(size)] = packed["bins"]
    return out
