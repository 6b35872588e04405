"""The structure diagram's overlay, as the browser computes it: a metric per layer at a step
(`RunStore.metricAt`, js/src/live/store.ts) coloured on the run's scale (js/src/panels/scale.ts).

Values go through float32 first, as they do on their way to the browser (docs/live-data.md), so
an exported diagram has the widget's colours.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from .._protocol import OVERLAY_METRICS
from ..records import RECORD_FIELDS

if TYPE_CHECKING:
    from ..run import Run

SCALE_TYPES: Final = {
    "grad_norm": "log",
    "activation_std": "log",
    "update_ratio": "log",
    "dead_fraction": "linear",
    "nonfinite": "count",
}
METRIC_LABELS: Final = {
    "grad_norm": "gradient norm",
    "activation_std": "activation std",
    "update_ratio": "update / weight",
    "dead_fraction": "dead fraction",
    "nonfinite": "NaN/Inf count",
}
NO_DATA_RGB: Final = (200, 200, 200)
_VIRIDIS: Final = (
    (68, 1, 84),
    (71, 45, 123),
    (59, 82, 139),
    (44, 114, 142),
    (33, 145, 140),
    (40, 174, 128),
    (94, 201, 98),
    (170, 220, 50),
    (253, 231, 37),
)
_REDS: Final = ((235, 235, 235), (252, 187, 161), (251, 106, 74), (203, 24, 29), (103, 0, 13))
LEGEND_SWATCHES: Final = 24

RGB = tuple[int, int, int]
_F = {name: i for i, name in enumerate(RECORD_FIELDS)}


def check_metric(metric: str) -> str:
    if metric not in OVERLAY_METRICS:
        raise ValueError(f"unknown overlay {metric!r}: choose one of {', '.join(OVERLAY_METRICS)}")
    return metric


def domain_from_extent(lo: float, hi: float, kind: str) -> tuple[float, float]:
    """The scale's domain from the extent of the run's values; degenerate ones are widened."""
    if kind == "log":
        if not lo <= hi:
            return (1e-6, 1.0)
        return (lo / 10, hi * 10) if lo == hi else (lo, hi)
    if kind == "count":
        return (0.0, max(1.0, hi if hi > 0 else 1.0))
    if not lo <= hi:
        return (0.0, 1.0)
    low = min(lo, 0.0)
    return (low, low + 1) if low == hi else (low, hi)


@dataclass(frozen=True)
class ColorScale:
    metric: str
    domain: tuple[float, float]

    @property
    def kind(self) -> str:
        return SCALE_TYPES[self.metric]

    def position(self, value: float) -> float:
        """0..1, clamped; NaN for no value."""
        if math.isnan(value):
            return math.nan
        d0, d1 = self.domain
        if self.kind == "log":
            if value <= 0:
                return 0.0
            t = (math.log(value) - math.log(d0)) / (math.log(d1) - math.log(d0))
        elif self.kind == "count":
            t = 0.0 if value <= 0 else math.log1p(value) / math.log1p(d1)
        else:
            t = (value - d0) / (d1 - d0)
        return min(t, 1.0) if t > 0 else 0.0

    def rgb(self, value: float) -> RGB:
        t = self.position(value)
        if math.isnan(t):
            return NO_DATA_RGB
        stops = _REDS if self.metric == "nonfinite" else _VIRIDIS
        x = t * (len(stops) - 1)
        i = min(math.floor(x), len(stops) - 2)
        f = x - i
        a, b = stops[i], stops[i + 1]
        r, g, bl = (math.floor(a[c] + (b[c] - a[c]) * f + 0.5) for c in range(3))
        return (r, g, bl)

    def legend_values(self) -> list[float]:
        """The values of the legend's swatches, low to high, as scale.ts's createLegend."""
        d0, d1 = self.domain
        out = []
        for i in range(LEGEND_SWATCHES):
            t = i / (LEGEND_SWATCHES - 1)
            if self.kind == "log":
                out.append(math.exp(math.log(d0) + t * (math.log(d1) - math.log(d0))))
            elif self.kind == "count":
                out.append(math.expm1(t * math.log1p(d1)))
            else:
                out.append(d0 + t * (d1 - d0))
        return out


def hex_color(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


_Join = Callable[[NDArray[np.float64], NDArray[np.float64]], NDArray[np.float64]]


def _sum_sq(held: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.where(np.isnan(held), v * v, held + v * v)


def _max(held: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.where(np.isnan(held), v, np.maximum(held, v))


def _add(held: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.where(np.isnan(held), v, held + v)


def _first(held: NDArray[np.float64], v: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.where(np.isnan(held), v, held)


def metric_values(run: Run, metric: str, steps: Iterable[int]) -> dict[str, NDArray[np.float64]]:
    """Layer -> the metric at each of `steps` (NaN where the layer has none), as metricAt.

    grad_norm: L2 over the layer's weight gradients; activation_std and dead_fraction: of its
    first activation tensor of its first call; update_ratio: the largest over its parameters;
    nonfinite: NaN and ±Inf counts over every series of the layer. Train mode only; each series
    reads its latest row at or before the step.
    """
    check_metric(metric)
    at = np.asarray(list(steps), dtype=np.int64)
    series_ids, row_steps, values = run.stat_rows()
    # The browser's copy: float32 on the wire, float64 arithmetic after.
    values = values.astype(np.float32).astype(np.float64)
    order = np.lexsort((row_steps, series_ids))
    series_ids, row_steps, values = series_ids[order], row_steps[order], values[order]
    out: dict[str, NDArray[np.float64]] = {}
    for sid, key, _ in run.series_rows():  # by id: the order the browser combines them in
        if key.mode != "train":
            continue
        join: _Join
        if metric == "grad_norm" and key.kind == "grad":
            columns, join = ["l2"], _sum_sq
        elif metric == "update_ratio" and key.kind == "update":
            columns, join = ["ratio"], _max
        elif metric in ("activation_std", "dead_fraction") and key.kind == "activation":
            if key.call != 0:
                continue
            columns, join = ["std" if metric == "activation_std" else "dead"], _first
        elif metric == "nonfinite":
            columns, join = ["nan", "posinf", "neginf"], _add
        else:
            continue
        lo, hi = np.searchsorted(series_ids, [sid, sid + 1])
        row = np.searchsorted(row_steps[lo:hi], at, side="right") - 1
        picked = values[lo:hi][:, [_F[c] for c in columns]].sum(axis=1)
        v = np.where(row >= 0, picked[np.maximum(row, 0)] if hi > lo else np.nan, np.nan)
        held = out.get(key.layer, np.full(len(at), np.nan))
        out[key.layer] = np.where(np.isnan(v), held, join(held, v))
    if metric == "grad_norm":
        out = {layer: np.sqrt(v) for layer, v in out.items()}
    return out


def scale_of(metric: str, values: Iterable[NDArray[np.float64]]) -> ColorScale:
    """The metric's scale over these values, all of the run's steps (scaleForRun): it stays put
    while scrubbing."""
    kind = SCALE_TYPES[check_metric(metric)]
    everything = np.concatenate([np.zeros(0), *(v.ravel() for v in values)])
    used = everything[np.isfinite(everything)]
    if kind == "log":
        used = used[used > 0]
    lo, hi = (float(used.min()), float(used.max())) if used.size else (math.inf, -math.inf)
    domain = (0.0, 1.0) if metric == "dead_fraction" else domain_from_extent(lo, hi, kind)
    return ColorScale(metric, domain)


@dataclass(frozen=True)
class Overlay:
    """What the diagram's overlay shows: the metric at a step, its scale and value per layer."""

    metric: str
    step: int
    scale: ColorScale
    values: dict[str, float]

    @classmethod
    def of_run(cls, run: Run, metric: str, step: int | None = None) -> Overlay:
        """The overlay at `step` (None: the last recorded step)."""
        if step is None:
            last = run.last_step
            if last is None:
                raise ValueError("the run has no recorded steps: nothing to colour the diagram by")
            step = last
        # One read: every train step for the scale, and the step shown (last column).
        found = metric_values(run, metric, [*run.steps.tolist(), step])
        values = {layer: float(v[-1]) for layer, v in found.items() if not math.isnan(v[-1])}
        return cls(metric, step, scale_of(metric, (v[:-1] for v in found.values())), values)

    def color(self, layer: str) -> str:
        """A module's fill: its value's colour, the no-data grey where it has none."""
        return hex_color(self.scale.rgb(self.values.get(layer, math.nan)))
