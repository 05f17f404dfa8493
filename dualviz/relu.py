"""The convex side of ReLU experiments (DESIGN §4): what bounds the trained nets, and how.

- L = 2, scalar output: the two-layer convex program over the activation patterns; exact (the
  global optimum) when every pattern is known, an upper bound of the convex optimum otherwise.
- L = 3 on rank-one data X = c a^T, rescaled (or L-th power) regularization, interpolation: the
  closed forms of the standard primal and of the dual (an SOCP, which the parallel net attains).
- deeper nets on general data: no bound is computed; trained values are upper bounds on each
  network's own optimum, and that is what the app says.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .arrangements import patterns, with_bias
from .config import ConfigError, Experiment
from .dual import DualResult, rank_one_relu_dual
from .relu_convex import predict, two_layer_convex
from .theory import ClosedForm, rank_one_three_layer

MAX_PATTERNS = 3000
PATTERN_SAMPLES = 100_000
GRID_1D, GRID_2D = 201, 31


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


def relu_bounds(exp: Experiment, X: np.ndarray, Y: np.ndarray) -> ReluBounds:
    """The bound that applies to this ReLU experiment (see the module docstring)."""
    check_relu(exp, Y.shape[1])
    if exp.depth == 2:
        return _two_layer(exp, X, Y)
    if exp.depth == 3 and np.linalg.matrix_rank(X) <= 1 and exp.objective == "interpolation" \
            and exp.regularization in ("rescaled", "lth-power"):
        return _rank_one(exp, X, Y)
    note = ("no dual is computed for deep ReLU nets on general data: each trained value is an "
            "upper bound on its own network's optimum (the paper proves zero gap for parallel "
            "nets with enough branches, without a closed form)")
    return ReluBounds(ClosedForm(None, None, None, "none (deep ReLU, general data)", (note,)),
                      DualResult(None, "none", "not computed", 0.0, notes=[note]))


def _two_layer(exp: Experiment, X: np.ndarray, Y: np.ndarray) -> ReluBounds:
    Xn = network_inputs(exp, X)
    found = patterns(Xn, max_patterns=MAX_PATTERNS, samples=PATTERN_SAMPLES, seed=exp.seed)
    # Interior-point solutions leave columns at ~1e-7 of the largest; real neurons are far
    # above that, so 1e-6 counts neurons, not solver noise.
    convex = two_layer_convex(Xn, Y[:, 0], exp.beta, found.masks, objective=exp.objective,
                              complete=found.complete, tol=1e-6)
    label = ("two-layer convex program: the global optimum (all patterns)" if convex.exact
             else "two-layer convex program over sampled patterns: an upper bound of the "
                  "convex optimum")
    details: dict[str, Any] = {
        "patterns": {"count": int(found.masks.shape[0]), "complete": found.complete,
                     "method": found.method, "message": found.message},
        "active_neurons": convex.active_neurons, "convex_label": convex.label}
    grid, axes = probe_points(X)
    if grid is not None and convex.neurons is not None:
        details["fit"] = {"axes": axes,
                          "convex": predict(convex.neurons, network_inputs(exp, grid)).tolist()}
    dual = DualResult(convex.value, f"{convex.label} [CVXPY/CLARABEL]", convex.status,
                      convex.seconds, notes=[found.message])
    # With every pattern the convex value is the network's global optimum: that is the
    # primal value theory predicts (for either architecture: at L = 2 both are one layer of
    # neurons).
    known = convex.value if convex.exact else None
    return ReluBounds(ClosedForm(known, known, None, label, (found.message,)), dual, details)


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
