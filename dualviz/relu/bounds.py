"""The convex side of ReLU experiments (docs/math.md §4): what bounds the trained nets, and how.

- L = 2, scalar output: the two-layer convex program over the activation patterns; exact (the
  global optimum) when every pattern is known, an upper bound of the convex optimum otherwise.
  Solved by the certified working-set method (dualviz.relu.working_set) or, as a cross-check, by
  CVXPY + Clarabel; both come with the certificate lower <= optimum <= upper.
- L = 3 on rank-one data X = c a^T, rescaled (or L-th power) regularization, interpolation: the
  closed forms of the standard primal and of the dual (an SOCP, which the parallel net attains).
- L = 3 on general data, scalar output, rescaled (or L-th power) regularization: the
  three-layer convex program (docs/math.md §6, dualviz.relu.three_layer), certified; its value
  D is the parallel net's optimum and the standard net's Lagrangian dual (a lower bound of
  every standard net). Up to three columns of inputs (bias included) and THREE_LAYER_MAX_N
  samples; beyond, no dual is computed and the note says why.
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

from ..config import ConfigError, Experiment
from ..regularizers import REGULARIZERS, Family
from ..results import ClosedForm, DualResult, SolveStatus
from ..training.nets import rank_one_parallel_layers
from .convex import Network, predict, rebuild, result_label, two_layer_convex
from .patterns import patterns, with_bias
from .rank_one import rank_one_factors, rank_one_relu_dual, rank_one_three_layer
from .three_layer import MAX_N as THREE_LAYER_MAX_N
from .three_layer import ThreeLayerResult, solve_three_layer
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
THREE_LAYER_SECONDS = 60.0  # the three-layer program's time limit (then: the bracket)
THREE_LAYER_COLUMNS = 3  # inputs with the bias: exact first-layer patterns (rank <= 3)


def constant_column(X: np.ndarray) -> int | None:
    """The first column of X whose entries are all equal and nonzero (it acts as a bias)."""
    X = np.asarray(X, dtype=float)
    if X.shape[0] < 2:
        return None  # one row: every column is constant, none is a bias in particular
    same = np.all(X[:1] == X, axis=0) & (X[0] != 0)
    found = np.flatnonzero(same)
    return int(found[0]) if found.size else None


def uses_bias(exp: Experiment) -> bool:
    """The bias knob, for ReLU nets (synthetic rank-one data has it off: see config)."""
    return exp.activation == "relu" and exp.bias


def adds_bias_column(exp: Experiment, X: np.ndarray) -> bool:
    """Whether the net's inputs are [X, 1]: a ReLU net with a bias, unless X already has a
    constant column (then that column is the bias: a second one would split the regularized
    bias weight over two equal columns, another problem)."""
    return uses_bias(exp) and constant_column(X) is None


def network_inputs(exp: Experiment, points: np.ndarray, X: np.ndarray | None = None) -> np.ndarray:
    """What the network sees at `points` (rows shaped like the data X, which decides whether
    a bias column is added; X defaults to points): the points, with the column of ones for a
    ReLU net that needs one."""
    return with_bias(points) if adds_bias_column(exp, points if X is None else X) else points


def bias_note(exp: Experiment, X: np.ndarray) -> str | None:
    """A note when X's own constant column serves as the bias."""
    j = constant_column(X)
    if not uses_bias(exp) or j is None:
        return None
    return (f"column {j + 1} of X is constant: it is the bias of the first layer (no column of "
            "ones is added)")


def check_relu(exp: Experiment, k: int) -> None:
    """Refuse combinations that would be computed wrongly."""
    if exp.depth == 2 and k > 1:
        raise ConfigError("the two-layer ReLU convex program is for a scalar output (K = 1); "
                          f"this data has K = {k}")


def probe_points(X: np.ndarray) -> tuple[np.ndarray | None, list[list[float]] | None]:
    """A grid over the data's box for drawing fitted functions: 1 or 2 varying inputs only
    (constant columns, e.g. an uploaded bias column, keep their value).

    Returns (grid points as rows, the axes' coordinates of the varying columns) or
    (None, None)."""
    low, high = X.min(axis=0), X.max(axis=0)
    varying = np.flatnonzero(high > low)
    if varying.size not in (1, 2):
        return None, None
    pad = 0.1 * (high - low)
    axes = [np.linspace(low[j] - pad[j], high[j] + pad[j], GRID_1D if varying.size == 1
                        else GRID_2D) for j in varying]
    if varying.size == 1:
        coords = [axes[0]]
    else:
        xx, yy = np.meshgrid(axes[0], axes[1])
        coords = [xx.ravel(), yy.ravel()]
    grid = np.tile(low, (coords[0].size, 1))
    for j, values in zip(varying, coords, strict=True):
        grid[:, j] = values
    return grid, [a.tolist() for a in axes]


