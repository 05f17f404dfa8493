"""A certified working-set solver for the two-layer ReLU convex program (docs/math.md §4).

The program over patterns D_1..D_P (see :mod:`dualviz.relu.convex`) is, writing every
variable as a *column* c = (i, s) with pattern i, sign s = +1 (a v_i) or -1 (a w_i), and cone
K_i = {u : (2 D_i - I) X u >= 0},

    squared:        min_{u_c in K_c} 0.5 || y - sum_c s_c D_c X u_c ||^2 + beta sum_c ||u_c||
    interpolation:  min_{u_c in K_c} beta sum_c ||u_c||   s.t.  sum_c s_c D_c X u_c = y.

Its dual (Lagrange multiplier lambda of the prediction) is

    squared:        max_lambda  lambda^T y - 0.5 ||lambda||^2
    interpolation:  max_lambda  lambda^T y
    both s.t.  viol_c(lambda) = max_{u in K_c, ||u|| <= 1} s_c lambda^T D_c X u
                              = || Pi_{K_c}(s_c X^T D_c lambda) ||  <= beta   for every column,

(Pi_K the Euclidean projection on the polyhedral cone K), and at the optimum lambda is the
residual y - prediction. The solution is sparse: few columns are non-zero. So:

1. solve the program restricted to a small working set of columns: Clarabel, called directly,
   or (squared loss, large N, once the set is nearly right) a semismooth Newton augmented
   Lagrangian method warm started from the last solution (:mod:`dualviz.relu.ssnal`);
2. lambda from the restricted solution; price every column: ||X^T D_i lambda|| bounds viol
   from above (cheap); where that bound exceeds beta the projection is computed exactly;
3. add the most violated columns; stop when none violates by more than the tolerance.

Certificate. Any lambda scaled to feasibility, lambda' = s lambda with s <= beta / max_c viol_c,
gives a lower bound (the dual value of lambda'), and the network rebuilt from the restricted
solution gives an upper bound (its objective; for interpolation it fits y up to a reported
residual). With all the patterns both bound the global optimum of the two-layer network; with
a subset they bound the convex program over that subset. A run stopped by its time cap reports
the bracket [lower, upper] instead of one number.

Interpolation with too few columns may be infeasible, so the restricted program is solved in
its exact-penalty form: + M ||y - prediction||_1, which equals the original whenever
M > ||lambda*||_inf; M grows if the final solution still leaves a residual.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import clarabel
import numpy as np
from scipy import sparse

from ..results import SolveStatus
from ..solvers import guarded
from .cones import cone_violation, polar_projection
from .convex import (
    Network,
    check_data,
    check_masks,
    check_scalars,
    network_objective,
    rebuild,
    relative_residual,
)
from .ssnal import TOL as NEWTON_TOL
from .ssnal import NewtonSolve, solve_squared

# QDLDL on one thread: twice as fast as faer here, and a job gets one core.
_COMMON = {"direct_solve_method": "qdldl", "max_threads": 1, "max_iter": 200}
# Tight interior-point tolerances to finish: the certificate gap is limited by this solve.
TIGHT = {**_COMMON, "tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11,
         "tol_ktratio": 1e-9}
# While the working set still changes, a rough restricted solution guides pricing as well.
LOOSE = {**_COMMON, "tol_gap_abs": 1e-6, "tol_gap_rel": 1e-6, "tol_feas": 1e-7,
         "iterative_refinement_enable": False}
GOOD = ("Solved", "AlmostSolved")
DEFAULT_TOL = 1e-8  # relative certificate gap called "certified" (the pricing uses 1e-9)
RESIDUAL_TOL = 1e-6  # interpolation: the relative residual of a network that "fits" y
PRICING_TOL = 1e-9  # a column enters when viol > beta (1 + PRICING_TOL)
# Columns added per round: N // 4 within these bounds (fewer rounds beat leaner sets).
ADD_PER_ROUND = (12, 64)
PENALTY_GROWTH = 100.0
MAX_PENALTY_STEPS = 4
ROW_TOL = 1e-10  # a cone row is violated below -ROW_TOL * max |X u|
FIRST_ROWS = 8  # cone rows per input dimension imposed on a new column at first
ZERO_COLUMN = 1e-7  # a column is zero below this fraction of the largest
# The Newton solver (squared loss) takes over from the interior point once the columns added
# violate by at most this (max viol <= (1 + NEWTON_EXCESS) beta): warm started near the optimum
# it needs a few steps, while far from it, with many new columns, the interior point's fixed
# iteration count is cheaper (at N = 500, 64 new columns cost Newton 70 s, Clarabel 4 s).
NEWTON_EXCESS = 1.0
# ... and only for N >= NEWTON_MIN_N: below, Clarabel's restricted solves are cheap and Newton's
# per-step overhead loses (N = 100: 0.55 s against 0.37 s; N = 200: 5.1 s against 4.7 s; N =
# 500, beta = 5: 43-51 s against 94-107 s; bench_relu's instances).
NEWTON_MIN_N = 300
NEWTON_LOOSE_TOL = 1e-7  # Newton's KKT residuals while the columns still change
NEWTON_MAX_ENTRIES = 10 ** 7  # m N d: its arrays J_c, A_c (and Hessian factor) stay < 200 MB
MAX_ROUNDS = 500  # a guard against cycling (dropped columns coming back); never reached in tests


@dataclass(frozen=True, eq=False)
class Certificate:
    """What is proven about the optimum OPT of the program over the given patterns.

    lower <= OPT <= upper. lower is the dual value of a feasible lambda; upper is the
    objective of the network rebuilt from the primal point (interpolation: that network fits
    y up to `residual`, ||f(X) - y|| / ||y||). certified: the relative gap is within `tol`.
    """

    lower: float
    upper: float
    residual: float
    max_violation: float  # max_c viol_c(lambda) / beta before scaling (1 at optimality)
    tol: float

    @property
    def gap(self) -> float:
        return self.upper - self.lower

    @property
    def relative_gap(self) -> float:
        return self.gap / max(abs(self.upper), 1e-300)

    @property
    def certified(self) -> bool:
        """The gap is within tol, and (interpolation) the network fits y to 1e-6.

        A gap below -tol means the bounds contradict each other (a bug, or a network with
        patterns outside the set): never certified."""
        return abs(self.relative_gap) <= self.tol and self.residual <= RESIDUAL_TOL

    def to_json(self) -> dict:
        return {"lower": self.lower, "upper": self.upper, "gap": self.gap,
                "relative_gap": self.relative_gap, "certified": self.certified,
                "residual": self.residual, "max_violation": self.max_violation}


@dataclass(frozen=True, eq=False)
class WorkingSetResult:
    """The solve: value = upper when certified, else None (the bracket is the answer)."""

    certificate: Certificate | None  # None only if no restricted solve succeeded
    status: SolveStatus  # CERTIFIED, UNCERTIFIED, TIME_LIMIT, STALLED, INFEASIBLE or
    # SOLVER_ERROR (a restricted solve failed; detail: Clarabel's status)
    seconds: float
    rounds: int
    columns: np.ndarray  # (m, 2): (pattern index, sign) of the final working set
    V: np.ndarray | None  # d x P, columns v_i (zero outside the working set)
    W: np.ndarray | None  # d x P, columns w_i
    network: Network | None  # rebuilt from V, W, every non-zero column kept
    newton_rounds: int = 0  # rounds whose restricted program Newton's solver solved
    detail: str | None = None  # what went wrong, in words (INFEASIBLE, SOLVER_ERROR)

    @property
    def value(self) -> float | None:
        cert = self.certificate
        return cert.upper if cert is not None and cert.certified else None


# -- pricing ----------------------------------------------------------------------------------

class _Pricer:
    """viol_c(lambda) for the columns of one (X, masks): bounds first, projections on demand.

    Upper bounds on viol_c, vectorised over all columns: ||h|| (no cone); the norm of the
    projection on the single most violated half-space of the cone,
    sqrt(||h||^2 - max_k min(0, a_k.h / ||a_k||)^2), which is exact when one row is active;
    and ||h + A^T mu|| with the multipliers mu >= 0 of the column's last exact projection
    (lambda moves little between rounds, so this bound settles most columns without one).
    """

    def __init__(self, X: np.ndarray, masks: np.ndarray):
        self.X = X
        self.masks = masks
        self.signs = 2.0 * masks - 1.0  # P x N: row i gives (2 D_i - I)
        row_norms = np.linalg.norm(X, axis=1)
        self.row_norms = np.where(row_norms > 0, row_norms, 1.0)
        self.unit_X = X / self.row_norms[:, None]
        self.mu = np.zeros((2 * len(masks), X.shape[0]))  # row 2 i + (sign < 0)

    def gradients(self, lam: np.ndarray) -> np.ndarray:
        """P x d: row i is X^T D_i lambda."""
        return (self.masks * lam) @ self.X

    def bounds(self, G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """P x 2 upper bounds on viol for signs +1 (column 0) and -1 (column 1), and where
        they are exact: h in K, or its projection on the most violated half-space in K."""
        values, exact = [], []
        for sign in (1.0, -1.0):
            H = sign * G
            slack = self.signs * (H @ self.unit_X.T)  # P x N: a_k . h / ||a_k||
            worst = np.argmin(slack, axis=1)
            depth = np.minimum(slack[np.arange(len(H)), worst], 0.0)
            # p = h - depth * a_k / ||a_k||  (the projection on that half-space)
            P = H - (depth * self.signs[np.arange(len(H)), worst])[:, None] * self.unit_X[worst]
            norms = np.linalg.norm(P, axis=1)
            inside = (self.signs * (P @ self.unit_X.T) >= -1e-12 * norms[:, None]).all(axis=1)
            mu = self.mu[0 if sign > 0 else 1::2]
            warm = np.linalg.norm(H + (self.signs * mu) @ self.X, axis=1)
            values.append(np.where(inside, norms, np.minimum(norms, warm)))
            exact.append(inside)
        return np.column_stack(values), np.column_stack(exact)

    def exact(self, i: int, sign: int, g: np.ndarray, cutoff: float = -1.0) -> float:
        flat = 2 * i + (sign < 0)
        value, self.mu[flat] = polar_projection(self.signs[i][:, None] * self.X, sign * g,
                                                cutoff, self.row_norms,
                                                np.flatnonzero(self.mu[flat]))
        return value

    def _ranked(self, lam: np.ndarray):
        """Gradients, bounds, exactness, and the columns (2 i + sign index) by bound."""
        G = self.gradients(lam)
        bound, exact = self.bounds(G)
        return G, bound.ravel(), exact.ravel(), np.argsort(-bound, axis=None)

    def _value(self, flat: int, G, bound, exact, cutoff: float) -> float:
        if exact[flat]:
            return float(bound[flat])
        i, sign = int(flat // 2), 1 - 2 * int(flat % 2)
        return self.exact(i, sign, G[i], cutoff)

    def violators(self, lam: np.ndarray, limit: float, want: int,
                  exclude: set[tuple[int, int]]) -> list[tuple[float, int, int]]:
        """The `want` most violated columns with viol > limit, largest first: (viol, i, sign).

        Columns are examined in decreasing order of their bound; the scan stops once `want`
        violators are known and no unexamined column can beat them. (Stopping earlier with
        any violators was tried: worse choices cost more rounds than the scan saves.)
        """
        G, bound, exact, order = self._ranked(lam)
        found: list[tuple[float, int, int]] = []
        for flat in order:
            if bound[flat] <= limit:
                break
            if len(found) >= want and bound[flat] <= found[want - 1][0]:
                break
            i, sign = int(flat // 2), 1 - 2 * int(flat % 2)
            if (i, sign) in exclude:
                continue
            # a column matters if it beats the want-th violator found so far: a projection
            # may stop as soon as its bound falls below that
            threshold = limit if len(found) < want else max(limit, found[want - 1][0])
            viol = self._value(flat, G, bound, exact, threshold)
            if viol > threshold:
                found.append((viol, i, sign))
                found.sort(reverse=True)
        return found[:want]

    def max_violation(self, lam: np.ndarray) -> float:
        """max over every column of viol_c(lambda), exactly."""
        G, bound, exact, order = self._ranked(lam)
        best = 0.0
        for flat in order:
            if bound[flat] <= best:
                break
            best = max(best, self._value(flat, G, bound, exact, best))
        return best


# -- the restricted program -------------------------------------------------------------------

def _coo(blocks: list[np.ndarray], row0: np.ndarray, col0: np.ndarray):
    """COO entries of dense blocks (r_j x c) placed at (row0[j], col0[j]), zeros dropped."""
    rows, cols, vals = [], [], []
    for block, r0, c0 in zip(blocks, row0, col0, strict=True):
        r, c = np.nonzero(block)
        rows.append(r0 + r)
        cols.append(c0 + c)
        vals.append(block[r, c])
    if not rows:
        return np.zeros(0, dtype=int), np.zeros(0, dtype=int), np.zeros(0)
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


@dataclass
class _Column:
    """A column of the working set: pattern, sign, the cone rows imposed so far (interior
    point) and the last solution with its face (Newton's warm start)."""

    pattern: int
    sign: int
    rows: np.ndarray  # (N,) bool: constraint (2 D - I)_kk x_k . u >= 0 is in the program
    u: np.ndarray | None = None
    face: np.ndarray | None = None  # cone rows active at the last projection


def _solve_restricted(X: np.ndarray, y: np.ndarray, beta: float, masks: np.ndarray,
                      columns: list[_Column], objective: str, penalty: float, tight: bool):
    """Clarabel on the columns given: (status, U (m x d), lambda (N,)).

    Variables: per column the block (t_c, u_c) with ||u_c|| <= t_c, then the residual
    e = y - prediction (squared) or its parts e = p - q, p, q >= 0 (interpolation, exact
    penalty). Only each column's chosen cone rows are imposed (a relaxation; the caller adds
    rows the solution violates). Clarabel's form: A x + s = b, s in the cones,
    min 0.5 x^T P x + q^T x.
    """
    n, d = X.shape
    m = len(columns)
    width = d + 1
    ucol = np.arange(m) * width + 1  # first u entry of each block
    ebase = m * width
    interp = objective == "interpolation"
    nx = ebase + (2 * n if interp else n)
    er = np.arange(n)

    parts = []  # (rows, columns, values) of A
    # equality: sum_c s_c D_c X u_c + e = y   (e = p - q for interpolation)
    eq = [c.sign * masks[c.pattern][:, None] * X for c in columns]
    parts += [_coo(eq, np.zeros(m, dtype=int), ucol), (er, ebase + er, np.ones(n))]
    if interp:
        parts.append((er, ebase + n + er, -np.ones(n)))
    # cones: -(2 D_c - I)_kk x_k . u_c + s = 0, s >= 0 on the chosen rows k
    cone = [-(2.0 * masks[c.pattern][c.rows] - 1.0)[:, None] * X[c.rows] for c in columns]
    counts = np.array([np.count_nonzero(c.rows) for c in columns], dtype=int)
    row0 = n + np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int)
    parts.append(_coo(cone, row0, ucol))
    nonneg = int(counts.sum())
    if interp:  # p, q >= 0
        parts.append((n + nonneg + np.arange(2 * n), ebase + np.arange(2 * n), -np.ones(2 * n)))
        nonneg += 2 * n
    # second-order cones: -(t_c, u_c) + s = 0
    soc0 = n + nonneg
    parts.append((soc0 + np.arange(m * width), np.arange(m * width), -np.ones(m * width)))
    rows, cols, vals = (np.concatenate(k) for k in zip(*parts, strict=True))
    A = sparse.csc_matrix((vals, (rows, cols)), shape=(soc0 + m * width, nx))
    b = np.zeros(A.shape[0])
    b[:n] = y
    q = np.zeros(nx)
    q[np.arange(m) * width] = beta
    if interp:
        q[ebase:] = penalty
        P = sparse.csc_matrix((nx, nx))
    else:
        P = sparse.csc_matrix((np.ones(n), (ebase + er, ebase + er)), shape=(nx, nx))
    cones = [clarabel.ZeroConeT(n), clarabel.NonnegativeConeT(nonneg)]
    cones += [clarabel.SecondOrderConeT(width)] * m
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    for key, value in (TIGHT if tight else LOOSE).items():
        setattr(settings, key, value)
    solution, error = guarded(clarabel.DefaultSolver(P, q, A, b, cones, settings).solve)
    if solution is None:
        return f"solver_error: {error}", None, None
    status = str(solution.status).split(".")[-1]
    if status not in GOOD:
        return status, None, None
    x = np.asarray(solution.x)
    U = x[: m * width].reshape(m, width)[:, 1:]
    # dual of the equality rows: P x + q + A^T z = 0 gives lambda = -z there (= e when squared)
    lam = -np.asarray(solution.z)[:n]
    return status, U, lam


