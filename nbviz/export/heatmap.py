"""Heatmap: one statistic of every series of a kind, layers down, steps across.

Each cell holds the latest value recorded at or before its first step, so series recorded at
different periods share one grid; cells before a series' first record are empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.colors import LogNorm, Normalize
from numpy.typing import NDArray

from ..records import SeriesKey
from ._data import Selection, highlighted, ordered, tensor_name

if TYPE_CHECKING:
    from matplotlib.figure import FigureBase

    from ..run import Run

ROW_HEIGHT = 0.22  # inches per series
# Above this many cells the mesh is embedded as an image in SVG and PDF: as vectors, a long run
# of a large model (100 layers × 5,000 steps) would be one path per cell, tens of megabytes.
MAX_VECTOR_CELLS = 20_000


@dataclass(frozen=True)
class Grid:
    keys: list[SeriesKey]
    step_edges: NDArray[np.float64]  # [columns + 1]: column c covers [edges[c], edges[c+1])
    values: NDArray[np.float64]  # [len(keys), columns]


def grid(run: Run, sel: Selection) -> Grid:
    keys = ordered(run, run.series(kind=sel.kind, mode=sel.mode))
    series = [run.stats(k.layer, k.kind, k.tensor, call=k.call, mode=k.mode) for k in keys]
    starts = np.unique(np.concatenate([s.step_lo for s in series] or [np.zeros(0, np.int64)]))
    if len(starts) == 0:
        return Grid(keys, np.zeros(1), np.zeros((len(keys), 0)))
    # The last values hold to the end of the run, as they do between records.
    end = max([int(s.step_hi[-1]) for s in series if len(s)] + [run.last_step or 0]) + 1
    values = np.full((len(keys), len(starts)), np.nan)
    for r, s in enumerate(series):
        rows = np.searchsorted(s.step_lo, starts, side="right") - 1
        held = rows >= 0
        values[r, held] = s.values[sel.metric][rows[held]]
    return Grid(keys, np.append(starts, end).astype(np.float64), values)


def size(run: Run, sel: Selection) -> tuple[float, float]:
    n = len(run.series(kind=sel.kind, mode=sel.mode))
    return (9.0, 1.8 + ROW_HEIGHT * max(n, 3))


def draw(fig: FigureBase, run: Run, sel: Selection) -> Grid:
    data = grid(run, sel)
    ax = fig.subplots()
    finite = data.values[np.isfinite(data.values)]
    # Norms and spreads span decades: a log scale unless some value is not positive.
    log = finite.size > 0 and bool((finite > 0).all())
    norm = LogNorm() if log else Normalize()
    mesh = ax.pcolormesh(
        data.step_edges, np.arange(len(data.keys) + 1), np.ma.masked_invalid(data.values),
        norm=norm, shading="flat",
    )  # fmt: skip
    mesh.set_rasterized(data.values.size > MAX_VECTOR_CELLS)
    ax.axvline(sel.step, color="C1", linestyle="--", linewidth=1)
    ax.set_yticks(np.arange(len(data.keys)) + 0.5, [tensor_name(k) for k in data.keys])
    for label, key in zip(ax.get_yticklabels(), data.keys, strict=True):
        label.set_fontsize("small")
        if highlighted(key, sel.layer):
            label.set_fontweight("bold")
    ax.set_ylim(len(data.keys), 0)  # model order from the top
    ax.set_xlabel("step")
    scale = " (log scale)" if log else ""
    fig.colorbar(mesh, ax=ax, label=f"{sel.metric} of {sel.kind}{scale}")
    fig.suptitle(f"{sel.metric} of every {sel.kind} series; step {sel.step} marked")
    return data
