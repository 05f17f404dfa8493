"""The result store: SQLite in WAL mode, keyed by the Experiment hash.

One row per job (its experiment, status, error and final result as JSON), the training
snapshots as they arrive, uploaded data sets by digest (so that a link naming an upload works
for anyone on the same server), sweeps' progress rows and the two-layer ReLU solver's warm
starts. Every thread opens its own connection: WAL lets one writer and many readers work at
once, and nothing in this process waits on a lock of its own while SQLite waits on a lock of
another process (a tab's reads never stall behind a job's write).

Failures are values the callers can act on: every SQLite error leaves a method as a
:class:`StoreError` of one line, whose `kind` says whether waiting helps (BUSY: another process
holds the lock) or room must be made (FULL: the disk or the file-size limit is reached).

Retention (:meth:`Store.enforce_size`): above a size bound, the snapshots of the oldest
finished jobs go first, then the least recently used uploads; results are kept. A finished
job keeps at most KEEP_SNAPSHOTS snapshots (:meth:`Store.thin_snapshots`).

One server per store: :meth:`Store.claim_server` takes an exclusive lock on the data
directory; a second server on the same directory is refused with a clear message (several
servers share a store only through a database server).

PostgreSQL: with ``DUALVIZ_DATABASE_URL=postgresql://...`` the same API runs on a database
server through psycopg 3 and a small connection pool (every statement autocommits, as SQLite's
here does; a transaction takes one advisory lock, as SQLite's BEGIN IMMEDIATE takes the write
lock). Several servers (replicas) share that store: a queued job is claimed atomically by one of
them (:meth:`Store.claim`: ``FOR UPDATE SKIP LOCKED``) with a lease its manager renews; a
running job whose lease expired (its replica died) is claimed again by a replica whose sessions
watch it (:meth:`Store.watch`). Rooms (a presenter's current view, its followers) are rows here
too, so that every replica sees them.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Dataset, validate_arrays
from ..results import (
    FINAL,
    RERUNNABLE,
    Bounds,
    JobStatus,
    Snapshot,
    StoredRun,
    SweepStatus,
)

DATA_DIR_ENV = "DUALVIZ_DATA_DIR"
DATABASE_URL_ENV = "DUALVIZ_DATABASE_URL"
_PG_LOCK = 0x6475616C  # the advisory lock of a PostgreSQL store's write transactions
KEEP_SNAPSHOTS = 1000  # per finished job: enough for every curve the pages draw
BUSY_TIMEOUT = 2.0  # seconds a statement waits for another process's lock before StoreError
SCHEMA_VERSION = 4  # PRAGMA user_version: the columns below

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    hash TEXT PRIMARY KEY,
    query TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    pid INTEGER,
    error TEXT,
    bounds TEXT,
    result TEXT
);
CREATE TABLE IF NOT EXISTS snapshots (
    hash TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    restart INTEGER,
    done INTEGER,
    PRIMARY KEY (hash, seq)
);
CREATE TABLE IF NOT EXISTS datasets (
    digest TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    arrays BLOB NOT NULL,
    created REAL NOT NULL,
    used REAL
);
CREATE TABLE IF NOT EXISTS sweeps (
    key TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    pid INTEGER,
    status TEXT NOT NULL,
    updated REAL NOT NULL,
    owner TEXT,
    error TEXT,
    started REAL
);
CREATE TABLE IF NOT EXISTS warm_starts (
    digest TEXT PRIMARY KEY,
    columns TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS watches (
    hash TEXT NOT NULL,
    replica TEXT NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (hash, replica)
);
CREATE TABLE IF NOT EXISTS rooms (
    name TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    page TEXT NOT NULL,
    query TEXT NOT NULL,
    seq INTEGER NOT NULL,
    alive REAL NOT NULL,
    created REAL NOT NULL,
    panel TEXT,
    panel_version TEXT
);
CREATE TABLE IF NOT EXISTS room_followers (
    room TEXT NOT NULL,
    replica TEXT NOT NULL,
    followers INTEGER NOT NULL,
    seen REAL NOT NULL,
    PRIMARY KEY (room, replica)
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created);
"""
# The same tables on PostgreSQL (REAL is single precision there; times need double).
_PG_SCHEMA = (_SCHEMA.replace(" REAL", " DOUBLE PRECISION").replace(" BLOB", " BYTEA")
              .replace("    result TEXT\n", "    result TEXT,\n    owner TEXT,\n"
                       "    lease DOUBLE PRECISION\n"))
# Columns added since the first stores: (table, column, type), added where missing.
_ADDED_COLUMNS = (("snapshots", "restart", "INTEGER"), ("snapshots", "done", "INTEGER"),
                  ("datasets", "used", "REAL"), ("sweeps", "owner", "TEXT"),
                  ("sweeps", "error", "TEXT"), ("sweeps", "started", "REAL"),
                  ("jobs", "owner", "TEXT"), ("jobs", "lease", "REAL"),
                  ("rooms", "panel", "TEXT"), ("rooms", "panel_version", "TEXT"))
# A presenter's live panel as its followers draw it (JSON); a larger one is not shared (its
# followers then rerun their page at every change instead).
MAX_PANEL_BYTES = 512 * 1024


