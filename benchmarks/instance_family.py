"""Does training reach the known optimum on data nobody tuned for? A seeded family of instances.

A plain script that prints a table, not a timed test. Every instance is an Experiment that sets
only problem and data knobs (architecture, activation, depth, branches, objective,
regularization, beta, t, the data knobs); the solver knobs (optimizer, iterations, restarts,
lr) keep their defaults. Each is solved by the app's own :func:`dualviz.runner.run` and its
trained value P is compared with the value known for that instance:

* deep linear nets: the closed form (docs/math.md §3) of
  :func:`dualviz.linear.programs.closed_form`, computed here from the data; only instances
  that have one are in the family (interpolation: any X; squared loss: whitened X, and for a
  standard net at L >= 3 weight decay);
* two-layer ReLU nets (squared loss, interpolation): the convex program over all activation
  patterns (d <= 2 plus the bias: exact enumeration), when its certificate holds;
* three-layer ReLU nets on rank-one data: the closed forms of docs/math.md §5.

An instance is *reached* when P is within REACHED_TOL (relative) of the reference and, for
interpolation, the trained net fits Y to the residual tolerance; otherwise it is *explained*
when the result carries a status that says why (not interpolated, a local minimum above the
known optimum, ...), and *unexplained* when it does not.

Deterministic: the family is drawn from a fixed seed and every run is seeded; only the seconds
(and a run that a wall-clock cap stops) depend on the machine.

Usage:
  python benchmarks/instance_family.py [--family NAME ...] [--limit N] [--json FILE]
                                       [--list] [--only ID ...]
It tests the dualviz package of the Python that runs it: to measure another checkout, run this
script with that checkout's environment (its .venv/bin/python, after `make` there).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import dualviz

FAMILY_SEED = 20260
REACHED_TOL = 1e-3
FAMILIES = ("linear", "relu-squared", "relu-interpolation", "rank-one")


# -- the family -------------------------------------------------------------------------------

def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(f"{math.exp(rng.uniform(math.log(low), math.log(high))):.4g}")


def _linear_instance(rng: np.random.Generator, i: int) -> dict[str, Any]:
    """One deep linear instance with a closed form: interpolation on any X, squared loss on
    whitened X (weight decay, or a parallel net, or L = 2)."""
    objective = "interpolation" if i % 3 else "squared"
    arch = ("standard", "parallel")[i % 2]
    regularization = ("weight-decay", "rescaled", "lth-power")[(i // 2) % 3]
    depth = int(rng.integers(2, 7))
    if objective == "squared" and arch == "standard" and depth >= 3:
        regularization = "weight-decay"  # the only standard squared loss with a closed form
    n = int(rng.integers(5, 13))
    k = int(rng.integers(1, 6))
    if objective == "squared":  # whitened: d <= N, full rank
        d = int(rng.integers(2, n + 1))
        x_rank = d
        whiten = True
    else:
        d = int(rng.integers(n + 1, 2 * n + 1)) if i % 4 < 2 else int(rng.integers(2, n))
        x_rank = min(n, d) if i % 5 else int(rng.integers(1, min(n, d)))  # some deficient
        whiten = False
    target_rank = int(rng.integers(1, min(5, x_rank, k) + 1))
    values: dict[str, Any] = {
        "activation": "linear", "arch": arch, "depth": depth, "objective": objective,
        "regularization": regularization, "beta": _log_uniform(rng, 1e-4, 1e3),
        "n": n, "d": d, "k": k, "x-rank": x_rank, "target-rank": target_rank,
        "spectrum": ("equal", "linear", "geometric")[int(rng.integers(0, 3))],
        "whiten": int(whiten), "seed": int(rng.integers(0, 1000)),
    }
    if regularization == "rescaled":
        values["t"] = float(rng.choice([0.5, 1.0, 2.0]))
    if arch == "parallel":
        values["branches"] = target_rank + 3
    if objective == "squared" and rng.uniform() < 0.5:
        values["noise"] = float(f"{rng.uniform(0.05, 0.5):.3g}")
    return values


def _relu_two_layer(rng: np.random.Generator, objective: str) -> dict[str, Any]:
    d = int(rng.integers(1, 3))
    values = {
        "activation": "relu", "arch": ("standard", "parallel")[int(rng.integers(0, 2))],
        "depth": 2, "objective": objective, "regularization": "weight-decay",
        "dataset": "regression", "k": 1,
        "regression-target": ("sine", "abs", "teacher")[int(rng.integers(0, 3))],
        "n": int(rng.integers(6, 21)), "d": d, "seed": int(rng.integers(0, 1000)),
        "beta": _log_uniform(rng, 1e-3, 1.0) if objective == "squared"
        else _log_uniform(rng, 1e-2, 10.0),
    }
    if objective == "squared" and rng.uniform() < 0.5:
        values["noise"] = float(f"{rng.uniform(0.05, 0.3):.3g}")
    return values


def _rank_one_instance(rng: np.random.Generator) -> dict[str, Any]:
    target = ("sign-changing", "collinear", "generic")[int(rng.integers(0, 3))]
    return {
        "activation": "relu", "arch": ("standard", "parallel")[int(rng.integers(0, 2))],
        "depth": 3, "objective": "interpolation",
        "regularization": ("rescaled", "lth-power")[int(rng.integers(0, 2))],
        "dataset": "rank-one", "rank-one-target": target,
        "n": int(rng.integers(4, 11)), "d": int(rng.integers(1, 4)),
        "k": 1 if target == "sign-changing" else int(rng.integers(1, 4)),
        "t": float(rng.choice([0.5, 1.0, 2.0])), "beta": _log_uniform(rng, 1e-2, 10.0),
        "seed": int(rng.integers(0, 1000)), "bias": 0,
    }


def family(counts: dict[str, int] | None = None) -> list[dict[str, Any]]:
    """[{"id", "family", "values"}]: the instances, in a fixed order (the draw never changes
    with --limit or --family: each family has its own generator)."""
    counts = counts or {"linear": 160, "relu-squared": 25, "relu-interpolation": 25,
                        "rank-one": 20}
    out = []
    for offset, name in enumerate(FAMILIES):
        rng = np.random.default_rng([FAMILY_SEED, offset])
        for i in range(counts.get(name, 0)):
            if name == "linear":
                values = _linear_instance(rng, i)
            elif name == "rank-one":
                values = _rank_one_instance(rng)
            else:
                values = _relu_two_layer(rng, name.removeprefix("relu-"))
            out.append({"id": f"{name}-{i:03d}", "family": name, "values": values})
    return out


# -- one instance -------------------------------------------------------------------------------

def reference(exp, result) -> tuple[float | None, str]:
    """The known optimal value of the trained net for this instance, and what it is."""
    from dualviz.linear.programs import closed_form

    if exp.activation == "linear":
        closed = closed_form(exp, result.dataset.X, result.dataset.Y)
        return closed.primal, "closed form"
    if exp.depth == 2:
        relu = result.relu or {}
        complete = (relu.get("patterns") or {}).get("complete")
        certified = (relu.get("certificate") or {}).get("certified")
        if complete and certified:
            return result.dual.value, "certified convex program (all patterns)"
        return None, "convex program not certified"
    return result.closed.primal, "rank-one closed form"


def solve(instance: dict[str, Any]) -> dict[str, Any]:
    from dualviz.config import Experiment
    from dualviz.runner import run

    exp, notes = Experiment.from_values(instance["values"])
    started = time.perf_counter()
    try:
        result = run(exp)
    except Exception as exc:  # a crash is a finding, not the end of the table
        return {**instance, "outcome": "unexplained", "status": None,
                "explanation": f"crashed: {type(exc).__name__}: {exc}",
                "seconds": time.perf_counter() - started, "value": None, "reference": None}
    seconds = time.perf_counter() - started
    primal = result.to_json()["primal"]
    ref, ref_kind = reference(exp, result)
    value = primal.get("value")
    status = primal.get("status")
    explanation = primal.get("explanation")
    if ref is None:
        outcome = "no reference"
    elif value is not None and abs(value - ref) <= REACHED_TOL * max(abs(ref), 1e-12):
        outcome = "reached"
    elif status is not None and status not in ("optimal", "no reference"):
        outcome = "explained"
    else:
        outcome = "unexplained"
    starts = [r.get("start", "random") for r in primal.get("restarts", [])]
    best = primal.get("best_restart")
    return {**instance, "query": exp.to_query(), "clamp_notes": notes, "outcome": outcome,
            "value": value, "residual": primal.get("residual"), "reference": ref,
            "reference_kind": ref_kind, "status": status, "explanation": explanation,
            "best_start": starts[best] if best is not None and best < len(starts) else None,
            "reached_by_random": _reached_by_random(primal, ref),
            "best_infeasible": primal.get("best_infeasible"),
            "dual": result.dual.value, "seconds": seconds}


def _reached_by_random(primal: dict[str, Any], ref: float | None) -> bool | None:
    """Whether a randomly initialised restart alone reached the reference."""
    if ref is None:
        return None
    for r in primal.get("restarts", []):
        if r.get("start", "random") == "random" and r.get("feasible") and \
                abs(r["value"] - ref) <= REACHED_TOL * max(abs(ref), 1e-12):
            return True
    return False


# -- the table ----------------------------------------------------------------------------------

def table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'family':20s} {'inst':>5s} {'reached':>8s} {'random':>7s} {'explained':>10s} "
             f"{'unexpl.':>8s} {'no ref':>7s} {'median s':>9s} {'max s':>8s}"]
    groups = {name: [r for r in rows if r["family"] == name] for name in FAMILIES}
    groups["all"] = rows
    for name, group in groups.items():
        if not group:
            continue
        count = {k: sum(r["outcome"] == k for r in group)
                 for k in ("reached", "explained", "unexplained", "no reference")}
        random_reached = sum(bool(r.get("reached_by_random")) for r in group)
        seconds = [r["seconds"] for r in group]
        lines.append(f"{name:20s} {len(group):5d} {count['reached']:8d} {random_reached:7d} "
                     f"{count['explained']:10d} {count['unexplained']:8d} "
                     f"{count['no reference']:7d} {statistics.median(seconds):9.2f} "
                     f"{max(seconds):8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", action="append", choices=FAMILIES,
                        help="run only these families (repeatable)")
    parser.add_argument("--limit", type=int, default=None, help="first N instances per family")
    parser.add_argument("--only", action="append", help="run only these instance ids")
    parser.add_argument("--json", metavar="FILE", help="write every instance's outcome here")
    parser.add_argument("--list", action="store_true", help="print the instances and stop")
    parser.add_argument("--quiet", action="store_true", help="no line per instance")
    parser.add_argument("--presets", action="store_true",
                        help="time dualviz.runner.run on the seven presets instead")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    instances = family()
    if args.family:
        instances = [x for x in instances if x["family"] in args.family]
    if args.limit is not None:
        instances = [x for x in instances
                     if int(x["id"].rsplit("-", 1)[1]) < args.limit]
    if args.only:
        instances = [x for x in instances if x["id"] in args.only]
    if args.presets:
        return time_presets()
    if args.list:
        for x in instances:
            print(x["id"], json.dumps(x["values"]))
        return 0
    import torch

    torch.set_num_threads(1)
    rows = []
    for x in instances:
        row = solve(x)
        rows.append(row)
        if not args.quiet:
            print(f"{row['id']:24s} {row['outcome']:12s} P={_fmt(row['value'])} "
                  f"P*={_fmt(row['reference'])} {row['seconds']:6.2f}s "
                  f"{row.get('status') or ''} {row.get('explanation') or ''}"[:220], flush=True)
    print()
    print(f"code: {Path(dualviz.__file__).parent}")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))
    return 0


def time_presets(repeats: int = 5) -> int:
    """Wall time of dualviz.runner.run on each preset's experiment (the gap-curves preset is a
    sweep: one of its points, depth 4 and target rank 2, both architectures' default)."""

    import torch

    from dualviz.presets import PRESETS
    from dualviz.runner import run

    torch.set_num_threads(1)
    for preset in PRESETS:
        exp = preset.experiment  # as its page computes it (the page's defaults filled in)
        if preset.view.keep:  # a sweep: one point of it
            exp = exp.replace(depth=4, target_rank=2)[0]
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            result = run(exp)
            seconds.append(time.perf_counter() - started)
        primal = result.to_json()["primal"]
        print(f"{preset.title:45s} {min(seconds):7.2f} s  P={_fmt(primal['value'])} "
              f"status={primal.get('status')}", flush=True)
    return 0


def _fmt(x: float | None) -> str:
    return "None" if x is None else f"{x:.8g}"


if __name__ == "__main__":
    sys.exit(main())
