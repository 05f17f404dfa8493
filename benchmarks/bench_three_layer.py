"""The three-layer ReLU convex program (docs/math.md §6): our solver against CVXPY + Clarabel,
and how far column generation scales.

A plain script, not a test. Part 1, on the same first-layer patterns and all 2^N - 1
second-layer patterns, times

* ours: :func:`dualviz.relu.three_layer.solve_three_layer` (column generation, exact pricing,
  the certificate), median of `--repeat` calls after one warm-up;
* CVXPY + Clarabel: :func:`dualviz.relu.three_layer_cvxpy.three_layer_cvxpy` (the whole program
  written out, built and solved once: its build is part of the cost, as it would be in a job),

on the public instances of docs/math.md §9 and on the app's regression data (N <= 8, d <= 2,
plus a bias), and prints both values and their relative difference. CVXPY is skipped above
CVXPY_MAX_VARIABLES (said so in its column).

Part 2 runs ours alone on regression data of growing N with the app's time limit and prints N,
the time, the status, whether every pattern was priced (exact) and the certificate's relative
gap (upper - lower) / upper.

Usage: ``nice .venv/bin/python benchmarks/bench_three_layer.py [--quick] [--repeat K]``
(torch is not used; numpy and Clarabel run on one thread, as in the app's jobs).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


from dualviz.data import regression
from dualviz.relu.bounds import THREE_LAYER_SECONDS
from dualviz.relu.patterns import patterns, with_bias
from dualviz.relu.three_layer import solve_three_layer
from dualviz.relu.three_layer_cvxpy import three_layer_cvxpy
from dualviz.relu.three_layer_instances import rand2d, rank_one_control, smooth1d

CVXPY_MAX_VARIABLES = 250_000


def app_data(n: int, d: int, seed: int = 0):
    ds = regression(n, d, "sine", 0.0, seed)
    return with_bias(ds.X), ds.Y[:, 0]


def median_time(f, repeat: int) -> tuple[float, object]:
    out = f()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


def part_one(repeat: int, quick: bool) -> None:
    cases = [("smooth1d", smooth1d, 0.05, "squared"), ("smooth1d", smooth1d, 0.2, "squared"),
             ("rand2d", rand2d, 0.05, "squared"), ("rand2d", rand2d, 0.2, "squared"),
             ("rank-one control", rank_one_control, 0.05, "squared")]
    sizes = [(6, 1), (8, 1), (6, 2), (8, 2)] if not quick else [(8, 1), (8, 2)]
    for n, d in sizes:
        cases.append((f"regression N={n} d={d}", lambda n=n, d=d: app_data(n, d), 0.1,
                      "squared"))
        cases.append((f"regression N={n} d={d}", lambda n=n, d=d: app_data(n, d), 1.0,
                      "interpolation"))
    print("Part 1: the exact program (all second-layer patterns), ours vs CVXPY + Clarabel")
    print(f"{'instance':24} {'beta':>5} {'objective':13} {'ours s':>8} {'CVXPY s':>8} "
          f"{'speed-up':>8} {'ours (certified)':>18} {'CVXPY':>18} {'rel diff':>9} "
          f"{'cert gap':>9} {'variables':>9}")
    for name, make, beta, objective in cases:
        X, y = make()
        ours_s, ours = median_time(
            lambda X=X, y=y, beta=beta, objective=objective: solve_three_layer(
                X, y, beta, 1.0, objective=objective), repeat)
        masks = patterns(X).masks
        P, n, d = len(masks), X.shape[0], X.shape[1]
        variables = 2 * ((1 << n) - 1) * 2 * P * d
        if variables <= CVXPY_MAX_VARIABLES:
            ref = three_layer_cvxpy(X, y, beta, 1.0, masks, objective=objective)
            ref_s, ref_v = f"{ref.seconds:8.2f}", ref.value
            speed = f"{ref.seconds / ours_s:7.0f}x"
            diff = f"{abs(ours.upper - ref_v) / abs(ref_v):9.1e}" if ref_v else "      n/a"
            ref_text = f"{ref_v:18.11f}" if ref_v is not None else f"{ref.status:>18}"
        else:
            ref_s, ref_text, speed, diff = "skipped", "(too large)", "", ""
        value = ours.value if ours.value is not None else ours.upper
        print(f"{name:24} {beta:5.2f} {objective:13} {ours_s:8.3f} {ref_s:>8} {speed:>8} "
              f"{value:18.11f} {ref_text:>18} {diff:>9} {ours.relative_gap:9.1e} "
              f"{variables:9d}  [{ours.status}{'' if ours.exact else ', INCOMPLETE'}]",
              flush=True)


def part_two(quick: bool) -> None:
    print()
    print(f"Part 2: column generation alone, regression data, time limit "
          f"{THREE_LAYER_SECONDS:.0f} s (the app's)")
    print(f"{'d':>2} {'N':>3} {'beta':>5} {'seconds':>8} {'status':>36} {'exact':>6} "
          f"{'cert gap':>9} {'branches':>8} {'rounds':>6} {'leaf SOCPs':>10}")
    ns = (8, 12, 16) if quick else (8, 10, 12, 14, 16, 20, 24)
    for d in (1, 2):
        for n in ns:
            X, y = app_data(n, d)
            res = solve_three_layer(X, y, 0.1, 1.0, time_limit=THREE_LAYER_SECONDS)
            gap = f"{res.relative_gap:9.1e}" if res.relative_gap is not None else "      n/a"
            print(f"{d:2d} {n:3d} {0.1:5.2f} {res.seconds:8.2f} {res.status!s:>36} "
                  f"{res.exact!s:>6} {gap} {res.counts.units:8d} {res.counts.rounds:6d} "
                  f"{res.counts.leaf_solves:10d}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer instances and sizes")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls of ours per case")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} cores (shared), one thread per solve")
    part_one(args.repeat, args.quick)
    part_two(args.quick)


if __name__ == "__main__":
    main()
