"""nbviz.store: encodings, the writer thread, retention, crash safety and bad inputs.

Runs are real SQLite files under tmp_path; expected values come from numpy on the inputs.
"""

from __future__ import annotations

import gc
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import NDArray

from nbviz import _runfile, stats
from nbviz._encoding import decode_counts, decode_stats, encode_counts, encode_stats
from nbviz._merge import merge_binned
from nbviz._protocol import HIST_BINS
from nbviz.records import RECORD_FIELDS, Anomaly, SeriesKey, StatRecord, StepRecord
from nbviz.run import Run
from nbviz.stats import Histogram
from nbviz.store import Retention, RunWriter, plan_groups

REPO = Path(__file__).resolve().parent.parent
F = {name: i for i, name in enumerate(RECORD_FIELDS)}
KEY = SeriesKey("fc", "weight", "weight")
NF = len(RECORD_FIELDS)


def stats_rows(n: int, seed: int = 0) -> NDArray[np.float64]:
    """Plausible statistics: integer counts, float32 extremes, float64 moments, NaN diagnostics."""
    rng = np.random.default_rng(seed)
    v = np.full((n, NF), np.nan)
    v[:, F["numel"]] = 4096
    v[:, F["min"]] = rng.normal(-2, 0.1, n).astype(np.float32)
    v[:, F["max"]] = rng.normal(2, 0.1, n).astype(np.float32)
    v[:, F["mean"]] = rng.normal(0, 0.01, n)
    v[:, F["std"]] = rng.uniform(0.5, 1.5, n)
    v[:, F["l2"]] = rng.uniform(10, 20, n)
    v[:, F["zeros"]] = rng.integers(0, 5, n)
    v[:, [F["nan"], F["posinf"], F["neginf"]]] = 0
    return v


def hist(seed: int) -> Histogram:
    rng = np.random.default_rng(seed)
    counts = np.zeros(HIST_BINS)
    counts[10:40] = rng.integers(0, 3000, 30)
    return Histogram(lo=-2.0, width=2.0**-4, counts=counts, sample=int(counts.sum()))


def run_python(script: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *args], env=env)


# ---------------------------------------------------------------------------------------------
# Encodings


special_floats = st.sampled_from([0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 1e308, 2.0**24 + 1])
stat_values = hnp.arrays(
    np.float64,
    st.tuples(st.integers(0, 20), st.just(NF)),
    elements=st.one_of(st.floats(allow_nan=True, allow_infinity=True), special_floats),
)


@settings(max_examples=200, deadline=None)
@given(stat_values)
def test_stats_encoding_is_lossless(values: NDArray[np.float64]) -> None:
    got = decode_stats(encode_stats(values))
    np.testing.assert_array_equal(got, values)
    numbers = ~np.isnan(values)  # NaN payloads and signs are not kept
    assert np.array_equal(np.signbit(got[numbers]), np.signbit(values[numbers]))  # -0.0 stays


def test_stats_encoding_is_compact() -> None:
    blobs = encode_stats(stats_rows(100))
    # numel, min, max, zeros as float32; mean, std, l2 as float64; zeros and NaN cost nothing.
    assert {len(b) for b in blobs} <= {4 + 4 * 4 + 3 * 8, 4 + 3 * 4 + 3 * 8}


count_values = hnp.arrays(
    np.float64,
    st.tuples(st.integers(0, 10), st.just(HIST_BINS)),
    elements=st.one_of(
        st.integers(0, 2**40).map(float),
        st.sampled_from([0.0, 255.0, 256.0, 65535.0, 65536.0, 2.0**32 - 1, 2.0**32, 0.5, -1.0]),
    ),
)


@settings(max_examples=100, deadline=None)
@given(count_values)
def test_counts_encoding_is_lossless(counts: NDArray[np.float64]) -> None:
    np.testing.assert_array_equal(decode_counts(encode_counts(counts)), counts)


def test_counts_encoding_uses_the_narrowest_type_over_occupied_bins() -> None:
    counts = np.zeros((4, HIST_BINS))
    counts[0, 10:20] = 255  # uint8
    counts[1, 10:20] = 65535  # uint16
    counts[2, 10:20] = 65536  # uint32
    blobs = encode_counts(counts)  # row 3 is empty
    assert [len(b) for b in blobs] == [1 + 10, 1 + 20, 1 + 40, 1]


