"""The run store: bytes on disk per histogram, write throughput, caller-thread cost, bounded size.

Run: `.venv/bin/python benchmarks/bench_store.py` (about a minute). `--full` runs the long case
at full size: 100,000 steps of a 50-layer model with the default retention (several minutes).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nbviz._protocol import HIST_BINS
from nbviz.records import RECORD_FIELDS, SeriesKey, StatRecord, StepRecord
from nbviz.run import Run
from nbviz.stats import MAX_SAMPLE, Histogram
from nbviz.store import Retention, RunWriter

TENSORBOARD_BYTES = 5_400  # per histogram, measured for design.md (section 3), not here
KEEP_ALL = Retention(stats_per_series=10**9, hists_per_series=10**9)


@dataclass
class Model:
    """Typical records of a model: per series, statistics and a sampled histogram."""

    keys: list[SeriesKey]
    stats: np.ndarray
    hists: list[Histogram]


def model(layers: int, seed: int = 0) -> Model:
    rng = np.random.default_rng(seed)
    keys = [
        SeriesKey(f"blocks.{i}.fc", kind, "weight" if kind == "weight" else "")
        for i in range(layers)
        for kind in ("weight", "activation")
    ]
    n = len(keys)
    stats = np.full((n, len(RECORD_FIELDS)), np.nan)
    stats[:, 0] = 262_144  # numel
    stats[:, 1:3] = np.sort(rng.normal(0, 3, (n, 2)).astype(np.float32), axis=1)  # min, max
    stats[:, 3:6] = rng.normal(0, 1, (n, 3))  # mean, std, l2 in float64
    stats[:, 6:10] = 0  # zeros, nan, posinf, neginf
    hists = []
    for _ in range(n):
        # A bell curve over ~40 of 64 bins, from a 64K sample (counts need uint16).
        values = rng.normal(0, 1, MAX_SAMPLE)
        counts, _ = np.histogram(values, bins=HIST_BINS, range=(-5, 5))
        hists.append(Histogram(-5.0, 10 / HIST_BINS, counts.astype(np.float64), MAX_SAMPLE))
    return Model(keys, stats, hists)


def step_records(m: Model, step: int) -> list[StatRecord]:
    return [
        StatRecord(step, key, m.stats[i], m.hists[i], "float32") for i, key in enumerate(m.keys)
    ]


@dataclass
class Result:
    seconds: float  # first add to close() returning
    caller_seconds: float  # inside add() and end_step()
    records: int
    file_bytes: int
    rss_mb: list[float]  # resident memory at each quarter of the run


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def write(path: Path, m: Model, steps: int, retention: Retention) -> Result:
    caller = 0.0
    rss = []
    start = time.perf_counter()
    w = RunWriter(path, retention=retention)
    for step in range(steps):
        records = step_records(m, step)
        t = time.perf_counter()
        w.add(records)
        w.end_step(StepRecord(step))
        caller += time.perf_counter() - t
        if (step + 1) % max(1, steps // 4) == 0:
            rss.append(rss_mb())
    w.close()
    seconds = time.perf_counter() - start
    return Result(seconds, caller, steps * len(m.keys), path.stat().st_size, rss)


def bytes_and_throughput(tmp: Path, repeats: int) -> None:
    m = model(layers=50)
    steps = 1_000  # 100,000 histogram records, all kept
    results = [write(tmp / f"keep-{i}.nbviz", m, steps, KEEP_ALL) for i in range(repeats)]
    per_record = statistics.median(r.file_bytes / r.records for r in results)
    rate = statistics.median(r.records / r.seconds for r in results)
    caller_ns = statistics.median(1e9 * r.caller_seconds / r.records for r in results)
    print(f"{len(m.keys)} series x {steps} steps, a statistics row and a histogram per record,")
    print(f"all kept (median of {repeats}):")
    print(f"  bytes on disk per histogram record   {per_record:8.0f} B  (target <= 300)")
    print(f"  TensorBoard, for reference           {TENSORBOARD_BYTES:8.0f} B  (design.md)")
    print(f"  write throughput through RunWriter   {rate:8.0f} records/s  (target >= 20,000)")
    print(f"  add() + end_step(), 100 per call     {caller_ns:8.0f} ns per record")

    # As hooks would call it: one record per call, in bursts between "compute" pauses.
    one = model(layers=1)
    bursts, per_burst = 20, 1_000
    elapsed = 0.0
    with RunWriter(tmp / "single.nbviz", retention=KEEP_ALL) as w:
        for b in range(bursts):
            records = [step_records(one, b * per_burst + s)[0] for s in range(per_burst)]
            t = time.perf_counter()
            for r in records:
                w.add([r])
            elapsed += time.perf_counter() - t
            time.sleep(0.1)
    single_ns = 1e9 * elapsed / (bursts * per_burst)
    print(f"  add([record]), one record per call   {single_ns:8.0f} ns per call")


def bounded(tmp: Path, steps: int, retention: Retention) -> None:
    m = model(layers=50)
    path = tmp / "long.nbviz"
    before = rss_mb()
    r = write(path, m, steps, retention)
    n = len(m.keys)
    with Run.open(path) as run:
        key = m.keys[0]
        kept_stats = len(run.stats(key.layer, key.kind))
        kept_hists = len(run.histograms(key.layer, key.kind))
    conn = sqlite3.connect(path)
    stat_rows = conn.execute("SELECT count(*) FROM stats").fetchone()[0]
    hist_rows, merged = conn.execute("SELECT count(*), sum(count) FROM hists").fetchone()
    conn.close()
    stat_cap = n * retention.stats_per_series * 1.1
    hist_cap = n * retention.hists_per_series * 1.1
    print(
        f"\n{steps:,} steps of {n // 2} layers x 2 kinds, statistics and histograms every step "
        f"({r.records:,} records), retention {retention.stats_per_series:,} statistics and "
        f"{retention.hists_per_series:,} histograms per series:"
    )
    rate = r.records / r.seconds
    caller_us = 1e6 * r.caller_seconds / r.records
    quarters = ", ".join(f"{x - before:+.0f}" for x in r.rss_mb)
    print(f"  wall time                  {r.seconds:8.1f} s, {rate:,.0f} records/s")
    print(f"  in add() and end_step()    {caller_us:8.1f} us per record, waits included (the")
    print("                                      producer outruns the writer here)")
    print(f"  rows of one series         {kept_stats:8,} statistics, {kept_hists:,} histograms")
    print(f"  rows in the file           {stat_rows:8,} statistics, {hist_rows:,} histograms")
    print(f"  budget (+10% slack)        {stat_cap:8,.0f} statistics, {hist_cap:,.0f} histograms")
    print(f"  records in those histograms {merged:7,} of {r.records:,} (merged, none dropped)")
    print(f"  file size                  {r.file_bytes / 2**20:8.1f} MiB")
    print(f"  resident memory vs. start  {quarters} MiB at each quarter of the run")
    os.remove(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--full", action="store_true", help="100,000 steps, default retention")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bytes_and_throughput(tmp, args.repeats)
        if args.full:
            bounded(tmp, 100_000, Retention())
        else:
            # The same regime at a tenth of the size: 5x more steps than the statistics budget.
            bounded(tmp, 10_000, Retention(stats_per_series=2_000, hists_per_series=100))


if __name__ == "__main__":
    main()
