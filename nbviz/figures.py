"""Static figures with matplotlib, drawn from the same summaries the widget shows."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from ._protocol import HIST_BINS, STAT_FIELDS

if TYPE_CHECKING:
    from .hierarchy import Hierarchy
    from .run import Run
    from .stats import Summaries


def parameter_histograms(hierarchy: Hierarchy, summaries: Summaries, title: str = "") -> Figure:
    """One histogram per (non-lazy) parameter, with its statistics, in a grid."""
    rows = [i for i, p in enumerate(hierarchy.params) if not p.lazy]
    columns = min(3, max(1, len(rows)))
    figure = Figure(figsize=(4.2 * columns, 2.8 * math.ceil(max(1, len(rows)) / columns)))
    figure.suptitle(title or "Parameter histograms")
    field = {name: i for i, name in enumerate(STAT_FIELDS)}
    for slot, index in enumerate(rows):
        axes = figure.add_subplot(math.ceil(len(rows) / columns), columns, slot + 1)
        param = hierarchy.params[index]
        lo, width = summaries.lo[index], summaries.width[index]
        edges = lo + width * np.arange(HIST_BINS + 1)
        axes.stairs(summaries.counts[index], edges, fill=True)
        stats = summaries.stats[index]
        axes.set_title(f"{param.name} {list(param.shape)}", fontsize=9)
        axes.set_xlabel("value")
        axes.set_ylabel("count")
        axes.set_xlim(stats[field["min"]] - width, stats[field["max"]] + width)
        text = (
            f"mean {stats[field['mean']]:.3g}\nstd {stats[field['std']]:.3g}\n"
            f"zeros {int(stats[field['zeros']])}  NaN {int(stats[field['nan']])}"
        )
        box = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none"}
        axes.text(
            0.98, 0.95, text, transform=axes.transAxes, ha="right", va="top", fontsize=7, bbox=box
        )
    figure.tight_layout()
    return figure


def gradient_norms(run: Run) -> Figure:
    """L2 norm of each weight gradient over the recorded steps, one line per parameter."""
    figure = Figure(figsize=(8, 4.5))
    axes = figure.add_subplot()
    for key in run.series(kind="grad"):
        series = run.stats(key.layer, key.kind, key.tensor, call=key.call)
        axes.plot(series.step_lo, series.values["l2"], label=f"{key.layer}.{key.tensor}")
    axes.set_yscale("log")
    axes.set_xlabel("step")
    axes.set_ylabel("gradient L2 norm")
    axes.set_title("Gradient norms per parameter")
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    return figure
