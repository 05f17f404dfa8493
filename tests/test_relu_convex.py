"""The two-layer ReLU convex program (docs/math.md §4) against its rebuilt networks and training.

Activation patterns come from brute force here. For 1-D points x_i with a bias column,
X u = u_1 x + u_0 is positive on one side of a threshold, so the patterns are the 2N sets
{x_i >= c} and {x_i <= c} (suffixes and prefixes of the sorted points, counting the empty and
the full set once). For 2-D points with a bias column (rank 3) every pattern of a chamber is
found next to an edge x_i^T u = x_j^T u = 0: u = +-(x_i x x_j) with the four choices of bits i, j.
"""

from functools import lru_cache
from itertools import combinations
from math import comb

import numpy as np
import pytest
import torch

from dualviz.config import Experiment
from dualviz.relu.convex import (
    Network,
    network_objective,
    predict,
    rebuild,
    relative_residual,
    two_layer_convex,
)
from dualviz.training.nets import Net
from dualviz.training.primal import solve_primal

BETA = 0.1


# -- patterns by brute force -------------------------------------------------------------------

def line_patterns(x: np.ndarray) -> np.ndarray:
    """All 2N patterns of 1-D points with a bias column: prefixes and suffixes in sorted order."""
    order = np.argsort(x)
    rows = set()
    for k in range(len(x) + 1):
        for chosen in (order[k:], order[:k]):
            mask = np.zeros(len(x), dtype=bool)
            mask[chosen] = True
            rows.add(mask.tobytes())
    return unpack(rows, len(x))


def plane_patterns(X: np.ndarray) -> np.ndarray:
    """All patterns of a rank-3 X (points in general position): one edge per pair (i, j)."""
    rows = set()
    for i, j in combinations(range(X.shape[0]), 2):
        edge = np.cross(X[i], X[j])
        for sign in (1.0, -1.0):
            base = X @ (sign * edge) >= 0
            for bi in (False, True):
                for bj in (False, True):
                    mask = base.copy()
                    mask[i], mask[j] = bi, bj
                    rows.add(mask.tobytes())
    return unpack(rows, X.shape[0])


