"""The certified working-set solver of the two-layer ReLU program (issue 8) against CVXPY."""

import cvxpy as cp
import numpy as np
import pytest
from shared import CASES, instance

from dualviz.config import Experiment
from dualviz.relu.bounds import relu_bounds
from dualviz.relu.cones import cone_violation
from dualviz.relu.convex import Network, network_objective, rebuild, two_layer_convex
from dualviz.relu.patterns import patterns, with_bias
from dualviz.relu.working_set import (
    Certificate,
    _Pricer,
    certify,
    columns_from_keys,
    columns_to_keys,
    network_columns,
    solve_working_set,
)
from dualviz.runner import dataset_for
from dualviz.service.store import Store


@pytest.mark.parametrize(("n", "d", "seed", "scale", "objective"), CASES)
def test_same_answer_as_cvxpy_to_1e8_with_a_valid_certificate(n, d, seed, scale, objective):
    X, y, found = instance(n, d, seed)
    beta = scale * n
    ref = two_layer_convex(X, y, beta, found.masks, objective=objective, complete=found.complete)
    res = solve_working_set(X, y, beta, found.masks, objective=objective)
    cert = res.certificate
    assert res.status == "certified" and cert.certified
    assert res.value == pytest.approx(ref.value, rel=1e-8)
    # Both ends are what they claim: upper is the objective of the rebuilt network, and the
    # lower bound sits below CVXPY's optimum (up to CVXPY's own accuracy).
    assert cert.upper == pytest.approx(network_objective(res.network, X, y, beta, objective),
                                       rel=1e-12)
    assert cert.lower <= cert.upper
    assert cert.lower <= ref.value * (1 + 1e-9)
    assert cert.max_violation == pytest.approx(1.0, abs=1e-6)  # lambda* touches the dual bound
    # The working set holds far fewer columns than the program has.
    assert len(res.columns) < 2 * found.masks.shape[0]


def test_the_lower_bound_is_below_every_network():
    """With all patterns, lower bounds the non-convex objective of ANY two-layer net."""
    X, y, found = instance(20, 2, 7)
    assert found.complete
    beta = 0.2
    cert = solve_working_set(X, y, beta, found.masks).certificate
    rng = np.random.default_rng(0)
    values = [network_objective(Network(rng.standard_normal((3, m)) * s, rng.standard_normal(m)),
                                X, y, beta)
              for m in (1, 5, 40) for s in (0.1, 1.0, 3.0)]
    assert min(values) > cert.lower
    assert cert.upper >= cert.lower


def test_cvxpy_solutions_get_the_same_certificate():
    X, y, found = instance(25, 2, 8)
    for objective in ("squared", "interpolation"):
        ref = two_layer_convex(X, y, 0.5, found.masks, objective=objective, complete=True)
        cert = certify(X, y, 0.5, found.masks, ref.V, ref.W, ref.lam, objective=objective)
        assert cert.certified, cert.to_json()
        assert cert.lower <= ref.value * (1 + 1e-9) and cert.upper >= ref.value * (1 - 1e-9)


def test_a_wrong_lambda_gives_a_valid_but_loose_lower_bound():
    X, y, found = instance(20, 2, 9)
    res = solve_working_set(X, y, 0.4, found.masks)
    wrong = certify(X, y, 0.4, found.masks, res.V, res.W, y)  # lambda = y: the zero network's
    assert wrong.lower < res.certificate.lower - 1e-3
    assert not wrong.certified


def test_a_time_limit_returns_a_bracket_around_the_optimum():
    X, y, found = instance(30, 2, 10)
    beta = 0.3
    ref = two_layer_convex(X, y, beta, found.masks, complete=True)
    res = solve_working_set(X, y, beta, found.masks, time_limit=0.0)
    cert = res.certificate
    assert res.status == "time limit" and res.rounds == 1
    assert not cert.certified and res.value is None
    assert cert.lower <= ref.value <= cert.upper
    assert cert.gap > 1e-6 * ref.value  # one round is not enough: the bracket is honest


def test_a_warm_start_from_the_answer_needs_fewer_rounds():
    X, y, found = instance(40, 2, 11)
    cold = solve_working_set(X, y, 0.4, found.masks)
    keys = columns_to_keys(found.masks, cold.columns)
    start = columns_from_keys(found.masks, keys)
    assert sorted(map(tuple, start)) == sorted(map(tuple, cold.columns))
    warm = solve_working_set(X, y, 0.4, found.masks, start=start)
    assert warm.rounds <= cold.rounds // 2  # rows are found again, columns are not
    assert warm.value == pytest.approx(cold.value, rel=1e-8)
    # Moving beta a little: the old columns are still a good start.
    moved = solve_working_set(X, y, 0.45, found.masks, start=start)
    assert moved.status == "certified" and moved.rounds <= cold.rounds


def test_columns_of_a_network_are_its_neurons_patterns():
    X, y, found = instance(20, 2, 12)
    res = solve_working_set(X, y, 0.3, found.masks)
    net = rebuild(res.V, res.W, 1e-6)
    columns = network_columns(net, X, found.masks)
    assert 0 < len(columns) <= net.width
    warm = solve_working_set(X, y, 0.3, found.masks, start=columns)
    assert warm.value == pytest.approx(res.value, rel=1e-8)