def test_malformed_blobs_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"malformed statistics"):
        decode_stats([encode_stats(stats_rows(1))[0][:-1]])
    with pytest.raises(ValueError, match=r"malformed histogram"):
        decode_counts([b"\x3f\x01\x02"])  # first bin 63 with two bins


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(0, 10**6), min_size=1, max_size=300, unique=True),
    st.integers(1, 100),
)
def test_plan_groups_fits_the_target_with_aligned_runs(steps: list[int], target: int) -> None:
    s = np.array(sorted(steps), dtype=np.int64)
    starts = plan_groups(s, target)
    assert len(starts) <= target or len(s) <= target
    assert starts[0] == 0
    assert np.all(np.diff(starts) > 0)
    assert np.array_equal(plan_groups(s, target), starts)  # deterministic
    # Every run lies inside one aligned power-of-two range of steps.
    ends = np.r_[starts[1:], len(s)] - 1
    span = s[ends] ^ s[starts]
    assert np.all(span < 2 ** np.maximum(1, np.ceil(np.log2(s[-1] + 2))))


# ---------------------------------------------------------------------------------------------
# The writer thread


def test_add_only_queues_and_flush_commits_everything(tmp_path: Path) -> None:
    values = stats_rows(1000)
    records = [StatRecord(s, KEY, values[s % 1000], hist(s % 7)) for s in range(100_000)]
    chunks = [records[i : i + 100] for i in range(0, len(records), 100)]
    with RunWriter(tmp_path / "run.nbviz") as w:
        start = time.perf_counter()
        for chunk in chunks:
            w.add(chunk)
        w.end_step(StepRecord(99_999))
        elapsed = time.perf_counter() - start
        writers = [t for t in threading.enumerate() if t.name.startswith("nbviz-writer")]
        assert writers
        assert writers[0] is not threading.current_thread()
        w.flush()
        with Run.open(tmp_path / "run.nbviz") as run:
            assert run.stats("fc", "weight").count.sum() >= 20_000  # thinned, nothing lost
            assert run.last_step == 99_999
    # Queuing 100k records is a thousand queue puts, far from the writer's seconds of work.
    assert elapsed < 0.5


