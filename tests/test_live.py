"""nbviz.live: what the kernel pushes to the browser, checked against `Run`'s own readers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import nbviz
from nbviz import _protocol
from nbviz.live import HIST_ROW_BYTES, LiveFeed
from nbviz.records import RECORD_FIELDS, Anomaly, LayerMeta, SeriesKey, StatRecord, StepRecord
from nbviz.run import Run
from nbviz.run_layers import run_hierarchy
from nbviz.stats import Histogram
from nbviz.store import Retention, RunWriter
from nbviz.widgets import VizState

REPO = Path(__file__).resolve().parent.parent
NF = len(RECORD_FIELDS)
LAYERS = [
    LayerMeta("", "Net", None),
    LayerMeta("fc1", "Linear", "", ("weight", "bias")),
    LayerMeta("fc2", "Linear", "", ("weight",)),
]
KEYS = [
    SeriesKey("fc1", "weight", "weight"),
    SeriesKey("fc1", "weight", "bias"),
    SeriesKey("fc1", "activation", ""),
    SeriesKey("fc2", "grad", "weight"),
    SeriesKey("fc2", "activation", "", mode="eval"),
]

Message = tuple[dict[str, Any], list[bytes]]


def decode(wire: dict[str, Any], buffers: list[bytes]) -> np.ndarray:
    """What js/src/codec.ts does with `{buffer, dtype, shape}`."""
    data = np.frombuffer(buffers[wire["buffer"]], dtype=np.dtype(wire["dtype"]).newbyteorder("<"))
    shaped: np.ndarray = data.reshape(wire["shape"])
    return shaped


class Browser:
    """The browser's store, reduced to dicts: (wire series, step) -> row; replaces on repeat."""

    def __init__(self) -> None:
        self.series: dict[int, SeriesKey] = {}
        self.steps: dict[tuple[str, int], dict[str, Any]] = {}
        self.anomalies: list[dict[str, Any]] = []
        self.thinned: list[dict[str, Any]] = []
        self.stats: dict[tuple[int, int], np.ndarray] = {}
        self.hists: dict[tuple[int, int], tuple[float, float, float, np.ndarray]] = {}
        self.stat_rows_received = 0
        self.hist_rows_received = 0

    def apply(self, message: Message) -> None:
        content, buffers = message
        assert content["type"] == _protocol.RUN_APPEND_TYPE
        for s in content["series"]:
            key = SeriesKey(s["layer"], s["kind"], s["tensor"], s["call"], s["mode"])
            assert self.series.get(s["id"], key) == key, "a series id never changes meaning"
            self.series[s["id"]] = key
        for s in content["steps"]:
            self.steps[(s["mode"], s["step"])] = s
        self.anomalies += content["anomalies"]
        for notice in content["thinned"]:
            held = self.stats if notice["table"] == "stats" else self.hists
            sid, through = notice["series"], notice["through"]
            for at in [at for at in held if at[0] == sid and at[1] <= through]:
                del held[at]
        self.thinned += content["thinned"]
        st = {k: decode(v, buffers) for k, v in content["stats"].items()}
        assert st["values"].shape == (len(st["step"]), NF)
        assert st["values"].dtype == np.float32
        for sid, step, row in zip(st["series"], st["step"], st["values"], strict=True):
            self.stats[(int(sid), int(step))] = row
        self.stat_rows_received += len(st["step"])
        h = {k: decode(v, buffers) for k, v in content["hists"].items()}
        assert h["counts"].shape == (len(h["step"]), _protocol.HIST_BINS)
        for i in range(len(h["step"])):
            at = (int(h["series"][i]), int(h["step"][i]))
            self.hists[at] = (h["lo"][i], h["width"][i], h["sample"][i], h["counts"][i])
        self.hist_rows_received += len(h["step"])

    def id_of(self, key: SeriesKey) -> int:
        return next(i for i, k in self.series.items() if k == key)


