"""Running experiments off the UI thread: one process per job, per-server caps, a queue, and
the sweeps pages start.

Each job runs in its own process, forked by the launcher (dualviz/launcher.py: a clean
interpreter with torch, CVXPY and dualviz imported and exercised once), so starting one costs
milliseconds and cancelling one is simply ending its process: nothing is left running. A job
runs under the server's limits (wall time, memory: dualviz.limits). Jobs are keyed by the
Experiment hash, so two sessions asking for the same experiment share one job, and a finished
result is read from the store instead of being computed again.

Sessions say which experiments they are looking at (:meth:`JobManager.focus`) and keep saying
so while they poll (:meth:`JobManager.touch`); a running or queued job that no session looks at
any more (the control changed, or every tab watching it went quiet for the operator's
limits.watcher_timeout()) is cancelled. A reloaded tab attaches to the running job within that
time.

Sweeps started from a page are points pulled into job places as they free up, pages' jobs
first: a sweep never takes the last place (limits.sweep_slots), its points obey the same time
and memory limits, and several sweeps take turns. Only the session that started a sweep stops
it; a sweep nobody has watched for as long pauses. With an operator's Dask scheduler
($DUALVIZ_DASK_SCHEDULER) the points run on that cluster instead, under the same time limit.

Nothing here holds the manager's lock while it waits on the store: a store that another process
has locked slows the session that writes, never every session.

Replicas (a PostgreSQL store, several servers): each manager claims queued jobs that some
session watches (Store.claim: atomic, so each experiment is computed once across replicas),
renews the lease of the jobs it runs every LEASE/3 seconds and says which jobs its sessions
watch every WATCH_EVERY seconds. When a replica dies its leases expire and a replica whose
sessions watch those jobs claims and runs them again; finished results are never touched. A job
is cancelled only when no session of any replica watches it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import limits
from ..config import Experiment
from ..results import ACTIVE, COMPLETED, FINAL, RERUNNABLE, JobStatus, SweepStatus
from .store import JobRecord, QueueFull, Store, StoreError, pid_alive
from .sweeps import SCHEDULER_ENV

TICK = 0.05  # seconds between scheduler passes
FEED_EVERY = 0.5  # seconds between looks for the next sweep points
RETENTION_EVERY = 60.0  # seconds between checks of the store's size
LAUNCHER_ATTEMPTS = 3  # starts of the solver process before the manager gives up
LEASE_ENV = "DUALVIZ_JOB_LEASE"
LEASE = 10.0  # seconds a claimed job stays this replica's without renewal
WATCH_EVERY = 1.0  # seconds between reports of what this replica's sessions watch
WATCH_GRACE = 4.0  # a report older than this no longer counts as watching


def lease_seconds() -> float:
    """$DUALVIZ_JOB_LEASE (seconds), else LEASE: how soon a dead replica's jobs move."""
    try:
        value = float(os.environ.get(LEASE_ENV, ""))
    except ValueError:
        return LEASE
    return value if 1.0 <= value <= 3600.0 else LEASE


def busy_record(job_hash: str, query: str, message: str) -> JobRecord:
    """What a session sees for a job it could not get now (a full queue, a busy store):
    nothing is stored; the page asks again until it can."""
    return JobRecord(job_hash, query, JobStatus.BUSY, time.time(), None, None, None, message, None,
                     None)


@dataclass(frozen=True)
class JobView:
    """A job as a page sees it."""

    record: JobRecord
    queue_position: int | None  # 1 = next to start; None unless queued

    @property
    def status(self) -> JobStatus:
        return self.record.status

    @property
    def active(self) -> bool:
        """Still to change: queued, running, or refused for now (asked again)."""
        return self.record.status in (*ACTIVE, JobStatus.BUSY)


@dataclass(frozen=True)
class SweepView:
    """A sweep as a page sees it."""

    status: SweepStatus
    yours: bool  # this session started it (only it can stop it)
    message: str | None  # why it is not running, or who runs it
    total: int
    done: int  # points with a stored result (a solver failure included)
    running: int
    eta_seconds: float | None

    @property
    def is_running(self) -> bool:
        return self.status == SweepStatus.RUNNING


@dataclass
class _Process:
    pid: int
    started: float  # time.time()


