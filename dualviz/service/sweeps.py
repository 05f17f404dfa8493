"""Running a sweep's points: the command line's driver (an operator's tool).

:func:`run_sweep` looks each point up in the store first, so a sweep that stopped (closed tab,
killed server, crash) resumes where it was: stored points are never recomputed. The others go
to any ``concurrent.futures.Executor``: a local process pool by default, or a Dask cluster's
``Client.get_executor()`` when DUALVIZ_DASK_SCHEDULER names a scheduler. Workers only need the
package; results come back to this process, which stores each as it completes.

Sweeps started from a page run their points as the server's jobs (dualviz.service.jobs).
Either way a point obeys the job time limit ($DUALVIZ_JOB_TIME_LIMIT), and a local worker
process the job memory limit.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import re
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from .. import limits
from ..config import ConfigError, Experiment
from ..data import Dataset
from ..results import COMPLETED, JobStatus
from ..sweep import Sweep
from .store import Store

SCHEDULER_ENV = "DUALVIZ_DASK_SCHEDULER"


# -- one point, in a worker ---------------------------------------------------------------------

class TimeLimitExceeded(Exception):
    """A sweep point ran longer than the job time limit."""


def solve_point(query: str, uploaded: Dataset | None = None,
                time_limit: float | None = None) -> dict[str, Any]:
    """The result JSON of one experiment: exactly what a single run computes (runner.run).

    time_limit: seconds after which the point is abandoned with TimeLimitExceeded (in a
    process's main thread, as in a local pool; a Dask worker's thread is limited by the
    driver instead)."""
    import torch

    from ..runner import run

    torch.set_num_threads(1)
    exp, notes = Experiment.from_query(query)
    alarm = time_limit is not None and threading.current_thread() is threading.main_thread()
    if alarm:
        def expired(*_):
            raise TimeLimitExceeded(f"time limit of {time_limit:g} s exceeded "
                                    "($DUALVIZ_JOB_TIME_LIMIT)")

        signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        return run(exp, uploaded, notes=notes).to_json()
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)


# -- the driver ---------------------------------------------------------------------------------

@dataclass
class Progress:
    """Where a sweep stands: counts, timing, and the results so far by hash."""

    total: int
    done: int = 0
    reused: int = 0  # found in the store, not recomputed
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    computed_seconds: float = 0.0

    @property
    def eta_seconds(self) -> float | None:
        fresh = self.done - self.reused
        if fresh <= 0:
            return None
        rate = (time.monotonic() - self.started) / fresh
        return rate * (self.total - self.done)


def _prepare_worker(memory_bytes: int | None) -> None:
    """A local pool worker: the solvers imported first, then the job memory limit on top of
    what they hold (as for a server's job)."""
    from .. import runner  # noqa: F401 - torch, CVXPY and the package, before the limit
    from .worker import limit_memory

    if memory_bytes:
        limit_memory(memory_bytes)


def local_executor(workers: int | None = None, memory_bytes: int | None = None) -> Executor:
    """A process pool; forkserver children start clean (no Streamlit, no page script), each
    under the job memory limit (default: $DUALVIZ_JOB_MEMORY_MB)."""
    workers = workers or os.cpu_count() or 1
    context = multiprocessing.get_context("forkserver")
    # The fork server would import __main__ by default: a page script when a Streamlit
    # script runner set it (AppTest does). It imports the solvers instead, once for all.
    context.set_forkserver_preload(["dualviz.runner"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_prepare_worker,
                               initargs=(memory_bytes or limits.job_memory_bytes(),))


def dask_executor(address: str) -> tuple[Executor, Any]:
    """(an Executor on the Dask scheduler at `address`, its Client to close afterwards)."""
    from distributed import Client

    client = Client(address, timeout=10)
    return client.get_executor(pure=False), client


def stored_result(store: Store, exp: Experiment) -> dict[str, Any] | None:
    """The stored result of a completed run (a solver failure keeps its numbers), else None."""
    record = store.job(exp.hash)
    return record.result if record is not None and record.status in COMPLETED else None


def run_sweep(sweep: Sweep, store: Store, executor: Executor,
              uploaded: Dataset | None = None,
              on_result: Callable[[dict[str, Any], Experiment, dict | None, Progress], None]
              | None = None,
              should_stop: Callable[[], bool] | None = None,
              max_pending: int | None = None,
              time_limit: float | None = None) -> list[tuple[dict, Experiment, dict | None]]:
    """Solve every point not already stored, storing each result as it completes.

    Returns (coords, experiment, result JSON or None if its process failed) per point, in grid
    order; a solver failure keeps its result, with `failure` set.
    on_result is called once per point (stored ones first). should_stop is polled between
    completions: pending points are cancelled, finished ones are kept. At most max_pending
    points are in flight (default: all), so a stop does not leave a long queue behind.
    time_limit: a point still not back that long after it was submitted is stored failed and
    its result ignored (the workers' own alarm frees a local worker; see solve_point).
    """
    points = sweep.points()
    progress = Progress(total=len(points))
    results: dict[str, dict | None] = {}
    todo: list[tuple[dict, Experiment]] = []
    seen: set[str] = set()
    for coords, exp in points:
        if exp.hash in seen:
            continue  # clamping made two grid points the same experiment
        seen.add(exp.hash)
        found = stored_result(store, exp)
        if found is not None:
            results[exp.hash] = found
            progress.done += 1
            progress.reused += 1
            if on_result:
                on_result(coords, exp, found, progress)
        else:
            todo.append((coords, exp))
    progress.total = len(seen)
    limit = max_pending or len(todo) or 1
    pending: dict[Future, tuple[dict, Experiment, float]] = {}
    created: list[str] = []  # every job this sweep marked running
    queue = iter(todo)

    def submit_more() -> None:
        for coords, exp in itertools.islice(queue, max(0, limit - len(pending))):
            created.append(exp.hash)
            # running, not queued: a server's job manager would otherwise start it too
            store.create_job(exp.hash, exp.canonical.to_query(), running_in=os.getpid(),
                             replace=True)
            future = executor.submit(solve_point, exp.canonical.to_query(), uploaded,
                                     time_limit)
            pending[future] = (coords, exp, time.monotonic())

    submit_more()
    try:
        while pending:
            if should_stop is not None and should_stop():
                break
            finished, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
            late = [] if time_limit is None else [
                f for f, (_, _, t0) in pending.items()
                if f not in finished and time.monotonic() - t0 > time_limit + 5.0]
            for future in [*finished, *late]:
                coords, exp, _ = pending.pop(future)
                try:
                    if future in late:
                        future.cancel()
                        raise TimeLimitExceeded(f"time limit of {time_limit:g} s exceeded "
                                                "($DUALVIZ_JOB_TIME_LIMIT)")
                    result = future.result()
                except Exception as exc:  # a failed point is stored as failed; the sweep goes on
                    store.finish(exp.hash, JobStatus.FAILED,
                                 error=f"{type(exc).__name__}: {exc}"[:500])
                    result = None
                    progress.failed += 1
                else:
                    store.finish_result(exp.hash, result)
                    progress.failed += bool(result.get("failure"))
                results[exp.hash] = result
                progress.done += 1
                if on_result:
                    on_result(coords, exp, result, progress)
            submit_more()
    finally:
        for future in pending:
            future.cancel()
        # Every job this sweep started, not only the pending ones: a stop (SIGTERM raises
        # SystemExit anywhere) may fall between marking a job running and submitting it, or
        # between taking its result and storing it. finish() keeps final statuses.
        for job_hash in created:
            store.finish(job_hash, JobStatus.CANCELLED, error="the sweep was stopped")
    return [(coords, exp, results.get(exp.hash)) for coords, exp in points
            if exp.hash in results]


_SCHEDULER = re.compile(r"(tcp|tls)://[A-Za-z0-9.\-]{1,253}:[0-9]{1,5}")


def check_scheduler(address: str) -> str:
    """A Dask scheduler address as tcp://host:port (or tls://); anything else is refused."""
    address = address.strip()
    if not _SCHEDULER.fullmatch(address) or not 0 < int(address.rsplit(":", 1)[1]) < 65536:
        raise ConfigError(f"a Dask scheduler address looks like tcp://host:8786; got "
                          f"'{address[:40]}'")
    return address


def executor_for(workers: int | None = None, scheduler: str | None = None):
    """(executor, closer): Dask when a scheduler address is given or set in the environment,
    else a local process pool."""
    address = scheduler or os.environ.get(SCHEDULER_ENV)
    if address:
        executor, client = dask_executor(check_scheduler(address))
        return executor, client.close
    executor = local_executor(workers)
    return executor, lambda: executor.shutdown(cancel_futures=True)
