"""What runs inside a job's process: one experiment, its snapshots streamed to the store.

A job's process may meet a store that another process has locked or whose disk is full: the
snapshots wait in memory and are written later (thinned if they pile up), and the final result
is retried, making room by deleting old jobs' snapshots, for up to SAVE_PATIENCE seconds before
the job gives up with exit code SAVE_FAILED (its manager then shows why). Finished work is
never dropped while the store may still take it.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
import traceback

import torch

from .. import limits
from ..config import Experiment, fit_network
from ..data import Dataset
from ..results import Bounds, JobStatus, Snapshot
from ..runner import run
from .store import Store, StoreError

FLUSH_EVERY = 0.015  # seconds between snapshot writes (the feeds read every 25 ms: a write
# every 25 ms would alias with a snapshot every 24 ms into one write per 48 ms)
MAX_PENDING_SNAPSHOTS = 2000  # kept in memory while the store refuses writes, then thinned
SAVE_PATIENCE = 120.0  # seconds a finished job keeps trying to save its result
SAVE_FAILED = 75  # exit code of a job that could not save its result (EX_TEMPFAIL)


class MemoryLimitExceeded(Exception):
    """The job needed more memory than the server gives one job."""


def warm_up() -> None:
    """One tiny run, so the first call costs (lazy imports, torch and CVXPY set-up) are paid
    once in the fork server instead of in every job."""
    torch.set_num_threads(1)
    run(Experiment(n=4, d=3, k=2, x_rank=2, target_rank=1, iterations=20, restarts=1))


def limit_memory(extra_bytes: int) -> None:
    """Let this process grow by at most `extra_bytes` of address space beyond what it holds
    now (the warm solver process it was forked from): allocations beyond fail as MemoryError
    instead of taking the server's memory."""
    with open("/proc/self/status") as status:
        size = next(int(line.split()[1]) * 1024 for line in status
                    if line.startswith("VmSize:"))
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = size + extra_bytes
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))


def is_out_of_memory(exc: BaseException) -> bool:
    """A MemoryError, or torch's way of saying the same."""
    return isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc))


def memory_message(memory_bytes: int) -> str:
    return (f"memory limit: this job needed more than the {memory_bytes / 2**20:.0f} MB this "
            "server gives one job ($DUALVIZ_JOB_MEMORY_MB); use a smaller network, fewer "
            "samples or fewer patterns")


def check_footprint(exp: Experiment, dataset: Dataset, memory_bytes: int) -> None:
    """An upload's shape is known only now: refuse a network too big to train on it."""
    values = exp.to_dict()
    notes = fit_network(values, memory_bytes, dataset.n, dataset.d, dataset.k)
    if notes:
        raise MemoryLimitExceeded(f"{notes[0].split('; using')[0]} on this data "
                                  f"(N = {dataset.n}, d = {dataset.d}): lower the width or "
                                  "the branches")


class _Saver:
    """Snapshots and results into the store, patient with a busy or full store."""

    def __init__(self, store: Store, job_hash: str):
        self.store = store
        self.job_hash = job_hash
        self.pending: list[Snapshot] = []

    def snapshots(self, news: list[Snapshot]) -> None:
        self.pending.extend(news)
        try:
            self.store.append_snapshots(self.job_hash, self.pending)
            self.pending = []
        except StoreError:
            if len(self.pending) > MAX_PENDING_SNAPSHOTS:  # keep every other one, and the last
                self.pending = [*self.pending[:-1:2], self.pending[-1]]

    def final(self, write) -> None:
        """Write the pending snapshots, then call write(); retried until SAVE_PATIENCE."""
        deadline = time.monotonic() + SAVE_PATIENCE
        delay = 0.1
        while True:
            try:
                if self.pending:
                    self.store.append_snapshots(self.job_hash, self.pending)
                    self.pending = []
                write()
                return
            except StoreError as exc:
                if time.monotonic() > deadline:
                    raise
                if exc.kind == StoreError.FULL:
                    try:
                        self.store.make_room()
                    except StoreError:
                        self.pending = self.pending[-1:]  # the curve's end matters most
                time.sleep(delay)
                delay = min(2 * delay, 5.0)


def execute(job_hash: str, query: str, data_dir: str,
            memory_bytes: int | None = None) -> None:
    """Run the experiment of `query` and store snapshots, then the result or the error."""
    torch.set_num_threads(1)
    memory_bytes = memory_bytes or limits.job_memory_bytes()
    store = Store(data_dir, busy_timeout=5.0)
    saver = _Saver(store, job_hash)
    buffer: list[Snapshot] = []
    last_flush = -math.inf  # the first snapshot is written at once: the page's first point

    def on_snapshot(snapshot: Snapshot) -> None:
        nonlocal last_flush
        buffer.append(snapshot)
        if snapshot.done or time.monotonic() - last_flush >= FLUSH_EVERY:
            saver.snapshots(buffer)
            buffer.clear()
            last_flush = time.monotonic()

    def on_bounds(bounds: dict) -> None:
        try:
            store.set_bounds(job_hash, bounds)
            relu = Bounds.from_json(bounds).relu or {}
            columns = (relu.get("solver") or {}).get("columns")
            if columns:  # the next solve on this data (a slider moved) starts here
                store.save_warm_start(relu["inputs_digest"], columns)
        except StoreError:
            pass  # the bounds come again with the result

    try:
        saver.final(lambda: store.mark_running(job_hash, os.getpid()))
        exp, _ = Experiment.from_query(query)
        uploaded = None if exp.uses_synthetic_data else store.load_dataset(exp.data)
        if uploaded is not None:
            check_footprint(exp, uploaded, memory_bytes)
        result = run(exp, uploaded, on_snapshot, on_bounds=on_bounds,
                     warm_start=store.warm_start)
        saver.snapshots(buffer)
        buffer.clear()
        saver.final(lambda: store.finish_result(job_hash, result.to_json()))
        saver.final(lambda: store.thin_snapshots(job_hash))
    except StoreError as exc:  # the store would not take the result, even after waiting
        print(f"dualviz job {job_hash}: {exc}", file=sys.stderr, flush=True)
        store.close()
        os._exit(SAVE_FAILED)
    except Exception as exc:  # a failed job is stored with its message; the pool goes on
        saver.pending = [*saver.pending, *buffer]
        if is_out_of_memory(exc):
            message = memory_message(memory_bytes)
        elif isinstance(exc, MemoryLimitExceeded):
            message = str(exc)
        else:
            message = (f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:500] + "\n"
                       + traceback.format_exc(limit=3)[-1500:])
        try:
            saver.final(lambda: store.finish(job_hash, JobStatus.FAILED, error=message))
        except StoreError:
            store.close()
            os._exit(SAVE_FAILED)
    finally:
        store.close()
