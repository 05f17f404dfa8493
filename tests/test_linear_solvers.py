"""docs/math.md §9 reproduced three ways (closed form, CVXPY, training), and the paper's
contrasts."""

import numpy as np
import pytest

from dualviz.config import Experiment
from dualviz.data import synthetic
from dualviz.linear.closed_forms import optimal_t, prox_schatten, prox_threshold
from dualviz.linear.programs import closed_form, solve_dual
from dualviz.runner import run
from dualviz.training.primal import RESIDUAL_TOL, solve_primal, train

HA_X = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1.0]])
HA_Y = np.array([[2, 0], [0, 1], [1, 1.0]])
HC_X = np.vstack([np.eye(3), np.zeros((2, 3))])
HC_Y = np.array([[3, 0], [0, 1], [0, 0], [1, 1], [2, 0.0]])

# (regularization, beta, t, L, P, D) from docs/math.md §9
HA_CASES = [
    ("rescaled", 1.0, 1.0, 2, 3.3315191000, 3.3315191000),
    ("rescaled", 1.0, 1.0, 3, 4.6464895083, 3.3315191000),
    ("rescaled", 1.0, 2.0, 3, 2.3232447542, 1.6657595500),
    ("rescaled", 0.5, 1.0, 4, 3.2624779838, 1.6657595500),
    ("weight-decay", 1.0, 1.0, 3, 4.1767764639, 3.3459501326),
    ("weight-decay", 1.0, 1.0, 4, 5.1087986719, 3.6504898849),
]
HC_CASES = [(2, 4.75, 4.75, (2.5, 0.5)), (3, 4.9974168307, 4.7846914359, (2.63814278, 0.0)),
            (4, 5.1881579191, 4.9330059669, (2.69545315, 0.0))]


def ha(reg, beta, t, depth, **kw):
    return Experiment(regularization=reg, beta=beta, t=t, depth=depth, width=4, branches=4,
                      iterations=1500, **kw)


def rel(a, b):
    return abs(a - b) / abs(b)


@pytest.mark.parametrize(("reg", "beta", "t", "depth", "P", "D"), HA_CASES)
def test_ha_closed_form(reg, beta, t, depth, P, D):
    cf = closed_form(ha(reg, beta, t, depth), HA_X, HA_Y)
    assert rel(cf.primal, P) < 1e-8
    assert rel(cf.dual, D) < 1e-8
    np.testing.assert_allclose(cf.spectrum, [2.14035951, 1.19115959], rtol=1e-8)


@pytest.mark.parametrize(("reg", "beta", "t", "depth", "P", "D"), HA_CASES)
def test_ha_cvxpy_dual(reg, beta, t, depth, P, D):
    result = solve_dual(ha(reg, beta, t, depth), HA_X, HA_Y)
    assert result.status == "optimal"
    assert rel(result.value, D) < 1e-6


@pytest.mark.parametrize(("reg", "beta", "t", "depth", "P", "D"), HA_CASES)
def test_ha_training_reaches_closed_form(reg, beta, t, depth, P, D):
    result = solve_primal(ha(reg, beta, t, depth), HA_X, HA_Y)
    assert result.residual <= RESIDUAL_TOL
    assert rel(result.value, P) < 1e-4


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_ha_parallel_rescaled_has_zero_gap(depth):
    exp = ha("rescaled", 1.0, 1.0, depth, arch="parallel")
    assert rel(closed_form(exp, HA_X, HA_Y).primal, 3.3315191000) < 1e-8
    assert rel(solve_primal(exp, HA_X, HA_Y).value, 3.3315191000) < 1e-4


def test_ha_parallel_weight_decay_keeps_the_gap():
    exp = ha("weight-decay", 1.0, 1.0, 3, arch="parallel")
    trained = solve_primal(exp, HA_X, HA_Y).value
    dual = solve_dual(exp, HA_X, HA_Y).value
    assert rel(trained, 4.1767764639) < 1e-4  # the standard net's value, not the dual's
    assert trained - dual > 0.8


@pytest.mark.parametrize(("depth", "P", "D", "s"), HC_CASES)
def test_hc_squared_weight_decay_three_ways(depth, P, D, s):
    exp = Experiment(objective="squared", regularization="weight-decay", beta=0.5, depth=depth,
                     width=3, iterations=1500)
    cf = closed_form(exp, HC_X, HC_Y)
    assert rel(cf.primal, P) < 1e-8
    assert rel(cf.dual, D) < 1e-8
    np.testing.assert_allclose(cf.spectrum, s, atol=1e-8)
    dual = solve_dual(exp, HC_X, HC_Y)
    assert dual.status == "optimal"
    assert rel(dual.value, D) < 1e-6
    trained = solve_primal(exp, HC_X, HC_Y)
    assert rel(trained.value, P) < 1e-4
    np.testing.assert_allclose(trained.singular_values[: len(s)], s, atol=1e-4)


