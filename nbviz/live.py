"""Live run data, kernel side: follows a `Run`, pushes what the browser lacks (docs/live-data.md).

While a training cell runs the kernel answers no comm message, so the browser cannot ask for what
the user selects: a daemon thread pushes everything instead, incrementally and at a bounded rate
(`run_append` messages on the `VizState`'s comm). ipykernel sends comm messages from any thread
through its IOPub thread, so pushes reach the browser while the main thread runs a cell.

What was sent is tracked per series as the last step read, so each poll reads only rows past it
(one primary-key range per series, see `Run.stat_rows`). Rows read but over the byte budget wait
in backlogs, newest first (histograms of anomalous steps before all others).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
from numpy.typing import NDArray

from . import _protocol
from ._serialization import BufferPacker
from .records import RECORD_FIELDS, SeriesKey, StepRecord

if TYPE_CHECKING:
    from .run import HistRows, Run
    from .widgets import VizState

_log = logging.getLogger(__name__)

DEFAULT_BUDGET: Final = 256 * 1024
"""Bytes per push (JSON and buffers together, approximately for the JSON part)."""
SNAPSHOT_BUDGET: Final = 4 * 1024 * 1024
"""Bytes of rows in a snapshot (Jupyter refuses messages of about 10 MB); the statistics left
out follow in pushes, the histograms in pushes or by `run_histograms` requests."""
MAX_RATE: Final = 4.0
"""Pushes per second at most."""
BYTES_PER_SECOND: Final = 400_000
"""Sustained bytes per second at most: iopub drops messages over about 1 MB/s, and the kernel's
own output shares it. A token bucket holding at most half a second's worth (and at most one
push's budget) keeps any one-second window under 0.6 MB."""

_F: Final = len(RECORD_FIELDS)
STAT_ROW_BYTES: Final = 4 + 4 + 4 * _F  # series, step int32; values float32
HIST_ROW_BYTES: Final = 4 + 4 + 3 * 8 + 4 * _protocol.HIST_BINS  # + lo, width, sample; counts
_HEADERS: Final = 800  # JSON of the 9 array references and the other keys of a message
_BEFORE_ALL: Final = -(2**62)  # "no step seen yet" for a series
_RECOUNT_GROWTH: Final = 1.05
"""A series' stored rows are counted (to notice thinning) once the rows read of it grew by 5%
since its last count: retention thins a series once it is 10% over its budget, so thinning is
noticed within 5% more rows, at an amortised cost of about 20 rows counted per new row."""


class _Backlog:
    """Rows read but not yet sent: chunks, newest chunk first, each sorted newest step first."""

    def __init__(self) -> None:
        self._chunks: deque[dict[str, NDArray[Any]]] = deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, columns: dict[str, NDArray[Any]]) -> None:
        n = len(columns["step"])
        if n == 0:
            return
        order = np.argsort(-columns["step"], kind="stable")
        self._chunks.appendleft({k: v[order] for k, v in columns.items()})
        self._size += n

    def take(self, n: int) -> dict[str, NDArray[Any]] | None:
        """Up to `n` rows from the front, concatenated; None when empty or n == 0."""
        parts: list[dict[str, NDArray[Any]]] = []
        while n > 0 and self._chunks:
            chunk = self._chunks[0]
            size = len(chunk["step"])
            if size <= n:
                parts.append(self._chunks.popleft())
            else:
                parts.append({k: v[:n] for k, v in chunk.items()})
                self._chunks[0] = {k: v[n:] for k, v in chunk.items()}
                size = n
            n -= size
            self._size -= size
        if not parts:
            return None
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def clear(self) -> None:
        self._chunks.clear()
        self._size = 0

    def drop_series(self, series: NDArray[np.int64]) -> None:
        """Forgets the rows of these series (re-read whole after a thinning)."""
        kept: deque[dict[str, NDArray[Any]]] = deque()
        for chunk in self._chunks:
            keep = ~np.isin(chunk["series"], series)
            if keep.any():
                kept.append({k: v[keep] for k, v in chunk.items()})
        self._chunks = kept
        self._size = sum(len(c["step"]) for c in kept)


