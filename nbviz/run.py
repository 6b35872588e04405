"""Reading a run: what `RunWriter` stored, as numpy arrays, also while it is still being written.

Every read queries the database afresh and holds no transaction between calls, so a writer in
another process is never blocked and each call sees everything committed so far. `refresh()`
tells whether anything was committed since the last look.
"""

from __future__ import annotations

import difflib
import errno
import importlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from ._encoding import decode_counts, decode_stats
from ._protocol import HIST_BINS
from ._runfile import MEMORY_LABEL, check_header, check_meta
from .records import PHASES, RECORD_FIELDS, Anomaly, LayerMeta, SeriesKey, StepRecord
from .store import fill_bounds

if TYPE_CHECKING:
    from .dataflow import Graph

# Anomalies within a step are listed in the order the phases happen.
_PHASE_ORDER = (
    "CASE phase " + " ".join(f"WHEN '{p}' THEN {i}" for i, p in enumerate(PHASES)) + " END"
)


@dataclass(frozen=True)
class StatSeries:
    """Statistics of one series, one entry per stored row, ascending by step.

    A raw record covers one step (step_lo == step_hi, count 1, lo == hi == values); an envelope
    made by retention covers [step_lo, step_hi] and `count` records, with the mean of each field
    in `values` and its min and max in `lo` and `hi`.
    """

    key: SeriesKey
    dtype: str
    step_lo: NDArray[np.int64]
    step_hi: NDArray[np.int64]
    count: NDArray[np.int64]
    values: dict[str, NDArray[np.float64]]
    lo: dict[str, NDArray[np.float64]]
    hi: dict[str, NDArray[np.float64]]

    def __len__(self) -> int:
        return len(self.step_lo)


@dataclass(frozen=True)
class HistSeries:
    """Histograms of one series, ascending by step.

    Bin i of row k covers [lo[k] + i*width[k], lo[k] + (i+1)*width[k]). A recorded histogram
    covers one step (steps == step_hi, count 1); one merged by retention holds the summed counts
    of the `count` records of steps [steps, step_hi] that have no row of their own (the first,
    latest and anomalous steps keep theirs), so the counts of all rows add up to those of every
    record.
    """

    key: SeriesKey
    steps: NDArray[np.int64]
    """The first step of each row (its step_lo)."""
    step_hi: NDArray[np.int64]
    count: NDArray[np.int64]
    lo: NDArray[np.float64]
    width: NDArray[np.float64]
    counts: NDArray[np.float64]  # [n, HIST_BINS]
    sample: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def edges(self) -> NDArray[np.float64]:
        """[n, HIST_BINS + 1] bin edges of each histogram, as `numpy.histogram` returns them."""
        out: NDArray[np.float64] = self.lo[:, None] + self.width[:, None] * np.arange(
            self.counts.shape[1] + 1
        )
        return out