def test_a_large_beta_makes_the_zero_network_optimal():
    X, y, found = instance(20, 2, 13)
    res = solve_working_set(X, y, 1e6, found.masks)
    assert res.status == "certified"
    assert res.value == pytest.approx(0.5 * float(y @ y), rel=1e-8)
    assert rebuild(res.V, res.W, 1e-6).width <= 1 or res.value >= 0.5 * float(y @ y) * (1 - 1e-8)


def test_interpolating_contradictory_data_is_reported_infeasible():
    X = with_bias(np.array([[0.0], [1.0], [1.0], [2.0]]))  # x = 1 twice, with two targets
    y = np.array([0.0, 1.0, 2.0, 0.0])
    found = patterns(X)
    res = solve_working_set(X, y, 0.1, found.masks, objective="interpolation")
    assert res.status.startswith("infeasible") and res.value is None
    assert not res.certificate.certified


def _projection_norm_by_cvxpy(A: np.ndarray, h: np.ndarray) -> float:
    u = cp.Variable(h.shape[0])
    problem = cp.Problem(cp.Maximize(h @ u), [A @ u >= 0, cp.norm(u) <= 1])
    problem.solve(solver="CLARABEL")
    return float(problem.value)


@pytest.mark.parametrize("seed", range(6))
def test_cone_violation_is_the_projection_norm(seed):
    rng = np.random.default_rng(seed)
    d = 2 + seed % 4
    gate = rng.standard_normal(d)
    Z = rng.standard_normal((15, d))
    A = np.sign(Z @ gate)[:, None] * Z  # a cone with gate in its interior
    h = rng.standard_normal(d)
    exact = cone_violation(A, h)
    assert exact == pytest.approx(_projection_norm_by_cvxpy(A, h), abs=1e-7)
    assert exact <= np.linalg.norm(h) + 1e-12
    # an early exit returns an upper bound, never less than the exact value
    assert cone_violation(A, h, cutoff=exact * 1.5) >= exact - 1e-12


def test_bounds_remembered_from_an_earlier_lambda_stay_upper_bounds():
    """The pricer bounds a column by the multipliers of its last exact projection; at another
    lambda that bound must still lie above the exact violation, and the maximum it finds must
    be the true maximum (or the certificate's lower bound would be invalid)."""
    X, y, found = instance(30, 3, 7)
    pricer = _Pricer(X, found.masks)
    rng = np.random.default_rng(7)
    lam = y.copy()
    pricer.max_violation(lam)
    for _ in range(3):
        pricer.violators(lam, 0.0, 10 ** 6, set())  # every column projected exactly
        lam = lam + 0.3 * rng.standard_normal(lam.shape)
        G = pricer.gradients(lam)
        bound, _ = pricer.bounds(G)
        exact = np.array([[cone_violation(pricer.signs[i][:, None] * X, s * G[i])
                           for s in (1, -1)] for i in range(len(found.masks))])
        assert np.all(bound >= exact - 1e-10)
        assert pricer.max_violation(lam) == pytest.approx(exact.max(), rel=1e-10)
        # the scan that stops projections early still returns the 5 largest, exactly
        top = pricer.violators(lam, 0.0, 5, set())
        assert [v for v, _, _ in top] == pytest.approx(np.sort(exact.ravel())[::-1][:5],
                                                       rel=1e-10)
        assert pricer.mu.any() and np.all(pricer.mu >= 0)


def test_bounds_that_contradict_each_other_are_never_certified():
    """lower > upper beyond the tolerance is a broken certificate, not a tight one."""
    assert Certificate(1.0, 1.0 + 1e-9, 0.0, 1.0, 1e-8).certified
    assert not Certificate(1.0 + 1e-9 + 1e-6, 1.0, 0.0, 1.0, 1e-8).certified


def test_relu_bounds_warm_start_through_the_store(tmp_path):
    exp = Experiment(activation="relu", depth=2, dataset="regression", d=2, n=30, beta=0.05,
                     objective="squared")
    data = dataset_for(exp, None)
    store = Store(tmp_path)
    try:
        first = relu_bounds(exp, data.X, data.Y, store.warm_start)
        solver = first.details["solver"]
        assert solver["warm_start"] == 0 and solver["columns"]
        store.save_warm_start(first.details["inputs_digest"], solver["columns"])
        moved = exp.replace(beta=0.06)[0]
        second = relu_bounds(moved, data.X, data.Y, store.warm_start)
        assert second.details["solver"]["warm_start"] == len(solver["columns"])
        assert second.details["solver"]["rounds"] <= solver["rounds"]
        assert second.dual.certified
        # the same number as CVXPY on the same patterns
        cross = relu_bounds(moved.replace(relu_solver="cvxpy")[0], data.X, data.Y)
        assert second.dual.value == pytest.approx(cross.dual.value, rel=1e-8)
    finally:
        store.close()
