"""nbviz.run: reading runs back exactly, in memory, from another process, and bad files."""

from __future__ import annotations

import gc
import importlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from numpy.typing import NDArray

from nbviz._protocol import HIST_BINS
from nbviz.records import RECORD_FIELDS, Anomaly, LayerMeta, SeriesKey, StatRecord, StepRecord
from nbviz.run import Run, SeriesNotFoundError
from nbviz.stats import Histogram
from nbviz.store import RunWriter

REPO = Path(__file__).resolve().parent.parent
NF = len(RECORD_FIELDS)
LAYERS = [
    LayerMeta("", "Net", None),
    LayerMeta("encoder", "Sequential", ""),
    LayerMeta("encoder.fc1", "Linear", "encoder", ("weight", "bias")),
    LayerMeta("encoder.fc2", "Linear", "encoder", ("weight", "bias")),
]
W1 = SeriesKey("encoder.fc1", "weight", "weight")
B1 = SeriesKey("encoder.fc1", "weight", "bias")
A1 = SeriesKey("encoder.fc1", "activation", "")
A1_SECOND_CALL = SeriesKey("encoder.fc1", "activation", "", call=1)
A1_EVAL = SeriesKey("encoder.fc1", "activation", "", mode="eval")
G2 = SeriesKey("encoder.fc2", "grad", "weight")
KEYS = [W1, B1, A1, A1_SECOND_CALL, A1_EVAL, G2]


@dataclass
class Expected:
    stats: dict[SeriesKey, tuple[list[int], list[NDArray[np.float64]]]]
    hists: dict[SeriesKey, tuple[list[int], list[Histogram]]]
    steps: list[StepRecord]
    anomalies: list[Anomaly]


def awkward_stats(rng: np.random.Generator) -> NDArray[np.float64]:
    """Values every encoding must keep: NaN, ±Inf, -0.0, subnormals, huge counts."""
    v = rng.normal(size=NF) * 10.0 ** rng.integers(-30, 30, NF)
    v[rng.integers(0, NF)] = rng.choice([np.nan, np.inf, -np.inf, -0.0, 5e-324, 2.0**60])
    v[0] = float(rng.integers(0, 2**40))
    return v


def awkward_hist(rng: np.random.Generator) -> Histogram:
    counts = np.zeros(HIST_BINS)
    lo, hi = sorted(rng.integers(0, HIST_BINS, 2))
    counts[lo : hi + 1] = rng.integers(0, 2 ** int(rng.choice([8, 16, 32, 40])), hi - lo + 1)
    if rng.random() < 0.1:
        return Histogram(np.nan, np.nan, np.zeros(HIST_BINS), 0)  # an empty tensor
    return Histogram(-3.0 * 2.0**-7, 2.0**-7, counts, int(rng.integers(1, 2**20)))


def write_run(w: RunWriter, steps: int = 50, seed: int = 0) -> Expected:
    rng = np.random.default_rng(seed)
    exp = Expected({k: ([], []) for k in KEYS}, {k: ([], []) for k in KEYS}, [], [])
    for step in range(steps):
        records = []
        for key in KEYS:
            if key.mode == "eval" and step % 10:
                continue
            stats = awkward_stats(rng)
            h = awkward_hist(rng) if step % 3 == 0 else None
            records.append(StatRecord(step, key, stats, h, "float32"))
            exp.stats[key][0].append(step)
            exp.stats[key][1].append(stats)
            if h is not None:
                exp.hists[key][0].append(step)
                exp.hists[key][1].append(h)
        w.add(records[:3])
        w.add(records[3:])
        skipped = step % 17 == 5
        rec = StepRecord(step, "train", skipped, "inf grad" if skipped else "", 1e9 + step)
        w.end_step(rec)
        exp.steps.append(rec)
    # Reported out of phase order within a step: the reader orders them.
    for a in [
        Anomaly(30, "optimizer", G2, 0, 1, 0, "update"),
        Anomaly(12, "backward", G2, 3, 0, 0),
        Anomaly(30, "forward", A1, 1, 2, 3, "fc1 output"),
    ]:
        w.add_anomaly(a)
        exp.anomalies.append(a)
    exp.anomalies.sort(key=lambda a: (a.step, ["forward", "backward", "optimizer"].index(a.phase)))
    return exp


