"""The convex program of a two-layer ReLU network with scalar output (docs/math.md §4).

Pilanci & Ergen (2020). X is N x d (the caller appends a column of ones for a bias), y is a
scalar target (N,), beta > 0. An activation pattern is D = diag(1[X g >= 0]) for some g in R^d;
with patterns D_1..D_P the program is

    squared:        min 0.5 || sum_i D_i X (v_i - w_i) - y ||^2 + beta sum_i (||v_i|| + ||w_i||)
    interpolation:  min beta sum_i (||v_i|| + ||w_i||)  s.t.  sum_i D_i X (v_i - w_i) = y
    both with the cones (2 D_i - I) X v_i >= 0, (2 D_i - I) X w_i >= 0.

On its cone D_i X v = (X v)_+, so every feasible point is a network: v_i gives the neuron
u = v_i / sqrt(||v_i||), a = sqrt(||v_i||), and w_i gives u = w_i / sqrt(||w_i||),
a = -sqrt(||w_i||), with (beta/2)(||u||^2 + a^2) = beta ||v_i||. The non-convex problem is

    min 0.5 || sum_j (X u_j)_+ a_j - y ||^2 + (beta/2) sum_j (||u_j||^2 + a_j^2)

(interpolation: the regularizer s.t. f(X) = y). With ALL the patterns the convex value is its
global optimum (for enough neurons) and a lower bound on every trained value; with a SUBSET of
the patterns it is an upper bound on the convex optimum. Results say which one they are.

CVXPY is not thread-safe: call this from a worker process, not from UI threads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from ..solvers import DEFAULT_SOLVER, solve_program

OBJECTIVES = ("squared", "interpolation")


# eq=False: the fields are arrays, whose == is elementwise (a generated __eq__ would raise).
@dataclass(frozen=True, eq=False)
class Network:
    """A two-layer ReLU net f(X) = sum_j (X u_j)_+ a_j: U is d x m (columns u_j), a is (m,)."""

    U: np.ndarray
    a: np.ndarray

    def __post_init__(self) -> None:
        U = np.array(self.U, dtype=float)
        a = np.array(self.a, dtype=float)
        if U.ndim != 2 or a.ndim != 1 or U.shape[1] != a.shape[0]:
            raise ValueError(f"U must be d x m and a must have m entries; got U {U.shape}, "
                             f"a {a.shape}")
        U.flags.writeable = False
        a.flags.writeable = False
        object.__setattr__(self, "U", U)
        object.__setattr__(self, "a", a)

    @property
    def width(self) -> int:
        return int(self.a.shape[0])


@dataclass(frozen=True, eq=False)
class ReluConvexResult:
    """The convex program's value and solution, with what kind of number the value is."""

    value: float | None  # None unless the solver succeeded
    status: str
    seconds: float
    exact: bool  # the patterns were complete: value is the global optimum of the non-convex net
    label: str  # "exact (all P patterns)" or "upper bound ... (a sampled subset of P patterns)"
    V: np.ndarray | None  # d x P, columns v_i
    W: np.ndarray | None  # d x P, columns w_i
    neurons: Network | None  # the network rebuilt from V and W
    active_neurons: int  # neurons.width (0 without a solution)
    lam: np.ndarray | None = None  # the dual variable of the prediction (a certificate's input)


def result_label(complete: bool, patterns: int) -> str:
    """What the value is: the exact optimum, or an upper bound from a subset of patterns."""
    if complete:
        return f"exact (all {patterns} patterns)"
    return f"upper bound of the convex optimum (a sampled subset of {patterns} patterns)"


# -- validation at the boundary -------------------------------------------------------------

def check_data(X, y) -> tuple[np.ndarray, np.ndarray]:
    """X as an N x d float array and y as (N,); a vector target (K > 1) is refused."""
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (N x d), got shape {X.shape}")
    if y.ndim == 2 and y.shape[1] != 1:
        raise ValueError(f"the two-layer convex program is for a scalar output; y has "
                         f"K = {y.shape[1]} columns")
    if y.ndim not in (1, 2):
        raise ValueError(f"y must be (N,) or (N, 1), got shape {y.shape}")
    y = y.reshape(-1)
    if y.shape[0] != X.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must be finite")
    return X, y


def check_masks(masks, n: int) -> np.ndarray:
    """masks as a P x N bool array (entries 0/1 or bool), P >= 1."""
    M = np.asarray(masks)
    if M.ndim != 2 or M.shape[1] != n or M.shape[0] == 0:
        raise ValueError(f"masks must be P x N = P x {n} with P >= 1, got shape {M.shape}")
    if M.dtype != bool:
        if not np.all((M == 0) | (M == 1)):
            raise ValueError("masks must be boolean (or 0/1): row i is the diagonal of D_i")
        M = M.astype(bool)
    return M


def check_scalars(beta: float, objective: str, tol: float) -> None:
    if not (np.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be finite and > 0, got {beta}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if not (np.isfinite(tol) and 0 <= tol < 1):
        raise ValueError(f"tol must be in [0, 1), got {tol}")


# -- the convex program ----------------------------------------------------------------------

def convex_problem(X: np.ndarray, y: np.ndarray, beta: float, masks: np.ndarray,
                   objective: str) -> tuple[cp.Problem, cp.Variable, cp.Variable, cp.Expression]:
    """The program of the module docstring, vectorised over the patterns.

    With M = masks^T (N x P), column i of M * (X V) is D_i X v_i, so the prediction is
    sum_i D_i X (v_i - w_i) = rowsum(M * X (V - W)), and the cones are (2M - 1) * X V >= 0.
    """
    M = masks.T.astype(float)
    signs = 2.0 * M - 1.0
    V = cp.Variable((X.shape[1], M.shape[1]))
    W = cp.Variable((X.shape[1], M.shape[1]))
    prediction = cp.sum(cp.multiply(M, X @ (V - W)), axis=1)
    penalty = beta * (cp.sum(cp.norm(V, 2, axis=0)) + cp.sum(cp.norm(W, 2, axis=0)))
    cones = [cp.multiply(signs, X @ V) >= 0, cp.multiply(signs, X @ W) >= 0]
    if objective == "interpolation":
        return cp.Problem(cp.Minimize(penalty), [*cones, prediction == y]), V, W, prediction
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(prediction - y) + penalty), cones)
    return problem, V, W, prediction


