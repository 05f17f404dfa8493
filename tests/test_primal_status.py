"""What a trained value is: statuses against the known optimum, the best infeasible restart,
restarts from the closed form, and the rescaled training problem (issue 16)."""

import math

import numpy as np
import pytest

from dualviz.config import Experiment
from dualviz.data import validate_arrays
from dualviz.linear.programs import closed_form
from dualviz.results import PrimalStatus, Snapshot, Start, Stop
from dualviz.runner import run
from dualviz.training.primal import RESIDUAL_TOL, Reference, Scaling, summarize

INTERP = Experiment(objective="interpolation", restarts=2)


def final(restart, value, residual, start=Start.RANDOM, stopped=Stop.CONVERGED) -> Snapshot:
    return Snapshot(restart, 100, value, 0.0, value, residual, [], [], 1.0, True, None,
                    str(start), str(stopped))


def test_no_feasible_restart_keeps_the_closest_one():
    result = summarize(INTERP, [final(0, 2.0, 3e-3), final(1, 1.5, 4e-5)], 1.0,
                       Reference(1.0, "closed form"))
    assert result.value is None
    assert result.status == PrimalStatus.NOT_INTERPOLATED
    assert result.best_infeasible.restart == 1
    assert result.best_infeasible.residual == 4e-5 and result.best_infeasible.value == 1.5
    assert "not interpolated: residual 4.00e-05" in result.explanation


def test_a_converged_restart_above_the_optimum_is_a_local_minimum():
    result = summarize(INTERP, [final(0, 3.97711, 1e-9), final(1, 3.98, 1e-9)], 1.0,
                       Reference(3.92879, "closed form"))
    assert result.status == PrimalStatus.LOCAL_MINIMUM
    assert result.value == 3.97711
    assert "above the known optimum P* = 3.92879" in result.explanation
    assert "local minimum" in result.explanation


def test_a_restart_cut_by_the_budget_above_the_optimum_says_so():
    result = summarize(INTERP, [final(0, 4.1, 1e-9, stopped=Stop.ITERATIONS)], 1.0,
                       Reference(3.92879, "closed form"))
    assert result.status == PrimalStatus.ITERATION_LIMIT
    assert "iteration budget" in result.explanation


def test_at_the_optimum_from_the_closed_form_names_the_random_restarts():
    snaps = [final(0, 3.97711, 1e-9), final(1, 3.92879, 1e-10, Start.CLOSED_FORM)]
    result = summarize(INTERP, snaps, 1.0, Reference(3.92879, "closed form"))
    assert result.status == PrimalStatus.OPTIMAL
    assert result.best_random == 3.97711
    assert "restart started from the closed form" in result.explanation
    assert "best random restart stopped at 3.97711" in result.explanation
    assert [r.start for r in result.restarts] == [Start.RANDOM, Start.CLOSED_FORM]


def test_no_reference_and_diverged():
    assert summarize(INTERP, [final(0, 2.0, 1e-9)], 1.0).status == PrimalStatus.NO_REFERENCE
    result = summarize(INTERP, [final(0, math.nan, math.nan)], 1.0)
    assert result.status == PrimalStatus.DIVERGED and result.value is None


def test_statuses_are_strings_in_json():
    exp = Experiment(iterations=30, restarts=1)
    out = run(exp).to_json()["primal"]
    assert out["status"] in {s.value for s in PrimalStatus}
    assert isinstance(out["explanation"], str) and out["explanation"]
    assert out["restarts"][-1]["start"] == "closed form"


@pytest.mark.parametrize("regularization, objective, depth", [
    ("weight-decay", "squared", 3), ("rescaled", "squared", 4), ("lth-power", "squared", 5),
    ("weight-decay", "interpolation", 4), ("rescaled", "interpolation", 3)])
def test_scaling_is_exact(regularization, objective, depth):
    """The reported objective of a net trained on the rescaled problem equals the objective of
    the net rebuilt in the experiment's units (layer factors applied)."""
    import torch

    from dualviz.training.nets import Net

    exp = Experiment(regularization=regularization, objective=objective, depth=depth,
                     beta=0.37, t=1.7)
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((7, 4)), 3.1 * rng.standard_normal((7, 2))
    scaling = Scaling.of(exp, float(np.linalg.norm(Y)))
    trained = Net(exp, 4, 2, torch.Generator().manual_seed(0), beta=scaling.beta,
                  t=scaling.t)
    original = Net(exp, 4, 2, torch.Generator().manual_seed(0))
    original.load([c * w.detach().numpy() for c, w in
                   zip(scaling.layer_factors, trained.weights(), strict=True)])
    Xt = torch.tensor(X)
    with torch.no_grad():
        assert torch.allclose(original(Xt), scaling.y_scale * trained(Xt), rtol=1e-12)
        reg = float(original.regularizer())
        assert reg == pytest.approx(scaling.regularizer_factor * float(trained.regularizer())
                                    / trained.beta, rel=1e-12)
        if objective == "squared":  # trained in its own units
            assert scaling.y_scale == 1.0 and scaling.beta == exp.beta


# The local minimum: whitened X, sigma(X^T Y) = (2.6, 1.45, 0.9), beta = 0.5. Random
# restarts of the standard L = 4 net kept sigma_2 = 0.93 (3.97711); the prox cuts it (3.92879).
OUTSIDE = np.sqrt(2 * 5.747695 - (2.6**2 + 1.45**2 + 0.9**2))
WX = np.vstack([np.eye(3), np.zeros((2, 3))])
WY = np.vstack([np.diag([2.6, 1.45, 0.9]), [[OUTSIDE, 0.0, 0.0], [0.0, 0.0, 0.0]]])


@pytest.mark.parametrize("depth, exact", [(4, 3.92879), (5, 4.15691)])
def test_whitened_local_minimum_is_not_the_answer(depth, exact):
    data = validate_arrays(WX, WY, "whitened")
    exp = Experiment.from_values({"data": data.digest, "objective": "squared",
                                  "regularization": "weight-decay", "beta": 0.5,
                                  "depth": depth})[0]
    closed = closed_form(exp, data.X, data.Y)
    assert closed.primal == pytest.approx(exact, abs=1e-5)
    result = run(exp, data)
    assert result.primal.value == pytest.approx(closed.primal, rel=1e-9)
    assert result.primal.status == PrimalStatus.OPTIMAL
    assert result.primal.reference == closed.primal
    if result.primal.best_random > closed.primal * (1 + 1e-3):
        assert "best random restart stopped at" in result.primal.explanation


@pytest.mark.parametrize("beta", [1e-4, 1e3])
def test_parallel_interpolation_reaches_the_closed_form_at_extreme_beta(beta):
    exp = Experiment(arch="parallel", depth=4, branches=5, target_rank=2, beta=beta,
                     regularization="rescaled")
    result = run(exp)
    assert result.primal.residual <= RESIDUAL_TOL
    assert result.primal.value == pytest.approx(result.closed.primal, rel=1e-4)
    assert result.primal.status == PrimalStatus.OPTIMAL