def test_nothing_is_visible_before_a_commit(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    with RunWriter(path, flush_every=3600, batch=10**6) as w, Run.open(path) as run:
        w.add([StatRecord(0, KEY, stats_rows(1)[0])])
        w.end_step(StepRecord(0))
        time.sleep(0.2)
        assert not run.refresh()
        assert run.series() == []
        w.flush()
        assert run.refresh()
        assert run.series() == [KEY]


def test_commits_every_flush_period_without_flush(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    with RunWriter(path, flush_every=0.05) as w, Run.open(path) as run:
        w.add([StatRecord(0, KEY, stats_rows(1)[0])])
        w.end_step(StepRecord(0))
        deadline = time.monotonic() + 10
        while run.last_step is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert run.last_step == 0


def test_steps_commit_with_their_records(tmp_path: Path) -> None:
    """A record written mid-step (batch reached) stays uncommitted until its step ends."""
    path = tmp_path / "run.nbviz"
    with RunWriter(path, flush_every=0.01, batch=2) as w, Run.open(path) as run:
        w.add([StatRecord(0, KEY, stats_rows(1)[0])])
        w.end_step(StepRecord(0))
        w.add([StatRecord(1, KEY, stats_rows(1)[0]) for _ in range(3)])  # past the batch
        time.sleep(0.5)
        assert list(run.stats("fc", "weight").step_lo) == [0]
        w.end_step(StepRecord(1))
        w.flush()
        assert list(run.stats("fc", "weight").step_lo) == [0, 1]


def test_writer_errors_are_raised_with_their_cause(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    w = RunWriter(path)
    w.add([StatRecord(0, KEY, stats_rows(1)[0])])
    w.end_step(StepRecord(0))
    w.flush()
    w.add([StatRecord(1, KEY, np.zeros(3))])  # capture bug: wrong number of statistics
    with pytest.raises(RuntimeError, match=r"could not write the run .*13 values") as info:
        w.flush()
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(RuntimeError, match=r"could not write"):
        w.add([StatRecord(2, KEY, stats_rows(1)[0])])
    with pytest.raises(RuntimeError, match=r"could not write"):
        w.close()
    w.close()  # idempotent
    with Run.open(path) as run:  # what was committed before is intact
        assert list(run.stats("fc", "weight").step_lo) == [0]


def test_an_error_nobody_asked_for_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    w = RunWriter(tmp_path / "run.nbviz")
    w.add([StatRecord(0, KEY, np.zeros(3))])
    del w
    gc.collect()
    assert "could not write the run" in capsys.readouterr().err


def test_closed_writer_refuses_records(tmp_path: Path) -> None:
    w = RunWriter(tmp_path / "run.nbviz")
    w.close()
    w.close()
    assert w.closed
    with pytest.raises(RuntimeError, match=r"recorder is closed"):
        w.add([StatRecord(0, KEY, stats_rows(1)[0])])
    with pytest.raises(RuntimeError, match=r"recorder is closed"):
        w.end_step(StepRecord(0))
    with pytest.raises(RuntimeError, match=r"recorder is closed"):
        w.flush()


def test_close_checkpoints_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    with RunWriter(path) as w:
        w.add([StatRecord(0, KEY, stats_rows(1)[0], hist(0))])
        w.end_step(StepRecord(0))
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    conn.close()
    assert meta["format"] == "nbviz-run"
    assert meta["schema_version"] == "2"
    assert meta["state"] == "closed"


def test_a_dropped_writer_is_flushed_by_its_finalizer(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    w = RunWriter(path, flush_every=3600)
    w.add([StatRecord(0, KEY, stats_rows(1)[0])])
    w.end_step(StepRecord(0))
    del w
    gc.collect()
    with Run.open(path) as run:
        assert run.last_step == 0
        assert run.complete


def test_a_forgotten_writer_is_flushed_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    script = """
        import sys
        import numpy as np
        from nbviz.records import SeriesKey, StatRecord, StepRecord
        from nbviz.store import RunWriter
        w = RunWriter(sys.argv[1], flush_every=3600)
        w.add([StatRecord(7, SeriesKey("fc", "weight", "weight"), np.zeros(13))])
        w.end_step(StepRecord(7))
        sys.modules["__main__"].keep = w  # referenced until the interpreter exits
    """
    assert run_python(script, str(path)).wait(timeout=60) == 0
    with Run.open(path) as run:
        assert run.last_step == 7
        assert run.complete


def test_an_existing_run_is_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    values = stats_rows(10)
    with RunWriter(path, meta={"model": "mlp"}) as w:
        assert w.last_step is None
        for s in range(5):
            w.add([StatRecord(s, KEY, values[s])])
            w.end_step(StepRecord(s))
    with RunWriter(path, meta={"resumed": "yes"}) as w:
        assert w.last_step == 4
        for s in range(5, 10):
            w.add([StatRecord(s, KEY, values[s])])
            w.end_step(StepRecord(s))
    with Run.open(path) as run:
        np.testing.assert_array_equal(run.steps, np.arange(10))
        np.testing.assert_array_equal(
            run.stats("fc", "weight").values["mean"], values[:, F["mean"]]
        )
        assert run.meta["model"] == "mlp"
        assert run.meta["resumed"] == "yes"


# ---------------------------------------------------------------------------------------------
# Processes: reading while another writes, and kill -9

_WRITER_LOOP = """
    import sys, time
    import numpy as np
    from nbviz.records import SeriesKey, StatRecord, StepRecord
    from nbviz.stats import Histogram
    from nbviz.store import RunWriter
    path, steps = sys.argv[1], int(sys.argv[2])
    keys = [SeriesKey(f"l{i}", "weight", "weight") for i in range(4)]
    w = RunWriter(path, flush_every=0.01, batch=6)
    step = 0
    while steps < 0 or step < steps:
        for k in keys:  # one add per record, with pauses: a kill can land mid-step
            counts = np.full(64, float(step % 7))
            w.add([StatRecord(step, k, np.full(13, float(step)), Histogram(0.0, 1.0, counts, 64))])
            time.sleep(0.0005)
        w.end_step(StepRecord(step, wall_time=time.time()))
        step += 1
    w.close()
"""


def wait_for_step(path: Path, step: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                with Run.open(path) as run:
                    last = run.last_step
                    if last is not None and last >= step:
                        return
            except ValueError:
                pass  # the writer has not created the schema yet
        time.sleep(0.05)
    raise AssertionError(f"the writer did not reach step {step} in {timeout} s")


def test_kill_9_leaves_a_consistent_prefix(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    proc = run_python(_WRITER_LOOP, str(path), "-1")
    try:
        wait_for_step(path, 40)
        with pytest.raises(ValueError, match=r"being written by process \d+: one writer per run"):
            RunWriter(path)
        time.sleep(0.137)  # land anywhere in a step
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with Run.open(path) as run:
        assert not run.complete
        last = run.last_step
        assert last is not None
        assert last >= 40
        steps = np.arange(last + 1)
        np.testing.assert_array_equal(run.steps, steps)
        for key in run.series():
            s = run.stats(key.layer, key.kind)  # every record of every committed step, no more
            np.testing.assert_array_equal(s.step_lo, steps)
            np.testing.assert_array_equal(s.values["mean"], steps.astype(float))
            h = run.histograms(key.layer, key.kind)
            np.testing.assert_array_equal(h.steps, steps)
            np.testing.assert_array_equal(h.counts[:, 0], (steps % 7).astype(float))
    # The crashed run can be appended to.
    with RunWriter(path) as w:
        assert w.last_step == last
        w.add([StatRecord(last + 1, SeriesKey("l0", "weight", "weight"), np.zeros(NF))])
        w.end_step(StepRecord(last + 1))
    with Run.open(path) as run:
        assert run.last_step == last + 1
        assert run.complete


# ---------------------------------------------------------------------------------------------
# Retention


def test_a_million_steps_stay_within_budget(tmp_path: Path) -> None:
    n, stats_budget, hists_budget, keep = 1_000_000, 2_000, 200, 32
    rng = np.random.default_rng(1)
    values = stats_rows(n, seed=1)
    values[:, F["dead"]] = rng.uniform(0, 1, n)
    spike = 654_321
    values[spike, F["max"]] = 1e6
    anomalous = [333_333, 333_340, 777_777]
    values[anomalous, F["nan"]] = 5
    h = hist(0)
    retention = Retention(stats_per_series=stats_budget, hists_per_series=hists_budget)
    path = tmp_path / "run.nbviz"
    with RunWriter(path, retention=retention) as w:
        for lo in range(0, n, 20_000):
            w.add([StatRecord(s, KEY, values[s], h) for s in range(lo, lo + 20_000)])
            w.end_step(StepRecord(lo + 19_999))

    with Run.open(path) as run:
        s = run.stats("fc", "weight")
        hs = run.histograms("fc", "weight")
    assert len(s) <= stats_budget
    assert len(hs) <= hists_budget
    assert s.count.sum() == n  # every record is in exactly one row
    np.testing.assert_array_equal(s.step_lo[1:], s.step_hi[:-1] + 1)
    # The first steps and the latest are raw.
    np.testing.assert_array_equal(s.step_lo[:keep], np.arange(keep))
    assert s.count[:keep].tolist() == [1] * keep
    assert (s.step_lo[-1], s.count[-1]) == (n - 1, 1)
    np.testing.assert_array_equal(hs.steps[:keep], np.arange(keep))
    assert hs.steps[-1] == n - 1
    assert set(anomalous) <= set(hs.steps.tolist())
    # Histograms are merged, never dropped: every record is in exactly one row, whose counts are
    # the sum of those it merged. All records have the same bins here, so a merged grid keeps the
    # width and starts at the first occupied bin.
    assert hs.count.sum() == n
    raw = hs.count == 1
    np.testing.assert_array_equal(hs.steps[raw], hs.step_hi[raw])
    assert {0, keep - 1, *anomalous, n - 1} <= set(hs.steps[raw].tolist())
    np.testing.assert_array_equal(hs.counts[raw], np.tile(h.counts, (raw.sum(), 1)))
    first = int(np.flatnonzero(h.counts)[0])
    shifted = np.r_[h.counts[first:], np.zeros(first)]
    np.testing.assert_array_equal(hs.counts[~raw], hs.count[~raw, None] * shifted[None])
    np.testing.assert_array_equal(hs.lo[~raw], h.lo + first * h.width)
    np.testing.assert_array_equal(hs.width, np.full(len(hs), h.width))
    np.testing.assert_array_equal(hs.sample, hs.count * h.sample)
    # Merged rows cover consecutive step ranges, apart from the anomalous rows inside them.
    merged = ~np.isin(hs.steps, anomalous)
    np.testing.assert_array_equal(hs.steps[merged][1:], hs.step_hi[merged][:-1] + 1)
    # The spike survives as the max of the envelope that holds it.
    row = int(np.searchsorted(s.step_lo, spike, side="right")) - 1
    assert s.count[row] > 1
    assert s.hi["max"][row] == 1e6
    # Envelopes hold the mean, min and max of exactly the raw values they cover.
    starts = s.step_lo
    for name in ("mean", "max", "dead", "nan"):
        col = values[:, F[name]]
        np.testing.assert_allclose(s.values[name], np.add.reduceat(col, starts) / s.count, 1e-9)
        np.testing.assert_array_equal(s.lo[name], np.minimum.reduceat(col, starts))
        np.testing.assert_array_equal(s.hi[name], np.maximum.reduceat(col, starts))
    # Resolution is uniform within a factor of two (the first and last envelopes are partial).
    middle = s.count[keep + 1 : -2]
    assert middle.max() <= 2 * middle.min()


def test_anomalous_histograms_are_kept_up_to_half_the_budget(tmp_path: Path) -> None:
    values = stats_rows(2000)
    values[1000:, F["nan"]] = 1  # diverged at step 1000: every later step is anomalous
    retention = Retention(stats_per_series=100, hists_per_series=100, keep_first=4)
    path = tmp_path / "run.nbviz"
    with RunWriter(path, retention=retention) as w:
        w.add([StatRecord(s, KEY, values[s], hist(s)) for s in range(2000)])
        w.end_step(StepRecord(1999))
    with Run.open(path) as run:
        steps = run.histograms("fc", "weight").steps
    assert len(steps) <= 100
    assert set(range(1000, 1050)) <= set(steps.tolist())  # the onset and what followed
    assert {0, 1, 2, 3, 1999} <= set(steps.tolist())


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 200), st.floats(-30, 30), st.floats(-3, 3)), min_size=1, max_size=6
    ),
    st.integers(0, 2**31),
)
# A bin a subnormal below zero once rounded into the bin above it (and past the last bin).
@example(parts=[(1, 0.0, 0.0), (63, -4.4020144093426874e-39, 0.0)], seed=0)
@example(parts=[(1, 0.0, 1.25), (63, -4.4020144093426874e-39, 0.0)], seed=552388)
def test_merged_histograms_are_numpys_histogram_of_the_union(
    parts: list[tuple[int, float, float]], seed: int
) -> None:
    """Tensors of any spread (or empty, or constant) histogrammed apart, then merged: the counts
    are numpy's histogram of all their values on the merged grid, which has aligned power-of-two
    bins."""
    rng = np.random.default_rng(seed)
    data = [
        (rng.standard_normal(n) * 10.0**scale + shift).astype(np.float32)
        if n % 7
        else np.full(n, np.float32(shift))
        for n, shift, scale in parts
    ]
    hists = [stats.histogram(torch.from_numpy(d), exact=True) for d in data]
    lo, width, counts = merge_binned(
        np.array([h.lo for h in hists]),
        np.array([h.width for h in hists]),
        np.array([h.counts for h in hists]),
        np.array([0]),
    )
    union = np.concatenate(data).astype(np.float64)
    assert counts.sum() == union.size
    if not union.size:
        assert np.isnan(lo[0])
        return
    assert np.log2(width[0]).is_integer()
    assert lo[0] % width[0] == 0
    edges = lo[0] + width[0] * np.arange(HIST_BINS + 1)
    assert edges[0] <= union.min()
    assert union.max() < edges[-1]
    np.testing.assert_array_equal(counts[0], np.histogram(union, edges)[0])


def test_retention_rejects_budgets_without_room() -> None:
    with pytest.raises(ValueError, match=r"stats_per_series=10 leaves no room"):
        Retention(stats_per_series=10, keep_first=32)
    with pytest.raises(ValueError, match=r"hists_per_series=40 leaves no room"):
        Retention(hists_per_series=40, keep_first=32)


# ---------------------------------------------------------------------------------------------
# Bad inputs: clear errors, nothing overwritten


def test_a_text_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("my notes\n" * 100)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"notes\.txt is not an nbviz run"):
        RunWriter(path)
    assert path.read_bytes() == before


def test_a_foreign_sqlite_database_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers(name TEXT)")
    conn.execute("INSERT INTO customers VALUES ('ada')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"other.db is not an nbviz run: it has no nbviz meta"):
        RunWriter(path)
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists()


def write_small_run(path: Path, steps: int = 200) -> None:
    values = stats_rows(steps)
    with RunWriter(path) as w:
        for s in range(steps):
            w.add([StatRecord(s, KEY, values[s], hist(s))])
            w.end_step(StepRecord(s))


def test_a_truncated_run_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    write_small_run(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"run\.nbviz is truncated"):
        RunWriter(path)
    assert len(path.read_bytes()) == len(data) // 2


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    write_small_run(path, steps=3)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match=r"newer nbviz \(run schema version 3.*upgrade nbviz"):
        RunWriter(path)


def test_a_version_1_run_is_read_and_upgraded_when_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    write_small_run(path, steps=3)
    conn = sqlite3.connect(path)  # what version 1 wrote: no span or count in hists
    conn.execute("ALTER TABLE hists DROP COLUMN span")
    conn.execute("ALTER TABLE hists DROP COLUMN count")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with Run.open(path) as run:
        old = run.histograms("fc", "weight")
    assert old.steps.tolist() == old.step_hi.tolist() == [0, 1, 2]
    assert old.count.tolist() == [1, 1, 1]
    with RunWriter(path) as w:
        w.add([StatRecord(3, KEY, stats_rows(1)[0], hist(3))])
        w.end_step(StepRecord(3))
    with Run.open(path) as run:
        assert run.meta["schema_version"] == "2"
        h = run.histograms("fc", "weight")
    assert h.steps.tolist() == [0, 1, 2, 3]
    assert h.count.tolist() == [1, 1, 1, 1]
    np.testing.assert_array_equal(h.counts[3], hist(3).counts)


def test_a_path_under_a_file_is_an_os_error(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    with pytest.raises(NotADirectoryError, match=r"plain.*run.nbviz"):
        RunWriter(tmp_path / "plain" / "run.nbviz")
    with pytest.raises(FileNotFoundError, match=r"does not exist.*run.nbviz"):
        RunWriter(tmp_path / "missing" / "run.nbviz")


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux /proc")
def test_an_unwritable_place_is_an_os_error() -> None:
    # Even root cannot create a file in /proc, so this holds whoever runs the tests.
    with pytest.raises(OSError, match=r"/proc/nbviz-test\.nbviz"):
        RunWriter("/proc/nbviz-test.nbviz")


@pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes to read-only directories"
)
def test_a_read_only_directory_is_a_permission_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match=r"not writable.*run.nbviz"):
            RunWriter(tmp_path / "run.nbviz")
    finally:
        tmp_path.chmod(0o700)


