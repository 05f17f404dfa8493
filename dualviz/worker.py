"""What runs inside a job's process: one experiment, its snapshots streamed to the store."""

from __future__ import annotations

import os
import time
import traceback

import torch

from .config import Experiment
from .primal import Snapshot
from .runner import run
from .store import Store

FLUSH_EVERY = 0.1  # seconds between snapshot writes: bounds the write rate, not the live rate


def warm_up() -> None:
    """One tiny run, so the first call costs (lazy imports, torch and CVXPY set-up) are paid
    once in the fork server instead of in every job."""
    torch.set_num_threads(1)
    run(Experiment(n=4, d=3, k=2, x_rank=2, target_rank=1, iterations=20, restarts=1))


def execute(job_hash: str, query: str, data_dir: str) -> None:
    """Run the experiment of `query` and store snapshots, then the result or the error."""
    torch.set_num_threads(1)
    store = Store(data_dir)
    store.mark_running(job_hash, os.getpid())
    buffer: list[Snapshot] = []
    last_flush = time.monotonic()

    def on_snapshot(snapshot: Snapshot) -> None:
        nonlocal last_flush
        buffer.append(snapshot)
        if snapshot.done or time.monotonic() - last_flush >= FLUSH_EVERY:
            store.append_snapshots(job_hash, buffer)
            buffer.clear()
            last_flush = time.monotonic()

    try:
        exp, _ = Experiment.from_query(query)
        uploaded = None if exp.uses_synthetic_data else store.load_dataset(exp.data)
        def on_bounds(bounds: dict) -> None:
            store.set_bounds(job_hash, bounds)
            solver = (bounds.get("relu") or {}).get("solver") or {}
            if solver.get("columns"):  # the next solve on this data (a slider moved) starts here
                store.save_warm_start(bounds["relu"]["inputs_digest"], solver["columns"])

        result = run(exp, uploaded, on_snapshot, on_bounds=on_bounds,
                     warm_start=store.warm_start)
        store.append_snapshots(job_hash, buffer)
        store.finish_result(job_hash, result.to_json())
    except Exception as exc:  # a failed job is stored with its message; the pool goes on
        store.append_snapshots(job_hash, buffer)
        message = f"{type(exc).__name__}: {exc}".strip()
        store.finish(job_hash, "failed", error=message.splitlines()[0][:500] + "\n"
                     + traceback.format_exc(limit=3)[-1500:])
    finally:
        store.close()