def _solve_newton(X: np.ndarray, y: np.ndarray, beta: float, masks: np.ndarray,
                  norms: np.ndarray, columns: list[_Column], tol: float) -> NewtonSolve:
    """The squared program on the columns given, by SSNAL (:mod:`dualviz.relu.ssnal`) from their
    last solutions, every cone row imposed; the columns' faces are updated."""
    patterns = np.array([c.pattern for c in columns])
    signs = np.array([c.sign for c in columns], dtype=float)
    J = signs[:, None, None] * masks[patterns][:, :, None] * X
    A = (2.0 * masks[patterns] - 1.0)[:, :, None] * X
    U0 = np.array([np.zeros(X.shape[1]) if c.u is None else c.u for c in columns])
    faces = [c.face for c in columns]
    found = solve_squared(J, A, norms, y, beta, U0, faces, tol=tol)
    for c, face in zip(columns, faces, strict=True):
        c.face = face
    return found


def _closest_rows(X: np.ndarray, mask: np.ndarray, h: np.ndarray, count: int) -> np.ndarray:
    """(N,) bool: the `count` cone rows nearest to binding at direction h."""
    slack = (2.0 * mask - 1.0) * (X @ h) / np.maximum(np.linalg.norm(X, axis=1), 1e-300)
    rows = np.zeros(X.shape[0], dtype=bool)
    rows[np.argsort(slack)[:count]] = True
    return rows