def test_one_writer_per_file_in_a_process(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    first = RunWriter(path)
    with pytest.raises(ValueError, match=r"already being written by <RunWriter .*close it first"):
        RunWriter(path)
    first.close()
    RunWriter(path).close()  # closed: the file is free again
    forgotten = RunWriter(path)
    forgotten.end_step(StepRecord(0))
    del forgotten  # unreachable: its finalizer flushes and frees the file
    with RunWriter(path) as w:
        assert w.last_step == 0


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"flush_every"):
        RunWriter(None, flush_every=0)
    with pytest.raises(ValueError, match=r"batch"):
        RunWriter(None, batch=0)
    with pytest.raises(ValueError, match=r"meta keys \['format'\] are reserved"):
        RunWriter(None, meta={"format": "mine"})


def test_anomalies_beyond_the_cap_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    with RunWriter(path, retention=Retention(anomalies=3)) as w:
        for s in range(5):
            w.add_anomaly(Anomaly(s, "forward", KEY, 1, 0, 0))
        w.end_step(StepRecord(4))
    with Run.open(path) as run:
        assert [a.step for a in run.anomalies] == [0, 1, 2]
        assert run.meta["anomalies_dropped"] == "2"


@pytest.mark.parametrize("existing", ["none", "empty file"])
def test_a_new_run_file_appears_with_its_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existing: str
) -> None:
    """A notebook that opens the file as soon as a script creates it finds a run, never an
    empty database: the schema is written under a temporary name, then linked into place."""
    path = tmp_path / "run.nbviz"
    if existing == "empty file":
        path.touch()
    seen: list[bool] = []
    original = _runfile.create_schema

    def creating(conn: sqlite3.Connection) -> None:
        seen.append(path.exists() and path.stat().st_size > 0)  # nothing readable there yet
        original(conn)

    monkeypatch.setattr(_runfile, "create_schema", creating)
    with RunWriter(path, meta={"who": "me"}) as w:
        with Run.open(path) as run:  # at once: the schema and its meta are there
            assert run.meta["format"] == "nbviz-run"
        w.end_step(StepRecord(0, "train", wall_time=1.0))
    assert seen == [False]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nbviz"]  # no temporary left
    with Run.open(path) as run:
        assert run.meta["who"] == "me"
        assert run.steps == [0]
