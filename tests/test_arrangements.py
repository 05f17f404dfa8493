"""Tests for dualviz.relu.patterns: exact activation patterns against independent brute force.

Two independent checks of enumerate_patterns(X) = {1[X g >= 0] : g} minus the zero pattern:
  - realised: every enumerated mask m has a g (found by an LP) with x_k . g >= 0 where
    m_k = 1 and x_k . g <= -t < 0 where m_k = 0; for N = 7 every one of the 2^N masks is
    tested, so the enumeration must equal the realised set exactly;
  - sampled: every pattern of dense Gaussian directions, and of directions just off every
    vertex ray of the arrangement, is in the enumeration.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linprog

from dualviz.relu.patterns import (
    Patterns,
    arrangement_rank,
    enumerate_patterns,
    pattern_bound,
    patterns,
    sample_patterns,
    with_bias,
)

LP_MARGIN = 1e-7  # a strict inequality x . g < 0 must hold with this margin at |g|_inf <= 1
LP_OPTIONS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


# ---------------------------------------------------------------- brute force


def unit_rows(X):
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.where(norms > 0, X / np.where(norms > 0, norms, 1.0), 0.0)


def realised(X, mask) -> bool:
    """Is there g with x_k . g >= 0 (mask 1) and x_k . g < 0 (mask 0)?  By LP on the margin."""
    X = unit_rows(np.asarray(X, dtype=float))
    mask = np.asarray(mask, dtype=bool)
    if mask.all():
        return True  # g = 0
    d = X.shape[1]
    # variables (g, t): maximise t s.t. -x.g <= 0 on active rows, x.g + t <= 0 on the others
    A = np.vstack([
        np.hstack([-X[mask], np.zeros((mask.sum(), 1))]),
        np.hstack([X[~mask], np.ones(((~mask).sum(), 1))]),
    ])
    res = linprog(np.r_[np.zeros(d), -1.0], A_ub=A, b_ub=np.zeros(len(A)),
                  bounds=[(-1, 1)] * d + [(0, 1)], method="highs", options=LP_OPTIONS)
    return res.status == 0 and -res.fun > LP_MARGIN


def vertex_rays(X):
    """Directions (in R^d) of the one-dimensional flats, computed independently of the module."""
    _, s, Vt = np.linalg.svd(X, full_matrices=False)
    r = int(np.sum(s > 1e-9 * s[0])) if s[0] > 0 else 0
    Z = X @ Vt[:r].T
    if r == 1:
        rays = np.ones((1, 1))
    elif r == 2:
        rays = np.stack([-Z[:, 1], Z[:, 0]], axis=1)
    else:
        rays = np.array([np.cross(a, b) for a, b in itertools.combinations(Z, 2)])
    norms = np.linalg.norm(rays, axis=1)
    rays = rays[norms > 1e-9] / norms[norms > 1e-9, None]
    return np.vstack([rays, -rays]) @ Vt[:r]


def sampled(X, seed, samples=200_000, per_ray=40, eps=1e-4):
    """Patterns of Gaussian g and of g = v + eps h around every vertex ray v (zero removed)."""
    rng = np.random.default_rng(seed)
    d = X.shape[1]
    G = [rng.standard_normal((samples, d))]
    for v in vertex_rays(X):
        G.append(v + eps * rng.standard_normal((per_ray, d)))
    packed = np.packbits(np.vstack(G) @ X.T >= 0, axis=1)
    rows = np.unique(packed.view(np.dtype((np.void, packed.shape[1]))).ravel())
    masks = np.unpackbits(rows.view(np.uint8).reshape(len(rows), -1), axis=1, count=len(X))
    return {tuple(bool(b) for b in m) for m in masks if m.any()}


def as_set(masks):
    return {tuple(bool(b) for b in m) for m in masks}


# ---------------------------------------------------------------- instances


def _rng(seed):
    return np.random.default_rng(seed)


def inst_rank1_column(n, seed):
    c = _rng(seed).standard_normal((n, 1))
    c[1] = 0.0
    c[2] = c[3]  # duplicate row
    return c


def inst_rank_one_outer(n, seed):
    rng = _rng(seed)
    return np.outer(rng.standard_normal(n), rng.standard_normal(3))  # X = c a^T


def inst_rank_one_positive(n, seed):
    rng = _rng(seed)
    return np.outer(rng.uniform(0.5, 2.0, n), rng.standard_normal(4))


def inst_rank2_general(n, seed):
    return _rng(seed).standard_normal((n, 2))


def inst_1d_bias(n, seed):
    x = np.round(_rng(seed).uniform(-1, 1, (n, 1)) * 4) / 4  # a grid of 9 values: repeats
    return with_bias(x)


def inst_rank2_embedded(n, seed):
    rng = _rng(seed)
    return rng.standard_normal((n, 2)) @ rng.standard_normal((2, 4))


def inst_rank2_opposite(n, seed):
    Z = _rng(seed).standard_normal((n - 3, 2))
    return np.vstack([Z, -Z[:2], np.zeros((1, 2))])  # opposite rows and a zero row


def inst_plane_bias(n, seed):
    return with_bias(_rng(seed).standard_normal((n, 2)))


def inst_grid_bias(n, seed):
    grid = np.array(list(itertools.product([-1.0, 0.0, 1.0], repeat=2)))  # collinear triples
    pick = _rng(seed).choice(len(grid), size=n, replace=n > len(grid))
    return with_bias(grid[pick])


def inst_collinear_bias(n, seed):
    rng = _rng(seed)
    t = rng.uniform(-1, 1, n - 3)
    line = np.stack([t, 0.5 * t + 0.25], axis=1)  # points on y = x/2 + 1/4
    return with_bias(np.vstack([line, rng.standard_normal((3, 2))]))


def inst_rank3_opposite(n, seed):
    Z = _rng(seed).standard_normal((n - 2, 3))
    return np.vstack([Z, -Z[0], 2.0 * Z[1]])  # an opposite row and a scaled copy


def inst_integer3(n, seed):
    return _rng(seed).integers(-1, 2, size=(n, 3)).astype(float)  # zero and parallel rows


def inst_rank3_embedded(n, seed):
    rng = _rng(seed)
    return rng.standard_normal((n, 3)) @ rng.standard_normal((3, 5))


INSTANCES = {
    "rank1-column": (inst_rank1_column, 1),
    "rank-one c a^T": (inst_rank_one_outer, 1),
    "rank-one c>0": (inst_rank_one_positive, 1),
    "rank2-general": (inst_rank2_general, 2),
    "1d+bias": (inst_1d_bias, 2),
    "rank2-in-R4": (inst_rank2_embedded, 2),
    "rank2-opposite+zero": (inst_rank2_opposite, 2),
    "plane+bias": (inst_plane_bias, 3),
    "grid+bias": (inst_grid_bias, 3),
    "collinear+bias": (inst_collinear_bias, 3),
    "rank3-opposite": (inst_rank3_opposite, 3),
    "integer-3": (inst_integer3, 3),
    "rank3-in-R5": (inst_rank3_embedded, 3),
}
CASES = [(name, n) for name in INSTANCES for n in (5, 12)]


# ---------------------------------------------------------------- exact enumeration


@pytest.mark.parametrize(("name", "n"), CASES)
def test_enumeration_is_realised_and_contains_every_sampled_pattern(name, n):
    make, rank = INSTANCES[name]
    X = make(n, seed=n)
    assert arrangement_rank(X) == rank
    masks = enumerate_patterns(X)
    assert masks.dtype == bool and masks.shape[1] == n
    assert len(as_set(masks)) == len(masks), "rows must be unique"
    assert not np.any(~masks.any(axis=1)), "the all-zero pattern must be removed"
    assert sampled(X, seed=n) <= as_set(masks)
    missing = [m for m in masks if not realised(X, m)]
    assert not missing, f"{len(missing)} enumerated patterns are not realised"


@pytest.mark.parametrize("name", list(INSTANCES))
def test_enumeration_equals_all_realisable_masks(name):
    """N = 7: each of the 128 masks is realised (LP) iff it is enumerated."""
    make, _ = INSTANCES[name]
    X = make(7, seed=1)
    truth = {m for m in itertools.product([False, True], repeat=7) if any(m) and realised(X, m)}
    assert as_set(enumerate_patterns(X)) == truth


def test_on_hyperplane_counts_as_active():
    """Rows z and -z: g = 0 puts both on the hyperplane, so (1, 1) is a pattern too."""
    X = np.array([[1.0], [-1.0]])
    assert as_set(enumerate_patterns(X)) == {(True, False), (False, True), (True, True)}
    # ... which is more than the general-position count of open cones
    assert pattern_bound(2, 1) == 2


def test_zero_data_has_only_the_all_ones_pattern():
    np.testing.assert_array_equal(enumerate_patterns(np.zeros((4, 3))), np.ones((1, 4), bool))


def test_output_is_sorted_lexicographically():
    masks = enumerate_patterns(inst_plane_bias(10, seed=3))
    keys = [tuple(m) for m in masks]
    assert keys == sorted(keys)


@settings(max_examples=30, deadline=None)
@given(
    Z=arrays(np.int64, (7, 3), elements=st.integers(-2, 2)),
    scale=arrays(np.float64, 7, elements=st.floats(0.1, 10.0)),
    perm=st.permutations(range(7)),
)
def test_invariant_under_row_order_and_positive_scaling(Z, scale, perm):
    X = Z.astype(float)
    Y = (X * scale[:, None])[list(perm)]
    assert as_set(enumerate_patterns(Y)) == {
        tuple(m[list(perm)]) for m in enumerate_patterns(X)
    }


def test_rank_above_three_is_refused():
    with pytest.raises(ValueError, match="rank"):
        enumerate_patterns(_rng(0).standard_normal((10, 4)))


# ---------------------------------------------------------------- counts


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plane_with_bias_has_381_patterns_at_n20(seed):
    """docs/math.md §4: N = 20 points in general position in R^2 plus bias give 381 patterns.

    pattern_bound(20, 3) = 2 (1 + 19 + 171) = 382 open cones, which include the all-zero
    cone (g = -e_bias); removing it leaves 381.
    """
    masks = enumerate_patterns(inst_plane_bias(20, seed))
    assert pattern_bound(20, 3) == 382
    assert len(masks) == 381


def test_one_dimensional_data_with_bias_has_2n_minus_1_patterns():
    x = np.linspace(-1, 1, 20)[:, None]
    assert len(enumerate_patterns(with_bias(x))) == pattern_bound(20, 2) - 1 == 39


def test_no_bias_gaussian_rows_add_the_all_ones_pattern_of_g_zero():
    """Without a bias no g makes all rows positive (nor all negative), so the 382 cones are
    all useful and g = 0 adds the all-ones pattern: 383."""
    X = _rng(0).standard_normal((20, 3))
    assert not realised(X, np.zeros(20, bool))  # no all-negative (hence no all-positive) cone
    masks = enumerate_patterns(X)
    assert len(masks) == pattern_bound(20, 3) + 1 == 383
    assert as_set(masks) >= {(True,) * 20}


def test_pattern_bound_values():
    assert [pattern_bound(5, r) for r in range(7)] == [1, 2, 10, 22, 30, 32, 32]
    with pytest.raises(ValueError):
        pattern_bound(0, 2)


def test_a_hundred_points_in_general_position_have_every_pattern_of_the_bound():
    """The bound 2 sum_{k<3} C(N-1, k) is attained in general position (its time is measured
    by benchmarks/bench_relu.py, not here)."""
    masks = enumerate_patterns(inst_plane_bias(100, seed=0))
    assert len(masks) == pattern_bound(100, 3) - 1


# ---------------------------------------------------------------- sampling


def test_sampling_misses_patterns_at_n20():
    X = inst_plane_bias(20, seed=0)
    exact = as_set(enumerate_patterns(X))
    few = as_set(sample_patterns(X, samples=2000, seed=0))
    assert few < exact
    assert len(few) < 381


def test_sampling_is_deterministic_per_seed():
    X = inst_plane_bias(20, seed=0)
    a = sample_patterns(X, samples=300, seed=7)
    np.testing.assert_array_equal(a, sample_patterns(X, samples=300, seed=7))
    assert not np.array_equal(a, sample_patterns(X, samples=300, seed=8))


def test_sampling_includes_g_zero_and_drops_the_zero_pattern():
    X = inst_plane_bias(10, seed=0)
    masks = sample_patterns(X, samples=5000, seed=0)
    assert masks.all(axis=1).any() and masks.any(axis=1).all()


# ---------------------------------------------------------------- patterns()


def test_patterns_uses_exact_enumeration_up_to_rank_three():
    X = inst_rank3_embedded(12, seed=0)
    result = patterns(X)
    assert result.method == "exact enumeration (rank 3)"
    assert result.complete and not result.capped and result.found == len(result.masks)
    np.testing.assert_array_equal(result.masks, enumerate_patterns(X))
    assert "complete" in result.message and str(result.found) in result.message
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.complete = False


def test_patterns_samples_for_rank_four_and_says_it_may_be_incomplete():
    X = with_bias(_rng(0).standard_normal((40, 3)))
    result = patterns(X, samples=2000, seed=0)
    assert result.method == "Gaussian sampling (2000 directions)"
    assert not result.complete and not result.capped
    assert "incomplete" in result.message
    np.testing.assert_array_equal(result.masks, sample_patterns(X, 2000, 0))


def test_sampling_that_finds_every_cone_of_general_position_data_is_complete():
    # rank 4, 2 (1 + 5 + 10 + 10) = 52 cones; this seed's smallest cone is hit by 1e5 samples
    X = with_bias(_rng(5).standard_normal((6, 3)))
    result = patterns(X, samples=100_000, seed=0)
    truth = {m for m in itertools.product([False, True], repeat=6) if any(m) and realised(X, m)}
    assert result.complete and as_set(result.masks) == truth and len(truth) == 51


def test_sampling_of_degenerate_data_is_never_called_complete():
    X = with_bias(_rng(5).standard_normal((6, 3)))
    X = np.vstack([X, X[0]])  # a repeated row: fewer cones than pattern_bound(7, 4)
    assert not patterns(X, samples=100_000, seed=0).complete


def test_cap_keeps_a_deterministic_subset_and_says_so():
    X = inst_plane_bias(20, seed=0)
    result = patterns(X, max_patterns=100, seed=3)
    assert result.capped and not result.complete
    assert result.found == 381 and result.masks.shape == (100, 20)
    assert as_set(result.masks) <= as_set(enumerate_patterns(X))
    assert len(as_set(result.masks)) == 100
    assert "capped" in result.message and "100 of 381" in result.message
    again = patterns(X, max_patterns=100, seed=3)
    np.testing.assert_array_equal(result.masks, again.masks)
    assert result == dataclasses.replace(again, masks=result.masks)


@pytest.mark.parametrize(
    "bad",
    [np.zeros(3), np.zeros((0, 2)), np.array([[np.nan, 1.0]]), np.array([["a", "b"]])],
)
def test_bad_data_is_refused(bad):
    with pytest.raises(ValueError):
        patterns(bad)
    with pytest.raises(ValueError):
        enumerate_patterns(bad)


def test_bad_arguments_are_refused():
    X = inst_plane_bias(5, seed=0)
    for kwargs in [{"max_patterns": 0}, {"samples": 0}, {"samples": 1.5}, {"seed": None}]:
        with pytest.raises(ValueError):
            patterns(X, **kwargs)
    with pytest.raises(ValueError):
        enumerate_patterns(X, tol=0.0)


def test_with_bias_appends_a_column_of_ones():
    np.testing.assert_array_equal(with_bias([[2.0], [3.0]]), [[2.0, 1.0], [3.0, 1.0]])
    assert isinstance(patterns(with_bias([[0.0], [1.0]])), Patterns)