def _violated_rows(X: np.ndarray, masks: np.ndarray, columns: list[_Column],
                   U: np.ndarray, per_column: int) -> int:
    """Add to each column up to `per_column` of its cone rows that u_c violates; how many."""
    patterns = np.array([c.pattern for c in columns])
    outputs = U @ X.T  # m x N: x_k . u_c
    slack = (2.0 * masks[patterns] - 1.0) * outputs
    scale = np.abs(outputs).max(axis=1, initial=0.0)
    present = np.array([c.rows for c in columns])
    bad = (slack < -ROW_TOL * scale[:, None]) & ~present
    added = 0
    for j in np.flatnonzero(bad.any(axis=1)):
        candidates = np.flatnonzero(bad[j])
        worst = candidates[np.argsort(slack[j, candidates])[:per_column]]
        columns[j].rows[worst] = True
        added += worst.size
    return added


# -- the solver ---------------------------------------------------------------------------------

def pattern_key(mask: np.ndarray) -> str:
    """A pattern's bits as hex: names it across pattern sets of the same X."""
    return np.packbits(mask).tobytes().hex()


def columns_from_keys(masks: np.ndarray, keys) -> np.ndarray:
    """The (pattern index, sign) columns of [pattern key, sign] pairs whose pattern is among
    masks' rows."""
    index = {pattern_key(row): i for i, row in enumerate(masks)}
    found = {(index[k], int(s)) for k, s in keys if k in index and s in (1, -1)}
    return np.array(sorted(found), dtype=int).reshape(-1, 2)


