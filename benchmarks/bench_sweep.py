"""Sweep throughput: points per second with 1 and 2 local workers and on a 2-worker Dask
LocalCluster, for one fixed grid (issue 5).

A plain script, not a test. The grid: a deep linear net, depth 2..5 x target rank 1..2 x both
architectures (16 points, N = 40, d = 10, interpolation by the augmented Lagrangian, 400
iterations, 2 restarts, seeded). Each configuration starts from an empty store (a temporary
directory), so every point is computed; the executor is created before the clock starts (pool
and cluster start-up are printed separately; a worker's first point also pays its imports).

Usage: ``.venv/bin/python benchmarks/bench_sweep.py``
"""

from __future__ import annotations

import os
import platform
import tempfile
import time

from dualviz.config import Experiment
from dualviz.service.store import Store
from dualviz.service.sweeps import local_executor, run_sweep
from dualviz.sweep import Sweep

BASE = Experiment(n=40, d=10, k=6, x_rank=8, iterations=400, restarts=2)
GRID = Sweep(BASE, (("depth", (2, 3, 4, 5)), ("target_rank", (1, 2)),
                    ("arch", ("standard", "parallel"))))


def timed(executor) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as directory:
        store = Store(directory)
        try:
            started = time.perf_counter()
            points = run_sweep(GRID, store, executor)
            seconds = time.perf_counter() - started
        finally:
            store.close()
    assert all(result is not None for *_, result in points)
    return seconds, len(points)


def main() -> None:
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.2f}; grid of {len(GRID.points())} points")
    rates = {}
    for workers in (1, 2):
        started = time.perf_counter()
        executor = local_executor(workers)
        executor.submit(int, 0).result()  # the pool is up
        startup = time.perf_counter() - started
        try:
            seconds, count = timed(executor)
        finally:
            executor.shutdown()
        rates[f"local x{workers}"] = count / seconds
        print(f"local pool, {workers} worker(s): {count} points in {seconds:.1f} s = "
              f"{count / seconds:.2f} points/s (pool start-up {startup:.1f} s)", flush=True)

    from distributed import Client, LocalCluster

    started = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        startup = time.perf_counter() - started
        seconds, count = timed(client.get_executor(pure=False))
    rates["dask x2"] = count / seconds
    print(f"Dask LocalCluster, 2 workers: {count} points in {seconds:.1f} s = "
          f"{count / seconds:.2f} points/s (cluster start-up {startup:.1f} s)")
    base = rates["local x1"]
    print("ratios to 1 local worker: " + ", ".join(f"{name} {rate / base:.2f}x"
                                                   for name, rate in rates.items()))
    print(f"load at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
