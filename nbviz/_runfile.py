"""Run files: the SQLite schema, and opening and checking a file before reading or writing it."""

from __future__ import annotations

import errno
import os
import sqlite3
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Final

FORMAT: Final = "nbviz-run"
SCHEMA_VERSION: Final = 2
MEMORY_LABEL: Final = "<in-memory run>"

SCHEMA: Final = """
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE layers(
    ord INTEGER PRIMARY KEY, name TEXT NOT NULL, cls TEXT NOT NULL, parent TEXT,
    params TEXT NOT NULL);
CREATE TABLE series(
    id INTEGER PRIMARY KEY, layer TEXT NOT NULL, kind TEXT NOT NULL, tensor TEXT NOT NULL,
    call INTEGER NOT NULL, mode TEXT NOT NULL, dtype TEXT NOT NULL,
    UNIQUE(layer, kind, tensor, call, mode));
CREATE TABLE stats(
    series INTEGER NOT NULL, step INTEGER NOT NULL, span INTEGER NOT NULL, count INTEGER NOT NULL,
    vals BLOB NOT NULL, lo BLOB, hi BLOB, PRIMARY KEY(series, step)) WITHOUT ROWID;
CREATE TABLE hists(
    series INTEGER NOT NULL, step INTEGER NOT NULL, lo REAL, width REAL, sample INTEGER NOT NULL,
    anomaly INTEGER NOT NULL, counts BLOB NOT NULL, span INTEGER NOT NULL DEFAULT 0,
    count INTEGER NOT NULL DEFAULT 1, PRIMARY KEY(series, step)) WITHOUT ROWID;
CREATE TABLE steps(
    mode TEXT NOT NULL, step INTEGER NOT NULL, last INTEGER NOT NULL, stride INTEGER NOT NULL,
    skipped INTEGER NOT NULL, reason TEXT NOT NULL, wall_first REAL NOT NULL,
    wall_last REAL NOT NULL, PRIMARY KEY(mode, step)) WITHOUT ROWID;
CREATE TABLE anomalies(
    id INTEGER PRIMARY KEY, step INTEGER NOT NULL, phase TEXT NOT NULL, series INTEGER NOT NULL,
    nan INTEGER NOT NULL, posinf INTEGER NOT NULL, neginf INTEGER NOT NULL, detail TEXT NOT NULL);
"""
# Version 1 had no hists.span and hists.count (every histogram was one record): adding them with
# their defaults upgrades a version-1 file.
UPGRADE_FROM_1: Final = (
    "ALTER TABLE hists ADD COLUMN span INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE hists ADD COLUMN count INTEGER NOT NULL DEFAULT 1",
)
TABLES: Final = ("meta", "layers", "series", "stats", "hists", "steps", "anomalies")
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"


def connect_label(path: Path | None) -> str:
    return MEMORY_LABEL if path is None else str(path)


def check_header(path: Path) -> None:
    """ValueError unless `path` starts like an SQLite file and is as long as its header says."""
    with path.open("rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise ValueError(f"{path} is not an nbviz run: it is not an SQLite database")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    pages_valid = header[24:28] == header[92:96]
    wal = path.with_name(path.name + "-wal")
    wal_empty = not wal.exists() or wal.stat().st_size == 0
    # With frames in the WAL the main file may legitimately lag behind its header.
    size = path.stat().st_size
    if pages_valid and wal_empty and size < pages * page_size:
        raise ValueError(
            f"{path} is truncated: its header says {pages * page_size} bytes, the file has {size}"
        )


def check_meta(conn: sqlite3.Connection, label: str) -> dict[str, str]:
    """The run's meta; ValueError unless it is an nbviz run of a schema this version reads."""
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "meta" not in names:
        raise ValueError(f"{label} is not an nbviz run: it has no nbviz meta table")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{label} is not an nbviz run: its meta has no format = {FORMAT!r}")
    version = meta.get("schema_version", "")
    if not version.isdigit():
        raise ValueError(f"{label} is not an nbviz run: bad schema_version {version!r}")
    if int(version) > SCHEMA_VERSION:
        raise ValueError(
            f"{label} was written by a newer nbviz (run schema version {version}; this nbviz "
            f"reads version {SCHEMA_VERSION}): upgrade nbviz (pip install -U nbviz)"
        )
    missing = [t for t in TABLES if t not in names]
    if missing:
        raise ValueError(f"{label} is not a complete nbviz run: tables {missing} are missing")
    return meta


def inspect_existing(path: Path) -> None:
    """Check without writing that the existing file at `path` is a run we may append to."""
    check_header(path)
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            check_meta(conn, str(path))
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise ValueError(f"{path} is not an nbviz run or is corrupted: {e}") from e


def check_creatable(path: Path) -> None:
    parent = path.parent
    if not parent.exists():
        raise FileNotFoundError(
            errno.ENOENT, f"cannot create nbviz run: directory {parent} does not exist", str(path)
        )
    if not parent.is_dir():
        raise NotADirectoryError(
            errno.ENOTDIR, f"cannot create nbviz run: {parent} is not a directory", str(path)
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(
            errno.EACCES, f"cannot create nbviz run: directory {parent} is not writable", str(path)
        )


def create_schema(conn: sqlite3.Connection) -> None:
    """The tables and the base meta of a new run, in the caller's transaction."""
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    base = {"format": FORMAT, "schema_version": str(SCHEMA_VERSION), "created": created}
    conn.executemany("INSERT INTO meta VALUES (?, ?)", base.items())


def _create(path: Path) -> None:
    """A new run file, built under a temporary name beside it and then linked into place: a
    reader that finds the file (a notebook following a script that has just started) always
    finds its schema, never an empty database."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.creating")
    try:
        conn = sqlite3.connect(temporary, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            create_schema(conn)
            conn.execute("COMMIT")
        finally:
            conn.close()
        if path.exists():  # empty: an existing empty file becomes the run
            os.replace(temporary, path)
            return
        try:
            os.link(temporary, path)  # never replaces a run another process created meanwhile
        except FileExistsError:
            inspect_existing(path)
        except OSError:  # a file system without hard links
            os.replace(temporary, path)
    except sqlite3.DatabaseError as e:
        raise OSError(f"cannot create nbviz run {path}: {e}") from e
    finally:
        temporary.unlink(missing_ok=True)


def open_file(path: Path) -> sqlite3.Connection:
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "an nbviz run must be a file", str(path))
    if path.exists() and path.stat().st_size > 0:
        inspect_existing(path)  # before anything can write to a file that is not ours
    else:
        check_creatable(path)
        _create(path)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode = WAL")
        # WAL with NORMAL: a commit survives a process crash; only power loss can undo the last.
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints (and their fsync) every 32 MiB of WAL rather than 4: a third faster at
        # full speed. The page cache is bounded (16 MiB) like everything else the writer holds.
        conn.execute("PRAGMA wal_autocheckpoint = 8192")
        conn.execute("PRAGMA cache_size = -16384")
    except sqlite3.DatabaseError as e:
        raise OSError(f"cannot write nbviz run {path}: {e}") from e
    return conn