def sampled_patterns(X: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """The distinct rows of 1[X g >= 0] for seeded Gaussian g."""
    G = np.random.default_rng(seed).standard_normal((X.shape[1], samples))
    codes = np.unique((X @ G >= 0).T @ (1 << np.arange(X.shape[0])))  # one integer per pattern
    return (codes[:, None] >> np.arange(X.shape[0]) & 1).astype(bool)


def unpack(rows: set[bytes], n: int) -> np.ndarray:
    return np.array([np.frombuffer(r, dtype=bool) for r in sorted(rows)]).reshape(-1, n)


def as_set(masks: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in masks}


# -- data --------------------------------------------------------------------------------------

@lru_cache
def line_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N = 20 points in [-1, 1], bias column, y = sin(3x) + noise; and the complete patterns."""
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(-1, 1, 20))
    y = np.sin(3 * x) + 0.1 * rng.standard_normal(20)
    return np.column_stack([x, np.ones(20)]), y, line_patterns(x)


@lru_cache
def plane_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """N = 16 points in [-1, 1]^2, bias column, a smooth target plus noise; all patterns."""
    rng = np.random.default_rng(3)
    P = rng.uniform(-1, 1, (16, 2))
    y = np.sin(2 * P[:, 0]) * np.cos(P[:, 1]) + 0.1 * rng.standard_normal(16)
    X = np.column_stack([P, np.ones(16)])
    return X, y, plane_patterns(X)


@lru_cache
def convex(data: str, objective: str = "squared", beta: float = BETA):
    X, y, masks = line_data() if data == "line" else plane_data()
    if objective == "interpolation":
        y = np.sin(3 * X[:, 0]) if data == "line" else y
    return two_layer_convex(X, y, beta, masks, objective=objective, complete=True), X, y


def trained(X, y, width: int, seed: int, restarts: int = 2, beta: float = BETA) -> float:
    exp = Experiment(activation="relu", depth=2, arch="parallel", branches=width,
                     objective="squared", beta=beta, iterations=300, restarts=restarts, seed=seed)
    result = solve_primal(exp, X, y[:, None])
    assert result.value is not None
    return result.value


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# -- the patterns ------------------------------------------------------------------------------

def test_line_patterns_are_all_the_patterns():
    X, _, masks = line_data()
    assert masks.shape == (2 * 20, 20)
    assert as_set(sampled_patterns(X, 200_000, seed=1)) == as_set(masks)


def test_plane_patterns_are_the_chambers():
    X, _, masks = plane_data()
    n = X.shape[0]
    assert masks.shape[0] == 2 * sum(comb(n - 1, k) for k in range(3))  # general position
    sampled = sampled_patterns(X, 200_000, seed=1)
    assert as_set(sampled) <= as_set(masks)
    assert len(sampled) >= 0.9 * len(masks)  # sampling finds most, not necessarily all


# -- the rebuilt network -----------------------------------------------------------------------

@pytest.mark.parametrize(("data", "objective"),
                         [("line", "squared"), ("line", "interpolation"), ("plane", "squared")])
def test_rebuilt_network_attains_the_convex_value(data, objective):
    result, X, y = convex(data, objective)
    assert result.status == "optimal" and result.value is not None
    assert result.exact and result.label == f"exact (all {result.V.shape[1]} patterns)"
    value = network_objective(result.neurons, X, y, BETA, objective)
    assert rel(value, result.value) < 1e-6
    if objective == "interpolation":
        assert relative_residual(result.neurons, X, y) < 1e-6


def test_rebuilt_network_is_a_parallel_net_of_dualviz_nets():
    """Same forward pass and the same regularizer as training uses, for every regularization."""
    result, X, y = convex("line")
    net = result.neurons
    for regularization in ("weight-decay", "rescaled", "lth-power"):
        exp = Experiment(activation="relu", depth=2, arch="parallel", branches=net.width,
                         beta=BETA, regularization=regularization)
        torch_net = Net(exp, X.shape[1], 1, torch.Generator().manual_seed(0))
        with torch.no_grad():
            torch_net.raw[0].copy_(torch.tensor(net.U.T[:, :, None]))
            torch_net.raw[1].copy_(torch.tensor(net.a[:, None, None]))
            out = torch_net(torch.tensor(X))[:, 0].numpy()
            value = 0.5 * float(np.sum((out - y) ** 2)) + float(torch_net.regularizer())
        np.testing.assert_allclose(out, predict(net, X), rtol=0, atol=1e-12)
        assert rel(value, result.value) < 1e-6


def test_active_neurons_counts_the_rebuilt_neurons():
    result, X, y = convex("line")
    norms = np.linalg.norm(np.hstack([result.V, result.W]), axis=0)
    assert result.active_neurons == result.neurons.width == np.sum(norms > 1e-8 * norms.max())
    assert 0 < result.active_neurons < 2 * result.V.shape[1]
    # Columns below ~1e-6 of the largest are interior-point residue: dropping them costs nothing.
    coarse = rebuild(result.V, result.W, 1e-4)
    assert coarse.width < result.active_neurons
    assert rel(network_objective(coarse, X, y, BETA, "squared"), result.value) < 1e-6


def test_rebuild_and_predict_by_hand():
    V = np.array([[4.0, 0.0], [0.0, 0.0]])  # v_1 = (4, 0): u = (2, 0), a = 2
    W = np.array([[0.0, 0.0], [0.0, 9.0]])  # w_2 = (0, 9): u = (0, 3), a = -3
    net = rebuild(V, W, 1e-8)
    np.testing.assert_allclose(net.U, [[2.0, 0.0], [0.0, 3.0]])
    np.testing.assert_allclose(net.a, [2.0, -3.0])
    X = np.array([[1.0, 1.0], [-1.0, 2.0], [1.0, -1.0]])
    np.testing.assert_allclose(predict(net, X), [4 - 9, -18, 4])
    # (beta/2)(||u||^2 + a^2) = beta (||v|| + ||w||)
    assert network_objective(net, X, np.zeros(3), 0.5, "interpolation") == pytest.approx(6.5)
    empty = rebuild(np.zeros((2, 3)), np.zeros((2, 3)), 1e-8)
    assert empty.width == 0 and np.all(predict(empty, X) == 0)


# -- against training ----------------------------------------------------------------------------

@pytest.mark.parametrize("data", ["line", "plane"])
def test_convex_value_is_below_every_trained_value(data):
    result, X, y = convex(data)
    widths = (2, 5, 10, 50) if data == "line" else (3, 10, 30)
    for width in widths:
        for seed in (0, 1):
            assert trained(X, y, width, seed) >= result.value - 1e-8, (width, seed)


def test_wide_training_reaches_the_convex_value():
    """docs/math.md §4: with m = 50 neurons training reaches the global optimum (1-D data)."""
    result, X, y = convex("line")
    for seed in (0, 1):
        assert rel(trained(X, y, 50, seed, restarts=10), result.value) < 1e-3


# -- subsets of patterns ---------------------------------------------------------------------

def test_a_subset_of_patterns_gives_an_upper_bound():
    result, X, y = convex("line")
    _, _, masks = line_data()
    rng = np.random.default_rng(5)
    subsets = [masks[rng.choice(len(masks), len(masks) // 2, replace=False)],
               sampled_patterns(X, 12, seed=2)]
    for subset in subsets:
        bound = two_layer_convex(X, y, BETA, subset, complete=False)
        assert bound.value is not None and bound.value >= result.value - 1e-8
        assert not bound.exact
        assert bound.label == ("upper bound of the convex optimum "
                               f"(a sampled subset of {len(subset)} patterns)")
        rebuilt = network_objective(bound.neurons, X, y, BETA, "squared")
        assert rel(rebuilt, bound.value) < 1e-6  # still a real network


# -- validation ------------------------------------------------------------------------------

def test_vector_output_is_refused():
    X, y, masks = line_data()
    with pytest.raises(ValueError, match="the two-layer convex program is for a scalar output"):
        two_layer_convex(X, np.column_stack([y, y]), BETA, masks, complete=True)


def test_a_column_target_is_a_scalar_output():
    X, y, masks = line_data()
    column = two_layer_convex(X, y[:, None], BETA, masks, complete=True)
    assert column.value == pytest.approx(convex("line")[0].value, rel=1e-8)


@pytest.mark.parametrize(("change", "message"), [
    ({"masks": np.ones((3, 7), dtype=bool)}, "masks must be P x N"),
    ({"masks": np.full((3, 20), 2)}, "boolean"),
    ({"beta": 0.0}, "beta"),
    ({"objective": "hinge"}, "objective"),
    ({"tol": -1.0}, "tol"),
])
def test_bad_arguments_are_refused(change, message):
    X, y, masks = line_data()
    args = {"masks": masks, "beta": BETA, "objective": "squared", "tol": 1e-8, **change}
    with pytest.raises(ValueError, match=message):
        two_layer_convex(X, y, args["beta"], args["masks"], objective=args["objective"],
                         complete=True, tol=args["tol"])


def test_network_shapes_are_checked():
    with pytest.raises(ValueError, match="d x m"):
        Network(np.zeros((2, 3)), np.zeros(2))


def test_an_infeasible_interpolation_has_no_value():
    X, y, masks = line_data()
    result = two_layer_convex(X, y, BETA, masks[:2], objective="interpolation", complete=False)
    assert result.status == "infeasible"
    assert result.value is None and result.neurons is None and result.active_neurons == 0
