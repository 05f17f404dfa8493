"""Running experiments off the UI thread: one process per job, a per-server cap, a queue.

Each job runs in its own process, forked by the launcher (dualviz/launcher.py: a clean
interpreter with torch, CVXPY and dualviz imported and exercised once), so starting one costs
milliseconds and cancelling one is simply ending its process: nothing is left running. Jobs
are keyed by the Experiment hash, so two sessions asking for the same experiment share one job,
and a finished result is read from the store instead of being computed again.

Sessions say which experiments they are looking at (:meth:`JobManager.focus`) and keep saying
so while they poll (:meth:`JobManager.touch`); a running or queued job that no session looks at
any more (the control changed, or every tab watching it went quiet for WATCHER_TIMEOUT) is
cancelled. A reloaded tab attaches to the running job within that time.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Experiment, env_number
from .store import ACTIVE, JobRecord, Store, pid_alive

DEFAULT_TIME_LIMIT = 600.0  # seconds of wall time per job
DEFAULT_MAX_QUEUED = 100  # jobs waiting per server; more sessions are told the server is busy
WATCHER_TIMEOUT = 120.0  # seconds without a poll after which a session counts as gone
TICK = 0.05  # seconds between scheduler passes


def _import_path() -> str:
    """PYTHONPATH for the launcher: this package's parent first, then whatever was set."""
    package_parent = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH")) if p)


def default_max_running() -> int:
    """$DUALVIZ_MAX_JOBS, else the number of cores."""
    return int(env_number("DUALVIZ_MAX_JOBS", os.cpu_count() or 1))


def busy_record(job_hash: str, query: str, waiting: int, cap: int) -> JobRecord:
    """What a session sees for a job the full queue refused: nothing is stored; the page asks
    again until a place frees up."""
    return JobRecord(job_hash, query, "busy", time.time(), None, None, None,
                     f"the server's queue is full ({waiting} runs waiting, the cap is {cap}); "
                     "this run starts as soon as a place frees up", None, None)


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
        """Still to change: queued, running, or refused by a full queue (asked again)."""
        return self.record.status in (*ACTIVE, "busy")


