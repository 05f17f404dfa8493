"""Bounds are bounds: the weight-decay dual against exact primal values, its limits, and what
the solvers are handed (issue 16).

The weight-decay bound is min_t (beta/2)(L-2) t^2 + D(lam(t)), lam = beta t^{-(L-2)}. As
t -> 0 it tends to 0.5 ||Y||^2 (the zero network), which is also the exact primal value when
beta is large enough for the zero network to be optimal: the bound must not exceed it. The
search used to stop at 1e-3 t_max and report D = 5.749147 > P = 5.747695 (L = 3,
beta = 1000).
"""

import numpy as np
import pytest

from dualviz.config import Experiment
from dualviz.data import validate_arrays
from dualviz.linear.closed_forms import (
    minimize_over_t,
    squared_limits,
    squared_nuclear_whitened,
    t_upper,
)
from dualviz.linear.duals import SquaredNuclear, interpolation_dual
from dualviz.linear.programs import closed_form, solve_dual
from dualviz.runner import run

# Whitened X (X^T X = I) with sigma(X^T Y) = (2.6, 1.45, 0.9), and a part of Y outside the
# range of X chosen so that 0.5 ||Y||^2 = 5.747695 (the issue's numbers).
OUTSIDE = np.sqrt(2 * 5.747695 - (2.6**2 + 1.45**2 + 0.9**2))
WX = np.vstack([np.eye(3), np.zeros((2, 3))])
WY = np.vstack([np.diag([2.6, 1.45, 0.9]), [[OUTSIDE, 0.0, 0.0], [0.0, 0.0, 0.0]]])
HALF_Y2 = 0.5 * float(np.sum(WY**2))


def whitened(depth: int, beta: float, **kw) -> Experiment:
    return Experiment(depth=depth, beta=beta, objective="squared",
                      regularization="weight-decay", n=5, d=3, k=3, x_rank=3, whiten=True, **kw)


def test_the_instance_is_the_issues():
    assert abs(HALF_Y2 - 5.747695) <= 1e-12


@pytest.mark.parametrize("depth, beta", [(3, 1000.0), (3, 3.0), (5, 20.0), (4, 50.0)])
def test_large_beta_bound_is_the_zero_network_exactly(depth, beta):
    """At these beta every singular value is cut (prox = 0): P = 0.5 ||Y||^2 exactly, and the
    bound, closed form and CVXPY alike, is that t -> 0 limit, not above it."""
    exp = whitened(depth, beta)
    closed = closed_form(exp, WX, WY)
    assert closed.primal == pytest.approx(HALF_Y2, rel=1e-15)
    assert closed.dual <= HALF_Y2
    assert closed.dual == pytest.approx(HALF_Y2, rel=1e-12)
    dual = solve_dual(exp, WX, WY)
    assert dual.value is not None and dual.value <= HALF_Y2 * (1 + 1e-12)
    assert dual.value == pytest.approx(HALF_Y2, rel=1e-9)


@pytest.mark.parametrize("depth", [3, 4, 5])
def test_bound_never_exceeds_the_closed_form_primal(depth):
    exp = whitened(depth, 0.5)
    closed = closed_form(exp, WX, WY)
    dual = solve_dual(exp, WX, WY)
    assert closed.dual <= closed.primal
    assert dual.value <= closed.primal
    assert dual.lower <= dual.value <= dual.upper
    assert dual.value == pytest.approx(closed.dual, rel=1e-8)


def test_general_x_large_beta_is_bounded_by_the_zero_network():
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((9, 4)), rng.standard_normal((9, 3))
    for depth, beta in ((3, 50.0), (5, 20.0), (4, 3.0)):
        exp = Experiment(depth=depth, beta=beta, objective="squared",
                         regularization="weight-decay", n=9, d=4, k=3, x_rank=4)
        dual = solve_dual(exp, X, Y)
        assert dual.value is not None, dual.status
        assert dual.value <= 0.5 * np.sum(Y**2) * (1 + 1e-12)


def test_search_is_certified_on_a_grid():
    """The reported lower end is below every value of the bracket on a fine grid, and the
    bracket is tight."""
    beta, depth = 0.5, 3
    search = minimize_over_t(lambda lam: squared_nuclear_whitened(WX, WY, lam)[0], beta, depth,
                             t_upper(WX, WY, depth), **squared_limits(WX, WY))
    ts = np.geomspace(1e-4, 1e2, 20001)
    grid = [beta / 2 * (depth - 2) * t * t
            + squared_nuclear_whitened(WX, WY, beta * t ** (-(depth - 2)))[0] for t in ts]
    assert search.lower <= min(grid)
    assert search.upper - search.lower <= 1e-11 * search.upper
    assert min(grid) - search.lower <= 1e-9 * search.upper


def test_no_solve_where_the_zero_matrix_is_optimal(monkeypatch):
    """lam >= ||X^T Y||_2: W = 0 is optimal, D = 0.5 ||Y||^2 without calling the solver."""
    program = SquaredNuclear(WX, WY)
    monkeypatch.setattr(program.problem, "solve", lambda *a, **k: pytest.fail("solved"))
    assert program(1e10) == HALF_Y2
    assert program(2.6) == HALF_Y2


def test_programs_are_scale_invariant():
    rng = np.random.default_rng(3)
    X, Y = rng.standard_normal((6, 8)), rng.standard_normal((6, 2))
    base, _ = interpolation_dual(X, Y, 1.0)
    scaled, _ = interpolation_dual(1e-3 * X, 1e4 * Y, 1e-4)
    assert scaled == pytest.approx(base * 1e4 * 1e-4 / 1e-3, rel=1e-7)
    program, big = SquaredNuclear(X, Y), SquaredNuclear(1e3 * X, 1e3 * Y)
    # D(lam; aX, bY) = b^2 D(lam / (a b); X, Y)
    assert big(0.3 * 1e6) == pytest.approx(1e6 * program(0.3), rel=1e-7)


@pytest.mark.parametrize("objective", ["interpolation", "squared"])
@pytest.mark.parametrize("regularization", ["weight-decay", "rescaled"])
def test_zero_target_linear_is_exactly_zero(objective, regularization):
    rng = np.random.default_rng(0)
    data = validate_arrays(rng.standard_normal((6, 3)), np.zeros((6, 2)), "zero")
    exp = Experiment.from_values({"data": data.digest, "objective": objective,
                                  "regularization": regularization, "depth": 4})[0]
    result = run(exp, data)
    assert result.primal.value == 0.0
    assert result.primal.residual == 0.0
    assert result.primal.status == "optimal"
    assert result.dual.value == 0.0
    assert result.closed.dual == 0.0
    assert result.failure is None
