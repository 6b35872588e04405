"""The run store: what capture records, in one SQLite file (or a shared in-memory database).

`RunWriter` is the `RecordSink` capture writes to. Its `add`, `end_step` and `add_anomaly` only
append to a queue; a daemon thread encodes, writes and thins. `nbviz.run.Run` reads the result,
also from another process while this one is still writing.

File format (`meta.schema_version` = 2; `_runfile.SCHEMA`), SQLite in WAL mode:

    meta(key, value)          format = "nbviz-run", schema_version, created, state ("open" or
                              "closed"), writer (host:pid), revision (bumped by every commit),
                              anomalies_dropped, and the user's meta
    layers(ord, name, cls, parent, params)       params: JSON list of parameter names
    series(id, layer, kind, tensor, call, mode, dtype)
    stats(series, step, span, count, vals, lo, hi)
        One row per record, or per envelope of `count` records merged by retention that covers
        steps [step, step + span]. vals: the mean of each RECORD_FIELDS over the merged records;
        lo, hi: their min and max (NULL for a raw record, where they equal vals).
    hists(series, step, lo, width, sample, anomaly, counts, span, count)
        One row per record, or per histogram of `count` records merged by retention: the
        records of steps [step, step + span] that have no row of their own (first, latest and
        anomalous steps keep theirs). lo, width: the grid (NULL when NaN); sample and counts add
        up over the merged records; anomaly: a merged record had NaN or Inf values. Version 1
        had no span and count: appending to such a file adds them (0 and 1).
    steps(mode, step, last, stride, skipped, reason, wall_first, wall_last)
        Runs of steps step, step + stride, ..., last; a skipped step is a row of its own.
    anomalies(id, step, phase, series, nan, posinf, neginf, detail)

Encodings (`_encoding`; all little-endian, lossless):
    stats blob: a uint32 of 2-bit tags per field (NaN, float32, float64, +0.0; field i at bits
    2i), then the float32 fields, then the float64 fields, each in field order. A field is float32
    when that is exact, which holds for counts below 2**24 and for min/max of float32 tensors.
    counts blob: one byte (width code << 6 | first occupied bin), then the bins from the first to
    the last occupied one as uint8, uint16 or uint32 (codes 0-2), or float64 (code 3) for counts
    that are not integers below 2**32.

Consistency: the writer commits at step boundaries (after an `end_step`), so a reader, or a file
left by `kill -9`, has every record of a step or none of them. Records never followed by
`end_step` are committed by `flush()`/`close()`, or after `_FALLBACK` flush periods.

An existing nbviz run is appended to: steps continue, series and retention carry on (a run left
by a crash too). One writer per file: a second one, in this process or a live one on this host,
is refused.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import gc
import json
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeVar

import numpy as np
from numpy.typing import NDArray

from ._encoding import NFIELDS, decode_counts, decode_stats, encode_counts, encode_stats
from ._merge import merge_binned
from ._protocol import HIST_BINS, STAT_FIELDS
from ._runfile import (
    SCHEMA_VERSION,
    UPGRADE_FROM_1,
    check_meta,
    connect_label,
    create_schema,
    open_file,
)
from .records import RECORD_FIELDS, Anomaly, LayerMeta, SeriesKey, StatRecord, StepRecord

if TYPE_CHECKING:
    from .run import Run

_RESERVED_META: Final = ("format", "schema_version", "created", "state", "revision", "writer")

# Records not followed by end_step are committed after this many flush periods (and 2 s at least).
_FALLBACK: Final = 10
# add() waits for the writer thread when this many batches of records are queued: memory bound.
_BACKLOG_BATCHES: Final = 64

_NONFINITE: Final = [RECORD_FIELDS.index(name) for name in ("nan", "posinf", "neginf")]
if RECORD_FIELDS[: len(STAT_FIELDS)] != STAT_FIELDS:
    raise ImportError("nbviz.store expects RECORD_FIELDS to start with STAT_FIELDS")


@dataclass(frozen=True)
class Retention:
    """How much of each series is kept; deterministic, so a run always thins the same way.

    Statistics beyond `stats_per_series` are merged into envelopes (min, max and mean of each
    field over a step range), older ones first; the first `keep_first` records and the latest stay
    raw. Histograms beyond `hists_per_series` are merged the same way (their counts add up on a
    grid that holds every merged bin), except the first `keep_first`, the latest, and those with
    NaN/Inf (up to half the budget of them), which stay as recorded. Nothing is dropped: a
    series' histogram counts always add up to those of every record. A series is thinned back to
    its budget once it is 10% over, so between thinnings it holds up to 10% more.
    """

    stats_per_series: int = 5_000
    hists_per_series: int = 500
    keep_first: int = 32
    anomalies: int = 10_000
    """Anomaly reports kept per run; later ones are counted in meta `anomalies_dropped`."""

    def __post_init__(self) -> None:
        if self.keep_first < 0:
            raise ValueError(f"Retention.keep_first must be >= 0, not {self.keep_first}")
        if self.stats_per_series < self.keep_first + 2:
            raise ValueError(
                f"Retention.stats_per_series={self.stats_per_series} leaves no room beyond "
                f"keep_first={self.keep_first} and the latest step: use at least "
                f"{self.keep_first + 2}"
            )
        if self.hists_per_series < 2 * (self.keep_first + 2):
            raise ValueError(
                f"Retention.hists_per_series={self.hists_per_series} leaves no room beyond "
                f"keep_first={self.keep_first}, the latest step and anomalies: use at least "
                f"{2 * (self.keep_first + 2)}"
            )
        if self.anomalies < 0:
            raise ValueError(f"Retention.anomalies must be >= 0, not {self.anomalies}")


# ---------------------------------------------------------------------------------------------
# Retention planning


def _distinct(sorted_keys: NDArray[np.int64]) -> int:
    return 1 + int(np.count_nonzero(np.diff(sorted_keys))) if len(sorted_keys) else 0


def plan_groups(steps: NDArray[np.int64], target: int) -> NDArray[np.intp]:
    """Start indices of at most `target` runs of the ascending `steps`, to merge into one each.

    Runs are aligned power-of-two step ranges: 2**level steps for the oldest rows, 2**(level-1)
    for the newer, with the level the smallest that fits and the split as late as fits. So the
    resolution is uniform within a factor of two, coarser for older steps, the same for the same
    input, and rows already merged at a level stay whole.
    """
    n = len(steps)
    if n <= target:
        return np.arange(n)
    target = max(target, 1)
    level = 1
    while _distinct(steps >> level) > target:
        level += 1
    coarse, fine = steps >> level, steps >> (level - 1)
    new_coarse = np.r_[True, coarse[1:] != coarse[:-1]]
    new_fine = np.r_[True, fine[1:] != fine[:-1]]
    # Split at p (a coarse-run start or n): coarse runs before p, fine runs from p on.
    splits = np.r_[np.flatnonzero(new_coarse), n]
    before = np.r_[0, np.cumsum(new_coarse)][splits]
    fine_total = np.cumsum(new_fine)
    after = np.where(splits < n, fine_total[-1] - fine_total[np.minimum(splits, n - 1)] + 1, 0)
    p = int(splits[np.argmax(before + after <= target)])
    return np.flatnonzero(np.where(np.arange(n) < p, new_coarse, new_fine))


class _Keeper:
    """The connection that keeps a shared in-memory database alive while anyone refers to it."""

    def __init__(self, uri: str) -> None:
        self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        weakref.finalize(self, self.conn.close)


# ---------------------------------------------------------------------------------------------
# The writer thread


@dataclass
class _Flush:
    done: threading.Event = field(default_factory=threading.Event)


@dataclass
class _Layers:
    layers: tuple[LayerMeta, ...]


_STOP: Final = object()


@dataclass
class _Range:
    """The last row of the steps table for a mode, extended while steps keep their stride."""

    first: int
    last: int
    stride: int
    skipped: bool


class _Shared:
    """What the caller's thread and the writer thread both touch."""

    def __init__(self, label: str, batch: int) -> None:
        self.label = label
        # A deque and a timer, not a blocking queue: waking the writer for every item would cost
        # the training thread a GIL hand-off per add().
        self.items: collections.deque[object] = collections.deque()
        self.wake = threading.Event()  # set for flush, close, and every `batch` records
        self.batch = batch
        self.queued = 0  # records put
        self.unsignalled = 0  # records put since the last wake
        self.done = 0  # records written, by the writer thread only
        self.error: BaseException | None = None
        self.reported = False  # the error was raised to the caller
        self.thread: threading.Thread | None = None

    def put_records(self, records: list[StatRecord]) -> None:
        self.items.append(records)
        # Unlocked: concurrent producers may lose an increment, which only paces the writer a
        # little differently; a lock would cost every add() more than the rest of it.
        n = len(records)
        self.queued += n
        self.unsignalled += n
        if self.unsignalled >= self.batch:
            self.unsignalled = 0
            self.wake.set()

    def put(self, item: object, *, wake: bool = False) -> None:
        self.items.append(item)
        if wake:
            self.wake.set()

    def raise_error(self) -> None:
        if self.error is not None:
            self.reported = True
            raise RuntimeError(
                f"nbviz could not write the run {self.label}: {self.error}"
            ) from self.error