def sending_state(layers: list[LayerMeta] = LAYERS) -> tuple[VizState, list[Message]]:
    state = VizState(run_hierarchy(layers))
    sent: list[Message] = []
    state.send = lambda content, buffers=None: sent.append((content, list(buffers or [])))
    return state, sent


def write_steps(w: RunWriter, steps: range, rng: np.random.Generator, hist_every: int = 2) -> None:
    for step in steps:
        records = []
        for key in KEYS:
            if key.mode == "eval" and step % 5:
                continue
            stats = rng.normal(size=NF)
            stats[7:10] = 0.0  # nan, +inf, -inf counts: no anomaly unless asked
            h = None
            if step % hist_every == 0:
                counts = rng.integers(0, 1000, _protocol.HIST_BINS).astype(np.float64)
                h = Histogram(float(rng.normal()), 2.0**-5, counts, 4096)
            records.append(StatRecord(step, key, stats, h, "float32"))
        w.add(records)
        w.end_step(StepRecord(step, "train", step % 7 == 3, "inf" if step % 7 == 3 else "", 1e9))
    w.flush()


def drain(feed: LiveFeed, browser: Browser) -> int:
    pushes = 0
    while (message := feed.push()) is not None:
        browser.apply(message)
        pushes += 1
        if message[0]["complete"]:
            break
    return pushes


def check_matches_run(browser: Browser, run: Run) -> None:
    """Everything the run holds, and nothing else, is in the browser: compared per series."""
    for key in KEYS:
        sid = browser.id_of(key)
        s = run.stats(key.layer, key.kind, key.tensor, call=key.call, mode=key.mode)
        got = sorted((st, v) for (i, st), v in browser.stats.items() if i == sid)
        np.testing.assert_array_equal([st for st, _ in got], s.step_lo)
        want = np.stack([s.values[f] for f in RECORD_FIELDS], axis=1).astype(np.float32)
        np.testing.assert_array_equal(np.array([v for _, v in got]), want)
        h = run.histograms(key.layer, key.kind, key.tensor, call=key.call, mode=key.mode)
        hgot = sorted((st, v) for (i, st), v in browser.hists.items() if i == sid)
        np.testing.assert_array_equal([st for st, _ in hgot], h.steps)
        if len(h):
            np.testing.assert_array_equal([v[0] for _, v in hgot], h.lo)
            np.testing.assert_array_equal([v[1] for _, v in hgot], h.width)
            np.testing.assert_array_equal([v[2] for _, v in hgot], h.sample)
            np.testing.assert_array_equal(np.array([v[3] for _, v in hgot]), h.counts)
    train = sorted(st for mode, st in browser.steps if mode == "train")
    np.testing.assert_array_equal(train, run.steps)
    skipped = [st for (mode, st), s in browser.steps.items() if s["skipped"]]
    assert sorted(skipped) == [s.step for s in run.skipped_steps]


def test_pushes_carry_exactly_the_runs_rows_incrementally() -> None:
    rng = np.random.default_rng(0)
    w = RunWriter(None, layers=LAYERS)
    state, _ = sending_state()
    feed = LiveFeed(state, w.open_run(), bytes_per_s=None)
    browser = Browser()
    assert feed.push() is None or True  # nothing recorded yet: maybe only an empty first read
    for chunk in (range(0, 10), range(10, 11), range(11, 40)):
        write_steps(w, chunk, rng)
        drain(feed, browser)
        check_matches_run(browser, w.open_run())
    # No row was sent twice: nothing here is ever replaced.
    assert browser.stat_rows_received == len(browser.stats)
    assert browser.hist_rows_received == len(browser.hists)
    assert feed.push() is None, "nothing new: nothing sent"
    assert state.num_steps == 40, "num_steps is one past the last training step"
    w.close()


