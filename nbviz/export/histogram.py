"""Histogram view: the histograms of a layer's tensors at one step, side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..records import RECORD_FIELDS
from ._data import (
    VALUE_LABELS,
    Selection,
    edges,
    hist_at,
    layer_keys,
    occupied,
    row_at,
    tensor_name,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import FigureBase

    from ..records import SeriesKey
    from ..run import Run

PANEL_SIZE = (4.0, 3.0)  # inches per tensor


def size(run: Run, sel: Selection) -> tuple[float, float]:
    n = len(layer_keys(run, sel))
    return (PANEL_SIZE[0] * n, PANEL_SIZE[1] + 0.6)


def draw(fig: FigureBase, run: Run, sel: Selection) -> None:
    keys = layer_keys(run, sel)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys, strict=True):
        _panel(ax, run, key, sel.step)
    fig.suptitle(f"{sel.layer or '(model)'}: {sel.kind} histograms at step {sel.step}")


def _panel(ax: Axes, run: Run, key: SeriesKey, step: int) -> None:
    hists = run.histograms(key.layer, key.kind, key.tensor, call=key.call, mode=key.mode)
    i = hist_at(hists, step)
    ax.set_xlabel(VALUE_LABELS[key.kind])
    ax.set_ylabel("count (elements per bin)")
    if i is None or not np.isfinite(hists.lo[i]):
        ax.set_title(tensor_name(key))
        ax.text(0.5, 0.5, "no histogram recorded", transform=ax.transAxes, ha="center")
        return
    shown = int(hists.steps[i])
    counts = hists.counts[i]
    bins = occupied(counts)
    e = edges(hists.lo[i], hists.width[i], len(counts))
    ax.stairs(counts[bins], e[bins.start : bins.stop + 1], fill=True)
    # The histograms are taken less often than the statistics: say which step is drawn.
    when = f"step {shown}" if shown == step else f"step {shown} (nearest histogram to {step})"
    ax.set_title(f"{tensor_name(key)}\n{when}", fontsize="medium")
    stats = run.stats(key.layer, key.kind, key.tensor, call=key.call, mode=key.mode)
    row = row_at(stats, shown)
    lines = []
    if row is not None:
        v = {name: stats.values[name][row] for name in RECORD_FIELDS}
        lines = [
            f"mean {v['mean']:.3g}  std {v['std']:.3g}",
            f"min {v['min']:.3g}  max {v['max']:.3g}",
            f"zeros {v['zeros']:.0f}  NaN {v['nan']:.0f}  ±Inf {v['posinf'] + v['neginf']:.0f}",
        ]
        if np.isfinite(v["dead"]):
            lines.append(f"dead channels {v['dead']:.0%}")
        if np.isfinite(v["saturated"]):
            lines.append(f"saturated {v['saturated']:.0%}")
        if hists.sample[i] < v["numel"]:
            lines.append(f"sample of {hists.sample[i]:,} / {v['numel']:,.0f}")
    if lines:
        box = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none"}
        ax.text(
            0.98, 0.97, "\n".join(lines), transform=ax.transAxes, ha="right", va="top",
            fontsize="x-small", bbox=box,
        )  # fmt: skip