class JobManager:
    """The per-server scheduler. Thread-safe; create one per server process."""

    def __init__(self, data_dir: Path | str | None = None, max_running: int | None = None,
                 time_limit: float | None = None,
                 watcher_timeout: float = WATCHER_TIMEOUT, max_queued: int | None = None):
        self.store = Store(data_dir)
        self.data_dir = str(self.store.data_dir)
        self.max_running = max(1, max_running or default_max_running())
        self.time_limit = time_limit or env_number("DUALVIZ_JOB_TIME_LIMIT", DEFAULT_TIME_LIMIT)
        self.max_queued = max(1, max_queued or int(env_number("DUALVIZ_MAX_QUEUED",
                                                              DEFAULT_MAX_QUEUED)))
        self.watcher_timeout = watcher_timeout
        self.interrupted_at_start = self.store.mark_interrupted()
        self._lock = threading.RLock()
        self._processes: dict[str, int] = {}  # job hash -> pid of its running process
        self._exit_codes: dict[int, int] = {}  # pid -> exit code, reported by the launcher
        self._started: queue.Queue[int] = queue.Queue()
        self._watchers: dict[str, set[str]] = {}
        self._last_seen: dict[str, float] = {}  # watcher -> time of its last focus or touch
        self._stop = threading.Event()
        self.ready = threading.Event()  # set once the launcher is warm
        self._launcher = subprocess.Popen(
            [sys.executable, "-m", "dualviz.launcher"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": _import_path()})
        threading.Thread(target=self._listen, name="dualviz-launcher", daemon=True).start()
        self._thread = threading.Thread(target=self._loop, name="dualviz-jobs", daemon=True)
        self._thread.start()

    # -- what sessions call -------------------------------------------------------------------
    def focus(self, watcher: str, experiments: list[Experiment]) -> list[JobView]:
        """`watcher` now looks at exactly these experiments: attach to their jobs (creating them
        if nothing usable is stored, while the queue has room), and cancel jobs that nobody
        looks at any more."""
        wanted = {e.hash for e in experiments}
        with self._lock:
            if experiments:
                self._last_seen[watcher] = time.monotonic()
            else:
                self._last_seen.pop(watcher, None)
            for job_hash, watchers in list(self._watchers.items()):
                if watcher in watchers and job_hash not in wanted:
                    watchers.discard(watcher)
                    if not watchers:
                        self._cancel(job_hash)
            refused = {}
            for exp in experiments:
                self._watchers.setdefault(exp.hash, set()).add(watcher)
                record = self.store.job(exp.hash)
                if record is None or record.status in ("cancelled", "interrupted") \
                        or self._orphaned(record):
                    waiting = len(self.store.jobs_with_status("queued"))
                    if waiting >= self.max_queued:
                        refused[exp.hash] = JobView(busy_record(exp.hash, exp.to_query(),
                                                                waiting, self.max_queued), None)
                        continue
                    self.store.create_job(exp.hash, exp.to_query())
        return [refused.get(e.hash) or self.view(e.hash) for e in experiments]

    def _orphaned(self, record: JobRecord) -> bool:
        """Running in a process that is gone and not ours (a killed sweep's point)."""
        return (record.status == "running" and record.pid is not None
                and record.hash not in self._processes and not pid_alive(record.pid))

    def touch(self, watcher: str) -> None:
        """The session is still there (called on every poll)."""
        with self._lock:
            if watcher in self._last_seen:
                self._last_seen[watcher] = time.monotonic()

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
        if record.status == "running" and record.hash not in self._processes:
            with self._lock:  # the scheduler may be ending this very process: let it finish
                record = self.store.job(job_hash) or record
                if self._orphaned(record):  # died with an old server, or a killed sweep
                    self.store.finish(job_hash, "interrupted",
                                      error="the process computing this job ended; run it again")
                    record = self.store.job(job_hash) or record
        position = None
        if record.status == "queued":
            queued = [j.hash for j in self.store.jobs_with_status("queued")]
            position = queued.index(job_hash) + 1 if job_hash in queued else None
        return JobView(record, position)

    def running(self) -> list[str]:
        with self._lock:
            return list(self._processes)

    def shutdown(self) -> None:
        """Stop the scheduler, end every job process and the launcher (tests, server exit)."""
        self._stop.set()
        self._thread.join(timeout=5)
        with self._lock:
            for job_hash in list(self._processes):
                self._cancel(job_hash)
        self._launcher.stdin.close()  # the launcher ends its children and exits
        try:
            self._launcher.wait(timeout=10)
        except subprocess.TimeoutExpired:  # still warming up: it has no children yet
            self._launcher.kill()
            self._launcher.wait()

    # -- the scheduler ------------------------------------------------------------------------
    def _listen(self) -> None:
        """Read the launcher's events (see dualviz/launcher.py)."""
        for line in self._launcher.stdout:
            event = json.loads(line)
            if event["event"] == "ready":
                self.ready.set()
            elif event["event"] == "started":
                self._started.put(event["pid"])
            elif event["event"] == "exited":
                self._exit_codes[event["pid"]] = event["code"]

    def _loop(self) -> None:
        # Sessions can queue jobs while the launcher warms up (seconds of imports).
        while not self.ready.wait(0.1):
            if self._stop.is_set() or self._launcher.poll() is not None:
                return
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as exc:  # keep scheduling whatever one pass met
                print(f"dualviz jobs: scheduler error: {exc!r}", flush=True)
            self._stop.wait(TICK)

    def _tick(self) -> None:
        with self._lock:
            now = time.monotonic()
            for watcher in [w for w, seen in self._last_seen.items()
                            if now - seen > self.watcher_timeout]:
                self.release(watcher)
            for job_hash, pid in list(self._processes.items()):
                if pid in self._exit_codes:
                    del self._processes[job_hash]
                    # A job that wrote its own final status keeps it; this catches crashes.
                    self.store.finish(job_hash, "failed",
                                      error=f"the job's process ended unexpectedly "
                                            f"(exit code {self._exit_codes.pop(pid)})")
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
        command = {"op": "start", "hash": record.hash, "query": record.query,
                   "data_dir": self.data_dir}
        self._launcher.stdin.write((json.dumps(command) + "\n").encode())
        self._launcher.stdin.flush()
        pid = self._started.get(timeout=30)
        self._processes[record.hash] = pid
        self.store.mark_running(record.hash, pid)
        # One line per computation in the server's log (the load benchmark counts them).
        print(f"dualviz jobs: started {record.hash} as pid {pid}", flush=True)

    def _end_process(self, job_hash: str) -> None:
        """End a job's process and wait until the launcher has reaped it."""
        pid = self._processes.pop(job_hash, None)
        if pid is None:
            return
        for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while pid not in self._exit_codes and time.monotonic() < deadline:
                time.sleep(0.005)
            if pid in self._exit_codes:
                del self._exit_codes[pid]
                return

    def _cancel(self, job_hash: str) -> None:
        self._end_process(job_hash)
        self.store.finish(job_hash, "cancelled", error="cancelled: no session was watching")
        self._watchers.pop(job_hash, None)