def test_anomalies_and_their_histograms_come_first() -> None:
    rng = np.random.default_rng(1)
    w = RunWriter(None, layers=LAYERS)
    write_steps(w, range(0, 30), rng, hist_every=1)
    bad = SeriesKey("fc1", "activation", "")
    stats = rng.normal(size=NF)
    stats[7] = 5.0
    counts = np.ones(_protocol.HIST_BINS)
    w.add([StatRecord(3, bad, stats, Histogram(0.0, 1.0, counts, 64), "float32")])
    w.add_anomaly(Anomaly(3, "forward", bad, 5, 0, 0, "fc1 output"))
    w.end_step(StepRecord(30))
    w.flush()
    state, _ = sending_state()
    feed = LiveFeed(state, w.open_run(), bytes_per_s=None, budget=20 * HIST_ROW_BYTES + 40_000)
    browser = Browser()
    first = feed.push()
    assert first is not None
    browser.apply(first)
    assert not first[0]["complete"], "the budget holds only a few histograms"
    assert [a["step"] for a in browser.anomalies] == [3]
    assert browser.anomalies[0]["series"] == browser.id_of(bad)
    h = first[0]["hists"]
    steps = decode(h["step"], first[1])
    assert steps[0] == 3, "the anomalous step's histogram goes first"
    assert list(steps[1:]) == sorted(steps[1:], reverse=True), "then newest first"
    assert steps[1] == 29
    drain(feed, browser)
    check_matches_run(browser, w.open_run())
    w.close()


@pytest.mark.parametrize("budget", [HIST_ROW_BYTES * 4 + 4000, 64 * 1024])
def test_every_push_keeps_to_the_budget(budget: int) -> None:
    rng = np.random.default_rng(2)
    w = RunWriter(None, layers=LAYERS)
    write_steps(w, range(0, 200), rng, hist_every=1)
    state, _ = sending_state()
    feed = LiveFeed(state, w.open_run(), bytes_per_s=None, budget=budget)
    browser = Browser()
    sizes = []
    while (message := feed.push()) is not None:
        browser.apply(message)
        sizes.append(sum(map(len, message[1])) + len(json.dumps(message[0])))
    assert len(sizes) > 1
    # The first push carries the series and steps lists, which are not budgeted rows.
    assert max(sizes[1:]) <= budget, sizes
    check_matches_run(browser, w.open_run())
    w.close()


def test_snapshot_equals_the_union_of_appends() -> None:
    rng = np.random.default_rng(3)
    w = RunWriter(None, layers=LAYERS)
    state, _ = sending_state()
    feed = LiveFeed(state, w.open_run(), bytes_per_s=None, budget=8 * 1024)
    pushed = Browser()
    for chunk in (range(0, 7), range(7, 20)):
        write_steps(w, chunk, rng)
        drain(feed, pushed)
    reply, buffers = state.handle_request({"type": "run_snapshot", "id": "s1"})
    assert reply["ok"]
    assert reply["id"] == "s1"
    assert reply["result"]["complete"]
    snap = Browser()
    snap.apply((reply["result"], buffers))
    assert snap.series == pushed.series
    assert snap.steps == pushed.steps
    assert snap.stats.keys() == pushed.stats.keys()
    for k, v in snap.stats.items():
        np.testing.assert_array_equal(v, pushed.stats[k])
    assert snap.hists.keys() == pushed.hists.keys()
    # Series ids stay stable across pushes and the snapshot: a reloaded page can keep going.
    write_steps(w, range(20, 22), rng)
    drain(feed, snap)
    check_matches_run(snap, w.open_run())
    w.close()


