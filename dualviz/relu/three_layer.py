"""The three-layer ReLU convex program on general data, certified (docs/math.md §6).

Networks. X is N x d (the caller appends the bias column of ones; :func:`dualviz.relu.patterns.
with_bias`), y in R^N, beta > 0, t > 0. A parallel three-layer ReLU net with scalar output is

    f(X) = sum_j relu(relu(X W_1j) w_2j) w_3j,    W_1j in R^{d x m}, w_2j in R^m, w_3j in R,

with the rescaled regularization: ||W_1j||_F <= t per branch and (beta/2)(||w_2j||^2 + w_3j^2).
The objectives are the squared loss  0.5 ||f(X) - y||^2 + reg  and interpolation  min reg
s.t. f(X) = y. The standard net relu(relu(X W_1) W_2) w_3 has one W_1 (||W_1||_F <= t) and
the same regularizer on (W_2, w_3).

Atoms. Rescaling (w_2j, w_3j) -> (c w_2j, w_3j / c) changes no output, so at the best c a
branch costs beta ||w_2j|| |w_3j|: the parallel net is  min 0.5 ||sum_j a_j phi_j - y||^2 +
beta sum_j |a_j|  over atoms phi = relu(relu(X W_1) u), ||W_1||_F <= t, ||u|| <= 1: a gauge
(infinite-dimensional lasso) problem, hence convex, and with enough branches (Caratheodory:
at most N + 1) its optimum is attained.

The convex program. Let D1_1..D1_P be the first-layer activation patterns of X (all of them:
:func:`dualviz.relu.patterns.patterns`, exact for rank(X) <= 3) and K_k = {w : (2 D1_k - I) X w
>= 0}, on which relu(X w) = D1_k X w. With v_k = w_1k u_k (first-layer neuron k times its
second-layer weight) the first layer's output is relu(X W_1) u = sum_k D1_k X v_k with v_k in
sign(u_k) K_k, and sum_k ||v_k|| <= ||W_1||_F ||u|| <= t, attained by ||w_1k|| = sqrt(t ||v_k||),
|u_k| = sqrt(||v_k|| / t). Neurons of one pattern and sign merge (a cone is convex). So with
groups g = (k, s), w_g in K_k, J_g = s D1_k X and  Xt w := sum_g J_g w_g,  the atoms are
D Xt w / t with sum_g ||w_g|| <= t, where D = diag(1[Xt w >= 0]) is the second-layer pattern,
and the parallel net's optimum is the SOCP over all second-layer patterns D

    min  0.5 || sum_D D Xt (q_D - r_D) - y ||^2 + (beta / t) sum_D (||q_D||_{2,1} + ||r_D||_{2,1})
    s.t. q_D, r_D in prod_g K_g   (layer 1),    (2 D - I) Xt q_D >= 0, (2 D - I) Xt r_D >= 0
         (layer 2),

||q||_{2,1} = sum_g ||q_g||_2; interpolation: min the penalty s.t. the prediction equals y.
D ranges over the 2^N - 1 non-zero 0/1 diagonals: with a bias the first layer's outputs span
R^N, so every sign pattern is a second-layer pattern (a D that is not one only admits q_D = 0).

Dual and certificate. With lam the multiplier of the prediction, the dual is

    squared:        max lam^T y - 0.5 ||lam||^2     interpolation:  max lam^T y
    s.t. v_D(+-lam) = max { +-lam^T D Xt w : w in prod K_g, sum ||w_g|| <= 1,
                            (2 D - I) Xt w >= 0 }  <=  beta / t   for every D,

i.e. |lam^T phi| <= beta for every atom, and at the optimum lam = y - f(X) (squared loss). Every
v_D is priced exactly, without visiting the 2^N patterns one by one, by the leaf programs of
:mod:`dualviz.relu.three_layer_pricing`: for each sign, one SOCP per subset A of the samples where
+-lam > 0, each with a dual point e whose two-layer dual norm F(e) (computed exactly,
:mod:`dualviz.relu.three_layer_geometry`) bounds it from above. lam scaled to dual feasibility,
c lam with c = min(1, (beta / t) / max_D v_D), gives the LOWER bound (its dual value, also
maximised over c); the network rebuilt from the primal point gives the UPPER bound (its
objective, evaluated by a forward pass). lower <= OPT <= upper, OPT the global optimum of the
parallel net when every first-layer pattern is present and every D was priced (`exact`).

Why this is also the standard net's dual. Each unit j of a standard net is an atom times
|w_3j| ||W_2j||, and (beta/2)(||W_2||_F^2 + ||w_3||^2) >= beta sum_j ||W_2j|| |w_3j| (AM-GM),
so every standard net's objective is at least the gauge problem's value: a standard net never
trains below OPT, and its excess is a duality gap (the Lagrangian dual of the standard net has
the same constraint set |lam^T phi| <= beta, its W_1 being shared only in the primal).

Rebuild. One branch per second-layer unit (D, sign sigma) with T = sum_g ||w_g|| > 0: with
v_g = t w_g / T, first-layer neuron omega_g = v_g / ||v_g|| sqrt(t ||v_g||) (||W_1||_F = t),
second-layer weight u_g = s sqrt(||v_g|| / t) sqrt(T / t), outer weight sigma sqrt(T / t): then
relu(relu(X W_1) u) w_3 = sigma D Xt w and the branch costs (beta/2)(||u||^2 + w_3^2) =
(beta / t) T, its share of the program's objective. (The design notes' rebuild has ||u|| = 1
and w_3 = +-T/t: the same function, but its regularizer (beta/2)(1 + T^2/t^2) exceeds beta T/t
unless T = t; balancing u and w_3 fixes that.)

Solver. Column generation: a restricted master program over a few units (D, sigma) with a few
groups each (:func:`dualviz.relu.three_layer_conic.solve_master`), priced as above; violated leaves
bring their unit's pattern D and groups; it stops when no leaf exceeds beta/t by more than a
relative PRICING_TOL, then certifies. Sizes: the leaves of a sign are enumerated when there are
at most 2^12 of them (2^|{i : +-lam_i > 0}|), so every N <= 12 is exact, and larger N when lam's
signs split evenly enough (the result says which); otherwise a sample of leaves is priced
(labelled incomplete: the lower bound then holds only for the patterns priced, the upper bound
is still a real network's objective). Data of rank > 3 get sampled first-layer patterns, also
incomplete. N <= MAX_N, d <= MAX_COLUMNS.

Units: the program is solved for y / ||y|| (squared: beta / ||y||, value times ||y||^2;
interpolation: weight 1, value times (beta / t) ||y||), so its tolerances mean the same at
every scale.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from ..results import SolveStatus
from .three_layer_conic import Groups, MasterBlock, solve_master
from .three_layer_geometry import FirstLayer, first_layer
from .three_layer_pricing import ACTIVE_GROUP, LEAF_LIMIT, Pricer
from .working_set import Certificate

OBJECTIVES = ("squared", "interpolation")
MAX_N = 32  # samples (docs/math.md §6.6)
MAX_COLUMNS = 4  # columns of X, bias included (d <= 3: exact first-layer patterns)
EXACT_COLUMNS = 3  # rank(X) <= 3: the first-layer patterns are enumerated exactly
DEFAULT_TOL = 1e-8  # relative certificate gap called "certified"
PRICING_TOL = 1e-9  # a leaf above (beta / t)(1 + PRICING_TOL) is a violator
RESIDUAL_TOL = 1e-6  # interpolation: the rebuilt network's ||f(X) - y|| / ||y||
DEFAULT_TIME_LIMIT = 60.0
ADD_PER_ROUND = 8  # violators brought into the master per round
MAX_ROUNDS = 200
INTERPOLATION_CUTOFF = 1e-13  # interpolation: only units and groups below this are dropped
ZERO_UNIT = 1e-9  # a unit whose weights sum below this fraction of the largest is zero
PENALTY_GROWTH = 100.0
MAX_PENALTY_STEPS = 4


@dataclass(frozen=True, eq=False)
class Branch:
    """One branch relu(relu(x W1) w2) w3: W1 d x m (||W1||_F = t), w2 (m,), w3 scalar."""

    W1: np.ndarray
    w2: np.ndarray
    w3: float


@dataclass(frozen=True, eq=False)
class ThreeLayerNetwork:
    """A parallel three-layer ReLU net, f(x) = sum_j relu(relu(x W1_j) w2_j) w3_j."""

    branches: tuple[Branch, ...]
    t: float

    @property
    def width(self) -> int:
        """The largest first-layer width of a branch (0 for the zero network)."""
        return max((b.W1.shape[1] for b in self.branches), default=0)

    def predict(self, points) -> np.ndarray:
        """f at the rows of `points` (same columns as X, bias column included), shape (M,)."""
        P = np.atleast_2d(np.asarray(points, dtype=float))
        out = np.zeros(P.shape[0])
        for b in self.branches:
            out += np.maximum(np.maximum(P @ b.W1, 0.0) @ b.w2, 0.0) * b.w3
        return out

    def regularizer(self, beta: float) -> float:
        """(beta/2) sum_j (||w2_j||^2 + w3_j^2); the constraint ||W1_j||_F <= t is checked
        by :meth:`max_first_layer_norm`."""
        return beta / 2 * sum(float(b.w2 @ b.w2) + b.w3 * b.w3 for b in self.branches)

    def max_first_layer_norm(self) -> float:
        return max((float(np.linalg.norm(b.W1)) for b in self.branches), default=0.0)

    def parallel_layers(self, branches: int, width: int, d: int) -> list[np.ndarray] | None:
        """The layers [branches x d x width, branches x width x 1, branches x 1 x 1] of
        dualviz.training.nets.Net (arch "parallel", depth 3, K = 1) computing this network, unused
        units zero (an unused branch's W1 gets norm t on one entry, as the rescaled
        reparametrisation needs); None if the net has too few branches or too narrow ones."""
        if len(self.branches) > branches or self.width > width:
            return None
        W1 = np.zeros((branches, d, width))
        w2 = np.zeros((branches, width, 1))
        w3 = np.zeros((branches, 1, 1))
        for j, b in enumerate(self.branches):
            m = b.W1.shape[1]
            W1[j, :, :m] = b.W1
            w2[j, :m, 0] = b.w2
            w3[j, 0, 0] = b.w3
        for j in range(len(self.branches), branches):
            W1[j, 0, 0] = self.t
        return [W1, w2, w3]


@dataclass(frozen=True)
class ThreeLayerCounts:
    """Sizes of a solve. second_layer_patterns: 2^N - 1 when every one was priced (exact),
    else the number of distinct patterns D that pricing met; leaves: leaf programs priced in
    the final round (both signs); columns: groups in the final master; units: its blocks."""

    first_layer_patterns: int
    second_layer_patterns: int
    columns: int
    units: int
    rounds: int
    leaves: int
    leaf_solves: int


@dataclass(frozen=True, eq=False)
class ThreeLayerResult:
    """The solve (docs/math.md §6.4, §6.6). value = upper when the certificate gap is within tol
    (else None: the bracket [lower, upper] is the answer).

    status: CERTIFIED (gap <= tol), UNCERTIFIED (finished, gap above tol), TIME_LIMIT (the
    bracket so far), STALLED (round limit), INFEASIBLE (interpolation: no network of these
    patterns fits y), SOLVER_ERROR (no restricted solve succeeded; detail says why).
    exact: every first-layer pattern present and every second-layer pattern priced at the
    final lam, so lower <= (the parallel net's global optimum) <= upper. Otherwise `lower`
    bounds only the program over the patterns priced, and is NOT a lower bound of the
    parallel net's optimum; `upper` is always the objective of `network`, a real parallel net,
    hence always an upper bound of that optimum (residual: its ||f(X) - y|| / ||y||)."""

    value: float | None
    status: SolveStatus
    lower: float | None
    upper: float | None
    certified: bool
    exact: bool
    seconds: float
    counts: ThreeLayerCounts
    network: ThreeLayerNetwork | None
    objective: str
    beta: float
    t: float
    residual: float
    max_violation: float  # max_D v_D(lam) / (beta / t) before scaling (1 at optimality)
    message: str
    tol: float = DEFAULT_TOL
    detail: str | None = None  # the solver's own words for a failure

    @property
    def certificate(self) -> Certificate | None:
        """The bracket as the two-layer solver's Certificate (residual 0 for the squared
        loss, as there); None without a network."""
        if self.upper is None and self.lower is None:
            return None
        residual = self.residual if self.objective == "interpolation" else 0.0
        return Certificate(-math.inf if self.lower is None else self.lower,
                           math.inf if self.upper is None else self.upper, residual,
                           self.max_violation, self.tol)

    @property
    def gap(self) -> float | None:
        if self.lower is None or self.upper is None:
            return None
        return self.upper - self.lower

    @property
    def relative_gap(self) -> float | None:
        gap = self.gap
        return None if gap is None else gap / max(abs(self.upper), 1e-300)

    def predict(self, points) -> np.ndarray:
        """The fitted function at the rows of `points` (same columns as X, bias included)."""
        if self.network is None:
            raise ValueError(f"no network: the solve {self.status}")
        return self.network.predict(points)


# -- validation at the boundary ----------------------------------------------------------------

def _check(X, y, beta, t, objective, tol, time_limit) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be 2-D (N x d) with N, d >= 1, got shape {X.shape}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be (N,) = ({X.shape[0]},) (a scalar output), got {y.shape}")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        raise ValueError("X and y must be finite")
    n, d = X.shape
    if n > MAX_N:
        raise ValueError(f"the three-layer solver takes N <= {MAX_N} samples, got N = {n}")
    if d > MAX_COLUMNS:
        raise ValueError(f"the three-layer solver takes d <= {MAX_COLUMNS} columns of X (bias "
                         f"included; exact first-layer patterns for d <= {EXACT_COLUMNS}), "
                         f"got d = {d}")
    for name, value in (("beta", beta), ("t", t)):
        if isinstance(value, bool) or not isinstance(value, int | float) or \
                not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if not (isinstance(tol, int | float) and 0 < tol < 1):
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    if time_limit is not None and not (isinstance(time_limit, int | float) and time_limit > 0):
        raise ValueError(f"time_limit must be > 0 seconds or None, got {time_limit!r}")
    return X, y


# -- rebuild and objective ------------------------------------------------------------------------

def rebuild(layer: FirstLayer, units: list[tuple[int, np.ndarray, np.ndarray]],
            t: float, unit_cutoff: float = ZERO_UNIT,
            group_cutoff: float = ACTIVE_GROUP) -> ThreeLayerNetwork:
    """The network of a primal point: units (sigma, groups (m,), W (m x d)), see the module
    docstring. Units below unit_cutoff of the largest and groups below group_cutoff of their
    unit's largest are dropped (the network's objective, computed from it, is the upper
    bound, so nothing dropped is hidden; interpolation keeps nearly everything, since a
    dropped unit leaves a residual)."""
    branches = []
    sizes = [float(np.linalg.norm(W, axis=1).sum()) for _, _, W in units]
    largest = max(sizes, default=0.0)
    for (sigma, groups, W), size in zip(units, sizes, strict=True):
        if size <= unit_cutoff * largest:
            continue  # an interior point leaves every unit slightly non-zero
        norms = np.linalg.norm(W, axis=1)
        top = float(norms.max(initial=0.0))
        keep = norms > group_cutoff * top if top > 0 else np.zeros(len(norms), dtype=bool)
        if not keep.any():
            continue
        W, norms, groups = W[keep], norms[keep], np.asarray(groups)[keep]
        T = float(norms.sum())
        v_norm = t * norms / T
        signs = np.where(groups % 2 == 0, 1.0, -1.0)
        W1 = (W / norms[:, None] * np.sqrt(t * v_norm)[:, None]).T
        w2 = signs * np.sqrt(v_norm / t) * math.sqrt(T / t)
        branches.append(Branch(W1, w2, float(sigma) * math.sqrt(T / t)))
    return ThreeLayerNetwork(tuple(branches), float(t))


def fit_exactly(net: ThreeLayerNetwork, X, y) -> ThreeLayerNetwork:
    """Interpolation: the rebuilt network with its outer weights moved by the least-norm
    correction that makes f(X) = y to rounding, each branch rebalanced (||w2|| = |w3|).

    The master's solution fits y to the solver's tolerance (~1e-8), so the regularizer of the
    network rebuilt from it can lie slightly BELOW the optimum: no upper bound. Moving the
    outer weights w3 (the branch functions fixed) restores feasibility at a cost change of the
    same order, upward in general; the corrected network is kept only if it fits better."""
    if not net.branches:
        return net
    P = np.atleast_2d(np.asarray(X, dtype=float))
    y = np.asarray(y, dtype=float)
    Phi = np.stack([np.maximum(np.maximum(P @ b.W1, 0.0) @ b.w2, 0.0) for b in net.branches],
                   axis=1)
    a = np.array([b.w3 for b in net.branches])
    # in the units where a branch costs beta |outer weight|: columns of unit ||w2||
    scale = np.array([max(float(np.linalg.norm(b.w2)), 1e-300) for b in net.branches])
    delta = np.linalg.lstsq(Phi / scale, y - Phi @ a, rcond=None)[0] / scale
    new = a + delta
    if np.linalg.norm(Phi @ new - y) >= np.linalg.norm(Phi @ a - y):
        return net
    branches = []
    for b, w3 in zip(net.branches, new, strict=True):
        norm = float(np.linalg.norm(b.w2))
        if norm == 0 or w3 == 0:
            continue
        c = math.sqrt(abs(w3) / norm)  # (c w2, w3 / c) computes the same, at ||c w2|| = |w3/c|
        branches.append(Branch(b.W1, c * b.w2, float(w3) / c))
    return ThreeLayerNetwork(tuple(branches), net.t)


def network_objective(net: ThreeLayerNetwork, X, y, beta: float,
                      objective: str = "squared") -> float:
    """squared: 0.5 ||f(X) - y||^2 + (beta/2) sum_j (||w2_j||^2 + w3_j^2); interpolation: the
    regularizer alone (check the fit separately). inf if a branch has ||W1_j||_F > t."""
    if net.max_first_layer_norm() > net.t * (1 + 1e-9):
        return math.inf
    reg = net.regularizer(beta)
    if objective == "interpolation":
        return reg
    r = net.predict(X) - np.asarray(y, dtype=float)
    return 0.5 * float(r @ r) + reg


def _dual_value(lam: np.ndarray, y: np.ndarray, cap: float, objective: str) -> float:
    """max over 0 <= c <= cap of the dual objective at c lam."""
    a = float(lam @ y)
    if objective == "interpolation":
        return a * cap if a > 0 else 0.0
    b = float(lam @ lam)
    c = min(cap, max(a, 0.0) / b) if b > 0 else 0.0
    return c * a - 0.5 * c * c * b


# -- the solver -----------------------------------------------------------------------------------

@dataclass
class _Unit:
    """A master block under construction: pattern D, outer sign, its groups (sorted)."""

    D: np.ndarray
    sigma: int
    groups: list[int]


def solve_three_layer(X, y, beta: float, t: float = 1.0, *, objective: str = "squared",
                      time_limit: float | None = DEFAULT_TIME_LIMIT, tol: float = DEFAULT_TOL,
                      seed: int = 0, leaf_limit: int = LEAF_LIMIT,
                      layer: FirstLayer | None = None) -> ThreeLayerResult:
    """The parallel three-layer ReLU net's global optimum, certified (module docstring).

    X: N x d with the bias column already appended; y: (N,); objective "squared" or
    "interpolation"; time_limit: seconds after which the bracket found so far is returned
    (status TIME_LIMIT); tol: the relative certificate gap called certified; seed: for the
    sampled patterns (first layer of rank > 3 data, leaves beyond leaf_limit); layer: the
    first-layer patterns, if already computed (three_layer_geometry.first_layer(X)).
    """
    X, y = _check(X, y, beta, t, objective, tol, time_limit)
    started = time.perf_counter()
    beta, t = float(beta), float(t)
    if layer is None:
        layer = first_layer(X, seed=seed)
    s = float(np.linalg.norm(y))
    if s == 0:
        return _zero_result(layer, objective, beta, t, tol, started)
    weight = 1.0 if objective == "interpolation" else beta / (t * s)
    pricer = Pricer(layer, seed=seed, leaf_limit=leaf_limit)
    found = _column_generation(layer, pricer, y / s, weight, objective, time_limit, started)
    return _finish(layer, found, X, y, s, weight, beta, t, objective, tol, started)


def _zero_result(layer, objective, beta, t, tol, started) -> ThreeLayerResult:
    net = ThreeLayerNetwork((), t)
    counts = ThreeLayerCounts(layer.count, 0, 0, 0, 0, 0, 0)
    return ThreeLayerResult(0.0, SolveStatus.CERTIFIED, 0.0, 0.0, True, layer.complete,
                            time.perf_counter() - started, counts, net, objective, beta, t,
                            0.0, 0.0, "y = 0: the zero network is optimal, at value 0", tol)


@dataclass
class _Found:
    """The end of column generation: `why` it stopped, and the last consistent state: the
    master's units and weights W (None before any master solve: the zero network), its lam,
    and the pricing at that lam (bound, complete). penalized: interpolation's penalty had to
    grow (the residual may be forced by the data)."""

    why: str
    units: list[_Unit]
    W: list[np.ndarray] | None
    lam: np.ndarray
    bound: float
    complete: bool
    rounds: int
    leaves: int
    solves: int
    patterns_met: int
    penalized: bool = False


def _blocks(layer: FirstLayer, J: np.ndarray, rows: list, units: list[_Unit]):
    return [MasterBlock(u.D, u.sigma, Groups.of(J, rows, u.groups)) for u in units]


def _two_layer_units(layer: FirstLayer) -> dict[bytes, _Unit]:
    """The two-layer atoms as units: pattern D1_k, group (k, +), both outer signs. A single
    first-layer neuron passes its own pattern through the second ReLU, so the master over
    these units is the two-layer program at weight beta / t: a start near the optimum."""
    units = {}
    for k, mask in enumerate(layer.masks):
        for sigma in (1, -1):
            units[_key(sigma, mask)] = _Unit(mask.copy(), sigma, [2 * k])
    return units


def _key(sigma: int, D: np.ndarray) -> bytes:
    return np.packbits(np.concatenate([[sigma > 0], D])).tobytes()


def _column_generation(layer, pricer, y, weight, objective, time_limit, started,
                       warm: bool = True) -> _Found:
    """Master, pricing, new units, until no leaf is violated (on ||y|| = 1).

    Units whose weights are zero leave the master when others enter; one that comes back
    after leaving stays from then on (dropping and re-adding the same unit could cycle).
    Interpolation is solved in exact-penalty form, weight sum ||w|| + M ||y - f||_1, equal to
    the original once M > ||lam*||_inf; M grows if lam reaches it."""
    J, rows = pricer.J, pricer.rows
    units: dict[bytes, _Unit] = _two_layer_units(layer) if warm else {}
    threshold = weight * (1 + PRICING_TOL)
    interp = objective == "interpolation"
    penalty = 10.0 * float(np.abs(y).max()) + weight
    penalties = rounds = 0
    dropped: set[bytes] = set()
    kept: set[bytes] = set()
    last: _Found | None = None
    why = "round limit"
    while rounds < MAX_ROUNDS:
        rounds += 1
        order = list(units.values())
        W, lam = None, y.copy()  # no unit yet: the zero network, whose lam is y
        if order:
            solved, sol = solve_master(_blocks(layer, J, rows, order), y, weight, objective,
                                       penalty)
            if sol is None:
                why = f"restricted solve failed ({solved})"
                break
            lam, W = sol["lam"], sol["W"]
            for u, e in zip(order, sol["E"], strict=True):
                pricer.remember(u.sigma, u.D, e)
        known = {key: set(u.groups) for key, u in units.items()}
        deadline = None if time_limit is None else started + time_limit
        pricing = pricer.price(lam, threshold, ADD_PER_ROUND, known, deadline)
        last = _Found("", order, W, lam, pricing.bound, pricing.complete, rounds,
                      pricing.leaves, pricing.solves, len(pricer.pool), penalties > 0)
        if time_limit is not None and time.perf_counter() - started > time_limit:
            why = "time limit"
            break
        if pricing.violators:
            _enter(units, pricing.violators, W, dropped, kept)
            continue
        if interp and penalties < MAX_PENALTY_STEPS and \
                float(np.abs(lam).max()) >= penalty * (1 - 1e-6):
            penalty *= PENALTY_GROWTH  # the residual may be forced: try a larger penalty
            penalties += 1
            continue
        why = "optimal"
        break
    if last is None:
        return _Found(why, [], None, y.copy(), math.inf, False, rounds, 0, 0, 0)
    last.why = why
    if interp and last.units:
        # The penalty form fits y to the solver's tolerance (~1e-8), and a network that does
        # not fit y bounds nothing: the same restricted program once more with f(X) = y as
        # equality rows gives the network (lam and the pricing stay those of the penalty
        # form: any lam gives a valid lower bound once scaled).
        _, exact = solve_master(_blocks(layer, J, rows, last.units), y, weight, objective,
                                None)
        if exact is not None:
            last.W = exact["W"]
    return last


def _enter(units: dict, violators, W, dropped: set, kept: set) -> None:
    """Zero units leave (unless they came back once), the violators' units enter or grow."""
    if W is not None:
        sizes = [float(np.linalg.norm(w, axis=1).sum()) for w in W]
        top = max(sizes, default=0.0)
        for key, size in zip(list(units), sizes, strict=True):
            if size <= ZERO_UNIT * top and key not in kept:
                del units[key]
                dropped.add(key)
    for v in violators:
        key = _key(v.sigma, v.D)
        if key in units:
            units[key].groups = sorted(set(units[key].groups) | set(v.groups.tolist()))
        else:
            if key in dropped:
                kept.add(key)
            units[key] = _Unit(v.D.copy(), v.sigma, sorted(v.groups.tolist()))


