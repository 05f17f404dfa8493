"""The first layer of a three-layer ReLU net: cones and the dual norm F (docs/math.md §6.4).

Used by :mod:`dualviz.relu.three_layer` (the mathematics is in its docstring). For data X (N x d,
bias column included) and the first-layer activation patterns D1_1..D1_P of X, pattern k has
the cone K_k = {w : (2 D1_k - I) X w >= 0}, on which relu(X w) = D1_k X w. Its rows are
reduced here to the ones that matter: by Farkas' lemma a row a_j is implied by the others
exactly when a_j is a non-negative combination of them, so removing such rows one at a time
(testing each against the rows still kept) leaves the same cone.

The two-layer dual norm of a vector e in R^N is

    F(e) = max_{||w|| <= 1} |e^T relu(X w)| = max_{k, s = +-1} || Pi_{K_k}(s X^T D1_k e) ||,

(Pi_K the Euclidean projection on K; max_{w in K, ||w|| <= 1} a^T w = ||Pi_K(a)||). Every
upper bound of the three-layer certificate is a value of F, so it is computed exactly, not by
an iterative solver: the projection of a on a polyhedral cone lies in the relative interior of
one face, whose linear span is the null space L of some set of at most d - 1 of the cone's
rows (or {0}), and it is the orthogonal projection P_L a there. For every feasible candidate
p = P_L a (p in K), ||a - p||^2 = ||a||^2 - ||p||^2 >= ||a - Pi_K(a)||^2, hence

    ||Pi_K(a)|| = max { ||P_L a|| : L a candidate span, P_L a in K }.

The candidates are enumerated once per pattern (subsets of at most d - 1 reduced rows; for
d <= 3 and the handful of facets of a cone of the arrangement that is 1 + R + R(R-1)/2), and F
is vectorised over many e at once. A candidate is accepted when its slack is >= -ACCEPT_TOL
(relative): a tolerance that can only accept the true projection (never reject it for a
rounding error), so F is never under-estimated beyond rounding.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from .patterns import patterns as arrangement_patterns

REDUNDANT_TOL = 1e-10  # a row whose NNLS residual by the others is below this is implied
ACCEPT_TOL = 1e-10  # a candidate projection is in the cone when every slack >= -this ||p||
MAX_CANDIDATES = 4096  # per pattern; beyond this (large d) the candidates are not enumerated
_BATCH_ENTRIES = 1 << 22  # (e, pattern, sign, candidate, row) entries evaluated at once


@dataclass(frozen=True, eq=False)
class FirstLayer:
    """The first-layer patterns of X with their reduced cones and projection candidates.

    X: N x d; masks: P x N bool (row k the diagonal of D1_k); complete: the masks are every
    pattern of X; message: how they were obtained (dualviz.relu.patterns.patterns).
    rows: P x R x d, pattern k's reduced cone rows (unit length, padded with zero rows);
    projectors: P x C x d x d, orthogonal projections on the candidate spans (padded with the
    zero matrix, the candidate {0}, which is always feasible and never the maximum unless
    Pi_K(a) = 0).
    """

    X: np.ndarray
    masks: np.ndarray
    complete: bool
    message: str
    rows: np.ndarray
    row_counts: np.ndarray
    projectors: np.ndarray
    stacked: np.ndarray  # P x C (R + d) x d: per candidate, [rows_k P_c; P_c]

    @property
    def count(self) -> int:
        return int(self.masks.shape[0])

    @property
    def groups(self) -> int:
        """(pattern, sign) pairs: the blocks z_{k,s} of a second-layer unit."""
        return 2 * self.count

    def group_matrices(self) -> np.ndarray:
        """G x N x d: group g = (k, s) (g = 2 k + (s < 0)) gives s D1_k X."""
        J = self.masks[:, :, None] * self.X[None, :, :]
        return np.stack([J, -J], axis=1).reshape(-1, *self.X.shape)

    def group_rows(self) -> list[np.ndarray]:
        """The reduced cone rows of each group's pattern (a group's w lies in K_k)."""
        out = []
        for k in range(self.count):
            r = self.rows[k, : self.row_counts[k]]
            out += [r, r]
        return out


def first_layer(X: np.ndarray, *, max_patterns: int = 5000, samples: int = 100_000,
                seed: int = 0) -> FirstLayer:
    """Enumerate (rank <= 3) or sample the first-layer patterns and prepare their cones."""
    found = arrangement_patterns(X, max_patterns=max_patterns, samples=samples, seed=seed)
    return first_layer_from_masks(X, found.masks, found.complete, found.message)


def first_layer_from_masks(X: np.ndarray, masks: np.ndarray, complete: bool,
                           message: str) -> FirstLayer:
    X = np.asarray(X, dtype=float)
    masks = np.asarray(masks, dtype=bool)
    reduced = [reduced_rows(X, m) for m in masks]
    n_rows = max((len(r) for r in reduced), default=0)
    d = X.shape[1]
    rows = np.zeros((len(masks), max(n_rows, 1), d))
    counts = np.zeros(len(masks), dtype=int)
    cands = [candidate_projectors(r) for r in reduced]
    n_cand = max(len(c) for c in cands)
    projectors = np.zeros((len(masks), n_cand, d, d))
    for k, (r, c) in enumerate(zip(reduced, cands, strict=True)):
        rows[k, : len(r)] = r
        counts[k] = len(r)
        projectors[k, : len(c)] = c
    slack_rows = np.einsum("krd,kcdj->kcrj", rows, projectors)
    stacked = np.concatenate([slack_rows, projectors], axis=2).reshape(len(masks), -1, d)
    return FirstLayer(X, masks, bool(complete), message, rows, counts, projectors, stacked)


def reduced_rows(X: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The rows of K = {w : (2 D - I) X w >= 0} that are not implied by the others (unit).

    Zero rows are dropped (0 >= 0 always holds) and repeated rows merged; then each row in
    turn is dropped if it is a non-negative combination of the rows still kept (Farkas: then
    it is implied by them), so the cone is unchanged at every step.
    """
    A = (2.0 * mask - 1.0)[:, None] * X
    norms = np.linalg.norm(A, axis=1)
    A = A[norms > 1e-14 * max(norms.max(initial=0.0), 1e-300)]
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    if len(A) == 0:
        return A
    A = np.unique(np.round(A, 12), axis=0)
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    keep = np.ones(len(A), dtype=bool)
    for j in range(len(A)):
        others = keep.copy()
        others[j] = False
        if not others.any():
            continue
        _, residual = nnls(A[others].T, A[j])
        if residual <= REDUNDANT_TOL:
            keep[j] = False
    return A[keep]


