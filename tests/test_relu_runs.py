"""ReLU experiments end to end through the runner and the CLI (issue 4's backend)."""

import json

import numpy as np
import pytest

from dualviz.__main__ import main
from dualviz.config import Experiment
from dualviz.data import rank_one, regression
from dualviz.runner import run

TWO_LAYER = Experiment(activation="relu", depth=2, dataset="regression", d=1, n=20,
                       objective="squared", beta=0.1, arch="parallel", branches=50,
                       iterations=2000, restarts=2)
RANK_ONE = Experiment(activation="relu", depth=3, dataset="rank-one", n=8, d=3, k=1,
                      objective="interpolation", regularization="rescaled", width=8, branches=8,
                      iterations=2000, restarts=3)


def test_regression_and_rank_one_data_are_what_they_say():
    data = regression(30, 2, "teacher", 0.0, 4)
    assert data.X.shape == (30, 2) and data.Y.shape == (30, 1)
    assert np.all(np.abs(data.X) <= 1)
    one = rank_one(9, 4, 2, "collinear", 3)
    assert np.linalg.matrix_rank(one.X) == 1
    c = one.X @ one.X[0] / (one.X[0] @ one.X[0])  # c up to scale: X = c a^T
    assert (c > 0).any() and (c < 0).any()
    np.testing.assert_array_equal(rank_one(9, 4, 2, "collinear", 3).X, one.X)


def test_two_layer_relu_training_reaches_the_exact_convex_optimum():
    result = run(TWO_LAYER)
    relu = result.relu
    assert relu["patterns"]["complete"] and relu["patterns"]["count"] == 2 * 20 - 1
    assert result.dual.status == "certified" and "exact" in result.dual.method
    assert result.dual.certified and result.dual.lower <= result.dual.upper
    assert (result.dual.upper - result.dual.lower) <= 1e-8 * result.dual.upper
    assert result.closed.primal == result.dual.value  # the convex value is the optimum
    assert result.primal.value >= result.dual.lower  # a lower bound on training
    assert result.relative_gap < 1e-4  # and 50 neurons reach it
    assert 1 <= relu["active_neurons"] <= 50
    fit = relu["fit"]
    assert len(fit["axes"]) == 1 and len(fit["trained"]) == len(fit["convex"]) == 201
    # The rebuilt network and the trained one draw nearly the same function.
    assert np.max(np.abs(np.subtract(fit["trained"], fit["convex"]))) < 0.05


@pytest.mark.parametrize(("arch", "ratio"), [("standard", np.sqrt(2)), ("parallel", 1.0)])
def test_rank_one_three_layer_matches_the_closed_forms(arch, ratio):
    result = run(RANK_ONE.replace(arch=arch)[0])
    assert result.closed.dual == pytest.approx(result.dual.value, rel=1e-7)
    assert result.closed.primal / result.closed.dual == pytest.approx(ratio, rel=1e-9)
    assert result.primal.value == pytest.approx(result.closed.primal, rel=1e-4)
    assert result.relu["rank_one"]["zero_gap"] is False


def test_collinear_rank_one_target_has_no_gap():
    result = run(RANK_ONE.replace(rank_one_target="collinear", k=2)[0])
    assert result.relu["rank_one"]["zero_gap"] is True
    assert result.closed.primal == pytest.approx(result.closed.dual, rel=1e-9)


def test_deep_relu_on_general_data_says_no_bound_was_computed():
    exp = Experiment(activation="relu", depth=4, dataset="regression", d=2, n=15,
                     objective="squared", beta=0.1, iterations=60, restarts=1)
    result = run(exp)
    assert result.dual.value is None and result.dual.status == "not computed"
    assert "upper bound" in result.dual.notes[0]
    assert result.primal.value is not None


def test_cli_json_for_a_relu_run(capsys):
    code = main(["solve", "--query", TWO_LAYER.replace(iterations=200)[0].to_query(), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["relu"]["patterns"]["complete"] is True
    assert out["dual"]["value"] == pytest.approx(out["closed_form"]["primal"])
