"""Three-layer ReLU nets on rank-one data X = c a^T (docs/math.md §5): closed forms, CVXPY,
training.

The closed forms are checked three ways: the 1-D minimisation over theta against its closed
form (alpha.gamma <= 0) and against the stationarity quartic in x = tan(theta); Phi and D
against CVXPY programs; and P (standard net) and D (parallel net) against training.

Training note: with the augmented Lagrangian's penalty allowed up to 1e8, L-BFGS stalled
before the first layer had put its whole norm budget on the direction a (||W_1^T a|| at
0.66-0.99 of T) and restarts stopped 1e-5..4e-1 above the optimum. With the penalty capped at
1e3 (primal.RHO_MAX) all 8 restarts of every instance below reached the closed form within 4e-5
(most within 1e-7), so one restart suffices in the tests.
"""

import cvxpy as cp
import numpy as np
import pytest

from dualviz.config import Experiment
from dualviz.relu.rank_one import (
    minimize_rank_one_theta,
    phi_rank_one,
    rank_one_opposed_value,
    rank_one_split,
    rank_one_standard_objective,
    rank_one_three_layer,
)
from dualviz.training.primal import RESIDUAL_TOL, solve_primal

A = np.array([1.0, -0.5, 2.0])
C_MIXED = np.array([1.0, -2.0, 0.5, -1.0, 1.5, -0.5, 2.0, -1.5])
C_POS = np.array([1.0, 2.0, 0.5, 1.0, 1.5, 0.3])


def targets(c, alpha, gamma):
    """Y = c+ alpha^T + c- gamma^T."""
    return np.outer(np.maximum(c, 0), alpha) + np.outer(np.maximum(-c, 0), gamma)


# name -> (c, Y, beta, t)
INSTANCES = {
    "one-sign K=1": (C_POS, 1.3 * C_POS[:, None], 1.0, 1.0),
    "y=c K=1": (C_MIXED, C_MIXED[:, None], 1.0, 1.0),
    "collinear K=2": (C_MIXED, targets(C_MIXED, [1.0, 0.5], [2.0, 1.0]), 0.5, 2.0),
    "acute K=2": (C_MIXED, targets(C_MIXED, [1.0, 2.0], [1.5, 0.3]), 1.0, 1.0),
    "obtuse K=2": (C_MIXED, targets(C_MIXED, [1.0, 0.5], [-1.0, 1.0]), 2.0, 0.5),
    "opposite K=2": (C_MIXED, targets(C_MIXED, [1.0, 0.5], [-2.0, -1.0]), 1.0, 1.0),
    "y=|c| K=1": (C_MIXED, np.abs(C_MIXED)[:, None], 1.0, 1.0),
}


def rel(a, b):
    return abs(a - b) / abs(b)


# -- closed forms -----------------------------------------------------------------------------


def test_sign_changing_scalar_target_gives_sqrt2():
    # docs/math.md §5: y = c with c of both signs: alpha = 1, gamma = -1, P/D = sqrt(2).
    for beta, t in ((1.0, 1.0), (0.3, 2.5)):
        r = rank_one_three_layer(C_MIXED, A, C_MIXED, beta, t)
        assert r.feasible and not r.zero_gap
        np.testing.assert_allclose([r.alpha[0], r.gamma[0]], [1.0, -1.0], rtol=1e-12)
        assert rel(r.T, t * np.linalg.norm(A)) < 1e-12
        assert r.dual == pytest.approx(2 * beta / r.T, rel=1e-12)
        assert r.standard / r.dual == pytest.approx(np.sqrt(2), rel=1e-12)
        assert r.theta == pytest.approx(np.pi / 4, rel=1e-12)
        assert "1.41421" in r.explanation


@pytest.mark.parametrize("name", ["one-sign K=1", "collinear K=2", "y=|c| K=1"])
def test_zero_gap_cases(name):
    c, Y, beta, t = INSTANCES[name]
    r = rank_one_three_layer(c, A, Y, beta, t)
    assert r.feasible and r.zero_gap
    assert r.standard == pytest.approx(r.dual, rel=1e-12)
    # the 1-D search on its own agrees with D
    value, _ = minimize_rank_one_theta(r.alpha, r.gamma, r.T)
    assert rel(beta * value, r.dual) < 1e-10
    assert "Zero duality gap" in r.explanation or "zero duality gap" in r.explanation