def check_run(run: Run, exp: Expected) -> None:
    assert run.layers == LAYERS
    assert run.series() == sorted(k for k in KEYS if k.mode == "train")
    assert run.series(mode=None) == sorted(KEYS)
    assert run.series("encoder.fc1", "weight") == [B1, W1]
    np.testing.assert_array_equal(run.steps, [s.step for s in exp.steps])
    assert run.last_step == exp.steps[-1].step
    assert run.skipped_steps == [s for s in exp.steps if s.skipped]
    for key in KEYS:
        s = run.stats(key.layer, key.kind, key.tensor, call=key.call, mode=key.mode)
        steps, values = exp.stats[key]
        want = np.array(values)
        assert s.key == key
        assert s.dtype == "float32"
        np.testing.assert_array_equal(s.step_lo, steps)
        np.testing.assert_array_equal(s.step_hi, steps)
        np.testing.assert_array_equal(s.count, np.ones(len(steps)))
        for i, name in enumerate(RECORD_FIELDS):
            np.testing.assert_array_equal(s.values[name], want[:, i], err_msg=name)
            np.testing.assert_array_equal(s.lo[name], want[:, i], err_msg=name)
            np.testing.assert_array_equal(s.hi[name], want[:, i], err_msg=name)
        h = run.histograms(key.layer, key.kind, key.tensor, call=key.call, mode=key.mode)
        hsteps, hists = exp.hists[key]
        np.testing.assert_array_equal(h.steps, hsteps)
        np.testing.assert_array_equal(h.lo, [x.lo for x in hists])
        np.testing.assert_array_equal(h.width, [x.width for x in hists])
        np.testing.assert_array_equal(h.sample, [x.sample for x in hists])
        np.testing.assert_array_equal(h.counts, np.array([x.counts for x in hists]))
        assert h.counts.dtype == np.float64
    assert run.anomalies == exp.anomalies
    assert run.first_anomaly == exp.anomalies[0]


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    with RunWriter(path, layers=LAYERS, meta={"model": "mlp"}) as w:
        exp = write_run(w)
    with Run.open(path) as run:
        check_run(run, exp)
        assert run.meta["model"] == "mlp"
        assert run.meta["format"] == "nbviz-run"
        assert run.complete
    with Run.open(str(path)) as run:  # a str path too
        assert run.path == path


def test_round_trip_in_memory() -> None:
    w = RunWriter(None, layers=LAYERS)
    exp = write_run(w)
    w.flush()
    run = w.open_run()
    check_run(run, exp)
    assert run.path is None
    w.close()
    del w
    gc.collect()
    check_run(run, exp)  # the reader keeps the in-memory database alive
    other = RunWriter(None)
    with other.open_run() as empty:  # each in-memory run is its own database
        assert empty.series() == []
        assert empty.last_step is None
    other.close()
    run.close()


def test_in_memory_reader_sees_new_steps() -> None:
    with RunWriter(None, flush_every=0.01) as w:
        run = w.open_run()
        assert run.last_step is None
        w.add([StatRecord(0, W1, np.zeros(NF))])
        w.end_step(StepRecord(0))
        w.flush()
        assert run.refresh()
        assert run.last_step == 0
        assert run.stats("encoder.fc1", "weight", "weight").values["numel"].tolist() == [0.0]


def test_steps_keep_strides_gaps_and_skips(tmp_path: Path) -> None:
    steps = [0, 1, 2, 3, 10, 20, 30, 31, 35, 100]
    path = tmp_path / "run.nbviz"
    with RunWriter(path) as w:
        for s in steps:
            w.end_step(StepRecord(s, skipped=s == 31, reason="scaler" if s == 31 else ""))
        w.end_step(StepRecord(7, mode="eval"))
    with Run.open(path) as run:
        np.testing.assert_array_equal(run.steps, steps)
        assert run.steps.dtype == np.int64
        assert run.skipped_steps == [StepRecord(31, "train", True, "scaler")]
        assert run.last_step == 100


