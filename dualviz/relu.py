"""The convex side of ReLU experiments (DESIGN §4): what bounds the trained nets, and how.

- L = 2, scalar output: the two-layer convex program over the activation patterns; exact (the
  global optimum) when every pattern is known, an upper bound of the convex optimum otherwise.
  Solved by the certified working-set method (dualviz.working_set) or, as a cross-check, by
  CVXPY + Clarabel; both come with the certificate lower <= optimum <= upper.
- L = 3 on rank-one data X = c a^T, rescaled (or L-th power) regularization, interpolation: the
  closed forms of the standard primal and of the dual (an SOCP, which the parallel net attains).
- deeper nets on general data: no bound is computed; trained values are upper bounds on each
  network's own optimum, and that is what the app says.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .arrangements import patterns, with_bias
from .config import ConfigError, Experiment
from .dual import DualResult, rank_one_relu_dual
from .relu_convex import predict, rebuild, result_label, two_layer_convex
from .theory import ClosedForm, rank_one_three_layer
from .working_set import (
    Certificate,
    certify,
    columns_from_keys,
    columns_to_keys,
    solve_working_set,
)

MAX_PATTERNS = 3000
PATTERN_SAMPLES = 100_000
GRID_1D, GRID_2D = 201, 31
WORKING_SET_SECONDS = 120.0  # then the certified bracket is reported instead of one value


def uses_bias(exp: Experiment) -> bool:
    """ReLU nets get a bias (a column of ones in X), except on rank-one data X = c a^T."""
    return not (exp.uses_synthetic_data and exp.dataset == "rank-one")


def network_inputs(exp: Experiment, X: np.ndarray) -> np.ndarray:
    """What the network sees: X, with the bias column for ReLU nets that have one."""
    return with_bias(X) if exp.activation == "relu" and uses_bias(exp) else X


def check_relu(exp: Experiment, k: int) -> None:
    """Refuse combinations that would be computed wrongly."""
    if exp.depth == 2 and k > 1:
        raise ConfigError("the two-layer ReLU convex program is for a scalar output (K = 1); "
                          f"this data has K = {k}")


def probe_points(X: np.ndarray) -> tuple[np.ndarray | None, list[list[float]] | None]:
    """A grid over the data's box for drawing fitted functions: 1-D or 2-D inputs only.

    Returns (grid points as rows, the axes' coordinates) or (None, None)."""
    d = X.shape[1]
    if d not in (1, 2):
        return None, None
    low, high = X.min(axis=0), X.max(axis=0)
    pad = 0.1 * np.maximum(high - low, 1e-9)
    axes = [np.linspace(lo - p, hi + p, GRID_1D if d == 1 else GRID_2D)
            for lo, hi, p in zip(low, high, pad, strict=True)]
    if d == 1:
        return axes[0][:, None], [axes[0].tolist()]
    xx, yy = np.meshgrid(axes[0], axes[1])
    return np.column_stack([xx.ravel(), yy.ravel()]), [a.tolist() for a in axes]


@dataclass(frozen=True)
class ReluBounds:
    closed: ClosedForm
    dual: DualResult
    details: dict[str, Any] = field(default_factory=dict)  # JSON for the page and the CLI


def relu_bounds(exp: Experiment, X: np.ndarray, Y: np.ndarray,
                warm_start: Callable[[str], list | None] | None = None) -> ReluBounds:
    """The bound that applies to this ReLU experiment (see the module docstring).

    warm_start(inputs_digest) may return the columns (``details["solver"]["columns"]``) of an
    earlier two-layer solve on the same data: the working-set solver starts from them.
    """
    check_relu(exp, Y.shape[1])
    if exp.depth == 2:
        if warm_start is None or exp.relu_solver != "working-set":
            return _two_layer(exp, X, Y, None)
        Xn = network_inputs(exp, X)
        return _two_layer(exp, X, Y, warm_start(inputs_digest(Xn, Y[:, 0])))
    if exp.depth == 3 and np.linalg.matrix_rank(X) <= 1 and exp.objective == "interpolation" \
            and exp.regularization in ("rescaled", "lth-power"):
        return _rank_one(exp, X, Y)
    note = ("no dual is computed for deep ReLU nets on general data: each trained value is an "
            "upper bound on its own network's optimum (the paper proves zero gap for parallel "
            "nets with enough branches, without a closed form)")
    return ReluBounds(ClosedForm(None, None, None, "none (deep ReLU, general data)", (note,)),
                      DualResult(None, "none", "not computed", 0.0, notes=[note]))


@dataclass(frozen=True, eq=False)
class _ConvexAnswer:
    """The two-layer convex program solved by either solver, in one shape."""

    value: float | None  # certified value (working set) or the solver's value (CVXPY)
    status: str
    seconds: float
    method: str
    V: np.ndarray | None
    W: np.ndarray | None
    certificate: Certificate | None
    details: dict[str, Any]


def _solve_working_set(exp: Experiment, Xn, y, masks, warm: list | None) -> _ConvexAnswer:
    start = columns_from_keys(masks, warm) if warm else None
    res = solve_working_set(Xn, y, exp.beta, masks, objective=exp.objective, start=start,
                            time_limit=WORKING_SET_SECONDS)
    active = res.columns[:0]
    if res.V is not None:
        norms = np.array([np.linalg.norm((res.V if s > 0 else res.W)[:, i])
                          for i, s in res.columns])
        active = res.columns[norms > 1e-6 * norms.max(initial=0.0)]
    details = {"rounds": res.rounds, "newton_rounds": res.newton_rounds,
               "working_set": len(res.columns),
               "warm_start": int(0 if start is None else len(start)),
               "columns": columns_to_keys(masks, active)}
    return _ConvexAnswer(res.value, res.status, res.seconds,
                         f"working set ({res.rounds} rounds, {len(res.columns)} columns)",
                         res.V, res.W, res.certificate, details)


def _solve_cvxpy(exp: Experiment, Xn, y, masks, complete: bool) -> _ConvexAnswer:
    res = two_layer_convex(Xn, y, exp.beta, masks, objective=exp.objective, complete=complete)
    cert = None
    if res.V is not None and res.lam is not None:
        cert = certify(Xn, y, exp.beta, masks, res.V, res.W, res.lam, objective=exp.objective)
    return _ConvexAnswer(res.value, res.status, res.seconds, "CVXPY/CLARABEL", res.V, res.W,
                         cert, {})


def _two_layer(exp: Experiment, X: np.ndarray, Y: np.ndarray, warm: list | None) -> ReluBounds:
    Xn = network_inputs(exp, X)
    found = patterns(Xn, max_patterns=MAX_PATTERNS, samples=PATTERN_SAMPLES, seed=exp.seed)
    y = Y[:, 0]
    answer = (_solve_cvxpy(exp, Xn, y, found.masks, found.complete)
              if exp.relu_solver == "cvxpy" else
              _solve_working_set(exp, Xn, y, found.masks, warm))
    kind = result_label(found.complete, int(found.masks.shape[0]))
    label = ("two-layer convex program: the global optimum (all patterns)" if found.complete
             else "two-layer convex program over sampled patterns: an upper bound of the "
                  "convex optimum")
    # Interior-point solutions leave columns at ~1e-7 of the largest; real neurons are far
    # above that, so 1e-6 counts neurons, not solver noise.
    net = rebuild(answer.V, answer.W, 1e-6) if answer.V is not None else None
    cert = answer.certificate
    details: dict[str, Any] = {
        "patterns": {"count": int(found.masks.shape[0]), "complete": found.complete,
                     "method": found.method, "message": found.message},
        "active_neurons": 0 if net is None else net.width, "convex_label": kind,
        "solver": {"name": exp.relu_solver, "method": answer.method, "status": answer.status,
                   "seconds": answer.seconds, **answer.details},
        "certificate": None if cert is None else cert.to_json(),
        "inputs_digest": inputs_digest(Xn, y)}
    grid, axes = probe_points(X)
    if grid is not None and net is not None:
        details["fit"] = {"axes": axes, "convex": predict(net, network_inputs(exp, grid)).tolist()}
    dual = DualResult(answer.value, f"{kind} [{answer.method}]", answer.status, answer.seconds,
                      notes=[found.message],
                      lower=None if cert is None else cert.lower,
                      upper=None if cert is None else cert.upper,
                      certified=None if cert is None else cert.certified)
    # With every pattern the convex value is the network's global optimum: that is the
    # primal value theory predicts (for either architecture: at L = 2 both are one layer of
    # neurons).
    known = answer.value if found.complete else None
    return ReluBounds(ClosedForm(known, known, None, label, (found.message,)), dual, details)


def inputs_digest(X: np.ndarray, y: np.ndarray) -> str:
    """Names the convex program's data, so a later solve on the same data can warm-start."""
    h = hashlib.sha256(np.ascontiguousarray(X, dtype=float).tobytes())
    h.update(np.ascontiguousarray(y, dtype=float).tobytes())
    return h.hexdigest()[:16]


def rank_one_factors(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """c and a with X = c a^T and ||a|| = 1 (from the leading singular pair)."""
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    return U[:, 0] * S[0], Vt[0]


def _rank_one(exp: Experiment, X: np.ndarray, Y: np.ndarray) -> ReluBounds:
    started = time.perf_counter()
    c, a = rank_one_factors(X)
    t = 1.0 if exp.regularization == "lth-power" else exp.t
    theory = rank_one_three_layer(c, a, Y, exp.beta, t)
    label = "three-layer ReLU dual on rank-one data (SOCP)"
    primal = theory.standard if exp.arch == "standard" else theory.dual
    closed = ClosedForm(primal, theory.dual, None, label, (theory.explanation,))
    value, status = rank_one_relu_dual(c, Y, exp.beta / theory.T)
    dual = DualResult(value, f"{label} [CVXPY/CLARABEL]", status,
                      time.perf_counter() - started, notes=[theory.explanation])
    details = {"rank_one": {"zero_gap": theory.zero_gap, "explanation": theory.explanation,
                            "alpha": np.atleast_1d(theory.alpha).tolist(),
                            "gamma": np.atleast_1d(theory.gamma).tolist()}}
    return ReluBounds(closed, dual, details)