def _finish(layer, found: _Found, X, y, s, weight, beta, t, objective, tol,
            started) -> ThreeLayerResult:
    """Rebuild the network, bound the optimum from both sides, and say what was proved."""
    n = X.shape[0]
    W = found.W if found.W is not None else []
    net = rebuild(layer, [(u.sigma, np.array(u.groups), w * s)
                          for u, w in zip(found.units, W, strict=True)], t,
                  *((INTERPOLATION_CUTOFF,) * 2 if objective == "interpolation" else ()))
    if objective == "interpolation":
        net = fit_exactly(net, X, y)
    exact = found.complete and layer.complete
    counts = ThreeLayerCounts(layer.count, (1 << n) - 1 if exact else found.patterns_met,
                              sum(len(u.groups) for u in found.units), len(net.branches),
                              found.rounds, found.leaves, found.solves)
    seconds = time.perf_counter() - started
    cap = weight / found.bound if found.bound > 0 else math.inf
    scale = s * s if objective == "squared" else (beta / t) * s
    lower = scale * _dual_value(found.lam, y / s, cap, objective) \
        if math.isfinite(found.bound) else None
    upper = network_objective(net, X, y, beta, objective)
    residual = float(np.linalg.norm(net.predict(X) - y) / s)
    fits = objective == "squared" or residual <= RESIDUAL_TOL
    if objective == "interpolation" and not fits:
        upper = math.inf  # a network that does not fit y bounds nothing
    gap = (upper - lower) / max(abs(upper), 1e-300) if lower is not None and \
        math.isfinite(upper) else math.inf
    certified = abs(gap) <= tol
    detail = None
    if found.why == "time limit":
        status = SolveStatus.TIME_LIMIT
    elif objective == "interpolation" and not fits and found.penalized:
        status = SolveStatus.INFEASIBLE  # every leaf priced, the penalty raised: forced
        detail = f"no network over these patterns fits y (relative residual {residual:.1e})"
    elif found.why == "round limit":
        status, detail = SolveStatus.STALLED, f"{MAX_ROUNDS} rounds of column generation"
    elif found.why != "optimal":
        status, detail = SolveStatus.SOLVER_ERROR, found.why
    else:
        status = SolveStatus.CERTIFIED if certified else SolveStatus.UNCERTIFIED
    message = _message(status, exact, layer, counts, lower, upper, gap, residual, seconds,
                       detail)
    return ThreeLayerResult(upper if certified else None, status, lower,
                            upper if math.isfinite(upper) else None, certified, exact, seconds,
                            counts, net, objective, beta, t, residual,
                            found.bound / weight, message, tol, detail)