def columns_to_keys(masks: np.ndarray, columns: np.ndarray) -> list[list]:
    """Columns as [pattern key, sign]: portable between pattern sets of one X."""
    return [[pattern_key(masks[i]), int(s)] for i, s in columns]


def network_columns(net: Network, X: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """(pattern index, sign) of each neuron of a network whose pattern 1[X u >= 0] is in masks:
    the columns to start from when a trained network (or an earlier solve) is at hand."""
    keys = [[pattern_key(X @ u >= 0), 1 if a > 0 else -1]
            for u, a in zip(net.U.T, net.a, strict=True) if a != 0]
    return columns_from_keys(masks, keys)


def _dual_value(lam: np.ndarray, y: np.ndarray, scale_cap: float, objective: str) -> float:
    """max over 0 <= s <= scale_cap of the dual objective at s lambda."""
    a = float(lam @ y)
    if objective == "interpolation":
        return a * scale_cap if a > 0 else 0.0
    b = float(lam @ lam)
    s = min(scale_cap, max(a, 0.0) / b) if b > 0 else 0.0
    return s * a - 0.5 * s * s * b


def _certify(pricer: _Pricer, X, y, beta, lam, network, objective, tol) -> Certificate:
    viol = pricer.max_violation(lam)
    cap = beta / viol if viol > 0 else 1.0  # viol = 0: lambda is feasible at any scale
    lower = _dual_value(lam, y, cap, objective)
    upper = network_objective(network, X, y, beta, objective)
    residual = relative_residual(network, X, y) if objective == "interpolation" else 0.0
    return Certificate(lower, upper, residual, viol / beta, tol)


def certify(X, y, beta: float, masks, V: np.ndarray, W: np.ndarray, lam: np.ndarray, *,
            objective: str = "squared", tol: float = DEFAULT_TOL) -> Certificate:
    """The certificate of any solution (V, W) with dual guess lambda, e.g. CVXPY's.

    upper: the objective of the network rebuilt from (V, W); lower: the dual value of lambda
    scaled into the dual feasible set (module docstring).
    """
    X, y = check_data(X, y)
    masks = check_masks(masks, X.shape[0])
    check_scalars(beta, objective, tol)
    network = rebuild(V, W, 0.0)
    return _certify(_Pricer(X, masks), X, y, beta, np.asarray(lam, dtype=float), network,
                    objective, tol)


def _column_array(columns: list[_Column]) -> np.ndarray:
    return np.array([(c.pattern, c.sign) for c in columns], dtype=int).reshape(-1, 2)


def _certified_network(pricer: _Pricer, X, y, beta, lam, columns: list[_Column], U,
                       objective, tol):
    """(V, W, network, certificate) of a restricted solution U (rows: the columns' u)."""
    V = np.zeros((X.shape[1], len(pricer.masks)))
    W = np.zeros_like(V)
    for (i, s), u in zip(_column_array(columns), U, strict=True):
        (V if s > 0 else W)[:, i] = u
    network = rebuild(V, W, 0.0)
    return V, W, network, _certify(pricer, X, y, beta, lam, network, objective, tol)


def solve_working_set(X, y, beta: float, masks, *, objective: str = "squared",
                      tol: float = DEFAULT_TOL, start: np.ndarray | None = None,
                      time_limit: float | None = None) -> WorkingSetResult:
    """The convex program over the given patterns, certified to relative gap `tol`.

    masks: P x N, row i the diagonal of D_i. start: (pattern index, sign) columns to begin
    with (e.g. :func:`network_columns` of a trained net or an earlier answer); otherwise the
    columns most violated at lambda = y (the dual point of the zero network). time_limit:
    seconds after which the solver stops and certifies the bracket it has.

    Each round solves the restricted program, then adds the cone rows its solution violates
    (a column's constraints are imposed lazily) and the most violated columns; columns zero
    in the last solve leave when columns enter (keeping them two solves made the sets larger
    and the solves slower: 5.9 s instead of 4.7 s at N = 200, d = 10, 500 patterns). Rounds use
    loose solver tolerances until the columns settle, then tight ones until no row is added.
    For the squared loss at N >= NEWTON_MIN_N, once the columns added violate by at most
    NEWTON_EXCESS, Newton's solver (every row imposed, warm started) takes over; if it fails to
    converge, the interior point finishes.
    """
    X, y = check_data(X, y)
    masks = check_masks(masks, X.shape[0])
    check_scalars(beta, objective, tol)
    started = time.perf_counter()
    scale = ProblemScale.of(y, beta, objective)
    if scale is None:  # y = 0: the zero network is optimal, at value 0
        zero = np.zeros((X.shape[1], len(masks)))
        return WorkingSetResult(Certificate(0.0, 0.0, 0.0, 0.0, tol), SolveStatus.CERTIFIED,
                                time.perf_counter() - started, 0, np.zeros((0, 2), dtype=int),
                                zero, zero.copy(), rebuild(zero, zero, 0.0))
    found = _solve_normalized(X, y / scale.y, scale.beta, masks, objective, tol, start,
                              time_limit, started)
    return scale.restore(found)


@dataclass(frozen=True)
class ProblemScale:
    """The program for (y, beta) is a rescaling of one with ||y|| = 1 (the cones do not
    change): with s = ||y|| and u = s u',
      squared:        value = s^2 value'(y / s, beta / s),     lambda = s lambda';
      interpolation:  value = beta s value'(y / s, 1),         lambda = beta lambda'.
    Solving the normalized program makes the solver's tolerances, and so the certificate,
    independent of the units: beta = 1e-4 and beta = 1 give the same relative gap."""

    y: float  # s = ||y||
    beta: float  # the normalized program's beta
    value: float  # value = this times the normalized value

    @classmethod
    def of(cls, y: np.ndarray, beta: float, objective: str) -> ProblemScale | None:
        s = float(np.linalg.norm(y))
        if s == 0:
            return None
        if objective == "interpolation":
            return cls(s, 1.0, beta * s)
        return cls(s, beta / s, s * s)

    def restore(self, found: WorkingSetResult) -> WorkingSetResult:
        """The normalized solve in the original units."""
        cert = found.certificate
        if cert is not None:
            cert = Certificate(cert.lower * self.value, cert.upper * self.value, cert.residual,
                               cert.max_violation, cert.tol)
        V = None if found.V is None else found.V * self.y
        W = None if found.W is None else found.W * self.y
        network = None if V is None or W is None else rebuild(V, W, 0.0)
        return dataclasses.replace(found, certificate=cert, V=V, W=W, network=network)


def _solve_normalized(X, y, beta, masks, objective, tol, start, time_limit,
                      started) -> WorkingSetResult:
    """solve_working_set's column generation, on validated data with ||y|| = 1."""
    n, d = X.shape
    pricer = _Pricer(X, masks)
    limit = beta * (1 + min(tol, PRICING_TOL))
    first_rows = min(n, FIRST_ROWS * d)
    add = min(max(n // 4, ADD_PER_ROUND[0]), ADD_PER_ROUND[1])

    def column(i: int, sign: int, lam: np.ndarray) -> _Column:
        h = sign * (X.T @ (masks[i] * lam))
        return _Column(i, sign, _closest_rows(X, masks[i], h, first_rows))

    pairs: set[tuple[int, int]] = set()
    if start is not None and len(start):
        pairs = {(int(i), int(s)) for i, s in np.asarray(start).reshape(-1, 2)
                 if 0 <= i < len(masks) and s in (1, -1)}
    if not pairs:
        pairs = {(i, s) for _, i, s in pricer.violators(y, limit, add, set())}
    if not pairs:  # y itself is dual feasible: the zero network is optimal
        pairs = {(0, 1)}
    columns = [column(i, s, y) for i, s in sorted(pairs)]
    penalty = 10.0 * float(np.abs(y).max(initial=1.0)) + beta  # exact once > ||lambda*||_inf
    rounds, status, U, lam, penalties = 0, SolveStatus.STALLED, None, None, 0
    detail: str | None = None
    solved_columns: list[_Column] = []
    tight = False  # loose tolerances while the set changes, tight to finish
    newton_ok = objective == "squared" and n >= NEWTON_MIN_N  # until a Newton solve fails
    excess = np.inf  # max viol / beta - 1 of the columns just added
    newton_rounds = 0
    penalty_refit = False
    dropped: set[tuple[int, int]] = set()  # columns that left the set once
    kept_for_good: set[tuple[int, int]] = set()  # ... and came back: they stay
    while rounds < MAX_ROUNDS:
        rounds += 1
        U_new = None
        newton = newton_ok and excess <= NEWTON_EXCESS and \
            len(columns) * n * d <= NEWTON_MAX_ENTRIES
        if newton:
            found = _solve_newton(X, y, beta, masks, pricer.row_norms, columns,
                                  min(NEWTON_TOL, tol / 100) if tight else NEWTON_LOOSE_TOL)
            if found.converged:
                U_new, lam_new = found.U, found.lam
            newton = newton_ok = found.converged
            newton_rounds += newton
        if U_new is None:
            solved, U_new, lam_new = _solve_restricted(X, y, beta, masks, columns, objective,
                                                       penalty, tight)
        if U_new is None:
            status, detail = SolveStatus.SOLVER_ERROR, f"restricted solve failed ({solved})"
            break
        for c, u in zip(columns, U_new, strict=True):
            c.u = u
        U, lam, solved_columns = U_new, lam_new, list(columns)
        if time_limit is not None and time.perf_counter() - started > time_limit:
            status = SolveStatus.TIME_LIMIT
            break
        # Rows and columns are added in the same round: the certificate never depends on
        # the restricted solution being feasible, only its tightness does. (Newton imposes
        # every row.)
        added_rows = 0 if newton else _violated_rows(X, masks, columns, U, 4 * d)
        new = pricer.violators(lam, limit, add, {(c.pattern, c.sign) for c in columns})
        excess = new[0][0] / beta - 1 if new else 0.0
        if new:
            norms = np.linalg.norm(U, axis=1)
            leaving = {(c.pattern, c.sign) for c, norm in zip(columns, norms, strict=True)
                       if norm <= ZERO_COLUMN * norms.max()} - kept_for_good
            columns = [c for c in columns if (c.pattern, c.sign) not in leaving]
            entering = {(i, s) for _, i, s in new}
            # A column that comes back after leaving stays from then on: dropping and adding
            # the same columns cycled (interpolation, N = 16: 500 rounds between two sets).
            kept_for_good |= entering & dropped
            dropped |= leaving
            columns += [column(i, s, lam) for _, i, s in new]
            tight = False
            continue
        if objective == "interpolation" and penalties < MAX_PENALTY_STEPS and \
                np.max(np.abs(lam)) >= penalty * (1 - 1e-6):
            penalty *= PENALTY_GROWTH  # the residual may be forced: try a larger penalty
            penalties += 1
            continue
        if not tight or added_rows:
            # the columns are settled; rows may still be added, which changes the solution
            # little, so the next solve may as well be the tight one that finishes (Newton's,
            # if it may: it imposes every row). A solution violating rows is a network with
            # patterns outside the set, whose value is no upper bound for the program over
            # the set: no stop before none is.
            tight = True
            continue
        if objective == "interpolation" and not penalty_refit and \
                penalty > 4 * np.max(np.abs(lam)) and penalties > 0:
            # A penalty raised 100-fold dwarfs the objective, and Clarabel's relative
            # tolerances with it (a certificate gap of 1.2e-8 at N = 17); lambda* is known
            # now: one more solve with the penalty just above it.
            penalty, penalty_refit = 2 * float(np.max(np.abs(lam))) + beta, True
            continue
        status = SolveStatus.OPTIMAL
        break
    cols = _column_array(solved_columns)
    if U is None:
        return WorkingSetResult(None, status, time.perf_counter() - started, rounds, cols,
                                None, None, None, newton_rounds, detail)
    V, W, network, cert = _certified_network(pricer, X, y, beta, lam, solved_columns, U,
                                             objective, tol)
    if cert.residual > RESIDUAL_TOL and status != SolveStatus.TIME_LIMIT and (
            status == SolveStatus.OPTIMAL or penalties > 0):
        # every column priced and the penalty raised: the residual is forced by the data
        status, detail = SolveStatus.INFEASIBLE, (
            f"no network over these patterns fits y (relative residual {cert.residual:.1e})")
    elif status == SolveStatus.OPTIMAL:
        status = SolveStatus.CERTIFIED if cert.certified else SolveStatus.UNCERTIFIED
    return WorkingSetResult(cert, status, time.perf_counter() - started, rounds, cols, V, W,
                            network, newton_rounds, detail)


__all__ = ["Certificate", "WorkingSetResult", "certify", "columns_from_keys", "columns_to_keys",
           "cone_violation", "network_columns", "pattern_key", "solve_working_set"]