def test_to_pandas_is_tidy(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    with RunWriter(path) as w:
        exp = write_run(w, steps=12)
    with Run.open(path) as run:
        df = run.to_pandas()
    assert list(df.columns) == [
        "step",
        "layer",
        "kind",
        "tensor",
        "call",
        "mode",
        "dtype",
        *RECORD_FIELDS,
        "step_hi",
        "count",
    ]
    assert len(df) == sum(len(steps) for steps, _ in exp.stats.values())
    rows = df[(df.layer == "encoder.fc1") & (df.tensor == "bias")]
    np.testing.assert_array_equal(rows["step"], exp.stats[B1][0])
    np.testing.assert_array_equal(rows["step_hi"], exp.stats[B1][0])  # raw records: one step
    assert (rows["count"] == 1).all()
    # One row per series and step: tidy, so a groupby needs no reshaping.
    assert not df.duplicated(["step", "layer", "kind", "tensor", "call", "mode"]).any()
    np.testing.assert_array_equal(rows["mean"], np.array(exp.stats[B1][1])[:, 3])
    assert set(df["mode"]) == {"train", "eval"}
    assert set(df["call"]) == {0, 1}


def test_to_pandas_without_pandas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "run.nbviz"
    RunWriter(path).close()
    real = importlib.import_module

    def no_pandas(name: str, package: str | None = None) -> ModuleType:
        if name == "pandas":
            raise ImportError("No module named 'pandas'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", no_pandas)
    with Run.open(path) as run, pytest.raises(ImportError, match=r"pip install pandas"):
        run.to_pandas()


def test_unknown_series_suggest_what_was_recorded(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    with RunWriter(path, layers=LAYERS) as w:
        write_run(w, steps=2)
    with Run.open(path) as run:
        with pytest.raises(KeyError, match=r"no layer 'encoder.fc3'.*did you mean 'encoder.fc"):
            run.stats("encoder.fc3", "weight")
        with pytest.raises(
            ValueError, match=r"'encoder\.fc2' has no 'grads' series; did you mean 'grad'\?"
        ):
            run.stats("encoder.fc2", "grads")
        with pytest.raises(ValueError, match=r"several 'weight' tensors: .*'bias', 'weight'"):
            run.stats("encoder.fc1", "weight")
        with pytest.raises(SeriesNotFoundError, match=r"no 'weight' tensor 'wieght'.*'weight'"):
            run.histograms("encoder.fc1", "weight", "wieght")
        with pytest.raises(SeriesNotFoundError, match=r"no call 2 \(recorded calls: \[0, 1\]\)"):
            run.stats("encoder.fc1", "activation", call=2)
        with pytest.raises(SeriesNotFoundError, match=r"not recorded in mode 'test'"):
            run.stats("encoder.fc1", "activation", mode="test")
        assert run.stats("encoder.fc2", "grad").key == G2  # the only tensor: no need to name it


# ---------------------------------------------------------------------------------------------
# Another process writing


_SLOW_WRITER = """
    import sys, time
    import numpy as np
    from nbviz.records import SeriesKey, StatRecord, StepRecord
    from nbviz.store import RunWriter
    with RunWriter(sys.argv[1], flush_every=0.01) as w:
        w.flush()
        print("ready", flush=True)
        for step in range(40):
            w.add([StatRecord(step, SeriesKey("fc", "weight", "weight"), np.full(13, step))])
            w.end_step(StepRecord(step))
            time.sleep(0.03)
"""


def test_a_reader_follows_a_writer_in_another_process(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SLOW_WRITER), str(path)],
        env=env,
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        with Run.open(path) as run:
            seen = list(run.follow(poll=0.02, timeout=60))
            assert run.complete
            assert run.last_step == 39
            np.testing.assert_array_equal(run.stats("fc", "weight").values["mean"], np.arange(40))
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == 0
    assert seen == sorted(set(seen))
    assert seen[-1] == 39
    assert len(seen) > 3  # it saw the run grow, not only its end


def test_refresh_and_follow_on_a_quiet_run(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    with RunWriter(path, flush_every=0.01) as w, Run.open(path) as run:
        assert not run.refresh()
        assert not run.complete
        start = time.monotonic()
        assert list(run.follow(poll=0.01, timeout=0.1)) == []
        assert time.monotonic() - start < 5
        w.end_step(StepRecord(3))
        w.flush()
        assert run.refresh()
        assert not run.refresh()
        assert run.last_step == 3


# ---------------------------------------------------------------------------------------------
# Bad files


def small_run(path: Path, steps: int = 200) -> None:
    rng = np.random.default_rng(0)
    with RunWriter(path) as w:
        for s in range(steps):
            w.add([StatRecord(s, W1, awkward_stats(rng), awkward_hist(rng))])
            w.end_step(StepRecord(s))


def test_a_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match=r"no nbviz run at this path.*nowhere\.nbviz"):
        Run.open("/nonexistent/nowhere.nbviz")


def test_a_directory(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError, match=r"not a directory"):
        Run.open(tmp_path)


def test_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.nbviz"
    path.write_text("not a run\n")
    with pytest.raises(ValueError, match=r"notes\.nbviz is not an nbviz run"):
        Run.open(path)


def test_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.nbviz"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.nbviz is not an nbviz run"):
        Run.open(path)


def test_a_foreign_database(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta(key TEXT, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('format', 'something-else')")
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match=r"other\.db is not an nbviz run: its meta has no format"):
        Run.open(path)


def test_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    small_run(path)
    data = path.read_bytes()
    for size in (len(data) - 4096, len(data) // 2, 50):
        path.write_bytes(data[:size])
        with pytest.raises(ValueError, match=r"run\.nbviz (is truncated|is not an nbviz run)"):
            Run.open(path)


def read_everything(path: Path) -> None:
    with Run.open(path) as run:
        for key in run.series(mode=None):
            run.stats(key.layer, key.kind, key.tensor, call=key.call, mode=key.mode)
            run.histograms(key.layer, key.kind, key.tensor, call=key.call, mode=key.mode)
        run.to_pandas()


def test_a_corrupted_page(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    small_run(path)
    data = bytearray(path.read_bytes())
    data[4096 * 3 : 4096 * 3 + 200] = os.urandom(200)  # garbage over the start of a page
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"run\.nbviz"):
        read_everything(path)


def test_a_corrupted_record(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    small_run(path, steps=3)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE stats SET vals = x'0102' WHERE step = 1")
    conn.commit()
    conn.close()
    with Run.open(path) as run, pytest.raises(ValueError, match=r"run\.nbviz is corrupted"):
        run.stats("encoder.fc1", "weight")


def test_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    small_run(path, steps=2)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = '7' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match=r"schema version 7.*reads version 2.*upgrade nbviz"):
        Run.open(path)


def test_a_closed_run(tmp_path: Path) -> None:
    path = tmp_path / "run.nbviz"
    small_run(path, steps=2)
    run = Run.open(path)
    run.close()
    run.close()
    with pytest.raises(RuntimeError, match=r"is closed"):
        _ = run.steps