def test_rows_thinned_after_they_were_sent_are_sent_again() -> None:
    rng = np.random.default_rng(7)
    retention = Retention(stats_per_series=40, hists_per_series=12, keep_first=2)
    w = RunWriter(None, layers=LAYERS, retention=retention)
    state, _ = sending_state()
    feed = LiveFeed(state, w.open_run(), bytes_per_s=None)
    browser = Browser()
    stale_after = []  # steps written since the browser last matched the run
    matched_at = 0
    for step in range(300):
        write_steps(w, range(step, step + 1), rng, hist_every=1)
        drain(feed, browser)
        try:
            check_matches_run(browser, w.open_run())
            matched_at = step
        except AssertionError:
            stale_after.append(step - matched_at)
        # What the browser holds stays within the retention budget (plus what is not yet thinned
        # or noticed), instead of growing with the run.
        per_series = np.bincount([sid for sid, _ in browser.stats])
        assert per_series.max() <= 40 * 1.1 * 1.05 + 2, per_series
    assert {n["table"] for n in browser.thinned} == {"stats", "hists"}
    # Thinning is noticed within 5% more rows of the series: 3 rows here, 15 steps for the eval
    # series (a row every 5 steps).
    assert stale_after, "retention thinned rows the browser held"
    assert max(stale_after) <= 15, sorted(stale_after)
    # A page opened now gets the same rows from a snapshot.
    reply, buffers = state.handle_request({"type": "run_snapshot", "id": "s"})
    snap = Browser()
    snap.apply((reply["result"], buffers))
    check_matches_run(snap, w.open_run())
    with pytest.raises(ValueError, match="'stats' or 'hists', not 'steps'"):
        w.open_run().row_counts("steps", {})
    w.close()


def test_a_snapshot_over_its_budget_leaves_the_rest_to_pushes() -> None:
    rng = np.random.default_rng(6)
    w = RunWriter(None, layers=LAYERS)
    write_steps(w, range(0, 100), rng, hist_every=1)
    state, _ = sending_state()
    feed = LiveFeed(state, w.open_run(), bytes_per_s=None, snapshot_budget=20_000)
    browser = Browser()
    content, buffers = feed.snapshot()
    assert not content["complete"]
    assert sum(map(len, buffers)) <= 20_000
    browser.apply((content, buffers))
    assert max(st for _, st in browser.stats) == 99, "newest statistics first"
    drain(feed, browser)
    check_matches_run(browser, w.open_run())
    w.close()


def test_histograms_request_sends_every_stored_row_and_pushes_skip_them() -> None:
    rng = np.random.default_rng(4)
    w = RunWriter(None, layers=LAYERS)
    write_steps(w, range(0, 60), rng, hist_every=1)
    state, _ = sending_state()
    feed = LiveFeed(state, w.open_run(), bytes_per_s=None, budget=HIST_ROW_BYTES * 8 + 8000)
    browser = Browser()
    browser.apply(feed.push() or ({}, []))
    wanted = browser.id_of(KEYS[2])
    reply, buffers = state.handle_request({"type": "run_histograms", "id": "h", "series": [wanted]})
    assert reply["ok"], reply
    assert reply["result"]["stats"]["step"]["shape"] == [0]
    browser.apply((reply["result"], buffers))
    h = w.open_run().histograms(KEYS[2].layer, KEYS[2].kind)
    assert sorted(st for i, st in browser.hists if i == wanted) == h.steps.tolist()
    drain(feed, browser)
    assert browser.hist_rows_received == len(browser.hists), "requested rows are not pushed"
    check_matches_run(browser, w.open_run())
    bad = state.handle_request({"type": "run_histograms", "id": "x", "series": [99]})[0]
    assert not bad["ok"]
    assert "no series" in bad["error"]
    bad = state.handle_request({"type": "run_histograms", "id": "y", "series": "fc1"})[0]
    assert not bad["ok"]
    assert "list of integer" in bad["error"]
    w.close()


def test_requests_without_a_run_fail_cleanly() -> None:
    viz = nbviz.show(nn.Linear(2, 2), record=False)
    reply = viz.state.handle_request({"type": "run_snapshot", "id": "a"})[0]
    assert not reply["ok"]
    assert "no recorded run" in reply["error"]