class StoreError(RuntimeError):
    """A store operation that did not happen, in one line fit for a visitor."""

    BUSY = "busy"
    FULL = "full"
    OTHER = "other"

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class QueueFull(Exception):
    """create_job refused: `waiting` jobs are queued, the cap it was given."""

    def __init__(self, waiting: int):
        super().__init__(f"{waiting} runs are waiting")
        self.waiting = waiting


class StoreInUse(StoreError):
    """Another server already serves this data directory."""


def _store_error(exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(StoreError.BUSY, "the result store is busy (another process holds "
                                           "its lock); retrying")
    if code == sqlite3.SQLITE_FULL or "full" in str(exc):
        return StoreError(StoreError.FULL, "the result store's disk is full; results cannot "
                                           "be saved until the operator frees space")
    return StoreError(StoreError.OTHER, f"the result store failed: {str(exc)[:200]}")


def _pg_store_error(exc: Exception) -> StoreError:
    import psycopg

    if isinstance(exc, psycopg.errors.DiskFull):
        return StoreError(StoreError.FULL, "the result store's disk is full; results cannot "
                                           "be saved until the operator frees space")
    if isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled):
        return StoreError(StoreError.BUSY, "the result store is busy (another process holds "
                                           "its lock); retrying")
    if isinstance(exc, psycopg.OperationalError) or type(exc).__name__ == "PoolTimeout":
        return StoreError(StoreError.BUSY, "the result store's database server does not "
                                           "answer; retrying")
    first = (str(exc).splitlines() or [""])[0]
    return StoreError(StoreError.OTHER, f"the result store failed: {first[:200]}")


def _is_pg_error(exc: Exception) -> bool:
    module = type(exc).__module__
    return module.startswith("psycopg")


def _guarded(method):
    """SQLite and PostgreSQL errors leave a Store method as one StoreError."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise _store_error(exc) from None
        except StoreError:
            raise
        except Exception as exc:
            if _is_pg_error(exc):
                raise _pg_store_error(exc) from None
            raise
    return wrapper


def default_data_dir() -> Path:
    """$DUALVIZ_DATA_DIR, else the user's cache directory (XDG_CACHE_HOME or ~/.cache)."""
    if os.environ.get(DATA_DIR_ENV):
        return Path(os.environ[DATA_DIR_ENV])
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "dualviz"


def pid_alive(pid: int | None) -> bool:
    """A process with this pid exists and is not a zombie (exited, not yet reaped)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(") ", 1)[-1][:1] != "Z"
    except OSError:
        return False


@dataclass(frozen=True)
class JobRecord:
    """A job as stored; bounds and result are the JSON as written, `known_bounds` and `run`
    the same read back typed (dualviz.results)."""

    hash: str
    query: str
    status: JobStatus
    created: float
    started: float | None
    finished: float | None
    pid: int | None
    error: str | None
    bounds: dict[str, Any] | None  # closed form and dual, known before training ends
    result: dict[str, Any] | None

    @functools.cached_property
    def known_bounds(self) -> Bounds | None:
        """What was known before training ended: the final result's bounds once there is one."""
        source = self.result or self.bounds
        return Bounds.from_json(source) if source else None

    @functools.cached_property
    def run(self) -> StoredRun | None:
        return StoredRun.from_json(self.result) if self.result else None


@dataclass(frozen=True)
class SweepRecord:
    key: str
    spec: dict[str, Any]
    status: str  # running | stopped | paused | finished | interrupted
    owner: str | None  # the watcher that started it (its Stop button)
    error: str | None  # why it is not running, when it is not
    started: float | None
    updated: float


_JOB_COLUMNS = "hash, query, status, created, started, finished, pid, error, bounds, result"


@dataclass(frozen=True)
class RoomRecord:
    """A presenter's room: the page and query its presenter shows now (seq increases with
    every change), alive while its presenter is connected (the lease `alive` is renewed)."""

    name: str
    page: str
    query: str
    seq: int
    alive: float
    panel_version: str | None = None  # of the presenter's shared live panel (None: none)


def _bounded_panel(panel: str | None, version: str | None) -> tuple[str | None, str | None]:
    if panel is None or version is None or len(panel) > MAX_PANEL_BYTES:
        return None, None
    return panel, version


def _job(row) -> JobRecord:
    return JobRecord(row[0], row[1], JobStatus(row[2]), *row[3:8],
                     *(json.loads(x) if x else None for x in row[8:]))


