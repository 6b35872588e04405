"""A run as TensorBoard event files: for users moving to, or comparing with, TensorBoard."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from ..records import SeriesKey
from ._data import edges, ordered, tensor_name
from ._progress import progress_bar

if TYPE_CHECKING:
    from ..run import HistSeries, Run

# Written as scalars; the diagnostics only where they apply (they are NaN elsewhere).
SCALAR_FIELDS: Final = ("mean", "std", "min", "max", "l2", "dead", "saturated", "ratio")


def tag(key: SeriesKey) -> str:
    """`grad/head.fc1.weight`, `activation/head.relu`, `eval/activation/head.fc2 #1`."""
    base = f"{key.kind}/{tensor_name(key)}"
    return base if key.mode == "train" else f"{key.mode}/{base}"


def tensorboard_buckets(
    counts: NDArray[np.float64], lo: float, width: float
) -> tuple[list[float], list[float]] | None:
    """TensorBoard's (bucket_limit, bucket) of one histogram, None when it is empty.

    TensorBoard's bucket i counts values in (limit[i-1], limit[i]], the first one from -inf:
    a leading empty bucket ends at the first occupied bin's left edge, then one bucket per bin up
    to the last occupied one (the empty tails are dropped, as TensorBoard does).
    """
    occupied = np.flatnonzero(counts)
    if len(occupied) == 0 or not np.isfinite(lo):
        return None
    first, last = int(occupied[0]), int(occupied[-1])
    e = edges(lo, width, len(counts))
    limits = e[first : last + 2].tolist()
    return limits, [0.0, *counts[first : last + 1].tolist()]


def write_tensorboard(run: Run, logdir: str | os.PathLike[str], *, progress: bool = False) -> Path:
    try:
        tb = importlib.import_module("torch.utils.tensorboard")
    except ImportError as e:
        raise ImportError("Run.to_tensorboard needs tensorboard: pip install tensorboard") from e
    out = Path(logdir)
    keys = ordered(run, run.series(mode=None))
    # Each event carries its step's recorded end time, not the time of the export.
    wall_times = {(r.mode, r.step): r.wall_time for r in run.step_rows()}
    writer: Any = tb.SummaryWriter(log_dir=str(out))
    try:
        for key in progress_bar(keys, "TensorBoard", enabled=progress):
            stats = run.stats(key.layer, key.kind, key.tensor, call=key.call, mode=key.mode)
            name = tag(key)
            walls = [wall_times.get((key.mode, s)) for s in stats.step_lo.tolist()]
            for field in SCALAR_FIELDS:
                values = stats.values[field]
                for step, wall, value in zip(stats.step_lo.tolist(), walls, values.tolist(),
                                             strict=True):  # fmt: skip
                    if not np.isnan(value):
                        writer.add_scalar(f"{name}/{field}", value, step, walltime=wall)
            hists = run.histograms(key.layer, key.kind, key.tensor, call=key.call, mode=key.mode)
            _write_histograms(
                writer,
                name,
                hists,
                {s: wall_times.get((key.mode, s)) for s in hists.steps.tolist()},
            )
    finally:
        writer.close()
    return out


def _write_histograms(
    writer: Any, name: str, hists: HistSeries, wall_times: dict[int, float | None]
) -> None:
    for i in range(len(hists)):
        buckets = tensorboard_buckets(hists.counts[i], float(hists.lo[i]), float(hists.width[i]))
        if buckets is None:
            continue  # TensorBoard cannot store an empty histogram
        limits, counts = buckets
        c = np.asarray(counts[1:])
        centers = (np.asarray(limits[:-1]) + np.asarray(limits[1:])) / 2
        # Sums from bin centres: the histogram may count a sample, so the exact statistics of
        # the whole tensor would not match its counts.
        writer.add_histogram_raw(
            name,
            min=limits[0],
            max=limits[-1],
            num=float(c.sum()),
            sum=float((c * centers).sum()),
            sum_squares=float((c * centers**2).sum()),
            bucket_limits=limits,
            bucket_counts=counts,
            global_step=int(hists.steps[i]),
            walltime=wall_times[int(hists.steps[i])],
        )