def two_layer_convex(X, y, beta: float, masks, *, objective: str = "squared", complete: bool,
                     solver: str = DEFAULT_SOLVER, tol: float = 1e-8) -> ReluConvexResult:
    """Solve the convex program over the given patterns and rebuild the network.

    masks is P x N, row i the diagonal of D_i. complete says that the rows are all the
    activation patterns of X (then the value is exact); otherwise it is an upper bound on the
    convex optimum. Columns with norm <= tol * (largest column norm) are dropped in the rebuild.
    """
    X, y = check_data(X, y)
    masks = check_masks(masks, X.shape[0])
    check_scalars(beta, objective, tol)
    started = time.perf_counter()
    label = result_label(complete, masks.shape[0])
    s = float(np.linalg.norm(y))
    if s == 0:  # the zero network is optimal, at value 0 (and lambda = 0 certifies it)
        zero = np.zeros((X.shape[1], masks.shape[0]))
        net = rebuild(zero, zero, tol)
        return ReluConvexResult(0.0, cp.OPTIMAL, time.perf_counter() - started, complete,
                                label, zero, zero.copy(), net, 0, np.zeros_like(y))
    # Solved for y / ||y|| (the scaling of working_set.ProblemScale), so Clarabel's tolerances
    # mean the same at any beta and any ||y||: interpolation at beta' = 1, value beta s v',
    # lambda = beta lambda'; squared at beta' = beta / s, value s^2 v', lambda = s lambda'.
    interpolation = objective == "interpolation"
    beta_n = 1.0 if interpolation else float(beta) / s
    problem, V, W, prediction = convex_problem(X, y / s, beta_n, masks, objective)
    value, status = solve_program(problem, solver)
    seconds = time.perf_counter() - started
    if value is None or V.value is None or W.value is None:
        return ReluConvexResult(None, status, seconds, complete, label, None, None, None, 0)
    value *= float(beta) * s if interpolation else s * s
    V_value, W_value = s * np.array(V.value), s * np.array(W.value)
    net = rebuild(V_value, W_value, tol)
    # lambda = y - prediction at the optimum (squared); for interpolation it is the multiplier
    # of prediction == y, whose sign CVXPY reports for the constraint written as such.
    if interpolation:
        lam = -float(beta) * np.asarray(problem.constraints[-1].dual_value, dtype=float)
    else:
        lam = y - s * np.asarray(prediction.value, dtype=float)
    return ReluConvexResult(value, status, seconds, complete, label, V_value, W_value, net,
                            net.width, lam)


# -- networks --------------------------------------------------------------------------------

def rebuild(V: np.ndarray, W: np.ndarray, tol: float) -> Network:
    """The network of a convex solution: one neuron per column with ||.|| > tol * max norm.

    v -> (u, a) = (v / sqrt(||v||), sqrt(||v||)),  w -> (u, a) = (w / sqrt(||w||), -sqrt(||w||)),
    so (X u)_+ a = +-(X v)_+ and (||u||^2 + a^2)/2 = ||v||.
    """
    V = np.asarray(V, dtype=float)
    W = np.asarray(W, dtype=float)
    if V.ndim != 2 or V.shape != W.shape:
        raise ValueError(f"V and W must be d x P of one shape, got {V.shape} and {W.shape}")
    columns = np.hstack([V, W])
    signs = np.concatenate([np.ones(V.shape[1]), -np.ones(W.shape[1])])
    norms = np.linalg.norm(columns, axis=0)
    keep = norms > tol * norms.max(initial=0.0)  # all False when every column is zero
    root = np.sqrt(norms[keep])
    return Network(columns[:, keep] / root, signs[keep] * root)


def predict(net: Network, X) -> np.ndarray:
    """f(X) = sum_j (X u_j)_+ a_j, shape (N,)."""
    return np.maximum(np.asarray(X, dtype=float) @ net.U, 0.0) @ net.a


def regularizer(net: Network, beta: float) -> float:
    """(beta/2) sum_j (||u_j||^2 + a_j^2): weight decay, as in dualviz.training.nets for L = 2."""
    return beta / 2 * float(np.sum(net.U**2) + np.sum(net.a**2))


def relative_residual(net: Network, X, y) -> float:
    """||f(X) - y|| / ||y||  (the interpolation objective is reported without it)."""
    X, y = check_data(X, y)
    return float(np.linalg.norm(predict(net, X) - y) / max(np.linalg.norm(y), 1e-300))


def network_objective(net: Network, X, y, beta: float, objective: str = "squared") -> float:
    """squared: 0.5 ||f(X) - y||^2 + (beta/2) sum_j (||u_j||^2 + a_j^2);
    interpolation: the regularizer only (check f(X) = y with :func:`relative_residual`)."""
    X, y = check_data(X, y)
    check_scalars(beta, objective, 0.0)
    reg = regularizer(net, beta)
    if objective == "interpolation":
        return reg
    return 0.5 * float(np.sum((predict(net, X) - y) ** 2)) + reg