def _message(status, exact, layer, counts, lower, upper, gap, residual, seconds,
             detail) -> str:
    """One line for the user: what was proved, the bracket and which way each end bounds,
    the sizes, and what they cover."""
    head = {SolveStatus.CERTIFIED: "certified",
            SolveStatus.UNCERTIFIED: "finished with a certificate gap above tol",
            SolveStatus.TIME_LIMIT: "stopped by the time limit",
            SolveStatus.STALLED: f"stalled ({detail})",
            SolveStatus.INFEASIBLE: ("infeasible: no network fits y (the penalty grew and a "
                                     "residual remains; the dual grows without bound)"),
            SolveStatus.SOLVER_ERROR: f"failed ({detail})"}[status]
    low = "-inf" if lower is None else f"{lower:.10g}"
    high = "inf" if not math.isfinite(upper) else f"{upper:.10g}"
    sizes = (f"relative gap {gap:.1e}, residual {residual:.1e}; "
             f"{counts.first_layer_patterns} first-layer patterns, {counts.units} branches, "
             f"{counts.rounds} rounds, {seconds:.2f} s")
    if exact:
        return (f"{head}: {low} <= D <= {high} ({sizes}); every first- and second-layer "
                "pattern priced: lower and upper bound the parallel net's global optimum D")
    which = "first-layer" if not layer.complete else "second-layer"
    return (f"{head} over the patterns priced ({which} patterns sampled): {high} is the "
            f"objective of a real parallel net, an upper bound of D; {low} bounds only the "
            f"program over the patterns priced, not D ({sizes})")