def candidate_projectors(rows: np.ndarray) -> np.ndarray:
    """C x d x d: projections on the null spaces of subsets of at most d - 1 rows, and {0}.

    Duplicated spans are kept once, and a line that meets the cone only at 0 is left out (its
    projection is in K only when it is 0, the candidate {0}). With more than MAX_CANDIDATES
    subsets (many rows in a high dimension) ValueError: the exact evaluation of F is for small d.
    """
    d = rows.shape[1] if rows.ndim == 2 else 0
    r = len(rows)
    sizes = range(min(d - 1, r) + 1)
    total = sum(math.comb(r, s) for s in sizes)
    if total > MAX_CANDIDATES:
        raise ValueError(f"{total} candidate faces per cone (d = {d}, {r} facets): the exact "
                         "two-layer dual norm is implemented for small d")
    out = [np.eye(d)]
    seen = {np.round(np.eye(d), 9).tobytes()}
    for size in sizes:
        if size == 0:
            continue
        for subset in itertools.combinations(range(r), size):
            _, s, vt = np.linalg.svd(rows[list(subset)])
            rank = int(np.sum(s > 1e-10))
            basis = vt[rank:]
            if len(basis) == 0:
                continue
            if len(basis) == 1 and r:
                slack = rows @ basis[0]
                tol = 1e-9
                if not (slack.min() >= -tol or slack.max() <= tol):
                    continue  # neither direction of the line is in the cone
            proj = basis.T @ basis
            key = np.round(proj, 9).tobytes()
            if key not in seen:
                seen.add(key)
                out.append(proj)
    out.append(np.zeros((d, d)))
    return np.array(out)


def dual_norm(layer: FirstLayer, E: np.ndarray) -> np.ndarray:
    """F(e) for each row e of E (M x N): max over patterns, signs and feasible candidates."""
    return group_values(layer, E).max(axis=1, initial=0.0)


def group_values(layer: FirstLayer, E: np.ndarray) -> np.ndarray:
    """M x G: ||Pi_{K_k}(s X^T D1_k e)|| for each row e of E and group g = 2 k + (s < 0), the
    price of group g's best unit neuron; F(e) is the row maximum."""
    E = np.atleast_2d(np.asarray(E, dtype=float))
    P, C, R = layer.count, layer.projectors.shape[1], layer.rows.shape[1]
    per_e = P * 2 * C * (R + layer.X.shape[1])
    step = max(1, _BATCH_ENTRIES // per_e)
    out = np.empty((len(E), 2 * P))
    for start in range(0, len(E), step):
        out[start : start + step] = _group_values_block(layer, E[start : start + step])
    return out


def _group_values_block(layer: FirstLayer, E: np.ndarray) -> np.ndarray:
    # a[k, :, m] = X^T D1_k e_m, both signs side by side: P x d x 2M
    M = len(E)
    a = np.einsum("mn,kn,nd->kdm", E, layer.masks.astype(float), layer.X)
    a = np.concatenate([a, -a], axis=2)
    P, C, R, d = layer.count, layer.projectors.shape[1], layer.rows.shape[1], layer.X.shape[1]
    # one batched product gives every candidate P_c a and its slacks rows_k P_c a
    p = (layer.stacked @ a).reshape(P, C, R + d, 2 * M)
    slack, proj = p[:, :, :R], p[:, :, R:]
    length = np.sqrt(np.einsum("kcdm,kcdm->kcm", proj, proj))
    feasible = slack.min(axis=2) >= -ACCEPT_TOL * np.maximum(length, 1e-300)
    best = np.where(feasible, length, 0.0).max(axis=1)  # P x 2M
    return np.stack([best[:, :M].T, best[:, M:].T], axis=2).reshape(M, 2 * P)
