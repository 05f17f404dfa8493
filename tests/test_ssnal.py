"""The semismooth Newton solver of the restricted squared program (dualviz.relu.ssnal) and the cone
projections it uses (dualviz.relu.cones), against CVXPY; and the working set run with it."""

import cvxpy as cp
import numpy as np
import pytest
from shared import CASES, instance

import dualviz.relu.working_set as ws
from dualviz.relu.cones import project_on_cone
from dualviz.relu.convex import two_layer_convex
from dualviz.relu.ssnal import solve_squared


def restricted(n: int, d: int, seed: int, scale: float, count: int):
    """An instance, its `count` columns most violated at lambda = y, and their arrays."""
    X, y, found = instance(n, d, seed)
    beta = scale * n
    pricer = ws._Pricer(X, found.masks)
    columns = [(i, s) for _, i, s in pricer.violators(y, beta, count, set())]
    patterns = np.array([i for i, _ in columns])
    signs = np.array([s for _, s in columns], dtype=float)
    J = signs[:, None, None] * found.masks[patterns][:, :, None] * X
    A = (2.0 * found.masks[patterns] - 1.0)[:, :, None] * X
    return X, y, beta, J, A, pricer.row_norms


def cvxpy_restricted(J, A, y, beta) -> float:
    U = cp.Variable((J.shape[0], J.shape[2]))
    prediction = sum(J[c] @ U[c] for c in range(J.shape[0]))
    cost = 0.5 * cp.sum_squares(y - prediction) + beta * cp.sum(cp.norm(U, 2, axis=1))
    problem = cp.Problem(cp.Minimize(cost), [A[c] @ U[c] >= 0 for c in range(J.shape[0])])
    problem.solve(solver="CLARABEL", tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    return float(problem.value)


def objective(J, y, beta, U) -> float:
    residual = y - np.einsum("cnd,cd->n", J, U)
    return 0.5 * residual @ residual + beta * np.linalg.norm(U, axis=1).sum()


@pytest.mark.parametrize(("n", "d", "seed", "scale"), [(40, 3, 0, 0.02), (60, 4, 1, 0.1)])
def test_newton_solves_the_restricted_program_to_cvxpy_accuracy(n, d, seed, scale):
    X, y, beta, J, A, norms = restricted(n, d, seed, scale, 12)
    m = J.shape[0]
    cold = solve_squared(J, A, norms, y, beta, np.zeros((m, X.shape[1])), [None] * m)
    assert cold.converged
    assert objective(J, y, beta, cold.U) == pytest.approx(cvxpy_restricted(J, A, y, beta),
                                                          rel=1e-8)
    # every u_c lies in its cone, and lambda is the residual of that U
    assert (np.einsum("cnd,cd->cn", A, cold.U) >= -1e-10 * np.abs(cold.U).max()).all()
    assert np.allclose(cold.lam, y - np.einsum("cnd,cd->n", J, cold.U), atol=1e-12)
    # warm started from its own answer (after moving beta a little) it takes fewer steps
    moved = solve_squared(J, A, norms, y, beta * 1.05, cold.U, [None] * m)
    again = solve_squared(J, A, norms, y, beta * 1.05, np.zeros_like(cold.U), [None] * m)
    assert moved.converged and again.converged
    assert moved.newton_steps < again.newton_steps
    assert objective(J, y, 1.05 * beta, moved.U) == pytest.approx(
        objective(J, y, 1.05 * beta, again.U), rel=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_projection_on_a_cone_is_cvxpys_from_any_starting_face(seed):
    rng = np.random.default_rng(seed)
    d = 3 + seed
    Z = rng.standard_normal((40, d))
    A = np.sign(Z @ rng.standard_normal(d))[:, None] * Z  # a cone with interior
    norms = np.linalg.norm(A, axis=1)
    v = rng.standard_normal(d) * 3
    u = cp.Variable(d)
    cp.Problem(cp.Minimize(cp.sum_squares(u - v)), [A @ u >= 0]).solve(solver="CLARABEL")
    cold, face = project_on_cone(A, v, norms)
    assert cold == pytest.approx(u.value, abs=1e-7)
    assert np.abs(A[face] @ cold).max(initial=0.0) <= 1e-10 * np.linalg.norm(v)
    # the right face, a wrong one and a nearby point's all end at the same projection
    for start in (face, np.arange(3), project_on_cone(A, v + 0.1, norms)[1]):
        warm, _ = project_on_cone(A, v, norms, start)
        assert warm == pytest.approx(cold, abs=1e-10)


@pytest.mark.parametrize(("n", "d", "seed", "scale", "objective"),
                         [case for case in CASES if case[4] == "squared" and case[0] <= 20])
def test_the_working_set_with_newton_matches_cvxpy(monkeypatch, n, d, seed, scale, objective):
    """Newton's solver normally starts at N = 300; here on the small cases, as early as it
    may, so that its answers meet CVXPY's (the N = 500 figures are bench_relu's)."""
    monkeypatch.setattr(ws, "NEWTON_MIN_N", 0)
    monkeypatch.setattr(ws, "NEWTON_EXCESS", np.inf)
    X, y, found = instance(n, d, seed)
    beta = scale * n
    ref = two_layer_convex(X, y, beta, found.masks, objective=objective, complete=found.complete)
    res = ws.solve_working_set(X, y, beta, found.masks)
    assert res.newton_rounds == res.rounds  # no round fell back to the interior point
    assert res.status == "certified" and res.certificate.certified
    assert res.value == pytest.approx(ref.value, rel=1e-8)
    assert res.certificate.lower <= ref.value * (1 + 1e-9)
