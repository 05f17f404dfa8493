"""The result store: SQLite in WAL mode, keyed by the Experiment hash.

One row per job (its experiment, status, error and final result as JSON), the training
snapshots as they arrive, and uploaded data sets by digest, so that a link naming an upload
works for anyone on the same server. Every process opens its own connection; WAL lets one
writer and many readers work at once.
"""

from __future__ import annotations

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

from .data import Dataset, validate_arrays
from .primal import Snapshot

DATA_DIR_ENV = "DUALVIZ_DATA_DIR"
ACTIVE = ("queued", "running")
FINAL = ("done", "failed", "cancelled", "interrupted")

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
    PRIMARY KEY (hash, seq)
);
CREATE TABLE IF NOT EXISTS datasets (
    digest TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    arrays BLOB NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sweeps (
    key TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    pid INTEGER,
    status TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS warm_starts (
    digest TEXT PRIMARY KEY,
    columns TEXT NOT NULL,
    updated REAL NOT NULL
);
"""


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
    hash: str
    query: str
    status: str  # queued | running | done | failed | cancelled | interrupted
    created: float
    started: float | None
    finished: float | None
    pid: int | None
    error: str | None
    bounds: dict[str, Any] | None  # closed form and dual, known before training ends
    result: dict[str, Any] | None


def _locked(method):
    # One connection may serve several threads (Streamlit sessions): one statement or
    # transaction at a time.
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


class Store:
    """A handle on the store: one per process, safe to share between its threads."""

    def __init__(self, data_dir: Path | str | None = None):
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / "dualviz.sqlite3"
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- jobs ---------------------------------------------------------------------------------
    @_locked
    def job(self, job_hash: str) -> JobRecord | None:
        row = self._db.execute(
            "SELECT hash, query, status, created, started, finished, pid, error, bounds, result "
            "FROM jobs WHERE hash = ?", (job_hash,)).fetchone()
        if row is None:
            return None
        return JobRecord(*row[:8], *(json.loads(x) if x else None for x in row[8:]))

    @_locked
    def create_job(self, job_hash: str, query: str, *, running_in: int | None = None) -> None:
        """A fresh queued job (replacing a cancelled, failed or interrupted one and its
        snapshots). running_in: the pid of a process already computing it (a sweep's driver):
        the job is created running, so no job manager starts it a second time."""
        now = time.time()
        with self._transaction():
            self._db.execute("DELETE FROM snapshots WHERE hash = ?", (job_hash,))
            if running_in is None:
                self._db.execute(
                    "INSERT OR REPLACE INTO jobs (hash, query, status, created) "
                    "VALUES (?, ?, 'queued', ?)", (job_hash, query, now))
            else:
                self._db.execute(
                    "INSERT OR REPLACE INTO jobs (hash, query, status, created, started, pid) "
                    "VALUES (?, ?, 'running', ?, ?, ?)", (job_hash, query, now, now, running_in))

    @_locked
    def mark_running(self, job_hash: str, pid: int) -> None:
        self._db.execute("UPDATE jobs SET status = 'running', started = ?, pid = ? "
                         "WHERE hash = ? AND status = 'queued'", (time.time(), pid, job_hash))

    @_locked
    def set_bounds(self, job_hash: str, bounds: dict[str, Any]) -> None:
        self._db.execute("UPDATE jobs SET bounds = ? WHERE hash = ?",
                         (json.dumps(bounds), job_hash))

    @_locked
    def finish(self, job_hash: str, status: str, *, result: dict | None = None,
               error: str | None = None) -> None:
        """Record a final status; never overwrite a final status already written."""
        assert status in FINAL
        self._db.execute(
            "UPDATE jobs SET status = ?, finished = ?, result = ?, error = ? "
            "WHERE hash = ? AND status IN ('queued', 'running')",
            (status, time.time(), json.dumps(result) if result is not None else None, error,
             job_hash))

    def finish_result(self, job_hash: str, result: dict[str, Any]) -> None:
        """A run that completed: done, or failed for its `failure` (its numbers are kept)."""
        failure = result.get("failure")
        self.finish(job_hash, "failed" if failure else "done", result=result, error=failure)

    @_locked
    def jobs_with_status(self, *statuses: str) -> list[JobRecord]:
        marks = ",".join("?" * len(statuses))
        rows = self._db.execute(f"SELECT hash FROM jobs WHERE status IN ({marks}) "
                                "ORDER BY created", statuses).fetchall()
        return [j for (h,) in rows if (j := self.job(h)) is not None]

    @_locked
    def mark_interrupted(self) -> int:
        """After a server restart: queued jobs, and running ones whose process is gone, will
        never finish. A point of a sweep whose driver outlived the server is left running."""
        rows = self._db.execute("SELECT hash, status, pid FROM jobs "
                                "WHERE status IN ('queued', 'running')").fetchall()
        dead = [(h,) for h, status, pid in rows if status == "queued" or not pid_alive(pid)]
        self._db.executemany(
            "UPDATE jobs SET status = 'interrupted', finished = ?, "
            "error = 'the server stopped before this job finished; run it again' "
            "WHERE hash = ? AND status IN ('queued', 'running')",
            [(time.time(), h) for (h,) in dead])
        return len(dead)

    # -- snapshots ----------------------------------------------------------------------------
    @_locked
    def append_snapshots(self, job_hash: str, snapshots: Iterable[Snapshot]) -> None:
        snapshots = list(snapshots)
        if not snapshots:
            return
        with self._transaction():
            (start,) = self._db.execute(
                "SELECT COALESCE(MAX(seq) + 1, 0) FROM snapshots WHERE hash = ?",
                (job_hash,)).fetchone()
            self._db.executemany(
                "INSERT INTO snapshots (hash, seq, body) VALUES (?, ?, ?)",
                [(job_hash, start + i, json.dumps(asdict(s))) for i, s in enumerate(snapshots)])

    @_locked
    def snapshots(self, job_hash: str, after: int = -1) -> list[tuple[int, Snapshot]]:
        """Snapshots with seq > after, in order (pass the last seq seen to read only news)."""
        rows = self._db.execute(
            "SELECT seq, body FROM snapshots WHERE hash = ? AND seq > ? ORDER BY seq",
            (job_hash, after)).fetchall()
        return [(seq, Snapshot(**json.loads(body))) for seq, body in rows]

    # -- uploaded data ------------------------------------------------------------------------
    @_locked
    def save_dataset(self, dataset: Dataset) -> str:
        buffer = io.BytesIO()
        np.savez(buffer, X=dataset.X, Y=dataset.Y)
        self._db.execute("INSERT OR IGNORE INTO datasets (digest, name, arrays, created) "
                         "VALUES (?, ?, ?, ?)",
                         (dataset.digest, dataset.name, buffer.getvalue(), time.time()))
        return dataset.digest

    @_locked
    def load_dataset(self, digest: str) -> Dataset | None:
        row = self._db.execute("SELECT name, arrays FROM datasets WHERE digest = ?",
                               (digest,)).fetchone()
        if row is None:
            return None
        with np.load(io.BytesIO(row[1]), allow_pickle=False) as arrays:
            return validate_arrays(arrays["X"], arrays["Y"], row[0])

    # -- sweeps (the points themselves are jobs, keyed by their experiments' hashes) ----------
    @_locked
    def sweep_started(self, key: str, spec: dict, pid: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO sweeps (key, spec, pid, status, updated) "
                         "VALUES (?, ?, ?, 'running', ?)", (key, json.dumps(spec), pid,
                                                            time.time()))

    @_locked
    def sweep_finished(self, key: str) -> None:
        self._db.execute("UPDATE sweeps SET status = 'finished', pid = NULL, updated = ? "
                         "WHERE key = ?", (time.time(), key))

    @_locked
    def sweep_status(self, key: str) -> tuple[str, int | None] | None:
        """(status, pid) of a sweep's driver, or None if it never ran."""
        row = self._db.execute("SELECT status, pid FROM sweeps WHERE key = ?", (key,)).fetchone()
        return None if row is None else (row[0], row[1])

    @_locked
    def running_sweeps(self) -> list[str]:
        """Keys of the sweeps whose driver is alive."""
        rows = self._db.execute("SELECT key, pid FROM sweeps WHERE status = 'running'")
        return [key for key, pid in rows.fetchall() if pid_alive(pid)]

    @_locked
    def sweep_started_at(self, key: str) -> float | None:
        row = self._db.execute("SELECT updated FROM sweeps WHERE key = ? AND status = 'running'",
                               (key,)).fetchone()
        return None if row is None else row[0]

    # -- warm starts of the two-layer ReLU solver -----------------------------------------------
    @_locked
    def save_warm_start(self, digest: str, columns: list) -> None:
        """The active columns of the latest solve on the data named `digest` (replaced)."""
        self._db.execute("INSERT OR REPLACE INTO warm_starts (digest, columns, updated) "
                         "VALUES (?, ?, ?)", (digest, json.dumps(columns), time.time()))

    @_locked
    def warm_start(self, digest: str) -> list | None:
        row = self._db.execute("SELECT columns FROM warm_starts WHERE digest = ?",
                               (digest,)).fetchone()
        return None if row is None else json.loads(row[0])

    # -- helpers ------------------------------------------------------------------------------
    def _transaction(self):
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error), for autocommit connections."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb):
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
