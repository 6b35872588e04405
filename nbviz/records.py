"""What capture produces and the run store keeps: the contract between `capture` and `store`.

Capture computes statistics inside its hooks and hands plain records (numbers and small arrays,
never tensors) to a `RecordSink`; the store writes them off the training thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Protocol

import numpy as np
from numpy.typing import NDArray

from ._protocol import KINDS as KINDS  # re-exported: capture and the store name them here
from ._protocol import RECORD_FIELDS as RECORD_FIELDS
from .stats import Histogram

# When it is captured: a NaN/Inf found in this phase is reported with it.
PHASES: Final = ("forward", "backward", "optimizer")
# The phase each kind is captured in: where its first NaN/Inf is said to appear.
PHASE_OF_KIND: Final = {
    "activation": "forward",
    "activation_grad": "backward",
    "grad": "optimizer",
    "weight": "optimizer",
    "update": "optimizer",
}
# Training steps and evaluation forwards (no_grad or eval mode) are kept apart.
MODES: Final = ("train", "eval")


@dataclass(frozen=True, order=True)
class SeriesKey:
    """One time series: a tensor of a module, of one kind, at one call index, in one mode."""

    layer: str  # qualified module name, "" for the root
    kind: str  # one of KINDS
    tensor: str  # parameter name ("weight") or output path ("", "[0]", "['logits']", ".hidden")
    call: int = 0  # 0 for the first call of the module in a step, 1 for the second, ...
    mode: str = "train"  # one of MODES


@dataclass(frozen=True)
class StatRecord:
    step: int
    key: SeriesKey
    stats: NDArray[np.float64]  # len(RECORD_FIELDS)
    histogram: Histogram | None = None  # None when histograms are not taken at this step
    dtype: str = ""  # dtype of the captured tensor, e.g. "bfloat16"; "complex64" means magnitude


@dataclass(frozen=True)
class StepRecord:
    step: int
    mode: str = "train"
    skipped: bool = False  # the optimizer step did not happen (e.g. GradScaler found Inf/NaN)
    reason: str = ""
    wall_time: float = 0.0  # time.time() when the step ended


@dataclass(frozen=True)
class Anomaly:
    """A non-finite value: where and when it first appeared."""

    step: int
    phase: str  # one of PHASES
    key: SeriesKey
    nan: int
    posinf: int
    neginf: int
    detail: str = ""


@dataclass(frozen=True)
class LayerMeta:
    name: str
    cls: str
    parent: str | None  # None for the root
    params: tuple[str, ...] = field(default=())


class RecordSink(Protocol):
    """Where capture sends what it records; none of these may block on I/O."""

    def add(self, records: list[StatRecord]) -> None: ...
    def end_step(self, step: StepRecord) -> None: ...
    def add_anomaly(self, anomaly: Anomaly) -> None: ...


def empty_stats() -> NDArray[np.float64]:
    """A record's statistics with nothing known yet."""
    return np.full(len(RECORD_FIELDS), np.nan)
