"""The three-layer ReLU convex program on general data (docs/math.md §6).

The public instances of ../shared/DESIGN.md §4 are reproduced: the program's value, the
network rebuilt from it (evaluated here by its own forward pass), and the dual certificate
(checked here against random atoms). The DESIGN's values are Clarabel's at its default
accuracy: each lies 1e-9..5e-9 above our certified upper bound, so they are compared to 1e-7.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from dualviz.relu.patterns import patterns, with_bias
from dualviz.relu.rank_one import rank_one_squared, rank_one_three_layer
from dualviz.relu.three_layer import (
    MAX_N,
    network_objective,
    solve_three_layer,
)
from dualviz.relu.three_layer_cvxpy import three_layer_cvxpy
from dualviz.relu.three_layer_instances import rand2d, rank_one_control, smooth1d
from dualviz.results import SolveStatus

# (instance, beta, DESIGN value, DESIGN's first-layer pattern count, zero pattern included)
DESIGN = [
    (smooth1d, 0.05, 0.17225878745, 12),
    (smooth1d, 0.2, 0.47145636871, 12),
    (rand2d, 0.05, 0.15620811052, 32),
    (rand2d, 0.2, 0.33583456992, 32),
]


def forward(net, X):
    """The rebuilt net's f(X), computed here from its layers (not by its own predict)."""
    out = np.zeros(X.shape[0])
    for b in net.branches:
        out += np.maximum(np.maximum(X @ b.W1, 0) @ b.w2, 0) * b.w3
    return out


def random_atoms(X, t, count, seed, widths=(1, 2, 3, 5, 8)):
    """relu(relu(X W1) u) for random W1 (||W1||_F = t) and u (||u|| = 1): admissible atoms."""
    rng = np.random.default_rng(seed)
    atoms = []
    for m in widths:
        W1 = rng.standard_normal((count, X.shape[1], m))
        W1 *= t / np.linalg.norm(W1, axis=(1, 2))[:, None, None]
        u = rng.standard_normal((count, m))
        u /= np.linalg.norm(u, axis=1)[:, None]
        atoms.append(np.maximum(np.einsum("cnm,cm->cn", np.maximum(X @ W1, 0), u), 0))
    return np.concatenate(atoms)


@pytest.mark.parametrize(("make", "beta", "value", "count"), DESIGN)
def test_design_instances_are_reproduced_and_certified(make, beta, value, count):
    X, y = make()
    res = solve_three_layer(X, y, beta, 1.0)
    assert res.status == SolveStatus.CERTIFIED and res.exact
    assert res.lower <= res.upper  # a bracket, in this direction
    assert res.relative_gap <= 1e-8
    assert res.value == pytest.approx(value, rel=1e-7)
    # our patterns exclude the all-zero one (it adds nothing: D1 X = 0)
    assert res.counts.first_layer_patterns == count - 1


@pytest.mark.parametrize(("make", "beta", "value", "count"), DESIGN)
def test_rebuilt_network_is_a_real_parallel_net_at_the_program_value(make, beta, value,
                                                                    count):
    X, y = make()
    res = solve_three_layer(X, y, beta, 1.0)
    net = res.network
    assert all(np.linalg.norm(b.W1) <= 1.0 + 1e-12 for b in net.branches)
    r = forward(net, X) - y
    objective = 0.5 * r @ r + beta / 2 * sum(b.w2 @ b.w2 + b.w3 ** 2 for b in net.branches)
    assert objective == pytest.approx(res.upper, rel=1e-12)
    assert objective == pytest.approx(network_objective(net, X, y, beta), rel=1e-12)
    assert objective == pytest.approx(value, rel=1e-7)  # DESIGN: rebuilt = program to 2e-8