def test_one_sign_c_and_a_zero_side():
    r = rank_one_three_layer(-C_POS, A, np.outer(-C_POS, [1.0, 2.0]), 1.0, 1.0)
    np.testing.assert_allclose(r.alpha, 0.0)
    np.testing.assert_allclose(r.gamma, [-1.0, -2.0])
    assert r.zero_gap and r.theta == pytest.approx(np.pi / 2)
    assert r.dual == pytest.approx(np.sqrt(5) / np.linalg.norm(A), rel=1e-12)
    # c of both signs but nothing to fit on the c < 0 side
    r = rank_one_three_layer(C_MIXED, A, targets(C_MIXED, [1.0, 2.0], [0.0, 0.0]), 1.0, 1.0)
    assert r.zero_gap and r.theta == 0.0 and r.standard == r.dual


def test_opposed_closed_form_matches_minimisation():
    rng = np.random.default_rng(1)
    for _ in range(20):
        alpha, gamma = rng.normal(size=3), rng.normal(size=3)
        if alpha @ gamma > 0:
            gamma = -gamma
        T = float(rng.uniform(0.2, 3.0))
        closed, theta_closed = rank_one_opposed_value(alpha, gamma, T)
        value, theta = minimize_rank_one_theta(alpha, gamma, T)
        assert rel(value, closed) < 1e-12
        assert theta == pytest.approx(theta_closed, abs=1e-6)
        assert rank_one_standard_objective(theta_closed, alpha, gamma, T) == pytest.approx(
            closed, rel=1e-13)


def test_acute_minimisation_matches_quartic():
    # alpha.gamma > 0: with x = tan(theta), T^2 Phi^2 = A^2(1+x^2) + G^2(1+x^-2) + 2s(x + 1/x),
    # stationary at A^2 x^4 + s x^3 - s x - G^2 = 0 (a single positive root).
    rng = np.random.default_rng(2)
    for _ in range(20):
        alpha, gamma = rng.normal(size=2), rng.normal(size=2)
        if alpha @ gamma < 0:
            gamma = -gamma
        T = float(rng.uniform(0.2, 3.0))
        na, ng = np.linalg.norm(alpha), np.linalg.norm(gamma)
        s = abs(alpha[0] * gamma[1] - alpha[1] * gamma[0])
        roots = np.roots([na**2, s, 0.0, -s, -(ng**2)])
        x = max(r.real for r in roots if abs(r.imag) < 1e-9 and r.real > 0)
        exact = np.sqrt(na**2 * (1 + x**2) + ng**2 * (1 + x**-2) + 2 * s * (x + 1 / x)) / T
        value, theta = minimize_rank_one_theta(alpha, gamma, T)
        assert rel(value, exact) < 1e-12
        assert theta == pytest.approx(np.arctan(x), abs=1e-6)
        # between D and sqrt(2) D
        assert (na + ng) / T * (1 - 1e-12) <= value <= np.sqrt(2) * (na + ng) / T


def test_ratio_between_one_and_sqrt2_and_zero_gap_rule():
    rng = np.random.default_rng(3)
    for k in (1, 2, 3):
        for _ in range(10):
            Y = targets(C_MIXED, rng.normal(size=k), rng.normal(size=k))
            r = rank_one_three_layer(C_MIXED, A, Y, float(rng.uniform(0.1, 2)), 1.5)
            assert 1 - 1e-12 <= r.standard / r.dual <= np.sqrt(2) + 1e-12
            assert r.zero_gap == (k == 1 and r.alpha[0] * r.gamma[0] > 0)
    # gamma a positive multiple of alpha (K = 3): no gap
    r = rank_one_three_layer(C_MIXED, A, targets(C_MIXED, [1.0, -2, 3], [0.5, -1, 1.5]), 1, 1)
    assert r.zero_gap and r.standard == pytest.approx(r.dual, rel=1e-12)


def test_phi_formula():
    a1, a2 = np.array([3.0, 0]), np.array([0, 4.0])  # orthogonal: the nuclear norm 3 + 4
    assert phi_rank_one(a1, a2) == pytest.approx(7.0)
    # collinear: the nuclear norm of a rank-one matrix is its Frobenius norm
    assert phi_rank_one(a1, 2 * a1) == pytest.approx(3 * np.sqrt(5), rel=1e-12)
    assert phi_rank_one(a1, -2 * a1) == pytest.approx(9.0)  # opposite: one neuron each
    a2 = np.array([1.0, 1.0])
    assert phi_rank_one(a1, a2) == pytest.approx(np.sqrt(9 + 2 + 2 * 3), rel=1e-12)


def _phi_cvxpy(a1, a2):
    """min (tr Q + tr R)/2 s.t. [[Q, M^T], [M, R]] PSD, Q >= 0 entrywise, M = [a1 a2].

    Q = P^T P of a factorization W^T P = M with P >= 0: a 2 x 2 doubly nonnegative matrix is
    completely positive, so this SDP is exactly the nonnegative factorization behind Phi.
    """
    M = np.column_stack([a1, a2])
    k = M.shape[0]
    Z = cp.Variable((2 + k, 2 + k), PSD=True)
    cons = [Z[2:, :2] == M, Z[:2, :2] >= 0]
    prob = cp.Problem(cp.Minimize(cp.trace(Z) / 2), cons)
    prob.solve(solver="CLARABEL")
    return prob.value