class Store:
    """A handle on the store: one per process, safe to share between its threads (each
    thread talks to SQLite through a connection of its own)."""

    def __init__(self, data_dir: Path | str | None = None, busy_timeout: float = BUSY_TIMEOUT,
                 url: str | None = None, pool_size: int = 16):
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / "dualviz.sqlite3"
        self.busy_timeout = busy_timeout
        self.url = url if url is not None else os.environ.get(DATABASE_URL_ENV, "")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()  # guards the list, never held on SQLite
        self._pg: _PgPool | None = None
        if self.url:
            if not self.url.startswith(("postgresql://", "postgres://")):
                raise StoreError(StoreError.OTHER, f"${DATABASE_URL_ENV} must be a "
                                 "postgresql:// URL (unset: the embedded SQLite store)")
            try:
                self._pg = _PgPool(self.url, busy_timeout, pool_size)
                self._create_pg()
            except Exception as exc:
                if self._pg is not None:
                    self._pg.close()
                raise (_pg_store_error(exc) if _is_pg_error(exc) else exc) from None
            return
        try:
            self._create()
        except sqlite3.Error as exc:
            raise _store_error(exc) from None

    @property
    def shared(self) -> bool:
        """On a database server that several replicas may share (PostgreSQL)."""
        return self._pg is not None

    @property
    def backend(self) -> str:
        return "postgresql" if self.shared else "sqlite"

    def _create_pg(self) -> None:
        with self._transaction() as db:  # replicas starting together create the tables once
            db.execute(_PG_SCHEMA)
            # Columns a database made by an older version lacks. Only those are altered: an
            # ALTER TABLE locks its table exclusively even when the column exists, and would
            # stall (and time out) every replica's work on it while one starts.
            present = set(db.execute("SELECT table_name, column_name FROM "
                                     "information_schema.columns WHERE table_schema = "
                                     "current_schema()").fetchall())
            for table, column, kind in _ADDED_COLUMNS:
                if (table, column) not in present:
                    kind = kind.replace("REAL", "DOUBLE PRECISION")
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")

    def _create(self) -> None:
        db = self._db
        if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect in a new file only
        db.executescript(_SCHEMA)
        for table, column, kind in _ADDED_COLUMNS:
            names = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if column not in names:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @property
    def _db(self):
        if self._pg is not None:
            return self._pg  # each statement on a pooled connection, autocommitted
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                 check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
            return
        with self._connections_lock:
            for db in self._connections:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._connections.clear()
        self._local = threading.local()

    # -- one server per data directory ---------------------------------------------------------
    def claim_server(self):
        """An exclusive lock on the data directory for this process (released when the
        process ends, even by kill -9). Returns the open lock file: keep it. Raises
        StoreInUse, naming the holder, if another server has it. A PostgreSQL store is
        shared by design (replicas): nothing to claim."""
        if self.shared:
            return _NoLock()
        path = self.data_dir / "server.lock"
        handle = open(path, "a+")  # noqa: SIM115 - held for the life of the server
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()[:40] or "unknown"
            handle.close()
            raise StoreInUse(StoreError.OTHER, (
                f"another dualviz server (pid {holder}) already uses the store in "
                f"{self.data_dir}; give this one its own $DUALVIZ_DATA_DIR (servers share "
                "results only through a shared database)")) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    # -- jobs ---------------------------------------------------------------------------------
    @_guarded
    def job(self, job_hash: str) -> JobRecord | None:
        row = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE hash = ?",
                               (job_hash,)).fetchone()
        return None if row is None else _job(row)

    @_guarded
    def jobs(self, hashes: Iterable[str]) -> dict[str, JobRecord]:
        """The stored jobs among `hashes`, in one query per 500."""
        hashes = list(dict.fromkeys(hashes))
        found = {}
        for start in range(0, len(hashes), 500):
            part = hashes[start:start + 500]
            rows = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE hash IN "
                                    f"({','.join('?' * len(part))})", part).fetchall()
            found.update((row[0], _job(row)) for row in rows)
        return found

    @_guarded
    def statuses(self, hashes: Iterable[str]) -> dict[str, tuple[str, float | None]]:
        """(status, finished) of the stored jobs among `hashes`: what a progress bar needs,
        without reading results."""
        hashes = list(dict.fromkeys(hashes))
        found = {}
        for start in range(0, len(hashes), 500):
            part = hashes[start:start + 500]
            found.update((h, (s, f)) for h, s, f in self._db.execute(
                f"SELECT hash, status, finished FROM jobs WHERE hash IN "
                f"({','.join('?' * len(part))})", part))
        return found

    @_guarded
    def create_job(self, job_hash: str, query: str, *, running_in: int | None = None,
                   replace: bool = False, max_queued: int | None = None) -> bool:
        """A fresh queued job, unless one is stored that is still useful: only an absent job,
        or one in RERUNNABLE (or any, with `replace`), is (re)created, with its old snapshots
        dropped. Decided inside one transaction, so two sessions asking at once create it
        once. running_in: the pid of a process already computing it (a CLI sweep's driver):
        the job is created running, so no job manager starts it a second time. max_queued:
        the cap on queued jobs, counted in the same transaction (raises QueueFull), so
        sessions racing for the last place never overfill the queue. Returns whether a job
        was created."""
        now = time.time()
        status, started = ((JobStatus.QUEUED, None) if running_in is None
                           else (JobStatus.RUNNING, now))
        with self._transaction() as db:
            row = db.execute("SELECT status FROM jobs WHERE hash = ?" + self._for_update,
                             (job_hash,)).fetchone()
            if row is not None and not replace and row[0] not in RERUNNABLE:
                return False
            if max_queued is not None:
                (waiting,) = db.execute("SELECT COUNT(*) FROM jobs WHERE status = ?",
                                        (JobStatus.QUEUED,)).fetchone()
                if waiting >= max_queued:
                    raise QueueFull(waiting)
            db.execute("DELETE FROM snapshots WHERE hash = ?", (job_hash,))
            db.execute("INSERT INTO jobs (hash, query, status, created, started, pid) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO UPDATE SET "
                       "query = excluded.query, status = excluded.status, "
                       "created = excluded.created, started = excluded.started, "
                       "pid = excluded.pid, finished = NULL, error = NULL, bounds = NULL, "
                       "result = NULL, owner = NULL, lease = NULL",
                       (job_hash, query, status, now, started, running_in))
        return True

    @_guarded
    def mark_running(self, job_hash: str, pid: int) -> None:
        self._db.execute("UPDATE jobs SET status = 'running', started = COALESCE(started, ?), "
                         "pid = ? WHERE hash = ? AND status IN ('queued', 'running')",
                         (time.time(), pid, job_hash))

    @_guarded
    def set_bounds(self, job_hash: str, bounds: dict[str, Any]) -> None:
        self._db.execute("UPDATE jobs SET bounds = ? WHERE hash = ?",
                         (json.dumps(bounds), job_hash))

    @_guarded
    def finish(self, job_hash: str, status: str, *, result: dict | None = None,
               error: str | None = None) -> bool:
        """Record a final status; never overwrite a final status already written. Returns
        whether this call wrote it."""
        assert status in FINAL
        cursor = self._db.execute(
            "UPDATE jobs SET status = ?, finished = ?, result = ?, error = ? "
            "WHERE hash = ? AND status IN ('queued', 'running')",
            (status, time.time(), json.dumps(result) if result is not None else None, error,
             job_hash))
        return cursor.rowcount > 0

    def finish_result(self, job_hash: str, result: dict[str, Any]) -> bool:
        """A run that completed: done, or failed for its `failure` (its numbers are kept)."""
        failure = result.get("failure")
        return self.finish(job_hash, JobStatus.FAILED if failure else JobStatus.DONE,
                           result=result,
                           error=failure)

    @_guarded
    def jobs_with_status(self, *statuses: str) -> list[JobRecord]:
        marks = ",".join("?" * len(statuses))
        rows = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status IN ({marks}) "
                                "ORDER BY created", statuses).fetchall()
        return [_job(row) for row in rows]

    @_guarded
    def count_with_status(self, *statuses: str) -> int:
        marks = ",".join("?" * len(statuses))
        return self._db.execute(f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})",
                                statuses).fetchone()[0]

    @_guarded
    def mark_interrupted(self) -> int:
        """After a server restart: queued jobs, and running ones whose process is gone, will
        never finish; nor will the sweeps it was running. A point of a CLI sweep whose driver
        is still alive is left running. A shared store (replicas) marks nothing: another
        replica may be running those jobs, and a job whose replica died is claimed again when
        its lease expires (:meth:`claim`)."""
        if self.shared:
            return 0
        rows = self._db.execute("SELECT hash, status, pid FROM jobs "
                                "WHERE status IN ('queued', 'running')").fetchall()
        dead = [(h,) for h, status, pid in rows if status == JobStatus.QUEUED or not pid_alive(pid)]
        now = time.time()
        with self._transaction() as db:
            db.executemany(
                "UPDATE jobs SET status = 'interrupted', finished = ?, "
                "error = 'the server stopped before this job finished; run it again' "
                "WHERE hash = ? AND status IN ('queued', 'running')",
                [(now, h) for (h,) in dead])
            db.execute("UPDATE sweeps SET status = 'interrupted', updated = ?, error = "
                       "'the server stopped during this sweep; press Resume to compute the "
                       "rest' WHERE status = 'running' AND pid IS NULL", (now,))
        return len(dead)

    # -- snapshots ----------------------------------------------------------------------------
    @_guarded
    def append_snapshots(self, job_hash: str, snapshots: Iterable[Snapshot]) -> None:
        snapshots = list(snapshots)
        if not snapshots:
            return
        with self._transaction() as db:
            (start,) = db.execute(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM snapshots WHERE hash = ?",
                (job_hash,)).fetchone()
            db.executemany(
                "INSERT INTO snapshots (hash, seq, body, restart, done) VALUES (?, ?, ?, ?, ?)",
                [(job_hash, start + i, json.dumps(asdict(s)), s.restart, int(s.done))
                 for i, s in enumerate(snapshots)])

    @_guarded
    def snapshots(self, job_hash: str, after: int = -1) -> list[tuple[int, Snapshot]]:
        """Snapshots with seq > after, in order (pass the last seq seen to read only news)."""
        rows = self._db.execute(
            "SELECT seq, body FROM snapshots WHERE hash = ? AND seq > ? ORDER BY seq",
            (job_hash, after)).fetchall()
        return [(seq, Snapshot(**json.loads(body))) for seq, body in rows]

    @_guarded
    def snapshot(self, job_hash: str, seq: int) -> Snapshot | None:
        row = self._db.execute("SELECT body FROM snapshots WHERE hash = ? AND seq = ?",
                               (job_hash, seq)).fetchone()
        return None if row is None else Snapshot(**json.loads(row[0]))

    @_guarded
    def thin_snapshots(self, job_hash: str, keep: int = KEEP_SNAPSHOTS) -> int:
        """Keep at most `keep` snapshots of a job: the first and last of each restart, then
        evenly spaced ones (a curve looks the same). Returns how many were deleted."""
        rows = self._db.execute("SELECT seq, restart, done FROM snapshots WHERE hash = ? "
                                "ORDER BY seq", (job_hash,)).fetchall()
        if len(rows) <= keep:
            return 0
        ends = set()
        for i, (seq, restart, done) in enumerate(rows):
            before = rows[i - 1][1] if i else None
            after = rows[i + 1][1] if i + 1 < len(rows) else None
            if done or restart is None or i in (0, len(rows) - 1) or restart != before \
                    or restart != after:
                ends.add(seq)
        others = [seq for seq, _, _ in rows if seq not in ends]
        room = max(keep - len(ends), 0)
        kept = set(others[i] for i in np.linspace(0, len(others) - 1, room).round()
                   .astype(int)) if room and others else set()
        doomed = [(job_hash, seq) for seq in others if seq not in kept]
        with self._transaction() as db:
            db.executemany("DELETE FROM snapshots WHERE hash = ? AND seq = ?", doomed)
        return len(doomed)

    # -- retention ----------------------------------------------------------------------------
    @_guarded
    def size_bytes(self) -> int:
        """Bytes in use in the database file (its free pages excluded)."""
        db = self._db
        if self.shared:
            return db.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * db.execute("PRAGMA page_size").fetchone()[0]

    @_guarded
    def make_room(self, fraction: float = 0.1) -> int:
        """Delete the snapshots of the oldest `fraction` of finished jobs that have any (the
        space is reused by new rows at once, even on a full disk). Returns the jobs thinned."""
        db = self._db
        rows = db.execute("SELECT s.hash FROM snapshots s JOIN jobs j ON j.hash = s.hash "
                          "WHERE j.status NOT IN ('queued', 'running') GROUP BY s.hash "
                          "ORDER BY MAX(j.finished)").fetchall()
        doomed = rows[:max(1, int(len(rows) * fraction))] if rows else []
        with self._transaction() as tx:
            tx.executemany("DELETE FROM snapshots WHERE hash = ?", doomed)
        return len(doomed)

    @_guarded
    def enforce_size(self, max_bytes: int) -> list[str]:
        """Bring the store under max_bytes (to 80% of it): snapshots of the oldest finished
        jobs first, then uploads not used for the longest time, then old warm starts; results
        stay. Returns what was done, one line each (for the server's log)."""
        done: list[str] = []
        target = int(0.8 * max_bytes)
        if self.size_bytes() <= max_bytes:
            return done
        while self.size_bytes() > target and self.make_room():
            pass
        if self.size_bytes() > target:
            db = self._db
            for (digest,) in db.execute("SELECT digest FROM datasets ORDER BY "
                                        "COALESCE(used, created)").fetchall():
                if self.size_bytes() <= target:
                    break
                db.execute("DELETE FROM datasets WHERE digest = ?", (digest,))
                done.append(f"deleted the upload {digest}")
            db.execute("DELETE FROM warm_starts WHERE updated < ?", (time.time() - 86400,))
        done.insert(0, f"store above {max_bytes / 2**20:.0f} MB: snapshots of old jobs deleted")
        if not self.shared:
            self._db.execute("PRAGMA incremental_vacuum")
        return done

    # -- uploaded data ------------------------------------------------------------------------
    @_guarded
    def save_dataset(self, dataset: Dataset) -> str:
        """Keep an upload by its digest. Its file name is not stored: the same numbers may be
        uploaded by several visitors, and one visitor's file name is not another's business
        (the page shows each session the name it uploaded)."""
        buffer = io.BytesIO()
        np.savez(buffer, X=dataset.X, Y=dataset.Y)
        now = time.time()
        self._db.execute("INSERT INTO datasets (digest, name, arrays, created, used) "
                         "VALUES (?, '', ?, ?, ?) ON CONFLICT(digest) DO UPDATE SET used = ?",
                         (dataset.digest, buffer.getvalue(), now, now, now))
        return dataset.digest

    @_guarded
    def load_dataset(self, digest: str) -> Dataset | None:
        row = self._db.execute("SELECT arrays FROM datasets WHERE digest = ?",
                               (digest,)).fetchone()
        if row is None:
            return None
        with np.load(io.BytesIO(row[0]), allow_pickle=False) as arrays:
            return validate_arrays(arrays["X"], arrays["Y"], uploaded_name(digest))

    @_guarded
    def has_dataset(self, digest: str) -> bool:
        return self._db.execute("SELECT 1 FROM datasets WHERE digest = ?",
                                (digest,)).fetchone() is not None

    # -- sweeps (the points themselves are jobs, keyed by their experiments' hashes) ----------
    @_guarded
    def sweep_started(self, key: str, spec: dict, *, owner: str | None = None,
                      pid: int | None = None) -> None:
        """A sweep runs: started by a page session (owner: its watcher id; the server runs
        the points) or by a CLI driver (pid: that process runs them)."""
        now = time.time()
        self._db.execute("INSERT INTO sweeps (key, spec, pid, status, updated, owner, error, "
                         "started) VALUES (?, ?, ?, 'running', ?, ?, NULL, ?) "
                         "ON CONFLICT (key) DO UPDATE SET spec = excluded.spec, "
                         "pid = excluded.pid, status = excluded.status, "
                         "updated = excluded.updated, owner = excluded.owner, error = NULL, "
                         "started = excluded.started",
                         (key, json.dumps(spec), pid, now, owner, now))

    @_guarded
    def sweep_ended(self, key: str, status: SweepStatus, error: str | None = None) -> None:
        """A sweep stops running: finished, stopped (its owner's Stop), paused (nobody
        watched it) or failed (e.g. the cluster could not be reached)."""
        self._db.execute("UPDATE sweeps SET status = ?, error = ?, pid = NULL, updated = ? "
                         "WHERE key = ?", (status, error, time.time(), key))

    def sweep_finished(self, key: str) -> None:
        self.sweep_ended(key, SweepStatus.FINISHED)

    @_guarded
    def sweep(self, key: str) -> SweepRecord | None:
        row = self._db.execute("SELECT key, spec, status, owner, error, started, updated, pid "
                               "FROM sweeps WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        status = row[2]
        if status == SweepStatus.RUNNING and row[7] is not None and not pid_alive(row[7]):
            status = SweepStatus.INTERRUPTED  # its CLI driver died
        return SweepRecord(row[0], json.loads(row[1]), status, row[3], row[4], row[5], row[6])

    @_guarded
    def sweep_status(self, key: str) -> tuple[str, int | None] | None:
        """(status, pid) of a CLI sweep's driver, or None if it never ran."""
        row = self._db.execute("SELECT status, pid FROM sweeps WHERE key = ?", (key,)).fetchone()
        return None if row is None else (row[0], row[1])

    # -- warm starts of the two-layer ReLU solver -----------------------------------------------
    @_guarded
    def save_warm_start(self, digest: str, columns: list) -> None:
        """The active columns of the latest solve on the data named `digest` (replaced)."""
        self._db.execute("INSERT INTO warm_starts (digest, columns, updated) VALUES (?, ?, ?) "
                         "ON CONFLICT (digest) DO UPDATE SET columns = excluded.columns, "
                         "updated = excluded.updated",
                         (digest, json.dumps(columns), time.time()))

    @_guarded
    def warm_start(self, digest: str) -> list | None:
        row = self._db.execute("SELECT columns FROM warm_starts WHERE digest = ?",
                               (digest,)).fetchone()
        return None if row is None else json.loads(row[0])

    # -- replicas: claiming jobs, leases, who watches what -------------------------------------
    @_guarded
    def claim(self, owner: str, count: int, lease: float,
              watched_within: float | None = None) -> list[JobRecord]:
        """Up to `count` jobs for `owner` to run, claimed atomically (two replicas never claim
        one job): queued ones, oldest first, and running ones whose lease expired (their
        replica died: what they stored is dropped and they start afresh; `created` moves, so
        live streams start again). With `watched_within`, only jobs some session watched in
        the last so many seconds (:meth:`watch`): nobody computes what nobody looks at."""
        if count <= 0:
            return []
        now = time.time()
        watched = ""
        params: list[Any] = [now, owner]
        if watched_within is not None:
            watched = (" AND EXISTS (SELECT 1 FROM watches w WHERE w.hash = jobs.hash "
                       "AND w.seen > ?)")
            params.append(now - watched_within)
        params.append(count)
        skip = " FOR UPDATE SKIP LOCKED" if self.shared else ""
        claimed = []
        with self._transaction(lock=False) as db:
            rows = db.execute(
                "SELECT hash, status FROM jobs WHERE (status = 'queued' OR (status = 'running' "
                "AND lease IS NOT NULL AND lease < ? AND owner <> ?))" + watched +
                " ORDER BY created LIMIT ?" + skip, params).fetchall()
            for job_hash, status in rows:
                if status == JobStatus.RUNNING:
                    db.execute("DELETE FROM snapshots WHERE hash = ?", (job_hash,))
                db.execute("UPDATE jobs SET status = 'running', owner = ?, lease = ?, "
                           "started = ?, pid = NULL, bounds = CASE WHEN status = 'running' "
                           "THEN NULL ELSE bounds END, created = CASE WHEN status = "
                           "'running' THEN ? ELSE created END WHERE hash = ?",
                           (owner, now + lease, now, now, job_hash))
                claimed.append(job_hash)
        return [self.job(h) for h in claimed]

    @_guarded
    def lease_of(self, job_hash: str) -> tuple[str | None, float | None]:
        """(owner, lease expiry) of a job: (None, None) unless a job manager claimed it."""
        row = self._db.execute("SELECT owner, lease FROM jobs WHERE hash = ?",
                               (job_hash,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    @_guarded
    def claim_job(self, job_hash: str, owner: str, lease: float) -> bool:
        """Claim one queued job for `owner` (a sweep's point); False if another took it."""
        now = time.time()
        cursor = self._db.execute("UPDATE jobs SET status = 'running', owner = ?, lease = ?, "
                                  "started = ? WHERE hash = ? AND status = 'queued'",
                                  (owner, now + lease, now, job_hash))
        return cursor.rowcount > 0

    @_guarded
    def renew(self, owner: str, hashes: Iterable[str], lease: float) -> set[str]:
        """Extend `owner`'s leases on these running jobs; returns those it still holds (a job
        taken from it, run again or ended elsewhere is not among them)."""
        hashes = list(dict.fromkeys(hashes))
        if not hashes:
            return set()
        now = time.time()
        marks = ",".join("?" * len(hashes))
        with self._transaction(lock=False) as db:
            db.execute(f"UPDATE jobs SET lease = ? WHERE owner = ? AND status = 'running' "
                       f"AND hash IN ({marks})", (now + lease, owner, *hashes))
            rows = db.execute(f"SELECT hash FROM jobs WHERE owner = ? AND status = 'running' "
                              f"AND hash IN ({marks})", (owner, *hashes)).fetchall()
        return {row[0] for row in rows}

    @_guarded
    def watch(self, replica: str, hashes: Iterable[str]) -> None:
        """Sessions of `replica` watch these jobs now (refreshed while they do)."""
        now = time.time()
        rows = [(h, replica, now) for h in dict.fromkeys(hashes)]
        if rows:
            self._db.executemany("INSERT INTO watches (hash, replica, seen) VALUES (?, ?, ?) "
                                 "ON CONFLICT (hash, replica) DO UPDATE SET seen = excluded.seen",
                                 rows)

    @_guarded
    def unwatch(self, replica: str, hashes: Iterable[str] | None = None) -> None:
        """No session of `replica` watches these jobs (all of them, with None) any more."""
        if hashes is None:
            self._db.execute("DELETE FROM watches WHERE replica = ?", (replica,))
            return
        rows = [(h, replica) for h in dict.fromkeys(hashes)]
        if rows:
            self._db.executemany("DELETE FROM watches WHERE hash = ? AND replica = ?", rows)

    @_guarded
    def watched_elsewhere(self, job_hash: str, replica: str, within: float) -> bool:
        """A session of another replica watched this job in the last `within` seconds."""
        return self._db.execute("SELECT 1 FROM watches WHERE hash = ? AND replica <> ? AND "
                                "seen > ?", (job_hash, replica, time.time() - within)
                                ).fetchone() is not None

    @_guarded
    def forget_watches(self, older_than: float) -> None:
        self._db.execute("DELETE FROM watches WHERE seen < ?", (time.time() - older_than,))
        self._db.execute("DELETE FROM room_followers WHERE seen < ?",
                         (time.time() - older_than,))
        self._db.execute("DELETE FROM rooms WHERE alive < ?", (time.time() - older_than,))

    # -- rooms: a presenter's current view, followed by others ---------------------------------
    @_guarded
    def open_room(self, name: str, key: str, page: str, query: str, alive_for: float,
                  max_rooms: int, panel: str | None = None,
                  panel_version: str | None = None) -> str | None:
        """Open (or take again, with the same key) the room `name` showing page?query; None,
        or why not: another presenter holds it, or max_rooms rooms are open."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT key, alive FROM rooms WHERE name = ?", (name,)).fetchone()
            if row is not None and row[1] >= now and row[0] != key:
                return "another presenter holds this room: choose another name"
            if row is None or row[1] < now:
                (count,) = db.execute("SELECT COUNT(*) FROM rooms WHERE alive >= ? AND "
                                      "name <> ?", (now, name)).fetchone()
                if count >= max_rooms:
                    return (f"{count} rooms are open on this server (the cap is {max_rooms}, "
                            "$DUALVIZ_MAX_ROOMS): try again when one has closed")
            panel, panel_version = _bounded_panel(panel, panel_version)
            db.execute("INSERT INTO rooms (name, key, page, query, seq, alive, created, panel, "
                       "panel_version) VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?) ON CONFLICT (name) DO "
                       "UPDATE SET key = excluded.key, page = excluded.page, query = "
                       "excluded.query, seq = rooms.seq + 1, alive = excluded.alive, panel = "
                       "excluded.panel, panel_version = excluded.panel_version",
                       (name, key, page, query, now + alive_for, now, panel, panel_version))
        return None

    @_guarded
    def publish(self, name: str, key: str, page: str, query: str, panel: str | None = None,
                panel_version: str | None = None) -> bool:
        """The presenter of `name` now shows page?query (a new view: seq grows) and, for its
        followers to draw, the live panel `panel` (JSON) at `panel_version`, or none. False
        if nothing changed (nothing is written) or the room is not this presenter's."""
        panel, panel_version = _bounded_panel(panel, panel_version)
        cursor = self._db.execute(
            "UPDATE rooms SET seq = seq + CASE WHEN page <> ? OR query <> ? THEN 1 ELSE 0 END, "
            "page = ?, query = ?, panel = ?, panel_version = ? WHERE name = ? AND key = ? AND "
            "(page <> ? OR query <> ? OR COALESCE(panel_version, '') <> ?)",
            (page, query, page, query, panel, panel_version, name, key, page, query,
             panel_version or ""))
        return cursor.rowcount > 0

    @_guarded
    def room_panel(self, name: str) -> str | None:
        """The live panel the presenter of `name` shares (JSON), if any."""
        row = self._db.execute("SELECT panel FROM rooms WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    @_guarded
    def renew_room(self, name: str, key: str, alive_for: float) -> bool:
        """The presenter is still connected; False if the room is not theirs (any more)."""
        cursor = self._db.execute("UPDATE rooms SET alive = ? WHERE name = ? AND key = ?",
                                  (time.time() + alive_for, name, key))
        return cursor.rowcount > 0

    @_guarded
    def close_room(self, name: str, key: str) -> None:
        self._db.execute("DELETE FROM rooms WHERE name = ? AND key = ?", (name, key))

    @_guarded
    def rooms(self, names: Iterable[str]) -> dict[str, RoomRecord]:
        """The open rooms among `names` (a room whose presenter went away is not)."""
        names = list(dict.fromkeys(names))
        if not names:
            return {}
        rows = self._db.execute(
            f"SELECT name, page, query, seq, alive, panel_version FROM rooms WHERE alive >= ? "
            f"AND name IN "
            f"({','.join('?' * len(names))})", (time.time(), *names)).fetchall()
        return {row[0]: RoomRecord(*row) for row in rows}

    def room(self, name: str) -> RoomRecord | None:
        return self.rooms([name]).get(name)

    @_guarded
    def set_followers(self, replica: str, counts: dict[str, int]) -> None:
        """How many followers each room has on `replica` (refreshed while they follow)."""
        now = time.time()
        rows = [(room, replica, count, now) for room, count in counts.items()]
        if rows:
            self._db.executemany("INSERT INTO room_followers (room, replica, followers, seen) "
                                 "VALUES (?, ?, ?, ?) ON CONFLICT (room, replica) DO UPDATE "
                                 "SET followers = excluded.followers, seen = excluded.seen",
                                 rows)

    @_guarded
    def followers(self, room: str, within: float) -> int:
        """Followers of `room` on every replica that reported in the last `within` seconds."""
        (count,) = self._db.execute("SELECT COALESCE(SUM(followers), 0) FROM room_followers "
                                    "WHERE room = ? AND seen > ?",
                                    (room, time.time() - within)).fetchone()
        return int(count)

    # -- helpers ------------------------------------------------------------------------------
    @property
    def _for_update(self) -> str:
        return " FOR UPDATE" if self.shared else ""

    def _transaction(self, lock: bool = True):
        """A write transaction: SQLite's BEGIN IMMEDIATE; on PostgreSQL a transaction on one
        pooled connection holding the store's advisory lock (unless `lock` is False: then
        the statements lock the rows they need themselves)."""
        if self._pg is not None:
            return self._pg.transaction(lock)
        return _Transaction(self._db)


class _NoLock:
    def close(self) -> None:
        pass


class _Rows:
    """A statement's result read at once (its connection goes back to the pool)."""

    def __init__(self, rows: list, rowcount: int):
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self):
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list:
        return list(self._rows)

    def __iter__(self):
        return iter(self._rows)


def _pg_sql(sql: str) -> str:
    return sql.replace("?", "%s")  # no statement here has a literal ? or %


class _PgSession:
    """One PostgreSQL connection, spoken to like the sqlite3 connections above."""

    def __init__(self, conn):
        self.conn = conn

    def execute(self, sql: str, params=()) -> _Rows:
        cursor = self.conn.execute(_pg_sql(sql), tuple(params) or None)
        rows = cursor.fetchall() if cursor.description else []
        return _Rows(rows, cursor.rowcount)

    def executemany(self, sql: str, rows) -> _Rows:
        with self.conn.cursor() as cursor:
            cursor.executemany(_pg_sql(sql), list(rows))
            return _Rows([], cursor.rowcount)


class _PgPool:
    """A PostgreSQL store's connections: a small pool; every statement autocommits unless it
    is in a transaction()."""

    def __init__(self, url: str, busy_timeout: float, size: int):
        from psycopg_pool import ConnectionPool

        lock_ms = max(1, int(busy_timeout * 1000))
        self.pool = ConnectionPool(url, min_size=1, max_size=max(1, size), open=False,
                                   timeout=max(10.0, 5 * busy_timeout),
                                   kwargs={"autocommit": True,
                                           "options": f"-c lock_timeout={lock_ms}"})
        self.pool.open(wait=True, timeout=10.0)

    def execute(self, sql: str, params=()) -> _Rows:
        with self.pool.connection() as conn:
            return _PgSession(conn).execute(sql, params)

    def executemany(self, sql: str, rows) -> _Rows:
        with self.pool.connection() as conn:
            return _PgSession(conn).executemany(sql, rows)

    @contextlib.contextmanager
    def transaction(self, lock: bool):
        with self.pool.connection() as conn, conn.transaction():
            if lock:
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))
            yield _PgSession(conn)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.pool.close(timeout=2.0)


def uploaded_name(digest: str) -> str:
    """The name an upload goes by in results and on other visitors' pages."""
    return f"uploaded data {digest}"


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), for autocommit connections."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
            except sqlite3.Error:
                with contextlib.suppress(sqlite3.Error):
                    self.db.execute("ROLLBACK")
                raise
        else:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
        return False