def _finalize(shared: _Shared) -> None:
    """A writer never closed: flush at exit or collection, and never lose an error silently."""
    _shutdown(shared)
    if shared.error is not None and not shared.reported:
        print(f"nbviz could not write the run {shared.label}: {shared.error}", file=sys.stderr)


def _shutdown(shared: _Shared) -> None:
    """Let the writer thread commit everything and close; wait for it unless we are it."""
    thread = shared.thread
    if thread is None or not thread.is_alive():
        return
    shared.put(_STOP, wake=True)
    if threading.current_thread() is not thread:
        thread.join()


class _Worker:
    """The writer thread: encodes, writes, thins and commits; owns the connection."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        shared: _Shared,
        retention: Retention,
        flush_every: float,
        batch: int,
        checkpoint: bool,
    ) -> None:
        self.conn = conn
        self.shared = shared
        self.retention = retention
        self.flush_every = flush_every
        self.fallback = max(2.0, _FALLBACK * flush_every)
        self.poll = min(flush_every / 2, 0.05)  # how often the writer looks for new items
        self.batch = batch
        self.checkpoint = checkpoint
        self.failed = False
        self.in_transaction = False
        self.pending_since: float | None = None  # first uncommitted item
        self.uncommitted = 0
        self.at_boundary = True  # the last item was an end_step: a consistent place to commit
        self.records: list[StatRecord] = []
        self.steps: list[StepRecord] = []
        self.anomalies: list[Anomaly] = []
        self.layers: tuple[LayerMeta, ...] | None = None
        self._load()

    def _load(self) -> None:
        """State of a run being appended to: series, rows per series, step runs."""
        c = self.conn
        self.series: dict[SeriesKey, tuple[int, str]] = {
            SeriesKey(layer, kind, tensor, call, mode): (sid, dtype)
            for sid, layer, kind, tensor, call, mode, dtype in c.execute(
                "SELECT id, layer, kind, tensor, call, mode, dtype FROM series"
            )
        }
        self.stat_rows: dict[int, int] = dict(
            c.execute("SELECT series, count(*) FROM stats GROUP BY series").fetchall()
        )
        self.hist_rows: dict[int, int] = dict(
            c.execute("SELECT series, count(*) FROM hists GROUP BY series").fetchall()
        )
        self.ranges: dict[str, _Range] = {}
        for mode, first, last, stride, skipped in c.execute(
            "SELECT mode, step, last, stride, skipped FROM steps s WHERE step = "
            "(SELECT max(step) FROM steps WHERE mode = s.mode)"
        ):
            self.ranges[mode] = _Range(first, last, stride, bool(skipped))
        self.anomaly_rows: int = c.execute("SELECT count(*) FROM anomalies").fetchone()[0]
        meta = dict(c.execute("SELECT key, value FROM meta").fetchall())
        self.revision = int(meta.get("revision", "0"))
        self.anomalies_dropped = int(meta.get("anomalies_dropped", "0"))

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._loop()
        except BaseException as e:  # the loop itself broke: keep it for the caller
            self.shared.error = self.shared.error or e
            self.failed = True
            if self.in_transaction:
                self.conn.rollback()
        finally:
            self._close_connection()

    def _loop(self) -> None:
        items, wake = self.shared.items, self.shared.wake
        while True:
            wake.wait(self.poll)
            wake.clear()  # before draining: a later set() is seen by the next wait
            while items:
                item = items.popleft()
                if item is _STOP:
                    self._guarded(self._commit)
                    return
                if isinstance(item, _Flush):
                    self._guarded(self._commit)
                    item.done.set()
                    continue
                self._guarded(functools.partial(self._take, item))
                self._guarded(self._maybe_commit)
            self._guarded(self._maybe_commit)

    def _guarded(self, action: Callable[[], None]) -> None:
        """Run `action`; on failure roll back, keep the error and drop what comes next."""
        if self.failed:
            return
        try:
            action()
        except Exception as e:
            self.failed = True
            self.shared.error = e
            self.records.clear()
            self.steps.clear()
            self.anomalies.clear()
            if self.in_transaction:
                self.in_transaction = False
                with contextlib.suppress(sqlite3.Error):  # the first error is the one to report
                    self.conn.execute("ROLLBACK")

    def _take(self, item: object) -> None:
        if self.pending_since is None:
            self.pending_since = time.monotonic()
        if isinstance(item, list):
            self.records.extend(item)
            self.uncommitted += len(item)
            self.at_boundary = False
            if len(self.records) >= self.batch:
                self._write_staged()
        elif isinstance(item, StepRecord):
            self.steps.append(item)
            self.uncommitted += 1
            self.at_boundary = True
        elif isinstance(item, Anomaly):
            self.anomalies.append(item)
            self.uncommitted += 1
        elif isinstance(item, _Layers):
            self.layers = item.layers
        else:
            raise TypeError(f"nbviz.store: unexpected item {item!r} in the write queue")

    def _maybe_commit(self) -> None:
        if self.pending_since is None:
            return
        age = time.monotonic() - self.pending_since
        due = age >= self.flush_every or self.uncommitted >= self.batch
        if (self.at_boundary and due) or age >= self.fallback:
            self._commit()

    def _commit(self) -> None:
        self._write_staged()
        if self.in_transaction:
            self.revision += 1
            self._set_meta({"revision": str(self.revision)})
            self.conn.execute("COMMIT")
            self.in_transaction = False
        self.pending_since = None
        self.uncommitted = 0
        self.at_boundary = True

    def _close_connection(self) -> None:
        try:
            if not self.failed:
                self._begin()
                self._set_meta({"state": "closed"})
                self.conn.execute("COMMIT")
                self.in_transaction = False
            if self.checkpoint:
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as e:
            self.shared.error = self.shared.error or e
        finally:
            self.conn.close()

    # -- writing ----------------------------------------------------------------------------

    def _begin(self) -> None:
        if not self.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self.in_transaction = True

    def _set_meta(self, items: Mapping[str, str]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", items.items())

    def _write_staged(self) -> None:
        if not (self.records or self.steps or self.anomalies or self.layers is not None):
            return
        self._begin()
        if self.layers is not None:
            write_layers(self.conn, self.layers)
            self.layers = None
        if self.records:
            records, self.records = self.records, []
            self._write_records(records)
            self.shared.done += len(records)
        for step in self.steps:
            self._write_step(step)
        self.steps.clear()
        for anomaly in self.anomalies:
            self._write_anomaly(anomaly)
        self.anomalies.clear()

    def _series_ids(self, records: list[StatRecord]) -> list[int]:
        series, ids = self.series, []
        for r in records:
            known = series.get(r.key)  # inlined fast path: this runs once per record
            if known is not None and (known[1] == r.dtype or not r.dtype):
                ids.append(known[0])
            else:
                ids.append(self._series_id(r.key, r.dtype))
        return ids

    def _series_id(self, key: SeriesKey, dtype: str) -> int:
        known = self.series.get(key)
        if known is not None:
            if known[1] == dtype or not dtype:
                return known[0]
            self.conn.execute("UPDATE series SET dtype = ? WHERE id = ?", (dtype, known[0]))
            self.series[key] = (known[0], dtype)
            return known[0]
        cur = self.conn.execute(
            "INSERT INTO series(layer, kind, tensor, call, mode, dtype) VALUES (?, ?, ?, ?, ?, ?)",
            (key.layer, key.kind, key.tensor, int(key.call), key.mode, dtype),
        )
        sid = int(cur.lastrowid or 0)
        self.series[key] = (sid, dtype)
        return sid

    def _write_records(self, records: list[StatRecord]) -> None:
        ids = self._series_ids(records)
        steps = [int(r.step) for r in records]
        values = np.array([r.stats for r in records], dtype=np.float64)
        if values.shape != (len(records), NFIELDS):
            raise ValueError(
                f"a StatRecord's stats must hold {NFIELDS} values (RECORD_FIELDS), "
                f"got an array of shape {values.shape[1:]}"
            )
        rows = list(zip(ids, steps, encode_stats(values), strict=True))
        direct, heavy = _split_heavy(rows, self.stat_rows, self.retention.stats_per_series)
        self.conn.executemany(_INSERT_STAT, direct)
        for sid, new in heavy.items():
            self._thin_stats(sid, new)
        with_hist = [i for i, r in enumerate(records) if r.histogram is not None]
        if with_hist:
            self._write_histograms(records, with_hist, ids, steps, values)

    def _write_histograms(
        self,
        records: list[StatRecord],
        rows: list[int],
        ids: list[int],
        steps: list[int],
        values: NDArray[np.float64],
    ) -> None:
        hists = [h for h in (records[i].histogram for i in rows) if h is not None]
        counts = np.array([h.counts for h in hists], dtype=np.float64)
        if counts.shape != (len(hists), HIST_BINS):
            raise ValueError(
                f"a histogram must have {HIST_BINS} counts, got an array of shape "
                f"{counts.shape[1:]}"
            )
        anomaly: list[bool] = np.any(values[rows][:, _NONFINITE] > 0, axis=1).tolist()
        new: list[_HistRow] = list(
            zip(
                [ids[i] for i in rows],
                [steps[i] for i in rows],
                [float(h.lo) for h in hists],  # SQLite stores NaN as NULL
                [float(h.width) for h in hists],
                [int(h.sample) for h in hists],
                anomaly,
                encode_counts(counts),
                strict=True,
            )
        )
        direct, heavy = _split_heavy(new, self.hist_rows, self.retention.hists_per_series)
        self.conn.executemany(_INSERT_HIST, direct)
        for sid, own in heavy.items():
            self._thin_histograms(sid, own)

    def _write_step(self, rec: StepRecord) -> None:
        step, wall = int(rec.step), float(rec.wall_time)
        cur = self.ranges.get(rec.mode)
        extends = (
            cur is not None
            and not rec.skipped
            and not cur.skipped
            and step > cur.last
            and (cur.first == cur.last or step - cur.last == cur.stride)
        )
        if cur is not None and extends:
            cur.stride, cur.last = step - cur.last, step
            self.conn.execute(
                "UPDATE steps SET last = ?, stride = ?, wall_last = ? WHERE mode = ? AND step = ?",
                (step, cur.stride, wall, rec.mode, cur.first),
            )
            return
        self.conn.execute(
            "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, 1, ?, ?, ?, ?)",
            (rec.mode, step, step, int(rec.skipped), rec.reason, wall, wall),
        )
        self.ranges[rec.mode] = _Range(step, step, 1, rec.skipped)

    def _write_anomaly(self, a: Anomaly) -> None:
        if self.anomaly_rows >= self.retention.anomalies:
            self.anomalies_dropped += 1
            self._set_meta({"anomalies_dropped": str(self.anomalies_dropped)})
            return
        self.conn.execute(
            "INSERT INTO anomalies(step, phase, series, nan, posinf, neginf, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                int(a.step),
                a.phase,
                self._series_id(a.key, ""),
                int(a.nan),
                int(a.posinf),
                int(a.neginf),
                a.detail,
            ),
        )
        self.anomaly_rows += 1

    # -- retention --------------------------------------------------------------------------

    def _thin_stats(self, sid: int, new: list[_StatRow]) -> None:
        """Store the series' `new` records, merging older ones into envelopes to fit the budget.

        New records merged at once are never written raw: a burst costs no extra writes.
        """
        kept, new = self._stored_before(sid, new, "stats", "step", _INSERT_STAT)
        stored = kept[:, 0]
        steps = np.r_[stored, np.array([r[1] for r in new], dtype=np.int64)]
        keep = self.retention.keep_first
        middle = steps[keep:-1]  # the first `keep_first` and the latest stay raw
        starts = plan_groups(middle, self.retention.stats_per_series - (len(steps) - len(middle)))
        sizes = np.diff(np.r_[starts, len(middle)])
        merged = np.zeros(len(steps), dtype=bool)
        merged[keep : len(steps) - 1] = np.repeat(sizes > 1, sizes)
        ranges = _step_ranges(stored, merged[: len(stored)])
        rows: list[tuple[int, int, int, bytes, bytes | None, bytes | None]] = []
        for lo, hi in ranges:
            rows += self.conn.execute(
                "SELECT step, span, count, vals, lo, hi FROM stats WHERE series = ? "
                "AND step BETWEEN ? AND ? ORDER BY step",
                (sid, lo, hi),
            ).fetchall()
        fresh = merged[len(stored) :]
        rows += [
            (step, 0, 1, blob, None, None)
            for (_, step, blob), m in zip(new, fresh, strict=True)
            if m
        ]
        group = np.repeat(np.arange(len(starts)), sizes)[merged[keep : len(steps) - 1]]
        envelopes = merge_envelopes(rows, group)
        self.conn.executemany(
            "DELETE FROM stats WHERE series = ? AND step BETWEEN ? AND ?",
            ((sid, lo, hi) for lo, hi in ranges),
        )
        self.conn.executemany(
            "INSERT INTO stats VALUES (?, ?, ?, ?, ?, ?, ?)", ((sid, *e) for e in envelopes)
        )
        self.conn.executemany(_INSERT_STAT, (r for r, m in zip(new, fresh, strict=True) if not m))
        self.stat_rows[sid] = len(steps) - len(rows) + len(envelopes)

    def _thin_histograms(self, sid: int, new: list[_HistRow]) -> None:
        """Store the series' `new` histograms, merging unprotected older ones to fit the budget.

        As in `_thin_stats`, only the groups that merge are read and rewritten.
        """
        rows, new = self._stored_before(sid, new, "hists", "step, anomaly", _INSERT_HIST)
        stored = rows[:, 0]
        steps = np.r_[stored, np.array([r[1] for r in new], dtype=np.int64)]
        anomaly = np.r_[rows[:, 1] > 0, np.array([r[5] for r in new], dtype=bool)]
        budget = self.retention.hists_per_series
        protected = np.arange(len(steps)) < self.retention.keep_first
        protected[-1] = True
        protected |= anomaly & (np.cumsum(anomaly) <= budget // 2)
        middle = np.flatnonzero(~protected)
        starts = plan_groups(steps[middle], budget - int(protected.sum()))
        sizes = np.diff(np.r_[starts, len(middle)])
        group = np.full(len(steps), -1)
        group[middle] = np.repeat(np.arange(len(starts)), sizes)
        merged = np.zeros(len(steps), dtype=bool)
        merged[middle] = np.repeat(sizes > 1, sizes)
        ranges = _step_ranges(stored, merged[: len(stored)])
        old: list[_StoredHist] = []
        for lo, hi in ranges:
            old += self.conn.execute(
                "SELECT step, span, count, lo, width, sample, anomaly, counts FROM hists "
                "WHERE series = ? AND step BETWEEN ? AND ? ORDER BY step",
                (sid, lo, hi),
            ).fetchall()
        fresh = merged[len(stored) :]
        old += [(r[1], 0, 1, *r[2:]) for r, m in zip(new, fresh, strict=True) if m]
        combined = merge_hist_rows(old, group[merged])
        self.conn.executemany(
            "DELETE FROM hists WHERE series = ? AND step BETWEEN ? AND ?",
            ((sid, lo, hi) for lo, hi in ranges),
        )
        self.conn.executemany(
            "INSERT INTO hists(series, step, span, count, lo, width, sample, anomaly, counts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((sid, step, *rest) for step, *rest in combined),
        )
        self.conn.executemany(_INSERT_HIST, (r for r, m in zip(new, fresh, strict=True) if not m))
        self.hist_rows[sid] = len(steps) - int(merged.sum()) + len(combined)

    def _stored_before(
        self, sid: int, new: list[_Row], table: str, columns: str, insert: str
    ) -> tuple[NDArray[np.int64], list[_Row]]:
        """The series' stored `columns` (step first) by step, and its new rows if they all come
        after them (else none).

        New rows at or before a stored step (a resumed or repeated step) are written first, so
        thinning only ever sees rows after the stored ones.
        """
        latest = {r[1]: r for r in new}  # a repeated step: the last one wins, as on disk
        ordered = [latest[step] for step in sorted(latest)]
        query = f"SELECT {columns} FROM {table} WHERE series = ? ORDER BY step"
        width = columns.count(",") + 1
        stored = _int_rows(self.conn, query, sid, width)
        if ordered and len(stored) and ordered[0][1] <= stored[-1, 0]:
            self.conn.executemany(insert, ordered)
            return _int_rows(self.conn, query, sid, width), []
        return stored, ordered


_StatRow = tuple[int, int, bytes]  # series, step, vals
_HistRow = tuple[int, int, float, float, int, bool, bytes]
_Row = TypeVar("_Row", _StatRow, _HistRow)
_INSERT_STAT: Final = "INSERT OR REPLACE INTO stats VALUES (?, ?, 0, 1, ?, NULL, NULL)"
_INSERT_HIST: Final = "INSERT OR REPLACE INTO hists VALUES (?, ?, ?, ?, ?, ?, ?, 0, 1)"
# step, span, count, lo, width, sample, anomaly, counts
_StoredHist = tuple[int, int, int, float | None, float | None, int, int, bytes]


def _split_heavy(
    rows: list[_Row], counts: dict[int, int], budget: int
) -> tuple[list[_Row], dict[int, list[_Row]]]:
    """Rows to insert as they are, and per series that will go over budget, rows to thin in."""
    per_series = collections.Counter(r[0] for r in rows)
    heavy: dict[int, list[_Row]] = {}
    for sid, n in per_series.items():
        counts[sid] = counts.get(sid, 0) + n  # thinning sets the exact count
        if counts[sid] > _limit(budget):
            heavy[sid] = []
    if not heavy:
        return rows, heavy
    direct = []
    for r in rows:
        own = heavy.get(r[0])
        if own is None:
            direct.append(r)
        else:
            own.append(r)
    return direct, heavy


def _step_ranges(steps: NDArray[np.int64], mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[first, last] steps of each run of consecutive rows where `mask` holds."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    begin, end = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    return list(zip(steps[begin].tolist(), steps[end].tolist(), strict=True))


def _limit(budget: int) -> int:
    """Rows a series may reach before it is thinned back to `budget`."""
    return budget + max(1, budget // 10)


def _int_rows(conn: sqlite3.Connection, sql: str, sid: int, width: int) -> NDArray[np.int64]:
    return np.array(conn.execute(sql, (sid,)).fetchall(), dtype=np.int64).reshape(-1, width)


EnvelopeRow = tuple[int, int, int, bytes, bytes, bytes]


def merge_envelopes(
    rows: Sequence[tuple[int, int, int, bytes, bytes | None, bytes | None]],
    group: NDArray[np.intp],
) -> list[EnvelopeRow]:
    """Merge stats rows (step, span, count, vals, lo, hi) by `group` (ascending, one per row).

    The mean is weighted by count, so it is the mean of all raw records merged; lo and hi ignore
    NaN unless every merged value is NaN.
    """
    if not rows:
        return []
    step, span, count, vals, lo, hi = zip(*rows, strict=True)
    v = decode_stats(vals)
    low, high = fill_bounds(v, lo), fill_bounds(v, hi)
    n = np.asarray(count, dtype=np.int64)
    ends = np.asarray(step, dtype=np.int64) + np.asarray(span, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    last = np.r_[starts[1:], len(rows)] - 1
    total = np.add.reduceat(n, starts)
    with np.errstate(invalid="ignore", over="ignore"):
        mean = np.add.reduceat(v * n[:, None], starts, axis=0) / total[:, None]
    first_steps = np.asarray(step, dtype=np.int64)[starts]
    return list(
        zip(
            first_steps.tolist(),
            (ends[last] - first_steps).tolist(),
            total.tolist(),
            encode_stats(mean),
            encode_stats(np.fmin.reduceat(low, starts, axis=0)),
            encode_stats(np.fmax.reduceat(high, starts, axis=0)),
            strict=True,
        )
    )


def merge_hist_rows(rows: Sequence[_StoredHist], group: NDArray[np.intp]) -> list[_StoredHist]:
    """Merge hists rows (step, span, count, lo, width, sample, anomaly, counts) by `group`
    (ascending, one per row): counts and samples add up on a grid that holds them all
    (`merge_binned`), the step range and record count cover every merged row."""
    if not rows:
        return []
    step, span, count, lo, width, sample, anomaly, blobs = zip(*rows, strict=True)
    first = np.asarray(step, dtype=np.int64)
    ends = first + np.asarray(span, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    last = np.r_[starts[1:], len(rows)] - 1
    grid_lo, grid_width, counts = merge_binned(
        np.array(lo, dtype=np.float64),  # NULL (no finite value) reads as NaN
        np.array(width, dtype=np.float64),
        decode_counts(blobs),
        starts,
    )
    return list(
        zip(
            first[starts].tolist(),
            (ends[last] - first[starts]).tolist(),
            np.add.reduceat(np.asarray(count, dtype=np.int64), starts).tolist(),
            grid_lo.tolist(),
            grid_width.tolist(),
            np.add.reduceat(np.asarray(sample, dtype=np.int64), starts).tolist(),
            np.maximum.reduceat(np.asarray(anomaly, dtype=np.int64), starts).tolist(),
            encode_counts(counts),
            strict=True,
        )
    )


def fill_bounds(vals: NDArray[np.float64], blobs: Sequence[bytes | None]) -> NDArray[np.float64]:
    """Per-row min or max: the decoded blob, or the values themselves for a raw record."""
    out: NDArray[np.float64] = vals.copy()
    stored = [i for i, b in enumerate(blobs) if b is not None]
    if stored:
        out[stored] = decode_stats([b for b in blobs if b is not None])
    return out


def write_layers(conn: sqlite3.Connection, layers: Iterable[LayerMeta]) -> None:
    conn.execute("DELETE FROM layers")
    conn.executemany(
        "INSERT INTO layers VALUES (?, ?, ?, ?, ?)",
        ((i, m.name, m.cls, m.parent, json.dumps(list(m.params))) for i, m in enumerate(layers)),
    )


# ---------------------------------------------------------------------------------------------
# The public writer


class RunWriter:
    """Records of a run, written to an SQLite file (or memory) by a background thread.

    `add`, `end_step` and `add_anomaly` never do I/O: they queue the record and return. A daemon
    thread commits in batches, at step boundaries, every `flush_every` seconds or `batch` records.
    `flush()` waits for all queued so far; `close()` also stops the thread. A writer that is never
    closed is flushed and closed at interpreter exit. An error in the writer thread is raised
    again, as a RuntimeError with the original as its cause, by the next `add`, `flush` or
    `close`.

    `path=None` keeps the run in a shared in-memory database that lives while this writer or a
    `Run` from `open_run()` is referenced. An existing nbviz run at `path` is appended to.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        layers: Sequence[LayerMeta] = (),
        meta: Mapping[str, str] = {},
        retention: Retention = Retention(),
        flush_every: float = 0.5,
        batch: int = 2048,
    ) -> None:
        if not flush_every > 0:
            raise ValueError(f"flush_every must be a positive number of seconds, not {flush_every}")
        if batch < 1:
            raise ValueError(f"batch must be at least 1 record, not {batch}")
        reserved = sorted(set(meta) & set(_RESERVED_META))
        if reserved:
            raise ValueError(f"meta keys {reserved} are reserved by nbviz")
        self.path: Path | None = None if path is None else Path(path)
        self.retention = retention
        self._keeper: _Keeper | None = None
        if self.path is None:
            self.uri = f"file:nbviz-{uuid.uuid4().hex}?mode=memory&cache=shared"
            self._keeper = _Keeper(self.uri)
            conn = sqlite3.connect(
                self.uri, uri=True, isolation_level=None, check_same_thread=False
            )
        else:
            _claim(self.path, self)
            try:
                conn = open_file(self.path)
            except BaseException:
                _release(self.path, self)
                raise
            self.uri = f"{self.path.resolve().as_uri()}?mode=ro"
        label = connect_label(self.path)
        self._shared = _Shared(label, batch)
        try:
            self.last_step: int | None = _prepare(conn, label, layers, meta)
            worker = _Worker(
                conn, self._shared, retention, flush_every, batch, self.path is not None
            )
        except BaseException as e:
            conn.close()
            if self.path is not None:
                _release(self.path, self)
            if isinstance(e, sqlite3.OperationalError):
                raise OSError(f"cannot write nbviz run {label}: {e}") from e
            raise
        self._backlog = _BACKLOG_BATCHES * batch
        self._closed = False
        thread = threading.Thread(target=worker.run, name=f"nbviz-writer {label}", daemon=True)
        self._shared.thread = thread
        thread.start()
        # Flush at interpreter exit, or when the writer is dropped without close().
        self._finalizer = weakref.finalize(self, _finalize, self._shared)

    # -- RecordSink ---------------------------------------------------------------------------

    def add(self, records: list[StatRecord]) -> None:
        """Queue `records` (the list is handed over: do not change it afterwards)."""
        shared = self._shared
        if self._closed or shared.error is not None:
            self._check_open()
        shared.put_records(records)
        if shared.queued - shared.done > self._backlog:
            self._wait_for_backlog()

    def end_step(self, step: StepRecord) -> None:
        if self._closed or self._shared.error is not None:
            self._check_open()
        if step.mode == "train" and (self.last_step is None or step.step > self.last_step):
            self.last_step = step.step
        self._shared.put(step)

    def add_anomaly(self, anomaly: Anomaly) -> None:
        if self._closed or self._shared.error is not None:
            self._check_open()
        self._shared.put(anomaly)

    # -- the rest -----------------------------------------------------------------------------

    def set_layers(self, layers: Sequence[LayerMeta]) -> None:
        """Replace the module hierarchy stored with the run."""
        self._check_open()
        self._shared.put(_Layers(tuple(layers)))

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything queued so far is committed (TimeoutError after `timeout` s)."""
        self._check_open()
        marker = _Flush()
        self._shared.put(marker, wake=True)
        self._wait(marker.done, timeout)
        self._shared.raise_error()

    def close(self) -> None:
        """Commit everything, stop the writer thread and close the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        _shutdown(self._shared)
        if self.path is not None:
            _release(self.path, self)
        self._shared.raise_error()

    @property
    def closed(self) -> bool:
        return self._closed

    def open_run(self) -> Run:
        """A reader of this run; for an in-memory run it keeps the database alive."""
        from .run import Run

        if self.path is None:
            assert self._keeper is not None
            return Run._connect(self.uri, None, self._keeper)
        return Run.open(self.path)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RunWriter {self._shared.label} ({state})>"

    # -- helpers ------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                f"nbviz recorder is closed: nothing more can be written to {self._shared.label}"
            )
        self._shared.raise_error()

    def _wait(self, event: threading.Event, timeout: float | None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        thread = self._shared.thread
        while not event.wait(0.05):
            if thread is None or not thread.is_alive():
                self._shared.raise_error()
                raise RuntimeError(f"nbviz: the writer thread of {self._shared.label} stopped")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"nbviz: flushing {self._shared.label} took over {timeout} s")

    def _wait_for_backlog(self) -> None:
        """Throttle a producer that outruns the writer, so queued records stay bounded."""
        shared = self._shared
        shared.wake.set()
        while shared.queued - shared.done > self._backlog // 2:
            thread = shared.thread
            if shared.error is not None or thread is None or not thread.is_alive():
                return
            time.sleep(0.001)