def test_show_model_feeds_its_in_memory_recording() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    viz = nbviz.show(model, every=1, histograms_every=1, activations_every=1)
    assert viz.feed is not None
    assert viz.feed.running
    viz.feed.stop()  # push by hand from here: deterministic
    viz.feed.bytes_per_s = None
    sent: list[Message] = []
    viz.state.send = lambda content, buffers=None: sent.append((content, list(buffers or [])))
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(3, 4)).sum().backward()
        opt.step()
    assert viz.recorder is not None
    viz.recorder.flush()
    browser = Browser()
    while (m := viz.feed.push()) is not None:
        browser.apply(m)
    run = viz.recorder.run
    assert sorted(st for mode, st in browser.steps if mode == "train") == run.steps.tolist()
    assert viz.num_steps == run.steps[-1] + 1
    key = SeriesKey("0", "grad", "weight")
    assert key in browser.series.values()
    viz.step = int(run.steps[-1])
    assert viz.state.step == viz.step
    with pytest.raises(ValueError, match="out of range"):
        viz.step = viz.num_steps
    with pytest.raises(TypeError):
        viz.step = 1.5  # type: ignore[assignment]
    viz.close()


WRITER = textwrap.dedent(
    """
    import sys, time
    import torch
    from torch import nn
    import nbviz
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    with nbviz.watch(model, sys.argv[1], every=1, histograms_every=1) as rec:
        for step in range(int(sys.argv[2])):
            opt.zero_grad()
            model(torch.randn(3, 4)).sum().backward()
            opt.step()
            rec.flush()
            print(step, flush=True)
            time.sleep(0.05)
    """
)


def test_show_path_follows_a_run_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "x.nbviz"
    env = {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), "60"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        assert proc.stdout is not None
        for _ in range(3):
            proc.stdout.readline()  # the file exists and has steps
        viz = nbviz.show(str(path))
        assert viz.layers == ["", "0", "1", "2"]
        assert viz.feed is not None
        seen: list[int] = []
        lock = threading.Lock()
        original = viz.state.send

        def record(content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
            with lock:
                seen.extend(s["step"] for s in content["steps"] if s["mode"] == "train")
            original(content, buffers)

        viz.state.send = record
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (not seen or max(seen) < 50):
            time.sleep(0.1)
        assert max(seen, default=-1) >= 50, f"followed up to step {max(seen, default=-1)}"
        assert viz.num_steps > 50
        assert viz.feed.pushes <= (time.monotonic() - deadline + 30) * 4 + 2, "at most 4/s"
        viz.close()
        assert not viz.feed.running, "the thread stops with the widget"
    finally:
        proc.kill()
        proc.wait()


def test_the_thread_stops_when_the_state_closes_or_goes_away() -> None:
    w = RunWriter(None, layers=LAYERS)
    state, _ = sending_state()
    feed = LiveFeed(state, w.open_run()).start()
    assert feed.running
    assert feed._thread is not None
    assert feed._thread.daemon
    state.close()
    feed._thread.join(timeout=5)
    assert not feed.running
    # A widget never closed does not keep the process alive: the thread is a daemon.
    script = "import nbviz, torch; v = nbviz.show(torch.nn.Linear(2, 2)); print(v.feed.running)"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
    w.close()


def test_the_sustained_byte_rate_is_limited() -> None:
    rng = np.random.default_rng(5)
    w = RunWriter(None, layers=LAYERS)
    write_steps(w, range(0, 300), rng, hist_every=1)
    state, _ = sending_state()
    feed = LiveFeed(state, w.open_run(), bytes_per_s=100_000)
    start = time.monotonic()
    while time.monotonic() - start < 1.0:
        feed.push()
        time.sleep(0.01)
    elapsed = time.monotonic() - start
    assert feed.bytes_sent <= 50_000 + 100_000 * elapsed + 30_000  # bucket + refill + 1st JSON
    assert feed.bytes_sent >= 100_000 * elapsed * 0.5, "and it does send at that rate"
    w.close()


def test_options_are_checked() -> None:
    state, _ = sending_state()
    run = RunWriter(None, layers=LAYERS).open_run()
    with pytest.raises(ValueError, match="budget"):
        LiveFeed(state, run, budget=10)
    with pytest.raises(ValueError, match="rate"):
        LiveFeed(state, run, rate=10)
    with pytest.raises(TypeError, match="example_input"):
        nbviz.show(run, example_input=torch.zeros(1))