@dataclass(frozen=True)
class ReluBounds:
    closed: ClosedForm
    dual: DualResult
    details: dict[str, Any] = field(default_factory=dict)  # JSON for the page and the CLI
    # the two-layer convex solution as a network on the net's inputs, every nonzero column
    # kept (a training restart starts from it), when its value is the known optimum
    network: Network | None = None
    # three layers on rank-one data: the parallel net's optimum (layers), where it is known
    rank_one_start: list[np.ndarray] | None = None
    # three layers on general data: the network rebuilt from the convex program
    three_layer: ThreeLayerResult | None = None


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
    # The rank-one closed forms are those of the net as trained: on its inputs, so a bias
    # column (which makes c a^T rank two) rules them out.
    if exp.depth == 3 and np.linalg.matrix_rank(network_inputs(exp, X)) <= 1 \
            and exp.objective == "interpolation" \
            and REGULARIZERS[exp.regularization].family == Family.NORM_BOUND:
        return _rank_one(exp, network_inputs(exp, X), Y)
    why = three_layer_refusal(exp, X, Y)
    if why is None:
        return _three_layer(exp, X, Y)
    note = ("no dual is computed for deep ReLU nets on general data: each trained value is an "
            "upper bound on its own network's optimum (the paper proves zero gap for parallel "
            "nets with enough branches, without a closed form)")
    if exp.depth == 3:
        note += f"; the three-layer convex program does not apply here: {why}"
    return ReluBounds(ClosedForm(None, None, None, "none (deep ReLU, general data)", (note,)),
                      DualResult(None, "none", SolveStatus.NOT_COMPUTED, 0.0, notes=[note]))


@dataclass(frozen=True, eq=False)
class _ConvexAnswer:
    """The two-layer convex program solved by either solver, in one shape."""

    value: float | None  # certified value (working set) or the solver's value (CVXPY)
    status: SolveStatus
    detail: str | None
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
    return _ConvexAnswer(res.value, res.status, res.detail, res.seconds,
                         f"working set ({res.rounds} rounds, {len(res.columns)} columns)",
                         res.V, res.W, res.certificate, details)


def _solve_cvxpy(exp: Experiment, Xn, y, masks, complete: bool) -> _ConvexAnswer:
    res = two_layer_convex(Xn, y, exp.beta, masks, objective=exp.objective, complete=complete)
    cert = None
    if res.V is not None and res.lam is not None:
        cert = certify(Xn, y, exp.beta, masks, res.V, res.W, res.lam, objective=exp.objective)
    status, detail = SolveStatus.parse(res.status)
    return _ConvexAnswer(res.value, status, detail, res.seconds, "CVXPY/CLARABEL", res.V,
                         res.W, cert, {})


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
        "solver": {"name": exp.relu_solver, "method": answer.method,
                   "status": str(answer.status), "detail": answer.detail,
                   "seconds": answer.seconds, **answer.details},
        "certificate": None if cert is None else cert.to_json(),
        "inputs_digest": inputs_digest(Xn, y)}
    grid, axes = probe_points(X)
    if grid is not None and net is not None:
        details["fit"] = {"axes": axes,
                          "convex": predict(net, network_inputs(exp, grid, X)).tolist()}
    dual = DualResult(answer.value, f"{kind} [{answer.method}]", answer.status, answer.seconds,
                      notes=[found.message], detail=answer.detail,
                      lower=None if cert is None else cert.lower,
                      upper=None if cert is None else cert.upper,
                      certified=None if cert is None else cert.certified)
    # With every pattern the convex value is the network's global optimum: that is the
    # primal value theory predicts (for either architecture: at L = 2 both are one layer of
    # neurons).
    known = answer.value if found.complete else None
    # Interpolation: the restart from the solution keeps its small columns too (dropping
    # those below 1e-6 of the largest left a residual of 1.6e-6, above the tolerance). The
    # squared loss does not need them (they change its value by ~1e-6 relative, and training
    # polishes it): the preset's optimum is 6 neurons plus 15 such columns, which would have
    # tripled the width of its random restarts.
    cutoff = 1e-12 if exp.objective == "interpolation" else 1e-6
    start = rebuild(answer.V, answer.W, cutoff) if known is not None else None
    return ReluBounds(ClosedForm(known, known, None, label, (found.message,)), dual, details,
                      start)


def inputs_digest(X: np.ndarray, y: np.ndarray) -> str:
    """Names the convex program's data, so a later solve on the same data can warm-start."""
    h = hashlib.sha256(np.ascontiguousarray(X, dtype=float).tobytes())
    h.update(np.ascontiguousarray(y, dtype=float).tobytes())
    return h.hexdigest()[:16]


