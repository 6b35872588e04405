"""What the figures draw, read from a run: selections, rows at a step, percentiles.

Kept apart from the drawing so the widget (`Viz.export`) and the tests reuse the same numbers.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from ..records import KINDS, RECORD_FIELDS, SeriesKey
from ..run import SeriesNotFoundError

if TYPE_CHECKING:
    from ..run import HistSeries, Run, StatSeries

# TensorBoard's distribution bands: the percentiles at 0, ±1, ±2, ±3 standard deviations of a
# normal distribution and the extremes, so the two tools read the same.
BAND_PERCENTILES: Final = (0.0, 6.68, 15.87, 30.85, 50.0, 69.15, 84.13, 93.32, 100.0)

# Axis labels per kind: what the numbers are and in which unit.
VALUE_LABELS: Final = {
    "weight": "weight value",
    "grad": "gradient value (∂loss/∂weight)",
    "activation": "activation value",
    "activation_grad": "activation gradient (∂loss/∂output)",
    "update": "update value (Δweight per step)",
}
NORM_LABELS: Final = {
    "weight": "weight L2 norm",
    "grad": "gradient L2 norm ‖∂loss/∂w‖₂",
    "activation": "activation L2 norm",
    "activation_grad": "activation gradient L2 norm",
    "update": "update L2 norm ‖Δw‖₂",
}


@dataclass(frozen=True)
class Selection:
    """What a figure shows: the widget's selected layer, kind and step, and a few options.

    `tensor=None` shows every tensor of that kind the layer has (its weight and bias, say);
    `metric` is the statistic of the heatmap (one of RECORD_FIELDS).
    """

    layer: str
    kind: str
    step: int
    tensor: str | None = None
    call: int = 0
    mode: str = "train"
    metric: str = "l2"


def select(
    run: Run,
    *,
    layer: str | None,
    kind: str,
    step: int | None,
    tensor: str | None = None,
    call: int = 0,
    mode: str = "train",
    metric: str = "l2",
    need_layer: bool = True,
) -> Selection:
    """A checked Selection; None picks the first recorded layer and the last step.

    Errors name what was recorded instead: an unknown layer lists the closest names.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}{_suggest(kind, KINDS)}")
    if metric not in RECORD_FIELDS:
        raise ValueError(f"unknown metric {metric!r}{_suggest(metric, RECORD_FIELDS)}")
    keys = run.series(kind=kind, mode=mode)
    if not keys:
        recorded = sorted({k.kind for k in run.series(mode=mode)})
        raise SeriesNotFoundError(
            f"no {kind!r} series in mode {mode!r} was recorded in {run_label(run)}"
            f" (recorded kinds: {recorded})"
        )
    known = {m.name for m in run.layers} | {k.layer for k in run.series(mode=None)}
    if layer is None:
        layer = ordered(run, keys)[0].layer if need_layer else ""
    elif layer not in {k.layer for k in keys} and not (layer in known and not need_layer):
        # Whole-model views only highlight the layer: any layer of the model will do (a
        # container highlights its children); views of one layer need its series.
        recorded_layers = [k.layer for k in ordered(run, keys)]
        names = list(dict.fromkeys(recorded_layers))
        if layer in known:
            raise SeriesNotFoundError(
                f"layer {layer!r} has no {kind!r} series in {run_label(run)}"
                f" (layers with one: {_shown(names)})"
            )
        raise SeriesNotFoundError(
            f"no layer {layer!r} was recorded in {run_label(run)}{_suggest(layer, names)}"
        )
    if layer and tensor is not None:
        tensors = [k.tensor for k in keys if k.layer == layer]
        if tensor not in tensors:
            raise SeriesNotFoundError(
                f"{layer!r} has no {kind!r} tensor {tensor!r}{_suggest(tensor, tensors)}"
            )
    steps = run.steps
    if step is None:
        if len(steps) == 0:
            raise ValueError(f"{run_label(run)} has no recorded steps yet")
        step = int(steps[-1])
    elif len(steps) and not steps[0] <= step <= steps[-1]:
        raise ValueError(
            f"step {step} is outside the recorded steps {int(steps[0])}..{int(steps[-1])}"
        )
    return Selection(layer, kind, int(step), tensor, call, mode, metric)


def run_label(run: Run) -> str:
    return "the in-memory run" if run.path is None else str(run.path)