@dataclass
class _Sweep:
    key: str
    owner: str
    points: list[tuple[str, str]]  # (hash, query) of each distinct point, in grid order
    seen: float  # time.monotonic() of the last look by a session
    started: float = field(default_factory=time.time)
    last_feed: float = 0.0
    last_start: float = 0.0  # time.monotonic() of its last point started


class JobManager:
    """The per-server scheduler. Thread-safe; create one per server process."""

    def __init__(self, data_dir: Path | str | None = None, max_running: int | None = None,
                 time_limit: float | None = None, watcher_timeout: float | None = None,
                 max_queued: int | None = None, memory_bytes: int | None = None,
                 scheduler: str | None = None):
        self.store = Store(data_dir)
        self._server_lock = self.store.claim_server()
        self.data_dir = str(self.store.data_dir)
        self.max_running = max(1, max_running or limits.max_jobs())
        self.time_limit = time_limit or limits.job_time_limit()
        self.max_queued = max(1, max_queued or limits.max_queued())
        self.memory_bytes = memory_bytes or limits.job_memory_bytes()
        self.watcher_timeout = watcher_timeout or limits.watcher_timeout()
        self.interrupted_at_start = self.store.mark_interrupted()
        self.shared = self.store.shared  # replicas on one database: leases and watches count
        self.replica = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = lease_seconds()
        self._last_watch = 0.0
        self._last_renew = 0.0
        self._lock = threading.RLock()  # in-memory state only; never held on the store
        self._processes: dict[str, _Process] = {}  # job hash -> its running process
        self._exit_codes: dict[int, int] = {}  # pid -> exit code, reported by the launcher
        self._started: queue.Queue[int] = queue.Queue()
        self._watchers: dict[str, set[str]] = {}
        self._last_seen: dict[str, float] = {}  # watcher -> time of its last focus or touch
        self._sweeps: dict[str, _Sweep] = {}  # running sweeps by key
        self._sweep_of: dict[str, str] = {}  # job hash -> key of the sweep that started it
        self._unsaved: dict[str, JobRecord] = {}  # final states the store would not take
        self._stop = threading.Event()
        self._wake = threading.Event()  # a job was queued: schedule now, not at the next tick
        self.ready = threading.Event()  # set once the launcher is warm
        self.launcher_error: str | None = None
        self._launcher: subprocess.Popen | None = None
        self._launcher_starts = 0
        self._last_retention = 0.0
        address = scheduler if scheduler is not None else os.environ.get(SCHEDULER_ENV)
        self.cluster = Cluster(address) if address else None
        self._start_launcher()
        self._thread = threading.Thread(target=self._loop, name="dualviz-jobs", daemon=True)
        self._thread.start()

    # -- what sessions call -------------------------------------------------------------------
    def focus(self, watcher: str, experiments: list[Experiment]) -> list[JobView]:
        """`watcher` now looks at exactly these experiments: attach to their jobs (creating them
        if nothing usable is stored, while the queue has room), and cancel jobs that nobody
        looks at any more. A store that cannot be written now gives a 'busy' view (asked
        again by the page)."""
        wanted = {e.hash for e in experiments}
        with self._lock:
            if experiments:
                self._last_seen[watcher] = time.monotonic()
            else:
                self._last_seen.pop(watcher, None)
            unwatched = []
            for job_hash, watchers in list(self._watchers.items()):
                if watcher in watchers and job_hash not in wanted:
                    watchers.discard(watcher)
                    if not watchers:
                        del self._watchers[job_hash]
                        if not self._needed_by_sweep(job_hash):
                            unwatched.append(job_hash)
            for exp in experiments:
                self._watchers.setdefault(exp.hash, set()).add(watcher)
        if self.shared and unwatched:
            with contextlib.suppress(StoreError):
                self.store.unwatch(self.replica, unwatched)
        for job_hash in unwatched:
            if self.shared and not self._abandoned(job_hash):
                continue  # another replica's sessions watch it, or it runs elsewhere
            self._cancel(job_hash, "cancelled: no session was watching")
        if self.shared and experiments:
            with contextlib.suppress(StoreError):  # claimable at once, not at the next report
                self.store.watch(self.replica, wanted)
        views = []
        for exp in experiments:
            try:
                views.append(self._attach(exp))
            except StoreError as exc:
                views.append(JobView(busy_record(exp.hash, exp.canonical.to_query(),
                                                 str(exc)), None))
        return views

    def _attach(self, exp: Experiment) -> JobView:
        record = self.store.job(exp.hash)
        if record is not None and self._orphaned(record):
            self.store.finish(exp.hash, JobStatus.INTERRUPTED,
                              error="the process computing this job ended; run it again")
            record = self.store.job(exp.hash)
        if record is None or record.status in RERUNNABLE:
            try:  # counted and created in one transaction: racing sessions never overfill
                self.store.create_job(exp.hash, exp.canonical.to_query(),
                                      max_queued=self.max_queued)
            except QueueFull as full:
                return JobView(busy_record(
                    exp.hash, exp.canonical.to_query(),
                    f"the server's queue is full ({full.waiting} runs waiting, the cap is "
                    f"{self.max_queued}); this run starts as soon as a place frees up"), None)
            self._wake.set()
        return self.view(exp.hash)

    def _abandoned(self, job_hash: str) -> bool:
        """(Replicas) a job this replica runs that no session of another replica watches; a
        job running elsewhere is its owner's to cancel."""
        with self._lock:
            if job_hash not in self._processes:
                return False
        try:
            return not self.store.watched_elsewhere(job_hash, self.replica, WATCH_GRACE)
        except StoreError:
            return False

    def _orphaned(self, record: JobRecord) -> bool:
        """Running in a process that is gone and not ours (a killed CLI sweep's point). With
        replicas, a job whose replica died is claimed again when its lease expires."""
        with self._lock:
            ours = record.hash in self._processes
        if not (record.status == JobStatus.RUNNING and record.pid is not None and not ours
                and not pid_alive(record.pid)):
            return False
        # a replica's job (it has a lease) may run on another host: its lease decides
        return not self.shared or self.store.lease_of(record.hash)[1] is None

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
        self._cancel(exp.hash, "cancelled: asked to run again")
        with self._lock:
            self._unsaved.pop(exp.hash, None)
        self.store.create_job(exp.hash, exp.canonical.to_query(), replace=True)
        self._wake.set()

    def view(self, job_hash: str) -> JobView:
        with self._lock:
            unsaved = self._unsaved.get(job_hash)
        if unsaved is not None:
            return JobView(unsaved, None)
        record = self.store.job(job_hash)
        if record is None:
            raise KeyError(job_hash)
        position = None
        if record.status == JobStatus.QUEUED:
            queued = [j.hash for j in self.store.jobs_with_status(JobStatus.QUEUED)]
            position = queued.index(job_hash) + 1 if job_hash in queued else None
        return JobView(record, position)

    def running(self) -> list[str]:
        with self._lock:
            return list(self._processes)

    # -- sweeps -------------------------------------------------------------------------------
    def start_sweep(self, watcher: str, key: str, spec: dict[str, Any],
                    points: Sequence[Experiment]) -> str | None:
        """Start (or resume) the sweep `key` of these points for `watcher`; None, or why not.

        A session runs one sweep at a time: a new one replaces its previous one."""
        distinct = list({e.hash: e for e in points}.values())
        cap = limits.max_sweep_points()
        if len(distinct) > cap:
            return (f"this sweep has {len(distinct)} points; this server runs at most {cap} "
                    "per sweep ($DUALVIZ_MAX_SWEEP_POINTS): choose fewer values or seeds")
        missing = {e.data for e in distinct if not e.uses_synthetic_data}
        missing = {d for d in missing if not self.store.has_dataset(d)}
        if missing:
            return (f"this sweep uses an uploaded data set ({', '.join(sorted(missing))}) that "
                    "this server does not have: upload it on an explorer page first")
        if self.cluster is not None and self.cluster.error:
            return f"the sweep cannot run: {self.cluster.error}"
        with self._lock:
            current = self._sweeps.get(key)
            if current is not None and current.owner != watcher:
                return ("this sweep is already running, started by another visitor: its "
                        "points appear here as they arrive")
            mine = [k for k, s in self._sweeps.items() if s.owner == watcher and k != key]
            others = len(self._sweeps) - len(mine) - (current is not None)
            if others >= limits.max_sweeps():
                return (f"{others} sweeps are running on this server (the cap is "
                        f"{limits.max_sweeps()}, $DUALVIZ_MAX_SWEEPS): try again when one "
                        "has finished; points already stored are shown meanwhile")
            for old in mine:
                del self._sweeps[old]
            self._sweeps[key] = _Sweep(key, watcher, [(e.hash, e.canonical.to_query())
                                                      for e in distinct], time.monotonic())
        for old in mine:
            self.store.sweep_ended(old, SweepStatus.STOPPED,
                                   "replaced by another sweep of the same session")
        self.store.sweep_started(key, spec, owner=watcher)
        return None

    def stop_sweep(self, watcher: str, key: str) -> str | None:
        """Stop a sweep: its points in flight are cancelled, finished ones kept. Only the
        session that started it may; returns why not, or None."""
        with self._lock:
            sweep = self._sweeps.get(key)
            if sweep is None:
                return None
            if sweep.owner != watcher:
                return "only the session that started this sweep can stop it"
            del self._sweeps[key]
            flying = [h for h, k in self._sweep_of.items() if k == key]
        for job_hash in flying:
            self._cancel(job_hash, "cancelled: the sweep was stopped")
        self.store.sweep_ended(key, SweepStatus.STOPPED, "stopped by the session that started "
                               "it; press Resume to compute the rest")
        return None

    def sweep_view(self, watcher: str, key: str, hashes: Sequence[str]) -> SweepView:
        """Where the sweep `key` (its points' hashes) stands, as `watcher` sees it; looking
        keeps a running sweep alive."""
        with self._lock:
            sweep = self._sweeps.get(key)
            if sweep is not None:
                sweep.seen = time.monotonic()
        statuses = self.store.statuses(hashes)
        total = len(set(hashes))
        done = sum(1 for s, _ in statuses.values() if s in COMPLETED)
        running = sum(1 for s, _ in statuses.values() if s == JobStatus.RUNNING)
        if sweep is not None:
            finished = [f for s, f in statuses.values()
                        if s in COMPLETED and f is not None and f >= sweep.started]
            eta = None
            if finished and done < total:
                eta = (max(finished) - sweep.started) / len(finished) * (total - done)
            yours = sweep.owner == watcher
            message = None if yours else "started by another visitor: only they can stop it"
            return SweepView(SweepStatus.RUNNING, yours, message, total, done, running, eta)
        record = self.store.sweep(key)
        if record is None:
            return SweepView(SweepStatus.NEW, False, None, total, done, running, None)
        status = (SweepStatus(record.status) if record.status != SweepStatus.RUNNING
                  else SweepStatus.INTERRUPTED)
        return SweepView(status, record.owner == watcher, record.error, total, done, running,
                         None)

    def _needed_by_sweep(self, job_hash: str) -> bool:
        key = self._sweep_of.get(job_hash)
        return key is not None and key in self._sweeps

    # -- shutting down ------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop the scheduler, end every job process and the launcher (tests, server exit)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        for job_hash in self.running():
            with contextlib.suppress(StoreError):
                self._cancel(job_hash, "cancelled: the server stopped")
        if self.cluster is not None:
            self.cluster.close()
        launcher = self._launcher
        if launcher is not None and launcher.poll() is None:
            launcher.stdin.close()  # the launcher ends its children and exits
            try:
                launcher.wait(timeout=10)
            except subprocess.TimeoutExpired:  # still warming up: it has no children yet
                launcher.kill()
                launcher.wait()
        if self.shared:
            with contextlib.suppress(StoreError):
                self.store.unwatch(self.replica)
        self._server_lock.close()
        self.store.close()

    # -- the launcher -------------------------------------------------------------------------
    def _start_launcher(self) -> None:
        self._launcher_starts += 1
        self.ready.clear()
        self._launcher = subprocess.Popen(
            [sys.executable, "-m", "dualviz.service.launcher"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE)
        threading.Thread(target=self._listen, args=(self._launcher,), name="dualviz-launcher",
                         daemon=True).start()

    def _listen(self, launcher: subprocess.Popen) -> None:
        """Read the launcher's events (see dualviz/launcher.py)."""
        for line in launcher.stdout:
            event = json.loads(line)
            if event["event"] == "ready":
                self.ready.set()
            elif event["event"] == "started":
                self._started.put(event["pid"])
            elif event["event"] == "exited":
                self._exit_codes[event["pid"]] = event["code"]

    def _launcher_alive(self) -> bool:
        """The launcher runs; a dead one is started again (a few times), and a page says so
        when it cannot be."""
        if self._launcher is not None and self._launcher.poll() is None:
            return True
        code = self._launcher.returncode if self._launcher is not None else None
        with self._lock:
            orphans = list(self._processes)
            self._processes.clear()
        for job_hash in orphans:  # its children were ended with it
            self._finish(job_hash, JobStatus.FAILED, "the solver process ended; run it again")
        if self._launcher_starts >= LAUNCHER_ATTEMPTS:
            self.launcher_error = (f"the solver process failed to start (exit code {code}, "
                                   f"{self._launcher_starts} attempts): see the server's log")
            return False
        print(f"dualviz jobs: the solver process ended (exit code {code}); starting it again",
              flush=True)
        self._start_launcher()
        return False

    # -- the scheduler ------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self._launcher_alive() and self.ready.is_set():
                    self._tick()
                elif self.launcher_error:
                    self._stop.wait(1.0)
            except StoreError as exc:  # the store is busy or full: the next pass tries again
                print(f"dualviz jobs: {exc}", flush=True)
                self._stop.wait(1.0)
            except Exception as exc:  # keep scheduling whatever one pass met
                print(f"dualviz jobs: scheduler error: {exc!r}", flush=True)
            self._wake.wait(TICK)
            self._wake.clear()

    def _tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            gone = [w for w, seen in self._last_seen.items()
                    if now - seen > self.watcher_timeout]
            quiet = [s for s in self._sweeps.values() if now - s.seen > self.watcher_timeout]
            for sweep in quiet:
                del self._sweeps[sweep.key]
        for watcher in gone:
            self.release(watcher)
        for sweep in quiet:
            self.store.sweep_ended(sweep.key, SweepStatus.PAUSED, (
                f"paused: no session looked at this sweep for {self.watcher_timeout:g} s; "
                "press Resume to compute the rest"))
        self._reap()
        if self.cluster is not None:
            self._collect_remote()
        self._keep_claims(now)
        free = self.max_running - len(self.running())
        if free > 0:
            for record in self.store.claim(self.replica, free, self.lease,
                                           WATCH_GRACE if self.shared else None):
                if record is not None and record.hash not in self._remote_hashes():
                    self._start(record)
        if now - self._last_retention > RETENTION_EVERY:
            self._last_retention = now
            for line in self.store.enforce_size(limits.store_bytes()):
                print(f"dualviz store: {line}", flush=True)
        self._feed_sweeps(now)

    def _keep_claims(self, now: float) -> None:
        """Renew the leases of the jobs this replica runs (ending those it lost: taken again
        elsewhere, or run again), report what its sessions watch, and (replicas) cancel the
        jobs it runs that no session of any replica watches any more."""
        if now - self._last_renew >= self.lease / 3:
            self._last_renew = now
            mine = [*self.running(), *self._remote_hashes()]
            held = self.store.renew(self.replica, mine, self.lease)
            for job_hash in set(self.running()) - held:
                print(f"dualviz jobs: {job_hash} is no longer this server's; ending its process",
                      flush=True)
                self._end_process(job_hash)
        if not self.shared or now - self._last_watch < WATCH_EVERY:
            return
        self._last_watch = now
        with self._lock:
            watched = set(self._watchers)
            swept = {h for h, k in self._sweep_of.items() if k in self._sweeps}
            unwatched = [h for h in self._processes if h not in watched | swept]
        self.store.watch(self.replica, watched | swept)
        self.store.forget_watches(older_than=600.0)
        for job_hash in unwatched:
            if self._abandoned(job_hash):
                self._cancel(job_hash, "cancelled: no session was watching")

    def _reap(self) -> None:
        """Processes that ended (a job that wrote its own final status keeps it; this catches
        crashes), and processes over their time limit."""
        with self._lock:
            ended = [(h, p) for h, p in self._processes.items() if p.pid in self._exit_codes]
            for job_hash, _ in ended:
                del self._processes[job_hash]
            late = [(h, p) for h, p in self._processes.items()
                    if time.time() - p.started > self.time_limit]
        for job_hash, process in ended:
            code = self._exit_codes.pop(process.pid)
            self._finish(job_hash, JobStatus.FAILED, self._exit_message(code))
            with self._lock:
                self._sweep_of.pop(job_hash, None)
        for job_hash, _ in late:
            self._cancel(job_hash, f"time limit of {self.time_limit:g} s exceeded "
                                   "($DUALVIZ_JOB_TIME_LIMIT)", status=JobStatus.FAILED)

    def _exit_message(self, code: int) -> str:
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
            return (f"the job's process was ended by {name}; with a memory limit of "
                    f"{self.memory_bytes / 2**20:.0f} MB per job ($DUALVIZ_JOB_MEMORY_MB) this "
                    "is most often a native solver that could not allocate memory")
        return f"the job's process ended unexpectedly (exit code {code})"

    def _start(self, record: JobRecord) -> None:
        command = {"op": "start", "hash": record.hash, "query": record.query,
                   "data_dir": self.data_dir, "memory": self.memory_bytes}
        self._launcher.stdin.write((json.dumps(command) + "\n").encode())
        self._launcher.stdin.flush()
        pid = self._started.get(timeout=30)
        with self._lock:
            self._processes[record.hash] = _Process(pid, time.time())
        self.store.mark_running(record.hash, pid)
        # One line per computation in the server's log (the load benchmark counts them).
        print(f"dualviz jobs: started {record.hash} as pid {pid}", flush=True)

    def _end_process(self, job_hash: str) -> None:
        """End a job's process and wait until the launcher has reaped it."""
        with self._lock:
            process = self._processes.pop(job_hash, None)
        if process is None:
            return
        pid = process.pid
        for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + grace
            while pid not in self._exit_codes and time.monotonic() < deadline:
                time.sleep(0.005)
            if pid in self._exit_codes:
                del self._exit_codes[pid]
                return

    def _cancel(self, job_hash: str, why: str, status: JobStatus = JobStatus.CANCELLED) -> None:
        self._end_process(job_hash)
        if self.cluster is not None:
            self.cluster.cancel(job_hash)
        with self._lock:
            self._sweep_of.pop(job_hash, None)
        self._finish(job_hash, status, why)

    def _finish(self, job_hash: str, status: str, error: str) -> None:
        """A final status from the manager; when the store will not take it, the pages are
        shown it anyway (and it is written when the store is back)."""
        try:
            self.store.finish(job_hash, status, error=error)
            with self._lock:
                self._unsaved.pop(job_hash, None)
        except StoreError as exc:
            record = self.store_record_or_none(job_hash)
            if record is not None and record.status in FINAL:
                return
            with self._lock:
                self._unsaved[job_hash] = JobRecord(
                    job_hash, record.query if record else "", status,
                    record.created if record else time.time(), None, time.time(), None,
                    f"{error} ({exc})", None, None)

    def store_record_or_none(self, job_hash: str) -> JobRecord | None:
        with contextlib.suppress(StoreError):
            return self.store.job(job_hash)
        return None

    # -- sweeps: the points, into free places -------------------------------------------------
    def _remote_hashes(self) -> set[str]:
        return set() if self.cluster is None else self.cluster.running()

    def _feed_sweeps(self, now: float) -> None:
        """Start the next points of the running sweeps in the places pages leave free, one
        sweep after another."""
        with self._lock:
            due = [s for s in self._sweeps.values() if now - s.last_feed >= FEED_EVERY]
            for sweep in due:
                sweep.last_feed = now
            in_flight = sum(1 for h in self._sweep_of if h in self._processes)
        if not due:
            return
        if self.cluster is not None:
            places = self.cluster.free_places()
        else:
            places = min(limits.sweep_slots(self.max_running) - in_flight,
                         self.max_running - len(self.running()))
        todo: dict[str, list[tuple[str, str]]] = {}
        for sweep in due:
            statuses = self.store.statuses(h for h, _ in sweep.points)
            state = [statuses.get(h, ("", None))[0] for h, _ in sweep.points]
            todo[sweep.key] = [p for p, s in zip(sweep.points, state, strict=True)
                               if s not in COMPLETED | ACTIVE]
            if not todo[sweep.key] and not any(s in ACTIVE for s in state):
                with self._lock:
                    self._sweeps.pop(sweep.key, None)
                self.store.sweep_finished(sweep.key)
        # Taking turns: one point per sweep per round, the sweep that waited longest first.
        order = sorted((s for s in due if todo[s.key]), key=lambda s: s.last_start)
        while places > 0 and any(todo[s.key] for s in order):
            for sweep in order:
                if places <= 0 or not todo[sweep.key]:
                    continue
                job_hash, query = todo[sweep.key].pop(0)
                if not self.store.create_job(job_hash, query):
                    continue  # someone else asked for it meanwhile
                if not self.store.claim_job(job_hash, self.replica, self.lease):
                    continue  # another replica's scheduler took it
                with self._lock:
                    self._sweep_of[job_hash] = sweep.key
                sweep.last_start = time.monotonic()
                if self.cluster is not None:
                    self.cluster.submit(self.store, job_hash, query)
                    self.store.mark_running(job_hash, os.getpid())
                else:
                    self._start(self.store.job(job_hash))
                places -= 1

    def _collect_remote(self) -> None:
        for job_hash, result, error in self.cluster.collect(self.time_limit):
            if result is not None:
                self.store.finish_result(job_hash, result)
            else:
                self._finish(job_hash, JobStatus.FAILED, error)
            with self._lock:
                self._sweep_of.pop(job_hash, None)


class Cluster:
    """Sweep points on the operator's Dask cluster: one client, connected in the background
    (a scheduler that does not answer must not stall the scheduler), futures tracked with
    their start times so the time limit applies to them too.

    Results are unpickled from the cluster: only an operator's scheduler is ever used (never
    an address a visitor typed); see the README for Dask's TLS and authentication."""

    def __init__(self, address: str):
        from .sweeps import check_scheduler

        self.address = check_scheduler(address)
        self.error: str | None = None
        self._lock = threading.Lock()
        self._executor = None
        self._client = None
        self._capacity = 0
        self._futures: dict[str, tuple[Any, float]] = {}
        self._connected = threading.Event()
        threading.Thread(target=self._connect, name="dualviz-dask", daemon=True).start()

    def _connect(self) -> None:
        from .sweeps import dask_executor

        try:
            self._executor, self._client = dask_executor(self.address)
            self._capacity = max(1, sum(self._client.nthreads().values()))
        except Exception as exc:  # the page says why sweeps cannot run
            self.error = (f"cannot reach the Dask scheduler {self.address}: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        self._connected.set()

    def free_places(self) -> int:
        if not self._connected.is_set() or self.error:
            return 0
        with self._lock:
            return self._capacity - len(self._futures)

    def running(self) -> set[str]:
        with self._lock:
            return set(self._futures)

    def submit(self, store: Store, job_hash: str, query: str) -> None:
        from .sweeps import solve_point

        exp, _ = Experiment.from_query(query)
        uploaded = None if exp.uses_synthetic_data else store.load_dataset(exp.data)
        future = self._executor.submit(solve_point, query, uploaded)
        with self._lock:
            self._futures[job_hash] = (future, time.time())

    def cancel(self, job_hash: str) -> None:
        with self._lock:
            entry = self._futures.pop(job_hash, None)
        if entry is not None:
            entry[0].cancel()

    def collect(self, time_limit: float) -> list[tuple[str, dict | None, str | None]]:
        """(hash, result or None, error) of every point that finished, failed or ran out of
        time since the last call."""
        out = []
        with self._lock:
            for job_hash, (future, started) in list(self._futures.items()):
                if future.done():
                    del self._futures[job_hash]
                    try:
                        result = future.result()
                    except Exception as exc:
                        out.append((job_hash, None, f"on the cluster: {type(exc).__name__}: "
                                                    f"{str(exc)[:300]}"))
                        continue
                    if isinstance(result, dict) and "experiment" in result:
                        out.append((job_hash, result, None))
                    else:
                        out.append((job_hash, None, "the cluster returned no result"))
                elif time.time() - started > time_limit:
                    del self._futures[job_hash]
                    future.cancel()
                    out.append((job_hash, None, f"time limit of {time_limit:g} s exceeded "
                                                "on the cluster ($DUALVIZ_JOB_TIME_LIMIT)"))
        return out

    def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