@pytest.mark.parametrize(("make", "beta", "value", "count"), DESIGN)
def test_dual_certificate_holds_on_random_atoms(make, beta, value, count):
    """lam = y - f(X) at the rebuilt net, scaled by the certificate's factor, satisfies
    |lam^T atom| <= beta on 25,000 random admissible atoms, and its dual value is `lower`."""
    X, y = make()
    res = solve_three_layer(X, y, beta, 1.0)
    lam = y - forward(res.network, X)
    atoms = random_atoms(X, 1.0, 5000, seed=1)
    assert np.abs(atoms @ lam).max() <= beta * (1 + 1e-6)
    dual = lam @ y - 0.5 * lam @ lam
    assert dual == pytest.approx(res.lower, rel=1e-7)
    assert res.lower == pytest.approx(value, rel=1e-7)  # DESIGN: dual = program to 3e-8


def test_cvxpy_over_every_pattern_agrees():
    """The same program written out in CVXPY + Clarabel over all 63 second-layer patterns."""
    X, y = smooth1d()
    res = solve_three_layer(X, y, 0.2, 1.0)
    ref = three_layer_cvxpy(X, y, 0.2, 1.0, patterns(X).masks)
    assert ref.status == "optimal"
    assert ref.value == pytest.approx(res.value, rel=1e-8)


def test_rank_one_control_has_the_exact_gap_of_the_rank_one_formulas():
    """No bias, X = x (rank one): the program is the parallel formula, and the standard
    formula stays 1.61% (beta = 0.05) and 2.58% (beta = 0.2) above it (DESIGN §4)."""
    X, y = rank_one_control()
    for beta, gap in ((0.05, 0.0161), (0.2, 0.0258)):
        res = solve_three_layer(X, y, beta, 1.0)
        assert res.status == SolveStatus.CERTIFIED and res.exact
        theory = rank_one_squared(X[:, 0], [1.0], y, beta, 1.0)
        assert res.value == pytest.approx(theory.parallel, rel=1e-9)
        assert theory.relative_gap == pytest.approx(gap, abs=5e-5)
        assert theory.standard > res.upper


def test_interpolation_on_rank_one_data_is_the_rank_one_dual():
    """Interpolating y = c+ alpha + c- gamma (no bias): D = (beta/T)(|alpha| + |gamma|)."""
    c = np.array([-1.0, -0.6, -0.2, 0.3, 0.7, 1.0])
    y = 1.5 * np.maximum(c, 0) - 0.8 * np.maximum(-c, 0)
    theory = rank_one_three_layer(c, [1.0], y, 0.3, 2.0)
    res = solve_three_layer(c[:, None], y, 0.3, 2.0, objective="interpolation")
    assert res.status == SolveStatus.CERTIFIED
    assert res.value == pytest.approx(theory.dual, rel=1e-8)
    assert res.residual <= 1e-12  # the rebuilt network interpolates


def test_interpolation_network_fits_and_brackets_from_both_sides():
    rng = np.random.default_rng(5)
    X = with_bias(rng.uniform(-1, 1, (7, 2)))
    y = rng.standard_normal(7)
    res = solve_three_layer(X, y, 1.0, 1.0, objective="interpolation")
    assert res.status == SolveStatus.CERTIFIED and res.exact
    assert np.linalg.norm(forward(res.network, X) - y) <= 1e-10 * np.linalg.norm(y)
    assert 0 <= res.upper - res.lower <= 1e-8 * res.upper


def test_sampled_second_layer_patterns_are_labelled_incomplete():
    """With too few leaves enumerated the pricing samples them: `upper` is still a real
    network's objective (an upper bound of D), and the result says the lower end is not."""
    X, y = rand2d()
    full = solve_three_layer(X, y, 0.05, 1.0)
    part = solve_three_layer(X, y, 0.05, 1.0, leaf_limit=4)
    assert not part.exact
    assert part.upper >= full.lower * (1 - 1e-9)
    assert "upper bound of D" in part.message and "not D" in part.message


def test_sizes_beyond_the_cap_are_refused_with_a_message():
    X = with_bias(np.linspace(-1, 1, MAX_N + 1)[:, None])
    with pytest.raises(ValueError, match=f"N <= {MAX_N}"):
        solve_three_layer(X, np.ones(MAX_N + 1), 0.1)