def test_phi_against_sdp():
    rng = np.random.default_rng(4)
    for k in (2, 3):
        for _ in range(4):
            a1, a2 = rng.normal(size=k), rng.normal(size=k)
            assert rel(phi_rank_one(a1, a2), _phi_cvxpy(a1, a2)) < 1e-6


@pytest.mark.parametrize("name", list(INSTANCES))
def test_dual_against_socp(name):
    # D = max tr(Lambda^T Y) s.t. ||Lambda^T c+|| <= beta/T, ||Lambda^T c-|| <= beta/T
    c, Y, beta, t = INSTANCES[name]
    r = rank_one_three_layer(c, A, Y, beta, t)
    lam = cp.Variable(Y.shape)
    cons = [cp.norm(lam.T @ np.maximum(c, 0)) <= beta / r.T,
            cp.norm(lam.T @ np.maximum(-c, 0)) <= beta / r.T]
    prob = cp.Problem(cp.Maximize(cp.trace(lam.T @ Y)), cons)
    prob.solve(solver="CLARABEL")
    assert rel(prob.value, r.dual) < 1e-7


def test_infeasible_and_degenerate():
    Y = targets(C_MIXED, [1.0], [2.0])
    Y[0, 0] += 0.1
    r = rank_one_three_layer(C_MIXED, A, Y, 1.0, 1.0)
    assert not r.feasible and r.dual is None and r.standard is None and r.theta is None
    assert not r.zero_gap and "can interpolate" in r.explanation
    assert rank_one_split(C_MIXED, Y)[2] > 0
    # c with zeros: those rows must have zero targets
    c = np.array([1.0, 0.0, -1.0])
    assert rank_one_three_layer(c, A, [1.0, 0.0, 2.0], 1, 1).feasible
    assert not rank_one_three_layer(c, A, [1.0, 0.5, 2.0], 1, 1).feasible
    # X = 0
    assert not rank_one_three_layer(np.zeros(4), A, np.ones(4), 1, 1).feasible
    assert not rank_one_three_layer(C_POS, np.zeros(3), C_POS, 1, 1).feasible
    zero = rank_one_three_layer(C_POS, A, np.zeros(6), 1, 1)
    assert zero.feasible and zero.dual == zero.standard == 0.0 and zero.zero_gap
    with pytest.raises(ValueError):
        rank_one_three_layer(C_POS, A, C_POS, 0.0, 1.0)


def test_result_shapes_and_frozen():
    r = rank_one_three_layer(C_MIXED, A, C_MIXED, 1.0, 1.0)  # Y of shape (N,)
    assert r.alpha.shape == r.gamma.shape == (1,)
    r2 = rank_one_three_layer(C_MIXED, A, C_MIXED[:, None], 1.0, 1.0)
    assert r2.standard == r.standard
    with pytest.raises(AttributeError):
        r.dual = 0.0  # type: ignore[misc]


# -- training ---------------------------------------------------------------------------------


def _train(arch, c, Y, beta, t, restarts=1):
    exp = Experiment(activation="relu", depth=3, arch=arch, regularization="rescaled",
                     objective="interpolation", beta=beta, t=t, width=8, branches=8,
                     iterations=3000, restarts=restarts, seed=0)
    return solve_primal(exp, np.outer(c, A), Y)


@pytest.mark.parametrize("arch", ["standard", "parallel"])
@pytest.mark.parametrize("name", list(INSTANCES))
def test_training_reaches_closed_form(name, arch):
    # Standard net -> P, parallel net -> D, with the shipped training settings.
    c, Y, beta, t = INSTANCES[name]
    r = rank_one_three_layer(c, A, Y, beta, t)
    expected = r.standard if arch == "standard" else r.dual
    result = _train(arch, c, Y, beta, t)
    assert result.residual <= RESIDUAL_TOL
    assert rel(result.value, expected) < 1e-4


@pytest.mark.parametrize(("name", "arch"), [("y=c K=1", "standard"), ("obtuse K=2", "parallel")])
def test_training_never_beats_closed_form(name, arch):
    # Restarts may stop above the optimum, never below it.
    c, Y, beta, t = INSTANCES[name]
    r = rank_one_three_layer(c, A, Y, beta, t)
    expected = r.standard if arch == "standard" else r.dual
    result = _train(arch, c, Y, beta, t, restarts=3)
    feasible = [x.value for x in result.restarts if x.feasible]
    assert feasible and min(feasible) >= expected * (1 - 1e-6)