def _rank_one(exp: Experiment, X: np.ndarray, Y: np.ndarray) -> ReluBounds:
    started = time.perf_counter()
    c, a = rank_one_factors(X)
    theory = rank_one_three_layer(c, a, Y, exp.beta, REGULARIZERS[exp.regularization].t(exp.t))
    label = "three-layer ReLU dual on rank-one data (SOCP)"
    primal = theory.standard if exp.arch == "standard" else theory.dual
    closed = ClosedForm(primal, theory.dual, None, label, (theory.explanation,))
    value, status = rank_one_relu_dual(c, Y, exp.beta / theory.T)
    status, detail = SolveStatus.parse(status)
    dual = DualResult(value, f"{label} [CVXPY/CLARABEL]", status,
                      time.perf_counter() - started, notes=[theory.explanation], detail=detail)
    details = {"rank_one": {"zero_gap": theory.zero_gap, "explanation": theory.explanation,
                            "alpha": np.atleast_1d(theory.alpha).tolist(),
                            "gamma": np.atleast_1d(theory.gamma).tolist()}}
    start = rank_one_parallel_layers(exp, a, theory.alpha, theory.gamma) \
        if theory.feasible else None
    return ReluBounds(closed, dual, details, rank_one_start=start)


def three_layer_refusal(exp: Experiment, X: np.ndarray, Y: np.ndarray) -> str | None:
    """Why the three-layer convex program (docs/math.md §6) is not solved for this experiment,
    or None when it is."""
    if exp.depth != 3:
        return "it is for L = 3"
    if REGULARIZERS[exp.regularization].family != Family.NORM_BOUND:
        return ("it is for the rescaled regularization (or L-th power, t = 1), not "
                f"{exp.regularization}")
    if Y.shape[1] != 1:
        return f"it is for a scalar output (this data has K = {Y.shape[1]})"
    Xn = network_inputs(exp, X)
    if Xn.shape[1] > THREE_LAYER_COLUMNS:
        return (f"it enumerates the first-layer patterns exactly for at most "
                f"{THREE_LAYER_COLUMNS} input columns, bias included (d <= 2 with a bias); "
                f"these inputs have {Xn.shape[1]}")
    if Xn.shape[0] > THREE_LAYER_MAX_N:
        return (f"it is solved for N <= {THREE_LAYER_MAX_N} samples (its second-layer "
                f"patterns grow as 2^N); this data has N = {Xn.shape[0]}")
    return None


def _three_layer(exp: Experiment, X: np.ndarray, Y: np.ndarray) -> ReluBounds:
    """The three-layer convex program, certified: D for both architectures (§6.4, §6.5)."""
    Xn = network_inputs(exp, X)
    y = Y[:, 0]
    t = REGULARIZERS[exp.regularization].t(exp.t)
    res = solve_three_layer(Xn, y, exp.beta, t, objective=exp.objective,
                            time_limit=THREE_LAYER_SECONDS, seed=exp.seed)
    exact = res.exact
    cert = res.certificate
    if exact:
        label = ("three-layer convex program over all patterns: D, the parallel net's optimum "
                 "and the standard net's dual")
        value, lower = res.value, res.lower
    else:
        label = ("three-layer convex program over the patterns priced: an upper bound of D "
                 "(the objective of a real parallel net), not a lower bound of any net")
        value, lower = res.upper, None  # only the network's objective bounds D
    # The known optimum of the net as trained: the parallel net's, when certified over all
    # patterns; the standard net's optimum is unknown (D bounds it from below).
    known = res.value if exact and res.certified and exp.arch == "parallel" else None
    closed = ClosedForm(known, res.value if exact else None, None, label, (res.message,))
    dual = DualResult(value, f"{label} [column generation, Clarabel]", res.status,
                      res.seconds, notes=[res.message], detail=res.detail, lower=lower,
                      upper=res.upper, certified=bool(res.certified and exact))
    counts = res.counts
    details: dict[str, Any] = {
        "three_layer": {"status": str(res.status), "exact": exact, "certified": res.certified,
                        "lower": res.lower, "upper": res.upper,
                        "relative_gap": res.relative_gap, "residual": res.residual,
                        "seconds": res.seconds, "message": res.message,
                        "branches": len(res.network.branches) if res.network else 0,
                        "width": res.network.width if res.network else 0,
                        "first_layer_patterns": counts.first_layer_patterns,
                        "second_layer_patterns": counts.second_layer_patterns,
                        "rounds": counts.rounds, "leaf_solves": counts.leaf_solves},
        "certificate": None if cert is None else cert.to_json()}
    grid, axes = probe_points(X)
    if grid is not None and res.network is not None:
        details["fit"] = {"axes": axes,
                          "convex": res.predict(network_inputs(exp, grid, X)).tolist()}
    return ReluBounds(closed, dual, details, three_layer=res)