def test_zero_target_needs_no_network():
    X, _ = smooth1d()
    res = solve_three_layer(X, np.zeros(6), 0.1)
    assert res.value == 0.0 and res.status == SolveStatus.CERTIFIED
    assert not res.network.branches


def test_time_limit_returns_an_honest_bracket():
    rng = np.random.default_rng(2)
    X = with_bias(rng.uniform(-1, 1, (12, 2)))
    y = rng.standard_normal(12)
    res = solve_three_layer(X, y, 0.05, 1.0, time_limit=1e-3)
    assert res.status == SolveStatus.TIME_LIMIT
    assert res.value is None or res.certified
    if res.lower is not None and res.upper is not None:
        assert res.lower <= res.upper * (1 + 1e-9)
    assert math.isfinite(res.upper)


def test_exact_dual_norm_matches_the_nnls_projection():
    """F's per-group values ||Pi_K(s X^T D1 e)|| (face enumeration) equal Moreau's
    ||Pi_K(a)|| = min_{mu >= 0} ||a + A^T mu|| for K = {w : A w >= 0} (an NNLS residual)."""
    from scipy.optimize import nnls

    from dualviz.relu.three_layer_geometry import first_layer, group_values

    X, _ = rand2d()
    layer = first_layer(X)
    for seed in range(3):
        e = np.random.default_rng(seed).standard_normal(6)
        values = group_values(layer, e[None])[0]
        for g in range(2 * layer.count):
            k, s = g // 2, (1 if g % 2 == 0 else -1)
            a = s * X.T @ (layer.masks[k] * e)
            A = (2.0 * layer.masks[k] - 1)[:, None] * X
            assert values[g] == pytest.approx(nnls(A.T, -a)[1], abs=1e-10)


# -- training reaches D (parallel) and stays above it (standard) ---------------------------------

def _train(arch, X, y, beta, **knobs):
    import torch

    from dualviz.config import Experiment
    from dualviz.training.primal import solve_primal

    torch.set_num_threads(1)
    exp = Experiment(arch=arch, activation="relu", depth=3, regularization="rescaled",
                     objective="squared", beta=beta, t=1.0, optimizer="adam", lr=0.01,
                     bias=True, dataset="regression", n=X.shape[0], d=X.shape[1] - 1,
                     seed=0, **knobs)
    return solve_primal(exp, X, y[:, None])


@pytest.mark.slow
@pytest.mark.parametrize(("make", "beta"), [(smooth1d, 0.2), (rand2d, 0.05)])
def test_trained_parallel_nets_reach_d_from_random_starts(make, beta):
    """Adam from random starts, 20 branches of width 8: never below D, within 1e-2 of it."""
    X, y = make()
    D = solve_three_layer(X, y, beta, 1.0)
    trained = _train("parallel", X, y, beta, branches=20, width=8, iterations=3000,
                     restarts=2)
    assert all(r.start.value == "random" for r in trained.restarts)
    assert trained.value >= D.lower * (1 - 1e-9)
    assert (trained.value - D.upper) / D.upper <= 1e-2


@pytest.mark.slow
@pytest.mark.parametrize(("make", "beta"), [(smooth1d, 0.2), (rand2d, 0.2)])
def test_trained_standard_nets_stay_above_d(make, beta):
    """D is the standard net's dual: no restart goes below it (DESIGN: 7.8% and 24.7% above)."""
    X, y = make()
    D = solve_three_layer(X, y, beta, 1.0)
    trained = _train("standard", X, y, beta, width=16, iterations=2000, restarts=3)
    assert min(r.value for r in trained.restarts) >= D.lower * (1 - 1e-9)
    assert trained.value > D.upper * 1.01  # a gap, on these instances


# -- the runner and the CLI -----------------------------------------------------------------------