class LiveFeed:
    """Pushes a run's new rows to a `VizState` and answers its run requests.

    `start()` runs `push()` from a daemon thread at most `rate` times per second until `close()`,
    or until the state is closed or collected (the thread holds it only weakly). `push()` may also
    be called directly (tests): it returns what it sent.
    """

    def __init__(
        self,
        state: VizState,
        run: Run,
        *,
        budget: int = DEFAULT_BUDGET,
        rate: float = MAX_RATE,
        snapshot_budget: int = SNAPSHOT_BUDGET,
        bytes_per_s: float | None = BYTES_PER_SECOND,
        owns_run: bool = False,
    ) -> None:
        if budget < HIST_ROW_BYTES:
            raise ValueError(f"budget must be at least {HIST_ROW_BYTES} bytes, not {budget}")
        if not 0 < rate <= MAX_RATE:
            raise ValueError(f"rate must be in (0, {MAX_RATE}] pushes per second, not {rate}")
        self.run = run
        self.owns_run = owns_run
        """`close()` also closes the run (a reader the feed opened for itself)."""
        self.budget = budget
        self.snapshot_budget = snapshot_budget
        self.interval = 1.0 / rate
        self.bytes_per_s = bytes_per_s
        """None: no sustained limit, each push takes its full budget (tests)."""
        self._bucket_size = budget if bytes_per_s is None else min(budget, bytes_per_s / 2)
        self._tokens = float(self._bucket_size)
        self._refilled = time.monotonic()
        self._state = weakref.ref(state)
        self._lock = threading.Lock()  # the thread's pushes against the kernel's requests
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._wire: dict[int, int] = {}  # store series id -> wire id (dense, by store id)
        self._series: list[tuple[int, SeriesKey, str]] = []
        self._series_sent = 0
        self._stat_after: dict[int, int] = {}
        self._hist_after: dict[int, int] = {}
        self._hist_requested: dict[int, int] = {}  # store id -> last step sent by request
        self._step_after: dict[str, int] = {}
        self._new_steps: list[StepRecord] = []
        self._anomaly_after = 0
        self._new_anomalies: list[tuple[int, int, str, int, int, int, int, str]] = []
        self._stats = _Backlog()
        self._hists = _Backlog()  # anomalous rows
        self._hists_normal = _Backlog()
        self._read: dict[str, dict[int, int]] = {"stats": {}, "hists": {}}  # rows read per series
        self._counted: dict[str, dict[int, int]] = {"stats": {}, "hists": {}}  # at the last count
        self._thinned: list[dict[str, Any]] = []  # notices not yet sent
        self._first = True
        self.pushes = 0
        self.bytes_sent = 0
        state.live_with(self)

    # -- the thread -----------------------------------------------------------------------------

    def start(self) -> LiveFeed:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="nbviz-live", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stops the thread (waits for it unless called from it); `push()` still works."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def close(self) -> None:
        """Stops the thread, and closes the run if the feed owns it; idempotent."""
        self.stop()
        if self.owns_run:
            self.run.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            state = self._state()
            if state is None or state.comm is None:
                return  # the widget was closed or dropped: nothing to feed
            del state  # hold it only weakly between pushes
            try:
                self.push()
            except sqlite3.OperationalError as error:
                if "locked" in str(error) or "busy" in str(error):
                    continue  # contention with the writer: the next poll reads it
                self._give_up(error)
                return
            except Exception as error:  # a broken file or a closed run: keep the kernel alive
                self._give_up(error)
                return

    def _give_up(self, error: Exception) -> None:
        _log.exception("nbviz: a live update failed")
        state = self._state()
        if state is not None:
            state.warnings = [*state.warnings, f"live updates stopped: {error}"]

    # -- pushes ---------------------------------------------------------------------------------

    def push(self) -> tuple[dict[str, Any], list[bytes]] | None:
        """Read what is new and send one `run_append` within the budget; None if nothing to send."""
        state = self._state()
        if state is None:
            return None
        with self._lock:
            if self.run.refresh() or self._first:
                self._first = False
                self._read_new()
                self._follow_steps(state)
            message = self._next_message(self._room())
            if message is None:
                return None
            content, buffers = message
            size = sum(len(b) for b in buffers) + len(json.dumps(content))
            self._tokens -= size
        state.send(content, buffers)
        self.pushes += 1
        self.bytes_sent += size
        return message

    def _room(self) -> int:
        """Bytes this push may take: the budget, or what the sustained limit has left."""
        if self.bytes_per_s is None:
            return self.budget
        now = time.monotonic()
        refill = (now - self._refilled) * self.bytes_per_s
        self._tokens = min(self._tokens + refill, self._bucket_size)
        self._refilled = now
        return int(min(self.budget, max(self._tokens, 0)))

    def _read_new(self) -> None:
        """Everything committed since the last read into the backlogs; series last, so every row
        read refers to a known series."""
        run = self.run
        series, step, values = run.stat_rows(self._after(self._stat_after))
        self._add_stats(series, step, values)
        self._add_hists(*run.hist_index(self._after(self._hist_after)))
        self._reread_thinned()
        anomalies = run.anomaly_rows(self._anomaly_after)
        if anomalies:
            self._anomaly_after = anomalies[-1][0]
            self._new_anomalies += anomalies
        since = min(self._step_after.values(), default=None)
        for rec in run.step_rows(since):
            if rec.step > self._step_after.get(rec.mode, _BEFORE_ALL):
                self._new_steps.append(rec)
                self._step_after[rec.mode] = rec.step
        self._load_series()

    def _add_stats(
        self, series: NDArray[np.int64], step: NDArray[np.int64], values: NDArray[np.float64]
    ) -> None:
        self._advance(self._stat_after, series, step)
        self._count(self._read["stats"], series)
        self._stats.add({"series": series, "step": step, "values": values.astype(np.float32)})

    def _add_hists(
        self, series: NDArray[np.int64], step: NDArray[np.int64], anomalous: NDArray[np.bool_]
    ) -> None:
        self._advance(self._hist_after, series, step)
        self._count(self._read["hists"], series)
        self._hists.add({"series": series[anomalous], "step": step[anomalous]})
        self._hists_normal.add({"series": series[~anomalous], "step": step[~anomalous]})

    @staticmethod
    def _count(counts: dict[int, int], series: NDArray[np.int64]) -> None:
        ids, n = np.unique(series, return_counts=True)
        for sid, k in zip(ids.tolist(), n.tolist(), strict=True):
            counts[sid] = counts.get(sid, 0) + k

    def _thinned_series(self, table: str, frontier: dict[int, int]) -> NDArray[np.int64]:
        """Series of `table` whose stored rows up to the read frontier are fewer than the rows
        read: retention thinned them (merged old rows into envelopes) since they were read."""
        read, counted = self._read[table], self._counted[table]
        due = {
            sid: frontier[sid]
            for sid, n in read.items()
            if n > counted.get(sid, 0) * _RECOUNT_GROWTH
        }
        if not due:
            return np.zeros(0, np.int64)
        stored = self.run.row_counts(table, due)
        thinned = [sid for sid, n in stored.items() if n < read[sid]]
        for sid, n in stored.items():
            read[sid] = counted[sid] = n
        return np.array(thinned, np.int64)

    def _reread_thinned(self) -> None:
        """Every row of each thinned series is read again and sent after a `thinned` notice,
        which tells the browser to drop what it holds of the series up to that step."""
        run = self.run
        stats = self._thinned_series("stats", self._stat_after)
        if len(stats):
            self._stats.drop_series(stats)
            for sid in stats.tolist():
                self._read["stats"][sid] = 0
            series, step, values = run.stat_rows({sid: _BEFORE_ALL for sid in stats.tolist()})
            self._add_stats(series, step, values)
            self._counted["stats"].update({s: self._read["stats"][s] for s in stats.tolist()})
            self._notice("stats", stats, self._stat_after)
        hists = self._thinned_series("hists", self._hist_after)
        if len(hists):
            self._hists.drop_series(hists)
            self._hists_normal.drop_series(hists)
            for sid in hists.tolist():
                self._read["hists"][sid] = 0
                self._hist_requested.pop(sid, None)  # the browser drops those too
            self._add_hists(*run.hist_index({sid: _BEFORE_ALL for sid in hists.tolist()}))
            self._counted["hists"].update({s: self._read["hists"][s] for s in hists.tolist()})
            self._notice("hists", hists, self._hist_after)

    def _notice(self, table: str, series: NDArray[np.int64], frontier: dict[int, int]) -> None:
        self._load_series()
        self._thinned += [
            {"series": self._wire[sid], "table": table, "through": frontier[sid]}
            for sid in series.tolist()
        ]

    def _after(self, frontier: dict[int, int]) -> dict[int, int]:
        return {sid: frontier.get(sid, _BEFORE_ALL) for sid, _, _ in self._series_with_new()}

    def _series_with_new(self) -> list[tuple[int, SeriesKey, str]]:
        self._load_series()
        return self._series

    def _load_series(self) -> None:
        after = self._series[-1][0] if self._series else 0
        for row in self.run.series_rows(after):
            self._wire[row[0]] = len(self._series)
            self._series.append(row)

    @staticmethod
    def _advance(
        frontier: dict[int, int], series: NDArray[np.int64], step: NDArray[np.int64]
    ) -> None:
        if len(step) == 0:
            return
        order = np.lexsort((step, series))  # the last of each series run is its largest step
        s, t = series[order], step[order]
        last = np.r_[s[1:] != s[:-1], True]
        for sid, top in zip(s[last].tolist(), t[last].tolist(), strict=True):
            frontier[sid] = max(frontier.get(sid, _BEFORE_ALL), top)

    def _follow_steps(self, state: VizState) -> None:
        """Keeps `num_steps` one past the last train step: `step` is a training step number."""
        last = self._step_after.get("train")
        if last is not None and last + 1 > state.num_steps:
            state.num_steps = last + 1

    def _next_message(self, budget: int) -> tuple[dict[str, Any], list[bytes]] | None:
        new_series = self._series[self._series_sent :]
        rows_fit = budget >= _HEADERS + STAT_ROW_BYTES and (
            len(self._stats) or len(self._hists) or len(self._hists_normal)
        )
        if not (new_series or self._new_steps or self._new_anomalies or self._thinned or rows_fit):
            return None
        packer = BufferPacker()
        content: dict[str, Any] = {
            "type": _protocol.RUN_APPEND_TYPE,
            "revision": self.run.revision,
            "series": [_series_json(self._wire[sid], key, dtype) for sid, key, dtype in new_series],
            "steps": [_step_json(s) for s in self._new_steps],
            "anomalies": [self._anomaly_json(a) for a in self._new_anomalies],
            "thinned": self._thinned,
        }
        self._series_sent = len(self._series)
        self._new_steps, self._new_anomalies, self._thinned = [], [], []
        room = budget - len(json.dumps(content)) - _HEADERS
        stats = self._stats.take(max(room, 0) // STAT_ROW_BYTES)
        room -= 0 if stats is None else len(stats["step"]) * STAT_ROW_BYTES
        content["stats"] = self._pack_stats(packer, stats)
        rows = self._take_hists(room)
        content["hists"] = self._pack_hists(packer, rows)
        content["complete"] = not (len(self._stats) or len(self._hists) or len(self._hists_normal))
        return content, packer.buffers

    def _take_hists(self, room: int) -> HistRows | None:
        """Histogram rows that fit in `room` bytes: anomalous first, then newest first."""
        series: list[NDArray[np.int64]] = []
        steps: list[NDArray[np.int64]] = []
        for backlog in (self._hists, self._hists_normal):
            while room >= HIST_ROW_BYTES and len(backlog):
                taken = backlog.take(room // HIST_ROW_BYTES)
                if taken is None:
                    break
                keep = self._not_requested(taken["series"], taken["step"])
                series.append(taken["series"][keep])
                steps.append(taken["step"][keep])
                room -= int(keep.sum()) * HIST_ROW_BYTES
        if not steps:
            return None
        return self.run.hist_rows(np.concatenate(series).tolist(), np.concatenate(steps).tolist())

    def _not_requested(
        self, series: NDArray[np.int64], step: NDArray[np.int64]
    ) -> NDArray[np.bool_]:
        if not self._hist_requested:
            return np.ones(len(step), dtype=bool)
        done = np.array([self._hist_requested.get(s, _BEFORE_ALL) for s in series.tolist()])
        return np.asarray(step > done)

    # -- requests (answered by VizState.handle_request when the kernel is idle) -----------------

    def snapshot(self) -> tuple[dict[str, Any], list[bytes]]:
        """Everything in the run, for a view displayed anew, within `snapshot_budget` bytes of
        rows: statistics newest first, then histograms anomalous and newest first. Statistics
        left out go back to the push backlog; histograms left out come from pushes or requests
        (`complete` is false then)."""
        with self._lock:
            self.run.refresh()
            self._read_new()  # frontiers first: what the snapshot holds, later pushes skip
            self._stats.clear()
            self._series_sent = len(self._series)
            thinned = self._thinned  # for the other views: this one holds nothing yet
            self._new_steps, self._new_anomalies, self._thinned = [], [], []
            run = self.run
            packer = BufferPacker()
            series, step, values = run.stat_rows(None)
            order = np.argsort(-step, kind="stable")
            fit = self.snapshot_budget // STAT_ROW_BYTES
            chosen, rest = order[:fit], order[fit:]
            self._stats.add(
                {"series": series[rest], "step": step[rest], "values": values[rest].astype("f4")}
            )
            room = self.snapshot_budget - len(chosen) * STAT_ROW_BYTES
            hseries, hstep, anomalous = run.hist_index(None)
            horder = np.lexsort((-hstep, ~anomalous))
            hfit = max(room // HIST_ROW_BYTES, 0)
            hchosen = horder[:hfit]
            hists = run.hist_rows(hseries[hchosen].tolist(), hstep[hchosen].tolist())
            stats = {"series": series[chosen], "step": step[chosen], "values": values[chosen]}
            content: dict[str, Any] = {
                "type": _protocol.RUN_APPEND_TYPE,
                "revision": run.revision,
                "series": [_series_json(self._wire[s], k, d) for s, k, d in self._series],
                "steps": [_step_json(s) for s in run.step_rows()],
                "anomalies": [self._anomaly_json(a) for a in run.anomaly_rows()],
                "thinned": thinned,
                "stats": self._pack_stats(packer, stats),
                "hists": self._pack_hists(packer, hists),
                "complete": len(rest) == 0 and len(horder) <= hfit,
            }
            return content, packer.buffers

    def histograms(self, series: Sequence[int]) -> tuple[dict[str, Any], list[bytes]]:
        """Every stored histogram of these wire series ids (a layer the user selected)."""
        if not isinstance(series, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in series
        ):
            raise TypeError(f"'series' must be a list of integer series ids, not {series!r}")
        with self._lock:
            self._load_series()
            bad = [s for s in series if not 0 <= s < len(self._series)]
            if bad:
                raise IndexError(f"no series with ids {bad}: there are {len(self._series)}")
            store_ids = [self._series[s][0] for s in series]
            rows = self.run.hist_rows_of(store_ids)
            self._advance(self._hist_requested, rows.series, rows.step)
            packer = BufferPacker()
            content: dict[str, Any] = {
                "type": _protocol.RUN_APPEND_TYPE,
                "revision": self.run.revision,
                "series": [],
                "steps": [],
                "anomalies": [],
                "thinned": [],
                "stats": self._pack_stats(packer, None),
                "hists": self._pack_hists(packer, rows),
                "complete": False,
            }
            return content, packer.buffers

    # -- encoding -------------------------------------------------------------------------------

    def _wire_ids(self, store_ids: NDArray[np.int64]) -> NDArray[np.int32]:
        wire = self._wire
        return np.fromiter((wire[s] for s in store_ids.tolist()), np.int32, len(store_ids))

    def _pack_stats(
        self, packer: BufferPacker, rows: dict[str, NDArray[Any]] | None
    ) -> dict[str, Any]:
        if rows is None:
            rows = {
                "series": np.zeros(0, np.int64),
                "step": np.zeros(0, np.int64),
                "values": np.zeros((0, _F), np.float32),
            }
        return {
            "series": packer.add(self._wire_ids(rows["series"]), "int32"),
            "step": packer.add(rows["step"], "int32"),
            "values": packer.add(rows["values"].reshape(-1, _F), "float32"),
        }

    def _pack_hists(self, packer: BufferPacker, rows: HistRows | None) -> dict[str, Any]:
        if rows is None:
            rows = _no_hists()
        return {
            "series": packer.add(self._wire_ids(rows.series), "int32"),
            "step": packer.add(rows.step, "int32"),
            "lo": packer.add(rows.lo, "float64"),
            "width": packer.add(rows.width, "float64"),
            "sample": packer.add(rows.sample, "float64"),
            "counts": packer.add(rows.counts.reshape(-1, _protocol.HIST_BINS), "float32"),
        }

    def _anomaly_json(self, row: tuple[int, int, str, int, int, int, int, str]) -> dict[str, Any]:
        _, step, phase, sid, nan, posinf, neginf, detail = row
        if sid not in self._wire:
            self._load_series()
        return {
            "step": step,
            "phase": phase,
            "series": self._wire[sid],
            "nan": nan,
            "posinf": posinf,
            "neginf": neginf,
            "detail": detail,
        }


def _series_json(wire_id: int, key: SeriesKey, dtype: str) -> dict[str, Any]:
    return {
        "id": wire_id,
        "layer": key.layer,
        "kind": key.kind,
        "tensor": key.tensor,
        "call": key.call,
        "mode": key.mode,
        "dtype": dtype,
    }


def _step_json(rec: StepRecord) -> dict[str, Any]:
    return {
        "step": rec.step,
        "mode": rec.mode,
        "skipped": rec.skipped,
        "reason": rec.reason,
        "wall_time": rec.wall_time,
    }


def _no_hists() -> HistRows:
    from .run import HistRows

    empty = np.zeros(0, np.int64)
    return HistRows(
        empty, empty, np.zeros(0), np.zeros(0), empty, np.zeros((0, _protocol.HIST_BINS))
    )


def feed(state: VizState, run: Run, **options: Any) -> LiveFeed:
    """A started `LiveFeed` of `run` into `state` (options as for `LiveFeed`)."""
    return LiveFeed(state, run, **options).start()


__all__ = ["LiveFeed", "feed"]
