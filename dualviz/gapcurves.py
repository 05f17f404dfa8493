"""Gap curves: a sweep's results as curves (P/D and P - D against one knob) and as rows.

Pure functions of the stored results; the theory's curves come from the linear program table.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .config import Experiment
from .linear.closed_forms import equal_spectrum_ratio
from .linear.programs import has_equal_spectrum_ratio
from .results import TRAINED_GAP_TOL, StoredRun
from .sweep import Sweep

Point = tuple[dict, Experiment, dict | None]  # coordinates, experiment, result JSON (or None)


def _run(result: dict | None) -> StoredRun | None:
    return StoredRun.from_json(result) if result else None


def rows(points: Iterable[Point]) -> list[dict[str, Any]]:
    """One flat row per point for CSV: the varied values, P, D, the gaps, the hash."""
    out = []
    for coords, exp, result in points:
        run = _run(result)
        out.append({**coords, "seed": exp.seed, "arch": exp.arch,
                    "primal": run and run.primal.value, "dual": run and run.dual.value,
                    "gap": run and run.gap, "relative_gap": run and run.relative_gap,
                    "hash": exp.hash,
                    "status": "done" if run is not None and not run.failure else "failed"})
    return out


def curves(points: Iterable[Point], x: str, series: str) -> list[dict[str, Any]]:
    """Mean, min and max over seeds of P/D and P - D, per (arch, series value), against x.

    Points without a feasible primal or a dual are left out (counted in `missing`), and so are
    three-layer ReLU points whose D is not certified over every pattern (docs/math.md §6.4:
    their value is an upper bound of D, which would make P/D no bound at all). A gap
    within the zero-gap tolerance of a trained value (results.TRAINED_GAP_TOL of D) is drawn
    as exactly 0 (and P/D as 1), not as a scatter of rounding errors."""
    groups: dict[tuple, dict[Any, list[tuple[float, float]]]] = {}
    missing: dict[tuple, int] = {}
    for coords, exp, result in points:
        key = (exp.arch, coords.get(series) if series != "none" else None)
        run = _run(result)
        primal = run.primal.value if run is not None else None
        dual = run.dual.value if run is not None else None
        three = (run.relu or {}).get("three_layer") if run is not None else None
        if three is not None and not (three.get("exact") and three.get("certified")):
            dual = None  # an upper bound of D (patterns sampled, or uncertified): no ratio
        if primal is None or dual is None or dual == 0:
            missing[key] = missing.get(key, 0) + 1
            continue
        gap = primal - dual
        if abs(gap) <= TRAINED_GAP_TOL * abs(dual):  # a zero gap, stated once (§8): exactly 0
            gap = 0.0
        groups.setdefault(key, {}).setdefault(coords[x], []).append((1.0 + gap / dual, gap))
    out = []
    for (arch, value), by_x in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        xs = sorted(by_x)
        ratios = [[r for r, _ in by_x[v]] for v in xs]
        gaps = [[g for _, g in by_x[v]] for v in xs]
        out.append({"arch": arch, "series": value, "x": xs,
                    "ratio": [sum(r) / len(r) for r in ratios],
                    "ratio_low": [min(r) for r in ratios], "ratio_high": [max(r) for r in ratios],
                    "gap": [sum(g) / len(g) for g in gaps],
                    "gap_low": [min(g) for g in gaps], "gap_high": [max(g) for g in gaps],
                    "seeds": [len(r) for r in ratios],
                    "missing": missing.get((arch, value), 0)})
    return out


def theory_curves(sweep: Sweep, x: str, series: str) -> list[dict[str, Any]]:
    """P/D = r^{(L-2)/2} (standard) and 1 (parallel) where the theory gives it (docs/math.md
    §3.2): deep linear nets, interpolation, the norm-bound regularizations, equal singular
    values of synthetic low-rank data; one curve per architecture and series value whose
    every point satisfies that (a series over the regularization keeps only those)."""
    base = sweep.base
    if not (base.spectrum == "equal" and base.dataset == "low-rank"
            and base.uses_synthetic_data):
        return []
    named = dict(sweep.vary)
    out = []
    for arch in ("standard", "parallel"):
        for value in named.get(series, (None,)):
            xs = list(named[x])
            coords = [{x: v, **({series: value} if value is not None else {})} for v in xs]
            exps = [base.replace(arch=arch, **c)[0] for c in coords]
            if not all(has_equal_spectrum_ratio(e) for e in exps):
                continue
            out.append({"arch": arch, "series": value, "x": xs,
                        "ratio": [equal_spectrum_ratio(e.target_rank, e.depth, arch)
                                  for e in exps]})
    return out