def test_cli_solves_the_three_layer_program_as_d_for_both_architectures(capsys):
    import json

    from dualviz.__main__ import main

    common = ["solve", "--json", "--activation", "relu", "--depth", "3", "--dataset",
              "regression", "--n", "8", "--d", "1", "--objective", "squared", "--beta", "0.1",
              "--iterations", "30", "--restarts", "1", "--width", "4", "--branches", "4"]
    out = {}
    for arch in ("parallel", "standard"):
        assert main([*common, "--arch", arch]) == 0
        out[arch] = json.loads(capsys.readouterr().out)
    par, std = out["parallel"], out["standard"]
    for run in (par, std):
        three = run["relu"]["three_layer"]
        assert three["exact"] and three["certified"] and three["status"] == "certified"
        assert run["dual"]["status"] == "certified" and run["dual"]["certified"]
        assert run["dual"]["lower"] <= run["dual"]["value"] <= run["dual"]["upper"]
        assert run["relu"]["fit"]["convex"]  # the rebuilt net over the 1-D grid
        assert run["primal"]["value"] >= run["dual"]["lower"] * (1 - 1e-9)
    assert par["dual"]["value"] == std["dual"]["value"]  # one D for both architectures
    assert par["closed_form"]["primal"] == par["dual"]["value"]  # the parallel net's optimum
    assert std["closed_form"]["primal"] is None  # the standard net's optimum is not known
    assert std["primal"]["status"] == "feasible, no reference"
    # the parallel net is trained at least as large as the rebuilt network
    assert any("for training" in n for n in par["notes"])


@pytest.mark.parametrize(("knobs", "why"), [
    ({"n": MAX_N + 1, "d": 1}, f"N <= {MAX_N} samples"),
    ({"n": 8, "d": 3}, "at most 3 input columns"),
])
def test_sizes_the_program_does_not_take_say_why(knobs, why):
    from dualviz.config import Experiment
    from dualviz.runner import run

    exp = Experiment(activation="relu", depth=3, dataset="regression", objective="squared",
                     beta=0.1, iterations=5, restarts=1, width=2, **knobs)
    result = run(exp)
    assert result.dual.value is None and result.dual.status == SolveStatus.NOT_COMPUTED
    assert why in result.dual.notes[0]


# -- sweeps over beta and N ----------------------------------------------------------------------

@pytest.mark.slow
def test_a_beta_sweep_of_three_layer_relu_nets_draws_p_over_d():
    """The Gap curves page's sweep (beta, both architectures) for L = 3 ReLU on 6 points: the
    parallel curve sits at P/D = 1 (within 1e-2), the standard one above it, both >= 1."""
    from dualviz.gapcurves import curves
    from dualviz.runner import run
    from dualviz.sweep import sweep_from_params
    from dualviz.views import GAP_CURVES

    base, _ = GAP_CURVES.experiment({"activation": "relu", "dataset": "regression", "depth": "3",
                                     "n": "6", "d": "1", "objective": "squared",
                                     "optimizer": "adam", "lr": "0.01", "iterations": "1500",
                                     "restarts": "1", "branches": "20", "width": "8"})
    sweep, notes = sweep_from_params(base, {"x": "beta", "x-values": "0.1,0.3",
                                            "series": "none", "seeds": "1"})
    assert not notes and base.activation == "relu" and base.depth == 3
    points = [(coords, exp, run(exp).to_json()) for coords, exp in sweep.points()]
    lines = {c["arch"]: c for c in curves(points, "beta", "none")}
    assert lines["parallel"]["x"] == [0.1, 0.3] and lines["standard"]["missing"] == 0
    assert all(1 - 1e-9 <= r <= 1 + 1e-2 for r in lines["parallel"]["ratio"])
    assert all(r >= 1 - 1e-9 for r in lines["standard"]["ratio"])


def test_n_is_a_sweep_axis():
    from dualviz.sweep import sweep_from_params
    from dualviz.views import GAP_CURVES

    base, _ = GAP_CURVES.experiment({"activation": "relu", "dataset": "regression", "depth": "3",
                                     "d": "1"})
    sweep, notes = sweep_from_params(base, {"x": "n", "x-values": "6,8,10", "series": "beta",
                                            "series-values": "0.1,0.2", "seeds": "1"})
    assert not notes and sweep.axes == ("n", "beta")
    assert sorted({e.n for _, e in sweep.points()}) == [6, 8, 10]