def ordered(run: Run, keys: list[SeriesKey]) -> list[SeriesKey]:
    """`keys` in model order (the hierarchy's depth-first order, parameters as declared)."""
    rank = {m.name: i for i, m in enumerate(run.layers)}
    params = {m.name: m.params for m in run.layers}

    def order(k: SeriesKey) -> tuple[int, str, int, str, int]:
        names = params.get(k.layer, ())
        position = names.index(k.tensor) if k.tensor in names else len(names)
        return (rank.get(k.layer, len(rank)), k.layer, position, k.tensor, k.call)

    return sorted(keys, key=order)


def layer_keys(run: Run, sel: Selection) -> list[SeriesKey]:
    """The series the selection shows for its layer, in declaration order."""
    keys = [
        k
        for k in run.series(layer=sel.layer, kind=sel.kind, mode=sel.mode)
        if k.call == sel.call and (sel.tensor is None or k.tensor == sel.tensor)
    ]
    if not keys:
        raise SeriesNotFoundError(
            f"{sel.layer!r} has no {sel.kind!r} series at call {sel.call} in mode {sel.mode!r}"
        )
    return ordered(run, keys)


def highlighted(key: SeriesKey, layer: str) -> bool:
    """Whether a whole-model view highlights `key` for the selected `layer` (or its children)."""
    return key.layer == layer or (layer != "" and key.layer.startswith(layer + "."))


def tensor_name(key: SeriesKey) -> str:
    """How a series is named on a figure: `head.fc1.weight`, `head.relu` (an output), call #1."""
    name = key.layer or "(model)"
    if key.tensor:
        name += key.tensor if key.tensor[0] in "[." else f".{key.tensor}"
    if key.call:
        name += f" #{key.call}"
    return name


def row_at(series: StatSeries, step: int) -> int | None:
    """The row covering `step`, else the latest before it; None before the first."""
    i = int(np.searchsorted(series.step_lo, step, side="right")) - 1
    return None if i < 0 else i


def hist_at(hists: HistSeries, step: int) -> int | None:
    """The histogram of `step`, else the latest before it, else the first; None when none."""
    if len(hists) == 0:
        return None
    i = int(np.searchsorted(hists.steps, step, side="right")) - 1
    return max(i, 0)


def edges(lo: float, width: float, bins: int) -> NDArray[np.float64]:
    out: NDArray[np.float64] = lo + width * np.arange(bins + 1, dtype=np.float64)
    return out


def occupied(counts: NDArray[np.float64]) -> slice:
    """The bins from the first to the last non-empty one: the grid's empty tails are dropped
    from drawings, since its power-of-two width can make it twice as wide as the data."""
    nonzero = np.flatnonzero(counts)
    if len(nonzero) == 0:
        return slice(0, 0)
    return slice(int(nonzero[0]), int(nonzero[-1]) + 1)


def percentiles(
    counts: NDArray[np.float64],
    lo: NDArray[np.float64],
    width: NDArray[np.float64],
    q: tuple[float, ...] = BAND_PERCENTILES,
) -> NDArray[np.float64]:
    """[n, len(q)] percentiles of n histograms, values spread evenly within each bin.

    0 and 100 are the outer edges of the first and last occupied bins. An empty histogram gives
    NaN.
    """
    n, bins = counts.shape
    out = np.full((n, len(q)), np.nan)
    for row in range(n):
        c = counts[row]
        total = c.sum()
        if not total > 0 or not np.isfinite(lo[row]):
            continue
        cum = np.concatenate(([0.0], np.cumsum(c)))
        e = edges(float(lo[row]), float(width[row]), bins)
        occupied = np.flatnonzero(c)
        for j, p in enumerate(q):
            target = total * p / 100.0
            if target <= 0:
                out[row, j] = e[occupied[0]]
                continue
            if target >= total:
                out[row, j] = e[occupied[-1] + 1]
                continue
            # The first bin whose cumulative count reaches the target is occupied, since an
            # empty bin before it would reach it too.
            i = min(int(np.searchsorted(cum[1:], target, side="left")), bins - 1)
            out[row, j] = e[i] + width[row] * (target - cum[i]) / c[i]
    return out


def _shown(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names[:10]) + (", ..." if len(names) > 10 else "")


def _suggest(name: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=5, cutoff=0.5)
    if close:
        return "; did you mean " + ", ".join(repr(c) for c in close) + "?"
    return f" (choices: {_shown(list(choices))})" if choices else ""