# Files being written by a RunWriter of this process: two writers would corrupt each other's state.
_WRITING: dict[str, weakref.ref[RunWriter]] = {}
_WRITING_LOCK = threading.Lock()


def _claim(path: Path, writer: RunWriter) -> None:
    key = str(path.resolve())
    with _WRITING_LOCK:
        other = _WRITING.get(key)
        holder = None if other is None else other()
        if holder is not None and not holder.closed:
            gc.collect()  # an unreachable writer is flushed and closed by its finalizer
            holder = None if other is None else other()
        if holder is not None and not holder.closed:
            raise ValueError(
                f"{path} is already being written by {holder!r} in this process: close it first"
            )
        _WRITING[key] = weakref.ref(writer)


def _release(path: Path, writer: RunWriter) -> None:
    key = str(path.resolve())
    with _WRITING_LOCK:
        ref = _WRITING.get(key)
        if ref is not None and ref() in (writer, None):
            del _WRITING[key]


def _writer_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _check_no_other_writer(meta: Mapping[str, str], label: str) -> None:
    """ValueError if a live process on this host has the run open for writing."""
    host, _, pid = meta.get("writer", "").rpartition(":")
    if meta.get("state") != "open" or host != socket.gethostname() or not pid.isdigit():
        return
    if int(pid) == os.getpid():
        return  # a writer of this process that failed or was never closed; _claim rules
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return  # it crashed: appending is how a crashed run is resumed
    except PermissionError:
        pass
    raise ValueError(f"{label} is being written by process {pid}: one writer per run file")


def _prepare(
    conn: sqlite3.Connection, label: str, layers: Sequence[LayerMeta], meta: Mapping[str, str]
) -> int | None:
    """Create the schema or check the existing one; store meta and layers. The last train step."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        fresh = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0
        if fresh:  # in memory; a file is created with its schema (`_runfile.open_file`)
            create_schema(conn)
        else:
            existing = check_meta(conn, label)
            _check_no_other_writer(existing, label)
            if existing["schema_version"] == "1":
                for statement in UPGRADE_FROM_1:
                    conn.execute(statement)
                conn.execute(
                    "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
                )
        state = [("state", "open"), ("writer", _writer_id())]
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [*meta.items(), *state])
        if layers:
            write_layers(conn, layers)
        last = conn.execute("SELECT max(last) FROM steps WHERE mode = 'train'").fetchone()[0]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return None if last is None else int(last)
