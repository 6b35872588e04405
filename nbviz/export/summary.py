"""Summary sheet of one layer: its histograms and distribution over time, and where it sits in
the model's gradient flow and heatmap (its rows highlighted)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import distribution, gradient_flow, heatmap, histogram
from ._data import Selection

if TYPE_CHECKING:
    from matplotlib.figure import FigureBase

    from ..run import Run


def size(run: Run, sel: Selection) -> tuple[float, float]:
    w1, h1 = histogram.size(run, sel)
    w2, h2 = distribution.size(run, sel)
    w3, h3 = _bottom_size(run, sel)
    return (max(w1, w2, w3), h1 + h2 + h3 + 0.5)


def _bottom_size(run: Run, sel: Selection) -> tuple[float, float]:
    w3, h3 = gradient_flow.size(run, sel)
    w4, h4 = heatmap.size(run, sel)
    return (w3 + w4, max(h3, h4))


def draw(fig: FigureBase, run: Run, sel: Selection) -> None:
    heights = [
        histogram.size(run, sel)[1],
        distribution.size(run, sel)[1],
        _bottom_size(run, sel)[1],
    ]
    top, middle, bottom = fig.subfigures(3, 1, squeeze=False, height_ratios=heights)[:, 0]
    histogram.draw(top, run, sel)
    distribution.draw(middle, run, sel)
    left, right = bottom.subfigures(1, 2, squeeze=False, width_ratios=[1.0, 1.1])[0]
    gradient_flow.draw(left, run, sel)
    heatmap.draw(right, run, sel)
    fig.suptitle(f"{sel.layer or '(model)'} {sel.kind} at step {sel.step}", fontweight="bold")
