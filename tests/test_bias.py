"""The bias knob of ReLU nets, an uploaded bias column, rank-one data, and zero targets and
scale invariance on the ReLU paths (issue 16)."""

import numpy as np
import pytest

from dualviz.config import Experiment
from dualviz.data import validate_arrays
from dualviz.relu.bounds import adds_bias_column, constant_column, network_inputs
from dualviz.relu.patterns import patterns, with_bias
from dualviz.relu.working_set import solve_working_set
from dualviz.runner import run


def points(n=20, d=2, seed=5):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, (n, d))
    return X, np.sin(np.pi * X.sum(axis=1)) + 0.1 * rng.standard_normal(n)


def on(data, **values) -> Experiment:
    return Experiment.from_values({"data": data.digest, "activation": "relu", **values})[0]


def test_an_uploaded_bias_column_is_not_doubled():
    """20 points in 2-D, two layers, beta = 0.05: uploading [x, 1] is the same problem as
    uploading x (the net adds the column of ones). Adding a second column of ones splits the
    regularized bias weight over two columns: another, cheaper problem (0.20801 instead of
    0.21265 in the issue)."""
    x, y = points()
    plain = validate_arrays(x, y, "x")
    with_ones = validate_arrays(with_bias(x), y, "x and ones")
    values = {"depth": 2, "objective": "squared", "beta": 0.05, "iterations": 50}
    a = run(on(plain, **values), plain)
    b = run(on(with_ones, **values), with_ones)
    assert a.dual.certified and b.dual.certified
    assert b.dual.value == pytest.approx(a.dual.value, rel=1e-8)
    assert any("column 3 of X is constant" in note for note in b.notes)
    assert b.relu["bias"] == {"on": True, "column_added": False}
    # the doubled column is a different program with a lower value: the test can fail
    doubled = with_bias(with_bias(x))
    found = patterns(doubled)
    split = solve_working_set(doubled, y, 0.05, found.masks).value
    assert split < a.dual.value * (1 - 1e-3)


def test_bias_off_trains_on_x_itself():
    x, y = points(n=8, d=1)
    data = validate_arrays(x, y, "x")
    exp = on(data, depth=2, bias=0)
    assert not adds_bias_column(exp, data.X)
    assert network_inputs(exp, data.X).shape == (8, 1)
    assert network_inputs(on(data, depth=2), data.X).shape == (8, 2)


def test_constant_column():
    assert constant_column(np.array([[1.0, 2.0], [3.0, 2.0]])) == 1
    assert constant_column(np.array([[1.0, 0.0], [3.0, 0.0]])) is None  # a zero column
    assert constant_column(np.array([[1.0, 2.0]])) is None


def test_bias_has_no_effect_on_linear_nets():
    """One computation, one hash: the knob is kept (for when the net is a ReLU one) and left
    out of the hash, and its control disabled (dualviz.config.Knob.applies_if)."""
    exp, notes = Experiment.from_values({"bias": "0"})
    assert notes == [] and not exp.applies("bias")
    assert exp.hash == Experiment().hash and exp.canonical.bias is True
    relu = Experiment.from_values({"bias": "0", "activation": "relu", "depth": 2})[0]
    assert relu.applies("bias") and relu.hash != relu.replace(bias=True)[0].hash


def test_rank_one_data_is_trained_without_a_bias():
    exp, notes = Experiment.from_values({"activation": "relu", "depth": 3,
                                         "dataset": "rank-one", "bias": "1"})
    assert exp.bias is False
    assert any("rank-one data is trained without a bias" in n for n in notes)
    assert Experiment.from_values({"activation": "relu", "depth": 3,
                                   "dataset": "rank-one"})[1] == []


def test_uploaded_rank_one_data_with_a_bias_gets_no_rank_one_closed_form():
    """Y = 1 on X = c a^T: a net with a bias fits it (its bias alone), so no 'neither net
    can interpolate'; the rank-one closed forms are for the net without bias, where Y = 1 is
    indeed out of reach (c changes sign)."""
    rng = np.random.default_rng(1)
    c = rng.standard_normal(6)
    c[0], c[1] = abs(c[0]) + 0.1, -abs(c[1]) - 0.1
    data = validate_arrays(np.outer(c, [0.6, 0.8]), np.ones(6), "rank one")
    values = {"depth": 3, "objective": "interpolation", "regularization": "rescaled",
              "iterations": 300}
    with_bias_run = run(on(data, **values), data)
    assert with_bias_run.failure is None
    assert with_bias_run.closed.primal is None  # no closed form for this net
    assert with_bias_run.primal.value is not None  # it interpolates
    without = run(on(data, bias=0, **values), data)
    assert without.dual.value is None and without.closed.primal is None
    assert "ReLU net without bias" in without.closed.notes[0]


@pytest.mark.parametrize("solver", ["working-set", "cvxpy"])
@pytest.mark.parametrize("objective", ["interpolation", "squared"])
def test_zero_target_two_layer_is_exactly_zero(solver, objective):
    x, _ = points(n=10, d=1)
    data = validate_arrays(x, np.zeros(10), "zero")
    result = run(on(data, depth=2, objective=objective, relu_solver=solver), data)
    assert result.dual.value == 0.0
    assert result.dual.lower == 0.0 and result.dual.upper == 0.0
    assert result.dual.certified is True
    assert result.primal.value == 0.0 and result.primal.status == "optimal"
    assert result.failure is None


def test_zero_target_rank_one_is_exactly_zero():
    c = np.array([1.0, -2.0, 0.5, -1.0])
    data = validate_arrays(np.outer(c, [1.0, 0.0]), np.zeros(4), "zero")
    result = run(on(data, depth=3, objective="interpolation", regularization="rescaled",
                    bias=0), data)
    assert result.closed.primal == 0.0 and result.dual.value == 0.0
    assert result.primal.value == 0.0 and result.failure is None


def test_working_set_certificate_is_scale_invariant():
    """Interpolation at beta = 1e-4 is exactly 1e-4 times the beta = 1 problem."""
    x, y = points(n=13, d=2, seed=848)
    X = with_bias(x)
    masks = patterns(X).masks
    one = solve_working_set(X, y, 1.0, masks, objective="interpolation")
    small = solve_working_set(X, y, 1e-4, masks, objective="interpolation")
    assert one.certificate.certified and small.certificate.certified
    assert small.value == pytest.approx(1e-4 * one.value, rel=1e-9)
    assert small.certificate.relative_gap == pytest.approx(one.certificate.relative_gap,
                                                           abs=1e-12)
    big_y = solve_working_set(X, 1e3 * y, 1e3, masks, objective="squared")
    unit = solve_working_set(X, y, 1.0, masks, objective="squared")
    assert big_y.certificate.certified
    assert big_y.value == pytest.approx(1e6 * unit.value, rel=1e-9)