class SeriesNotFoundError(KeyError, ValueError):
    """No series matches; the message says what was recorded instead."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Run:
    """A recorded run. Open with `Run.open(path)`, or `RunWriter.open_run()` for one in memory."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None, keeper: object = None) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        self._label = MEMORY_LABEL if path is None else str(path)
        self._keeper = keeper  # keeps an in-memory database alive while this reader lives
        self._lock = threading.Lock()  # one query at a time: widget callbacks may use other threads
        self._series: dict[SeriesKey, tuple[int, str]] = {}
        meta: dict[str, str] = self._read(lambda c: check_meta(c, self._label))
        self._revision = meta.get("revision", "")
        columns = {r[1] for r in self._fetch("PRAGMA table_info(hists)")}
        # Version 1 stored no merged histograms: each row is one record.
        self._hist_extent = "span, count" if "span" in columns else "0, 1"
        self._load_series()

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Run:
        """Open the run file at `path` read-only; it may still be being written."""
        p = Path(path)
        if not p.exists():
            raise FileNotFoundError(errno.ENOENT, "no nbviz run at this path", str(p))
        if p.is_dir():
            raise IsADirectoryError(errno.EISDIR, "an nbviz run is a file, not a directory", str(p))
        check_header(p)
        try:
            conn = sqlite3.connect(
                f"{p.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                timeout=10,
                check_same_thread=False,
            )
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{p} is not a readable nbviz run: {e}") from e
        try:
            return cls(conn, p)
        except BaseException:
            conn.close()
            raise

    @classmethod
    def _connect(cls, uri: str, path: Path | None, keeper: object) -> Run:
        """A reader of the shared in-memory database at `uri` (see RunWriter.open_run)."""
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        # Shared-cache readers would otherwise fail with "table is locked" while the writer is
        # in a transaction; they read its uncommitted rows instead.
        conn.execute("PRAGMA read_uncommitted = 1")
        conn.execute("PRAGMA query_only = 1")
        return cls(conn, path, keeper)

    # -- structure ------------------------------------------------------------------------------

    @property
    def meta(self) -> dict[str, str]:
        """format, schema_version, created, state, ... and the meta the writer was given."""
        return dict(self._fetch("SELECT key, value FROM meta"))

    @property
    def layers(self) -> list[LayerMeta]:
        rows = self._fetch("SELECT name, cls, parent, params FROM layers ORDER BY ord")
        return [LayerMeta(n, c, p, tuple(json.loads(params))) for n, c, p, params in rows]

    def series(
        self, layer: str | None = None, kind: str | None = None, mode: str | None = "train"
    ) -> list[SeriesKey]:
        """Recorded series, sorted; None matches any layer, kind or mode."""
        self._load_series()
        return sorted(
            k
            for k in self._series
            if (layer is None or k.layer == layer)
            and (kind is None or k.kind == kind)
            and (mode is None or k.mode == mode)
        )

    # -- steps ----------------------------------------------------------------------------------

    @property
    def steps(self) -> NDArray[np.int64]:
        """Train steps recorded (skipped ones included), ascending."""
        rows = self._fetch("SELECT step, last, stride FROM steps WHERE mode = 'train'")
        if not rows:
            return np.zeros(0, dtype=np.int64)
        runs = [
            np.arange(first, last + 1, max(stride, 1), dtype=np.int64)
            for first, last, stride in rows
        ]
        return np.unique(np.concatenate(runs))

    @property
    def skipped_steps(self) -> list[StepRecord]:
        rows = self._fetch(
            "SELECT step, mode, reason, wall_first FROM steps WHERE skipped ORDER BY step, mode"
        )
        return [StepRecord(s, mode, True, reason, wall) for s, mode, reason, wall in rows]

    @property
    def last_step(self) -> int | None:
        """The last train step recorded, None before the first."""
        value = self._fetch("SELECT max(last) FROM steps WHERE mode = 'train'")[0][0]
        return None if value is None else int(value)

    # -- data -----------------------------------------------------------------------------------

    def stats(
        self,
        layer: str,
        kind: str,
        tensor: str | None = None,
        *,
        call: int = 0,
        mode: str = "train",
    ) -> StatSeries:
        """Statistics of one series; `tensor=None` picks the layer's only tensor of that kind."""
        key, (sid, dtype) = self._resolve(layer, kind, tensor, call, mode)
        rows = self._fetch(
            "SELECT step, span, count, vals, lo, hi FROM stats WHERE series = ? ORDER BY step", sid
        )
        step = np.array([r[0] for r in rows], dtype=np.int64)
        span = np.array([r[1] for r in rows], dtype=np.int64)
        values = self._decode(decode_stats, [r[3] for r in rows])
        lo, hi = (
            self._bounds(values, [r[4] for r in rows]),
            self._bounds(values, [r[5] for r in rows]),
        )
        return StatSeries(
            key=key,
            dtype=dtype,
            step_lo=step,
            step_hi=step + span,
            count=np.array([r[2] for r in rows], dtype=np.int64),
            values=_by_field(values),
            lo=_by_field(lo),
            hi=_by_field(hi),
        )

    def histograms(
        self,
        layer: str,
        kind: str,
        tensor: str | None = None,
        *,
        call: int = 0,
        mode: str = "train",
    ) -> HistSeries:
        """Histograms of one series, ascending by step."""
        key, (sid, _) = self._resolve(layer, kind, tensor, call, mode)
        rows = self._fetch(
            f"SELECT step, lo, width, sample, counts, {self._hist_extent} FROM hists "
            "WHERE series = ? ORDER BY step",
            sid,
        )
        counts = self._decode(decode_counts, [r[4] for r in rows]) if rows else None
        steps = _ints(rows, 0)
        return HistSeries(
            key=key,
            steps=steps,
            step_hi=steps + _ints(rows, 5),
            count=_ints(rows, 6),
            lo=np.array([r[1] for r in rows], dtype=np.float64),  # NULL reads as NaN
            width=np.array([r[2] for r in rows], dtype=np.float64),
            counts=np.zeros((0, HIST_BINS)) if counts is None else counts,
            sample=np.array([r[3] for r in rows], dtype=np.int64),
        )

    @property
    def anomalies(self) -> list[Anomaly]:
        """Non-finite values found, by step and then phase (forward, backward, optimizer)."""
        rows = self._fetch(
            "SELECT a.step, a.phase, s.layer, s.kind, s.tensor, s.call, s.mode, a.nan, a.posinf, "
            "a.neginf, a.detail FROM anomalies a JOIN series s ON s.id = a.series "
            f"ORDER BY a.step, {_PHASE_ORDER}, a.id"
        )
        return [
            Anomaly(step, phase, SeriesKey(layer, kind, tensor, call, mode), nan, pos, neg, detail)
            for step, phase, layer, kind, tensor, call, mode, nan, pos, neg, detail in rows
        ]

    @property
    def first_anomaly(self) -> Anomaly | None:
        found = self.anomalies
        return found[0] if found else None

    def to_pandas(self) -> Any:
        """A tidy pandas.DataFrame of all statistics: one row per stored record, one column each.

        Columns: step, layer, kind, tensor, call, mode, dtype, then RECORD_FIELDS, then step_hi
        and count: a row thinned by retention is the mean of `count` records over steps
        step..step_hi (its min and max are in `stats(...).lo/.hi`); a raw record has step_hi ==
        step and count 1.
        """
        try:
            pd = importlib.import_module("pandas")
        except ImportError as e:
            raise ImportError("Run.to_pandas needs pandas: pip install pandas") from e
        self._load_series()
        rows = self._fetch(
            "SELECT series, step, span, count, vals FROM stats ORDER BY series, step"
        )
        by_id = {sid: (key, dtype) for key, (sid, dtype) in self._series.items()}
        keys = [by_id[r[0]] for r in rows]
        step = np.array([r[1] for r in rows], dtype=np.int64)
        columns: dict[str, object] = {
            "step": step,
            "layer": [k.layer for k, _ in keys],
            "kind": [k.kind for k, _ in keys],
            "tensor": [k.tensor for k, _ in keys],
            "call": np.array([k.call for k, _ in keys], dtype=np.int64),
            "mode": [k.mode for k, _ in keys],
            "dtype": [d for _, d in keys],
        }
        values = self._decode(decode_stats, [r[4] for r in rows])
        columns.update(_by_field(values))
        columns["step_hi"] = step + np.array([r[2] for r in rows], dtype=np.int64)
        columns["count"] = np.array([r[3] for r in rows], dtype=np.int64)
        return pd.DataFrame(columns)

    def to_tensorboard(self, logdir: str | os.PathLike[str], *, progress: bool = False) -> Path:
        """Write the run as TensorBoard event files in `logdir`: histograms and scalars.

        Tags are `kind/layer.tensor/statistic` for scalars (mean, std, min, max, l2 and the
        diagnostics that apply) and `kind/layer.tensor` for histograms; eval series start with
        `eval/`. Rows thinned by retention are written as their mean at their first step.
        `progress` shows a bar on stderr when it is a terminal. Needs the tensorboard package.
        """
        from .export.tensorboard import write_tensorboard

        return write_tensorboard(self, logdir, progress=progress)

    def figure(
        self,
        view: str = "summary",
        *,
        layer: str | None = None,
        kind: str = "weight",
        step: int | None = None,
        tensor: str | None = None,
        metric: str = "l2",
        call: int = 0,
        mode: str = "train",
    ) -> Any:
        """The `matplotlib.figure.Figure` that `export` writes, to adjust before saving."""
        from .export import view_figure

        return view_figure(
            self, view, layer=layer, kind=kind, step=step, tensor=tensor, metric=metric,
            call=call, mode=mode,
        )  # fmt: skip

    def export(
        self,
        path: str | os.PathLike[str],
        *,
        view: str = "summary",
        layer: str | None = None,
        kind: str = "weight",
        step: int | None = None,
        tensor: str | None = None,
        metric: str = "l2",
        call: int = 0,
        mode: str = "train",
        dpi: float | None = None,
        graph: Graph | None = None,
        budget: int | None = None,
    ) -> Path:
        """Write a static figure of the run to `path`: PNG, SVG or PDF by its extension; or, for
        ".html", the standalone report (`nbviz.export.html`: the widget's views, offline).

        view: "histogram" (the layer's tensors of `kind` at `step`), "distribution" (percentile
        bands and a ridgeline of histograms over steps), "gradient_flow" (every parameter's
        gradient norm at `step`; kind "grad" or "activation_grad"), "heatmap" (`metric` of every
        series of `kind`, layers × steps) or "summary" (all of them for one layer).
        layer=None picks the first recorded layer, step=None the last step, tensor=None every
        tensor of the kind. SVG output is deterministic: the same run gives the same bytes.
        Uses the current matplotlib rcParams, never pyplot.

        The report takes `graph` (from `nbviz.trace`, for the dataflow diagram), `budget`
        (bytes of the file, histograms dropped to fit) and `layer` (selected when it opens); the
        other options are the figures'.
        """
        if Path(path).suffix.lower() in (".html", ".htm"):
            from .export.html import write_html

            return write_html(self, path, graph=graph, budget=budget, selected=layer)
        if graph is not None or budget is not None:
            raise TypeError("graph= and budget= are options of the HTML report (a .html path)")
        from .export import export

        return export(
            self, path, view=view, layer=layer, kind=kind, step=step, tensor=tensor,
            metric=metric, call=call, mode=mode, dpi=dpi,
        )  # fmt: skip

    def sizes(self) -> dict[str, int]:
        """Rows per table (series, stats, hists, anomalies, layers, steps) and `bytes` on disk."""
        out = {
            table: int(self._fetch(f"SELECT count(*) FROM {table}")[0][0])
            for table in ("layers", "series", "stats", "hists", "steps", "anomalies")
        }
        if self.path is not None:
            out["bytes"] = sum(
                p.stat().st_size
                for p in (self.path, self.path.with_name(self.path.name + "-wal"))
                if p.exists()
            )
        return out

    # -- incremental reads (what a live view has not seen yet) ----------------------------------

    @property
    def revision(self) -> int:
        """The writer's commit counter as of the last `refresh()` (or open)."""
        return int(self._revision) if self._revision.isdigit() else 0

    def series_rows(self, after_id: int = 0) -> list[tuple[int, SeriesKey, str]]:
        """(id, key, dtype) of the series with a store id above `after_id`, by id."""
        rows = self._fetch(
            "SELECT id, layer, kind, tensor, call, mode, dtype FROM series WHERE id > ? "
            "ORDER BY id",
            after_id,
        )
        return [(sid, SeriesKey(la, ki, te, ca, mo), dt) for sid, la, ki, te, ca, mo, dt in rows]

    def step_rows(self, since: int | None = None) -> list[StepRecord]:
        """Step records, one per step (runs of steps expanded), by mode then step.

        `since` keeps the steps after it. Between the first and last step of a run only those
        two wall times are stored: the ones in between are interpolated.
        """
        rows = self._fetch(
            "SELECT mode, step, last, stride, skipped, reason, wall_first, wall_last FROM steps "
            "WHERE last > ? ORDER BY mode, step",
            -(2**62) if since is None else since,
        )
        out: list[StepRecord] = []
        for mode, first, last, stride, skipped, reason, w0, w1 in rows:
            steps = range(first, last + 1, max(int(stride), 1))
            span = max(last - first, 1)
            for s in steps:
                if since is None or s > since:
                    wall = w0 + (w1 - w0) * (s - first) / span
                    out.append(StepRecord(s, mode, bool(skipped), reason, wall))
        return out

    def anomaly_rows(
        self, after_id: int = 0
    ) -> list[tuple[int, int, str, int, int, int, int, str]]:
        """(id, step, phase, series id, nan, posinf, neginf, detail) with an id above `after_id`."""
        return self._fetch(
            "SELECT id, step, phase, series, nan, posinf, neginf, detail FROM anomalies "
            "WHERE id > ? ORDER BY id",
            after_id,
        )

    def stat_rows(
        self, after: Mapping[int, int] | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
        """(series id, step, values [n, RECORD_FIELDS]) of the statistics rows after `after`.

        `after` maps series ids to the last step already seen: only rows past it, and only of
        those series, are read, each series by an index range (no scan of the rest of the run).
        None reads every row. Envelopes come as one row at their first step, holding the mean.
        """
        rows = self._rows_after("stats", "s.series, s.step, s.vals", after)
        values = self._decode(decode_stats, [r[2] for r in rows]) if rows else _empty_stats()
        return _ints(rows, 0), _ints(rows, 1), values

    def hist_index(
        self, after: Mapping[int, int] | None = None
    ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.bool_]]:
        """(series id, step, anomaly) of the histogram rows after `after` (as in `stat_rows`)."""
        rows = self._rows_after("hists", "s.series, s.step, s.anomaly", after)
        return _ints(rows, 0), _ints(rows, 1), np.array([bool(r[2]) for r in rows], dtype=bool)

    def hist_rows(self, series: Sequence[int], steps: Sequence[int]) -> HistRows:
        """The histogram rows at these (series id, step) pairs; pairs not stored are left out."""
        pairs = json.dumps([[int(a), int(b)] for a, b in zip(series, steps, strict=True)])
        return self._hist_rows(
            "SELECT s.series, s.step, s.lo, s.width, s.sample, s.counts FROM json_each(?) j "
            "CROSS JOIN hists s ON s.series = j.value ->> 0 AND s.step = j.value ->> 1",
            pairs,
        )

    def hist_rows_of(self, series: Sequence[int]) -> HistRows:
        """Every histogram row of these series ids, by series then step."""
        return self._hist_rows(
            "SELECT s.series, s.step, s.lo, s.width, s.sample, s.counts FROM json_each(?) j "
            "CROSS JOIN hists s ON s.series = j.value ORDER BY s.series, s.step",
            json.dumps([int(s) for s in series]),
        )

    def row_counts(self, table: str, through: Mapping[int, int]) -> dict[int, int]:
        """Rows of `table` ("stats" or "hists") per series id, counting its steps up to the
        mapped step: a live view compares them with the rows it read to notice thinning."""
        if table not in ("stats", "hists"):
            raise ValueError(f"table must be 'stats' or 'hists', not {table!r}")
        pairs = json.dumps([[int(k), int(v)] for k, v in through.items()])
        rows = self._fetch(
            f"SELECT j.value ->> 0, (SELECT count(*) FROM {table} s WHERE s.series = "
            "j.value ->> 0 AND s.step <= j.value ->> 1) FROM json_each(?) j",
            pairs,
        )
        return {int(sid): int(n) for sid, n in rows}

    def _rows_after(
        self, table: str, columns: str, after: Mapping[int, int] | None
    ) -> list[tuple[Any, ...]]:
        if after is None:
            return self._fetch(f"SELECT {columns} FROM {table} s")
        # CROSS JOIN keeps the JSON list as the outer loop: one primary-key range per series.
        pairs = json.dumps([[int(k), int(v)] for k, v in after.items()])
        return self._fetch(
            f"SELECT {columns} FROM json_each(?) j CROSS JOIN {table} s "
            "ON s.series = j.value ->> 0 AND s.step > j.value ->> 1",
            pairs,
        )

    def _hist_rows(self, sql: str, arg: str) -> HistRows:
        rows = self._fetch(sql, arg)
        counts = self._decode(decode_counts, [r[5] for r in rows]) if rows else None
        return HistRows(
            series=_ints(rows, 0),
            step=_ints(rows, 1),
            lo=np.array([r[2] for r in rows], dtype=np.float64),  # NULL reads as NaN
            width=np.array([r[3] for r in rows], dtype=np.float64),
            sample=_ints(rows, 4),
            counts=np.zeros((0, HIST_BINS)) if counts is None else counts,
        )

    # -- following a run being written ----------------------------------------------------------

    @property
    def complete(self) -> bool:
        """The writer closed the run (False while it writes, or after it crashed)."""
        return self._meta_value("state") == "closed"

    def refresh(self) -> bool:
        """Whether anything was committed since the last refresh (or open)."""
        revision = self._meta_value("revision") or ""
        if revision == self._revision:
            return False
        self._revision = revision
        self._load_series()
        return True

    def follow(self, poll: float = 0.5, timeout: float | None = None) -> Iterator[int]:
        """Yield each new last step as it is committed; stop at `timeout` s or when closed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last = self.last_step
        while True:
            complete = self.complete  # read before the step, so the final step is not missed
            if self.refresh() or complete:
                now = self.last_step
                if now is not None and (last is None or now > last):
                    last = now
                    yield now
            if complete:
                return
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            time.sleep(poll if remaining is None else min(poll, remaining))

    # -- lifetime -------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            self._keeper = None

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<nbviz Run {self._label}>"

    # -- helpers --------------------------------------------------------------------------------

    def _read(self, query: Any) -> Any:
        """Run `query(conn)`; a broken file becomes a ValueError that names it."""
        try:
            with self._lock:
                if self._conn is None:
                    raise RuntimeError(f"the nbviz run {self._label} is closed")
                return query(self._conn)
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise  # contention, not damage
            raise ValueError(f"{self._label} is not a readable nbviz run: {e}") from e
        except sqlite3.DatabaseError as e:
            raise ValueError(f"{self._label} is corrupted or truncated: {e}") from e

    def _fetch(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._read(lambda c: c.execute(sql, args).fetchall())
        return rows

    def _decode(self, decode: Any, blobs: Sequence[bytes]) -> NDArray[np.float64]:
        try:
            out: NDArray[np.float64] = decode(blobs)
        except ValueError as e:
            raise ValueError(f"{self._label} is corrupted: {e}") from e
        return out

    def _bounds(
        self, values: NDArray[np.float64], blobs: Sequence[bytes | None]
    ) -> NDArray[np.float64]:
        try:
            return fill_bounds(values, blobs)
        except ValueError as e:
            raise ValueError(f"{self._label} is corrupted: {e}") from e

    def _meta_value(self, key: str) -> str | None:
        rows = self._fetch("SELECT value FROM meta WHERE key = ?", key)
        return str(rows[0][0]) if rows else None

    def _load_series(self) -> None:
        rows = self._fetch("SELECT id, layer, kind, tensor, call, mode, dtype FROM series")
        self._series = {
            SeriesKey(layer, kind, tensor, call, mode): (sid, dtype)
            for sid, layer, kind, tensor, call, mode, dtype in rows
        }

    def _resolve(
        self, layer: str, kind: str, tensor: str | None, call: int, mode: str
    ) -> tuple[SeriesKey, tuple[int, str]]:
        for attempt in range(2):  # a miss may be a series committed since the last look
            if attempt:
                self._load_series()
            matches = [
                k
                for k in self._series
                if k.layer == layer
                and k.kind == kind
                and k.call == call
                and k.mode == mode
                and (tensor is None or k.tensor == tensor)
            ]
            if len(matches) == 1:
                return matches[0], self._series[matches[0]]
            if len(matches) > 1:
                choices = ", ".join(repr(k.tensor) for k in sorted(matches))
                raise ValueError(
                    f"{layer!r} has several {kind!r} tensors: pass tensor= one of {choices}"
                )
        raise SeriesNotFoundError(self._explain_miss(layer, kind, tensor, call, mode))

    def _explain_miss(self, layer: str, kind: str, tensor: str | None, call: int, mode: str) -> str:
        keys = list(self._series)
        where = f"in {self._label}"
        layers = sorted({k.layer for k in keys} | {m.name for m in self.layers})
        if layer not in {k.layer for k in keys}:
            return f"no layer {layer!r} was recorded {where}{_suggest(layer, layers)}"
        keys = [k for k in keys if k.layer == layer]
        kinds = sorted({k.kind for k in keys})
        if kind not in kinds:
            return f"layer {layer!r} has no {kind!r} series{_suggest(kind, kinds)}"
        keys = [k for k in keys if k.kind == kind]
        if tensor is not None and tensor not in {k.tensor for k in keys}:
            tensors = sorted({k.tensor for k in keys})
            return f"{layer!r} has no {kind!r} tensor {tensor!r}{_suggest(tensor, tensors)}"
        keys = [k for k in keys if tensor is None or k.tensor == tensor]
        modes = sorted({k.mode for k in keys})
        if mode not in modes:
            return f"{layer!r} {kind!r} was not recorded in mode {mode!r} (recorded: {modes})"
        calls = sorted({k.call for k in keys if k.mode == mode})
        return f"{layer!r} {kind!r} has no call {call} (recorded calls: {calls})"


def _suggest(name: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=5, cutoff=0.5)
    if close:
        return "; did you mean " + ", ".join(repr(c) for c in close) + "?"
    shown = ", ".join(repr(c) for c in choices[:10])
    more = ", ..." if len(choices) > 10 else ""
    return f" (recorded: {shown}{more})" if choices else " (nothing recorded yet)"


@dataclass(frozen=True)
class HistRows:
    """Histogram rows of any series, by store series id (see `Run.hist_rows`)."""

    series: NDArray[np.int64]
    step: NDArray[np.int64]
    lo: NDArray[np.float64]
    width: NDArray[np.float64]
    sample: NDArray[np.int64]
    counts: NDArray[np.float64]  # [n, HIST_BINS]

    def __len__(self) -> int:
        return len(self.step)


def _ints(rows: Sequence[tuple[Any, ...]], column: int) -> NDArray[np.int64]:
    return np.array([r[column] for r in rows], dtype=np.int64)


def _empty_stats() -> NDArray[np.float64]:
    return np.zeros((0, len(RECORD_FIELDS)))


def _by_field(values: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
    return {name: np.array(values[:, i]) for i, name in enumerate(RECORD_FIELDS)}