def test_prox_values_and_thresholds():
    assert prox_threshold(0.5, 4) == pytest.approx(1.5, abs=1e-12)
    assert prox_schatten(1.6, 0.5, 4) == pytest.approx(1.1295447989, abs=1e-9)
    assert prox_schatten(2.0, 0.5, 4) == pytest.approx(1.6053779405, abs=1e-9)
    assert prox_schatten(1.49, 0.5, 4) == 0.0
    thresholds = [prox_threshold(0.5, L) for L in (2, 3, 4, 6)]
    np.testing.assert_allclose(thresholds, [0.5, 1.189, 1.5, 1.895], atol=1e-3)


def test_optimal_t_rule_matches_a_grid_search():
    C, beta, depth = 3.3315191, 1.0, 4
    value, t_star = optimal_t(C, beta, depth)
    ts = np.linspace(0.2, 5, 200001)
    grid = beta / 2 * (depth - 2) * ts**2 + C * ts ** (-(depth - 2))
    assert value == pytest.approx(grid.min(), rel=1e-9)
    assert t_star == pytest.approx(ts[grid.argmin()], abs=1e-4)


def synthetic_run(**kw):
    exp = Experiment(iterations=800, restarts=2, **kw)
    return run(exp)


@pytest.mark.parametrize("arch", ["standard", "parallel"])
def test_rank_one_target_has_zero_gap(arch):
    result = synthetic_run(arch=arch, depth=4, target_rank=1, spectrum="equal")
    assert result.closed.primal == pytest.approx(result.closed.dual, rel=1e-10)
    assert abs(result.relative_gap) < 1e-4


def test_rank_two_standard_gap_matches_r_power():
    # Equal singular values: P/D = r^{(L-2)/2} = sqrt(2) for r = 2, L = 3.
    result = synthetic_run(depth=3, target_rank=2, spectrum="equal")
    assert result.primal.value / result.dual.value == pytest.approx(np.sqrt(2), rel=1e-4)
    assert result.closed.primal / result.closed.dual == pytest.approx(np.sqrt(2), rel=1e-10)


def test_parallel_rescaled_closes_the_gap_on_synthetic_data():
    result = synthetic_run(arch="parallel", depth=4, target_rank=3, spectrum="linear")
    assert abs(result.relative_gap) < 1e-4


def test_too_few_branches_cannot_interpolate():
    result = synthetic_run(arch="parallel", branches=1, depth=3, target_rank=2)
    assert result.closed.primal is None
    assert result.primal.value is None
    assert all(not r.feasible for r in result.primal.restarts)


def test_lth_power_equals_rescaled_with_t_one():
    lth = closed_form(ha("lth-power", 1.0, 5.0, 3), HA_X, HA_Y)
    resc = closed_form(ha("rescaled", 1.0, 1.0, 3), HA_X, HA_Y)
    assert lth.primal == pytest.approx(resc.primal, rel=1e-12)
    trained = solve_primal(ha("lth-power", 1.0, 1.0, 3), HA_X, HA_Y)
    assert rel(trained.value, resc.primal) < 1e-4


def test_training_snapshots_are_live_and_reproducible():
    exp = Experiment(iterations=200, restarts=2)
    data = synthetic(exp.n, exp.d, exp.k, exp.x_rank, exp.target_rank, exp.spectrum, exp.noise,
                     exp.whiten, exp.seed, interpolation=True)
    first = list(train(exp, data.X, data.Y))
    second = list(train(exp, data.X, data.Y))
    assert len(first) >= 2 * 5  # several snapshots per restart
    assert [s.objective for s in first] == [s.objective for s in second]
    assert {s.restart for s in first} == {0, 1}
    assert sum(s.done for s in first) == 2
    iterations = [s.iteration for s in first if s.restart == 0]
    assert iterations == sorted(iterations)


def test_infeasible_interpolation_is_reported_not_computed():
    X = np.array([[1.0, 0.0], [0.0, 0.0]])
    Y = np.array([[1.0], [1.0]])
    result = solve_dual(Experiment(), X, Y)
    assert result.value is None
    assert result.status == "unbounded"


def test_squared_loss_whitened_parallel_reaches_the_soft_threshold_and_standard_stays_above():
    common = dict(objective="squared", regularization="rescaled", whiten=True, n=30, d=5, k=4,
                  target_rank=3, spectrum="linear", noise=0.3, beta=0.4, t=1.3, depth=3,
                  iterations=2000, restarts=3, branches=16)
    parallel = run(Experiment(arch="parallel", **common))
    assert parallel.closed.primal == pytest.approx(parallel.dual.value, rel=1e-8)
    assert rel(parallel.primal.value, parallel.closed.primal) < 1e-6
    standard = run(Experiment(arch="standard", **common))
    assert standard.closed.primal is None  # no closed form: trained only
    assert standard.primal.value > standard.dual.value * (1 + 1e-3)
