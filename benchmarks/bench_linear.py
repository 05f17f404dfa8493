"""How long each part of a deep-linear-network experiment takes: closed form, CVXPY dual, training.

A plain script (``make bench``), not a test. For a few experiments it times

* the closed form (:func:`dualviz.linear.programs.closed_form`): the floor, median of many calls;
* the CVXPY dual (:func:`dualviz.linear.programs.solve_dual`): median of a few calls, each
  compiling anew as the app's jobs do;
* training (:func:`dualviz.training.primal.train`) to its end: total time, time to the first
  snapshot (the initial one, iteration 0) and to the first snapshot after an optimizer step,
  iterations per second (the ``iteration`` of each restart's last snapshot, summed, over the
  training time) and snapshots per second;

and the ratio of the CVXPY and training times to the closed-form floor. Every function gets one
untimed warm-up call first. Torch runs on one thread, like the app's jobs; seeds are fixed.

Usage: ``.venv/bin/python benchmarks/bench_linear.py [--quick]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import cvxpy
import numpy as np
import scipy
import torch

# A plain script: make the repository's package importable without installing it.
from dualviz.config import Experiment
from dualviz.linear.programs import closed_form, solve_dual
from dualviz.runner import dataset_for
from dualviz.training.primal import RESIDUAL_TOL, train

LARGE = {"n": 200, "d": 50, "k": 10, "x_rank": 50, "target_rank": 5, "width": 16}
CASES: tuple[tuple[str, Experiment], ...] = (
    ("default", Experiment()),
    ("large", Experiment(**LARGE)),
    # Smaller than LARGE: at 200 x 50 -> 10 the weight-decay dual (a search over t of ~80
    # nuclear-norm programs) takes minutes. beta = 0.1 keeps the optimum away from W = 0.
    ("squared-wd", Experiment(n=100, d=20, k=5, x_rank=20, target_rank=3, width=16,
                              objective="squared", regularization="weight-decay", beta=0.1,
                              whiten=True)),
)


@dataclass(frozen=True)
class Repeats:
    closed: int  # calls of the closed form
    closed_budget: float  # ... but stop after this many seconds
    dual: int
    train: int


FULL = Repeats(closed=201, closed_budget=2.0, dual=3, train=3)
QUICK = Repeats(closed=21, closed_budget=0.5, dual=1, train=1)


@dataclass(frozen=True)
class TrainRun:
    total: float
    first_snapshot: float
    first_step: float  # first snapshot with iteration > 0
    iterations: int
    snapshots: int
    best: float | None  # best feasible objective


@dataclass(frozen=True)
class CaseResult:
    name: str
    exp: Experiment
    closed_seconds: float
    closed_calls: int
    dual_seconds: float
    train_runs: list[TrainRun]
    closed_primal: float | None
    closed_dual: float | None
    cvxpy_dual: float | None
    cvxpy_status: str

    @property
    def train_seconds(self) -> float:
        return statistics.median(r.total for r in self.train_runs)

    def train_median(self, fn: Callable[[TrainRun], float]) -> float:
        return statistics.median(fn(r) for r in self.train_runs)


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def time_closed(exp: Experiment, X: np.ndarray, Y: np.ndarray,
                repeats: Repeats) -> tuple[float, int]:
    times: list[float] = []
    budget_end = time.perf_counter() + repeats.closed_budget
    while len(times) < repeats.closed and (len(times) < 5 or time.perf_counter() < budget_end):
        times.append(timed(lambda: closed_form(exp, X, Y)))
    return statistics.median(times), len(times)


def time_dual(exp: Experiment, X: np.ndarray, Y: np.ndarray, repeats: Repeats) -> float:
    return statistics.median(timed(lambda: solve_dual(exp, X, Y)) for _ in range(repeats.dual))


def train_once(exp: Experiment, X: np.ndarray, Y: np.ndarray) -> TrainRun:
    started = time.perf_counter()
    first_snapshot = first_step = float("nan")
    count = 0
    last: dict[int, int] = {}  # restart -> iteration of its latest snapshot
    finals = []
    for snap in train(exp, X, Y):
        now = time.perf_counter() - started
        if count == 0:
            first_snapshot = now
        if snap.iteration > 0 and np.isnan(first_step):
            first_step = now
        count += 1
        last[snap.restart] = snap.iteration
        if snap.done:
            finals.append(snap)
    total = time.perf_counter() - started
    feasible = [s.objective for s in finals if np.isfinite(s.objective) and (
        exp.objective == "squared" or s.residual <= RESIDUAL_TOL)]
    return TrainRun(total, first_snapshot, first_step, sum(last.values()), count,
                    min(feasible) if feasible else None)


def time_training(exp: Experiment, X: np.ndarray, Y: np.ndarray,
                  repeats: Repeats) -> list[TrainRun]:
    warm, _ = exp.replace(iterations=1, restarts=1)
    train_once(warm, X, Y)  # warm-up: torch's first calls, without a full run
    return [train_once(exp, X, Y) for _ in range(repeats.train)]


def bench_case(name: str, exp: Experiment, repeats: Repeats) -> CaseResult:
    torch.manual_seed(0)
    dataset = dataset_for(exp)
    X, Y = dataset.X, dataset.Y
    # These first calls give the values and are the untimed warm-ups.
    closed = closed_form(exp, X, Y)
    dual = solve_dual(exp, X, Y)  # also imports and compiles CVXPY's first problem
    closed_seconds, closed_calls = time_closed(exp, X, Y, repeats)
    dual_seconds = time_dual(exp, X, Y, repeats)
    runs = time_training(exp, X, Y, repeats)
    return CaseResult(name, exp, closed_seconds, closed_calls, dual_seconds, runs,
                      closed.primal, closed.dual, dual.value, dual.status)


# -- printing -------------------------------------------------------------------------------------
def fmt_seconds(s: float) -> str:
    if not np.isfinite(s):
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def fmt_ratio(r: float) -> str:
    return f"{r:,.0f}x" if r >= 10 else f"{r:.2g}x"


def fmt_rate(r: float) -> str:
    return f"{r:,.0f} /s" if r >= 10 else f"{r:.2f} /s"


def fmt_value(v: float | None) -> str:
    return "-" if v is None else f"{v:.9g}"


def describe(exp: Experiment) -> str:
    """The knobs that differ from the defaults."""
    default = Experiment()
    changed = [f"{k}={v}" for k, v in exp.to_dict().items() if getattr(default, k) != v]
    return ", ".join(changed) or "(all defaults)"


def machine_info() -> list[str]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    processor = platform.processor() or platform.machine()
    return [
        f"platform : {platform.platform()} ({processor})",
        f"python   : {platform.python_version()} ({platform.python_implementation()})",
        f"versions : torch {torch.__version__}, cvxpy {cvxpy.__version__}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}",
        f"nproc    : {usable} usable of {os.cpu_count()}; torch threads {torch.get_num_threads()}",
    ]


def table(results: list[CaseResult]) -> list[str]:
    def med(r: CaseResult, fn: Callable[[TrainRun], float]) -> float:
        return r.train_median(fn)

    rows: list[tuple[str, Callable[[CaseResult], str]]] = [
        ("data N x d -> K", lambda r: f"{r.exp.n}x{r.exp.d}->{r.exp.k}"),
        ("objective", lambda r: r.exp.objective),
        ("regularization", lambda r: r.exp.regularization),
        ("closed form (floor)", lambda r: fmt_seconds(r.closed_seconds)),
        ("  calls timed", lambda r: str(r.closed_calls)),
        ("CVXPY dual", lambda r: fmt_seconds(r.dual_seconds)),
        ("  / closed form", lambda r: fmt_ratio(r.dual_seconds / r.closed_seconds)),
        ("training, total", lambda r: fmt_seconds(r.train_seconds)),
        ("  / closed form", lambda r: fmt_ratio(r.train_seconds / r.closed_seconds)),
        ("  / CVXPY dual", lambda r: fmt_ratio(r.train_seconds / r.dual_seconds)),
        ("  time to first snapshot", lambda r: fmt_seconds(med(r, lambda t: t.first_snapshot))),
        ("  time to first step", lambda r: fmt_seconds(med(r, lambda t: t.first_step))),
        ("  iterations (all restarts)", lambda r: f"{med(r, lambda t: t.iterations):.0f}"),
        ("  iterations / s", lambda r: fmt_rate(med(r, lambda t: t.iterations / t.total))),
        ("  snapshots", lambda r: f"{med(r, lambda t: t.snapshots):.0f}"),
        ("  snapshots / s", lambda r: fmt_rate(med(r, lambda t: t.snapshots / t.total))),
        ("value: closed-form primal", lambda r: fmt_value(r.closed_primal)),
        ("value: trained primal", lambda r: fmt_value(r.train_runs[0].best)),
        ("value: closed-form dual", lambda r: fmt_value(r.closed_dual)),
        ("value: CVXPY dual", lambda r: fmt_value(r.cvxpy_dual)),
    ]
    cells = [[label, *(render(r) for r in results)] for label, render in rows]
    header = ["", *(r.name for r in results)]
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]

    def line(row: list[str]) -> str:
        first = row[0].ljust(widths[0])
        rest = (cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    rule = "-" * len(line(["-" * w for w in widths]))
    return [line(header), rule, *(line(row) for row in cells)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    args = parser.parse_args(argv)
    repeats = QUICK if args.quick else FULL
    torch.set_num_threads(1)
    torch.manual_seed(0)
    started = time.perf_counter()

    print("dualviz benchmark: deep linear networks" + (" (--quick)" if args.quick else ""))
    print(*machine_info(), sep="\n")
    print(f"repeats  : closed form up to {repeats.closed} calls ({repeats.closed_budget:g} s), "
          f"CVXPY dual {repeats.dual}, training {repeats.train}; medians, after one warm-up")
    print()
    results = []
    for name, exp in CASES:
        print(f"{name:<11}: {describe(exp)}", flush=True)
        results.append(bench_case(name, exp, repeats))
    print()
    print(*table(results), sep="\n")
    print()
    for r in results:
        if r.cvxpy_status != "optimal":
            print(f"note: {r.name}: CVXPY status {r.cvxpy_status}")
        counts = sorted({t.iterations for t in r.train_runs})
        if len(counts) > 1:  # fixed seeds on one thread should repeat exactly
            print(f"note: {r.name}: iteration counts differ between repeats: {counts}")
    print(f"benchmark wall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
