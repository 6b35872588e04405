"""Distribution over time: TensorBoard-style percentile bands and a ridgeline of histograms.

One row per tensor of the layer; the selected step is marked in both panels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import numpy as np
from numpy.typing import NDArray

from ._data import (
    BAND_PERCENTILES,
    VALUE_LABELS,
    Selection,
    edges,
    hist_at,
    layer_keys,
    occupied,
    percentiles,
    tensor_name,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import FigureBase

    from ..run import HistSeries, Run

ROW_SIZE = (10.0, 3.2)
# Ridgelines of more steps than this become unreadable: an even subset is drawn, and the
# selected step's histogram always.
MAX_RIDGES: Final = 24
OVERLAP: Final = 1.6  # each ridge's peak is this many row spacings high


def size(run: Run, sel: Selection) -> tuple[float, float]:
    return (ROW_SIZE[0], ROW_SIZE[1] * len(layer_keys(run, sel)) + 0.6)


def draw(fig: FigureBase, run: Run, sel: Selection) -> None:
    keys = layer_keys(run, sel)
    grid = fig.subplots(len(keys), 2, squeeze=False)
    for (bands_ax, ridge_ax), key in zip(grid, keys, strict=True):
        hists = run.histograms(key.layer, key.kind, key.tensor, call=key.call, mode=key.mode)
        name = tensor_name(key)
        if len(hists) == 0:
            for ax in (bands_ax, ridge_ax):
                ax.text(0.5, 0.5, "no histogram recorded", transform=ax.transAxes, ha="center")
        draw_bands(bands_ax, hists, sel.step)
        bands_ax.set_title(f"{name}: percentiles over steps")
        bands_ax.set_ylabel(VALUE_LABELS[key.kind])
        draw_ridges(ridge_ax, hists, sel.step)
        ridge_ax.set_title(f"{name}: histograms over steps")
        ridge_ax.set_xlabel(VALUE_LABELS[key.kind])
    fig.suptitle(f"{sel.layer or '(model)'}: {sel.kind} distribution, step {sel.step} marked")


def draw_bands(ax: Axes, hists: HistSeries, step: int) -> NDArray[np.float64]:
    """Nested bands between symmetric percentiles, darker inside, the median as a line."""
    p = percentiles(hists.counts, hists.lo, hists.width)
    x = hists.steps
    n = len(BAND_PERCENTILES)
    for j in range(n // 2):  # outermost band first, so inner ones are drawn over it
        ax.fill_between(
            x, p[:, j], p[:, n - 1 - j], color="C0", alpha=0.25, linewidth=0,
            label=f"{BAND_PERCENTILES[j]:g} to {BAND_PERCENTILES[n - 1 - j]:g} %",
        )  # fmt: skip
    ax.plot(x, p[:, n // 2], color="C0", label="median")
    ax.axvline(step, color="C1", linestyle="--", label=f"step {step}")
    ax.set_xlabel("step")
    ax.legend(fontsize="x-small", loc="upper left")
    return p


def draw_ridges(ax: Axes, hists: HistSeries, step: int) -> list[int]:
    """Histograms offset by step, oldest at the top; returns the rows of `hists` drawn."""
    if len(hists) == 0:
        return []
    rows = _ridge_rows(hists, step)
    current = hist_at(hists, step)
    # Bottom ridge (latest step) last, so nearer ridges hide the ones behind them. Each ridge is
    # scaled to its own peak: a distribution that widens over training would otherwise flatten
    # into its baseline next to the narrow early ones.
    for k, row in enumerate(rows):
        counts = hists.counts[row]
        if not np.isfinite(hists.lo[row]) or not counts.max(initial=0.0) > 0:
            continue
        offset = float(len(rows) - 1 - k)
        bins = occupied(counts)
        e = edges(hists.lo[row], hists.width[row], len(counts))[bins.start : bins.stop + 1]
        chosen = row == current
        ax.stairs(
            counts[bins] * (OVERLAP / counts.max()) + offset, e, baseline=offset, fill=True,
            facecolor="C1" if chosen else "C0", edgecolor="white", linewidth=0.5,
            alpha=1.0 if chosen else 0.8, zorder=k,
        )  # fmt: skip
    ticks = np.arange(len(rows))[::-1]
    every = max(1, len(rows) // 8)
    ax.set_yticks(ticks[::every], [str(hists.steps[r]) for r in rows][::every])
    ax.set_ylabel("step (histograms offset)")
    return rows


def _ridge_rows(hists: HistSeries, step: int) -> list[int]:
    n = len(hists)
    rows = set(np.linspace(0, n - 1, min(n, MAX_RIDGES)).round().astype(int).tolist())
    current = hist_at(hists, step)
    if current is not None:
        rows.add(current)
    return sorted(rows)
