"""Running experiments off the UI thread: one process per job, a per-server cap, a queue.

Each job runs in its own process, forked from a warm fork server (torch, CVXPY and dualviz
imported and exercised once), so starting one costs tens of milliseconds and cancelling one is
simply ending its process: nothing is left running. Jobs are keyed by the Experiment hash, so
two sessions asking for the same experiment share one job, and a finished result is read from
the store instead of being computed again.

Sessions say which experiments they are looking at (:meth:`JobManager.focus`); a running or
queued job that no session looks at any more is cancelled.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from dataclasses import dataclass
from multiprocessing import forkserver
from pathlib import Path

from .config import Experiment
from .store import ACTIVE, JobRecord, Store
from .worker import execute

DEFAULT_TIME_LIMIT = 600.0  # seconds of wall time per job
TICK = 0.05  # seconds between scheduler passes


def default_max_running() -> int:
    """$DUALVIZ_MAX_JOBS, else the number of cores."""
    return int(os.environ.get("DUALVIZ_MAX_JOBS") or os.cpu_count() or 1)


@dataclass(frozen=True)
class JobView:
    """A job as a page sees it."""

    record: JobRecord
    queue_position: int | None  # 1 = next to start; None unless queued

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def active(self) -> bool:
        return self.record.status in ACTIVE


class JobManager:
    """The per-server scheduler. Thread-safe; create one per server process."""

    def __init__(self, data_dir: Path | str | None = None, max_running: int | None = None,
                 time_limit: float = DEFAULT_TIME_LIMIT):
        self.store = Store(data_dir)
        self.data_dir = str(self.store.data_dir)
        self.max_running = max(1, max_running or default_max_running())
        self.time_limit = time_limit
        self.interrupted_at_start = self.store.mark_interrupted()
        self._lock = threading.RLock()
        self._processes: dict[str, mp.process.BaseProcess] = {}
        self._watchers: dict[str, set[str]] = {}
        self._context = mp.get_context("forkserver")
        self._context.set_forkserver_preload(["dualviz._preload"])
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once the fork server is warm
        self._thread = threading.Thread(target=self._loop, name="dualviz-jobs", daemon=True)
        self._thread.start()

    # -- what sessions call -------------------------------------------------------------------
    def focus(self, watcher: str, experiments: list[Experiment]) -> list[JobView]:
        """`watcher` now looks at exactly these experiments: attach to their jobs (creating them
        if nothing usable is stored), and cancel jobs that nobody looks at any more."""
        wanted = {e.hash for e in experiments}
        with self._lock:
            for job_hash, watchers in list(self._watchers.items()):
                if watcher in watchers and job_hash not in wanted:
                    watchers.discard(watcher)
                    if not watchers:
                        self._cancel(job_hash)
            for exp in experiments:
                self._watchers.setdefault(exp.hash, set()).add(watcher)
                record = self.store.job(exp.hash)
                if record is None or record.status in ("cancelled", "interrupted"):
                    self.store.create_job(exp.hash, exp.to_query())
        return [self.view(e.hash) for e in experiments]

    def release(self, watcher: str) -> None:
        """The session is gone: let go of everything it looked at."""
        self.focus(watcher, [])

    def rerun(self, exp: Experiment) -> None:
        """Compute again (after a failure, say), dropping what is stored for this hash."""
        with self._lock:
            self._cancel(exp.hash)
            self.store.create_job(exp.hash, exp.to_query())

    def view(self, job_hash: str) -> JobView:
        record = self.store.job(job_hash)
        if record is None:
            raise KeyError(job_hash)
        position = None
        if record.status == "queued":
            queued = [j.hash for j in self.store.jobs_with_status("queued")]
            position = queued.index(job_hash) + 1 if job_hash in queued else None
        return JobView(record, position)

    def running(self) -> list[str]:
        with self._lock:
            return [h for h, p in self._processes.items() if p.is_alive()]

    def shutdown(self) -> None:
        """Stop the scheduler and end every job process (tests, server exit)."""
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            for job_hash in list(self._processes):
                self._cancel(job_hash)

    # -- the scheduler ------------------------------------------------------------------------
    def _loop(self) -> None:
        # Boot the fork server first (seconds of imports and a warm-up run), outside the lock, so
        # sessions can queue jobs meanwhile.
        forkserver.ensure_running()
        self.ready.set()
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # keep scheduling whatever one pass met
                print(f"dualviz jobs: scheduler error: {exc!r}", flush=True)
            self._stop.wait(TICK)

    def _tick(self) -> None:
        with self._lock:
            for job_hash, process in list(self._processes.items()):
                if not process.is_alive():
                    process.join()
                    del self._processes[job_hash]
                    self.store.finish(job_hash, "failed",
                                      error=f"the job's process ended unexpectedly "
                                            f"(exit code {process.exitcode})")
                    self._watchers.pop(job_hash, None)
                    continue
                record = self.store.job(job_hash)
                started = record.started if record and record.started else None
                if started and time.time() - started > self.time_limit:
                    self._end_process(job_hash)
                    self.store.finish(job_hash, "failed",
                                      error=f"time limit of {self.time_limit:g} s exceeded")
            free = self.max_running - len(self._processes)
            for record in self.store.jobs_with_status("queued")[:max(free, 0)]:
                self._start(record)

    def _start(self, record: JobRecord) -> None:
        process = self._context.Process(target=execute, name=f"dualviz-job-{record.hash}",
                                        args=(record.hash, record.query, self.data_dir),
                                        daemon=True)
        process.start()
        self._processes[record.hash] = process
        self.store.mark_running(record.hash, process.pid)

    def _end_process(self, job_hash: str) -> None:
        process = self._processes.pop(job_hash, None)
        if process is None:
            return
        process.terminate()
        process.join(timeout=2)
        if process.is_alive():
            process.kill()
            process.join()

    def _cancel(self, job_hash: str) -> None:
        self._end_process(job_hash)
        self.store.finish(job_hash, "cancelled", error="cancelled: no session was watching")
        self._watchers.pop(job_hash, None)
