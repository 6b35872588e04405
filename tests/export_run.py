"""A deterministic synthetic run for the export tests: numpy data, written with RunWriter.

Two linear layers and a ReLU; weights and gradients every step, activations every 2 steps,
histograms every 5. fc2's gradient grows over the steps and half of relu's channels are dead,
so the figures have something to show. Statistics and histograms are computed here with numpy,
independently of nbviz's capture, and kept in `Truth` for the assertions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from nbviz._protocol import HIST_BINS
from nbviz.records import RECORD_FIELDS, LayerMeta, SeriesKey, StatRecord, StepRecord
from nbviz.stats import Histogram
from nbviz.store import RunWriter

STEPS = 40
HIST_EVERY = 5
LAYERS = [
    LayerMeta("", "Net", None),
    LayerMeta("fc1", "Linear", "", ("weight", "bias")),
    LayerMeta("relu", "ReLU", ""),
    LayerMeta("fc2", "Linear", "", ("weight", "bias")),
]
SHAPES = {"fc1.weight": (16, 8), "fc1.bias": (16,), "fc2.weight": (4, 16), "fc2.bias": (4,)}


@dataclass
class Truth:
    stats: dict[SeriesKey, dict[int, NDArray[np.float64]]] = field(default_factory=dict)
    hists: dict[SeriesKey, dict[int, Histogram]] = field(default_factory=dict)
    wall_times: dict[int, float] = field(default_factory=dict)


START_TIME = 1.7e9  # steps end 1.5 s apart from here, so exported times can be checked


def stats_of(x: NDArray[np.float64], dead: float = math.nan) -> NDArray[np.float64]:
    values = {
        "numel": x.size,
        "min": x.min(),
        "max": x.max(),
        "mean": x.mean(),
        "std": x.std(),
        "l2": np.sqrt((x * x).sum()),
        "zeros": (x == 0).sum(),
        "nan": 0,
        "posinf": 0,
        "neginf": 0,
        "dead": dead,
        "saturated": math.nan,
        "ratio": math.nan,
    }
    return np.array([float(values[name]) for name in RECORD_FIELDS])


def histogram_of(x: NDArray[np.float64]) -> Histogram:
    """A grid like nbviz's: power-of-two bin width, lo a multiple of it."""
    span = max(float(x.max() - x.min()), 1e-12)
    width = 2.0 ** math.ceil(math.log2(span / (HIST_BINS - 1)))
    lo = math.floor(float(x.min()) / width) * width
    counts, _ = np.histogram(x, lo + width * np.arange(HIST_BINS + 1))
    return Histogram(lo, width, counts.astype(np.float64), x.size)


def tensors(step: int, rng: np.random.Generator) -> dict[SeriesKey, NDArray[np.float64]]:
    out: dict[SeriesKey, NDArray[np.float64]] = {}
    for name, shape in SHAPES.items():
        layer, param = name.split(".")
        decay = 1.0 - step / (2 * STEPS)
        out[SeriesKey(layer, "weight", param)] = rng.normal(0.1 * step / STEPS, 0.5, shape) * decay
        grow = 10.0 ** (step / STEPS * 2) if layer == "fc2" else 1.0
        out[SeriesKey(layer, "grad", param)] = rng.normal(0, 0.01, shape) * grow
    if step % 2 == 0:
        pre = rng.normal(0.2, 1.0, (32, 16))
        pre[:, :8] = -np.abs(pre[:, :8])  # channels 0-7 never fire: dead
        out[SeriesKey("fc1", "activation", "")] = pre
        out[SeriesKey("relu", "activation", "")] = np.maximum(pre, 0.0)
        out[SeriesKey("fc2", "activation", "")] = rng.normal(0.0, 2.0, (32, 4))
    return out


def write_synthetic_run(path: Path | None, seed: int = 0) -> tuple[RunWriter, Truth]:
    """Writes the run (closed when `path` is a file; open, in memory, when it is None)."""
    rng = np.random.default_rng(seed)
    truth = Truth()
    writer = RunWriter(path, layers=LAYERS)
    for step in range(STEPS):
        records = []
        for key, x in tensors(step, rng).items():
            dead = 0.5 if key.layer == "relu" else math.nan
            stats = stats_of(x, dead)
            h = histogram_of(x) if step % HIST_EVERY == 0 else None
            records.append(StatRecord(step, key, stats, h, "float32"))
            truth.stats.setdefault(key, {})[step] = stats
            if h is not None:
                truth.hists.setdefault(key, {})[step] = h
        writer.add(records)
        truth.wall_times[step] = START_TIME + 1.5 * step
        writer.end_step(StepRecord(step, wall_time=truth.wall_times[step]))
    if path is not None:
        writer.close()
    else:
        writer.flush()
    return writer, truth
