"""Exact merge of the statistics and histograms of one tensor split across processes.

A row is what one rank recorded of one series (`ROW` floats): `RECORD_FIELDS`, then whether a
histogram was taken, its lo, width and sample, then its `HIST_BINS` counts. `merge_rows` gives
the row of the concatenation of the ranks' tensors, as a single process would have recorded it.
Counts add; min/max are those of the ranks; mean and std combine by the parallel formula over
the finite values; the L2 norm by its square. The histogram grid is the stable grid of the
merged min/max (`_reduce.grid`, the very function a single process uses), and every rank's bins
fall inside one of its bins: widths are powers of two and bins are aligned to them.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import torch
from numpy.typing import NDArray

from . import _reduce
from ._protocol import HIST_BINS
from .records import RECORD_FIELDS, StatRecord
from .stats import MAX_SAMPLE, Histogram

_F: Final = {name: i for i, name in enumerate(RECORD_FIELDS)}
_NUMEL, _MIN, _MAX, _MEAN, _STD, _L2 = (_F[n] for n in ("numel", "min", "max", "mean", "std", "l2"))
_COUNTED: Final = [_F[n] for n in ("zeros", "nan", "posinf", "neginf")]
_NONFINITE: Final = [_F[n] for n in ("nan", "posinf", "neginf")]
_DEAD, _SATURATED, _RATIO = _F["dead"], _F["saturated"], _F["ratio"]
_HAS, _LO, _WIDTH, _SAMPLE = (len(RECORD_FIELDS) + i for i in range(4))
COUNTS: Final = len(RECORD_FIELDS) + 4
ROW: Final = COUNTS + HIST_BINS

_INTEGRAL_PREFIXES: Final = ("int", "uint", "bool")


def to_row(record: StatRecord) -> NDArray[np.float64]:
    row = np.zeros(ROW)
    row[: len(RECORD_FIELDS)] = record.stats
    h = record.histogram
    if h is not None:
        row[_HAS], row[_LO], row[_WIDTH], row[_SAMPLE] = 1.0, h.lo, h.width, h.sample
        row[COUNTS:] = h.counts
    return row


def row_histogram(row: NDArray[np.float64]) -> Histogram | None:
    if not row[_HAS]:
        return None
    return Histogram(
        lo=float(row[_LO]),
        width=float(row[_WIDTH]),
        counts=row[COUNTS:].copy(),
        sample=int(row[_SAMPLE]),
    )


def replicated(rows: NDArray[np.float64]) -> NDArray[np.float64]:
    """Rows of one tensor that every rank holds a copy of (DDP's parameters): the first one."""
    first: NDArray[np.float64] = rows[0].copy()
    return first


def merge_rows(rows: NDArray[np.float64], dtype: str) -> NDArray[np.float64]:
    """The row of the ranks' tensors concatenated; `rows` [ranks, ROW], each with numel > 0."""
    out = np.full(ROW, np.nan)
    numel = rows[:, _NUMEL]
    out[_NUMEL] = numel.sum()
    out[_COUNTED] = rows[:, _COUNTED].sum(axis=0)
    finite = numel - rows[:, _NONFINITE].sum(axis=1)
    has = finite > 0
    if has.any():
        n, mean = finite[has], rows[has, _MEAN]
        total = n.sum()
        out[_MIN], out[_MAX] = rows[has, _MIN].min(), rows[has, _MAX].max()
        out[_MEAN] = float(np.dot(n, mean) / total)
        spread = np.dot(n, rows[has, _STD] ** 2 + (mean - out[_MEAN]) ** 2)
        out[_STD] = math.sqrt(max(spread / total, 0.0))
        out[_L2] = math.sqrt(float(np.sum(rows[has, _L2] ** 2)))
        if out[_MIN] == out[_MAX]:  # as `stats` does: min == max proves a constant
            out[_MEAN], out[_STD] = out[_MIN], 0.0
    _merge_diagnostics(rows, out)
    if rows[:, _HAS].all():
        _merge_histograms(rows, out, dtype)
    else:
        out[_HAS], out[_LO], out[_WIDTH], out[_SAMPLE] = 0.0, np.nan, np.nan, 0.0
        out[COUNTS:] = 0.0
    return out


def _merge_diagnostics(rows: NDArray[np.float64], out: NDArray[np.float64]) -> None:
    numel = rows[:, _NUMEL]
    saturated = rows[:, _SATURATED]
    if not np.isnan(saturated).any():  # a fraction of elements: exact by weight
        out[_SATURATED] = float(np.dot(saturated, numel) / numel.sum())
    dead = rows[:, _DEAD]
    if not np.isnan(dead).any():
        # A channel is dead over all ranks' batches only if it is dead in each: the fraction is
        # at most the smallest one, and equal to it when the ranks agree on which are dead.
        out[_DEAD] = dead.min()
    ratio = rows[:, _RATIO]
    if not np.isnan(ratio).any():  # shards of one update: ‖Δw‖ / ‖w‖ over the whole tensor
        with np.errstate(divide="ignore", invalid="ignore"):
            before = np.sqrt(np.sum((rows[:, _L2] / ratio) ** 2))
            out[_RATIO] = out[_L2] / before


def _merge_histograms(rows: NDArray[np.float64], out: NDArray[np.float64], dtype: str) -> None:
    out[_HAS] = 1.0
    # A rank with nothing finite leaves sample 0 (`stats` does), though its elements were looked
    # at: they count as a full sample of the default size, as they would in one process.
    blank = np.isnan(rows[:, _MIN])
    out[_SAMPLE] = rows[~blank, _SAMPLE].sum() + np.minimum(rows[blank, _NUMEL], MAX_SAMPLE).sum()
    out[COUNTS:] = 0.0
    if np.isnan(out[_MIN]):  # nothing finite to count, as `stats` leaves it
        out[_LO], out[_WIDTH], out[_SAMPLE] = 0.0, 1.0, 0.0
        return
    integral = torch.tensor(dtype.startswith(_INTEGRAL_PREFIXES))
    lo_t, width_t = _reduce.grid(
        torch.tensor(out[_MIN], dtype=torch.float64),
        torch.tensor(out[_MAX], dtype=torch.float64),
        integral,
    )
    lo, width = float(lo_t), float(width_t)
    for row in rows:
        counts = row[COUNTS:]
        occupied = np.flatnonzero(counts)
        if not occupied.size:
            continue
        if row[_MIN] == row[_MAX]:
            # A constant rank has the grid of [0, value], which may be coarser than the merged
            # one; its values all equal min, so they fall in min's bin.
            starts = np.full(occupied.size, row[_MIN])
        else:
            starts = row[_LO] + occupied * row[_WIDTH]
        # Each side divided by the power-of-two width (exact), not their difference: a bin just
        # below zero, a subnormal away from it, would round into the bin above.
        bins = np.floor(starts / width) - np.floor(lo / width)
        bins = np.clip(bins.astype(np.int64), 0, HIST_BINS - 1)
        np.add.at(out[COUNTS:], bins, counts[occupied])
    out[_LO], out[_WIDTH] = lo, width


def merge_binned(
    lo: NDArray[np.float64],
    width: NDArray[np.float64],
    counts: NDArray[np.float64],
    starts: NDArray[np.intp],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Histograms [n, HIST_BINS] on grids (lo, width) merged in runs that begin at `starts`:
    (lo, width, counts) of each run.

    For histograms of one series at different steps (retention), whose min and max are no longer
    at hand: a run's grid is the finest stable grid (power-of-two width, aligned bins) that holds
    every occupied bin, so each bin falls inside one merged bin and the merged counts are exactly
    those of all the run's data on that grid. Empty histograms (lo NaN) add nothing; a run of
    only those has lo and width NaN.
    """
    n, runs = len(lo), len(starts)
    run = np.repeat(np.arange(runs), np.diff(np.r_[starts, n]))
    occupied = (counts != 0) & np.isfinite(lo)[:, None]
    used = occupied.any(axis=1)
    first = np.argmax(occupied, axis=1)
    last = HIST_BINS - 1 - np.argmax(occupied[:, ::-1], axis=1)
    low = np.minimum.reduceat(np.where(used, lo + first * width, np.inf), starts)
    high = np.maximum.reduceat(np.where(used, lo + (last + 1) * width, -np.inf), starts)
    step = np.maximum.reduceat(np.where(used, width, 0.0), starts)
    some = np.isfinite(low)
    step[~some], low[~some], high[~some] = np.nan, np.nan, np.nan
    # Bins of a stable grid are aligned to their width, so a coarser power of two nests them.
    with np.errstate(invalid="ignore"):
        while (wide := np.ceil(high / step) - np.floor(low / step) > HIST_BINS).any():
            step[wide] *= 2.0
        base = np.floor(low / step) * step
    rows, bins = np.nonzero(occupied)
    g = run[rows]
    # As in `_merge_histograms`: each side divided by the power-of-two step, then subtracted.
    start = lo[rows] + bins * width[rows]
    index = (np.floor(start / step[g]) - np.floor(base[g] / step[g])).astype(np.int64)
    flat = np.bincount(g * HIST_BINS + index, counts[rows, bins], minlength=runs * HIST_BINS)
    return base, step, flat.reshape(runs, HIST_BINS).astype(np.float64, copy=False)
