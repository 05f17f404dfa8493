"""Activation patterns of a ReLU layer: the hyperplane arrangement of the data (docs/math.md §4).

For data X (N x d, the bias already a column if wanted) the activation patterns are the
distinct diagonals of

    D(g) = diag(1[X g >= 0]),    g in R^d.

Row k is active when x_k . g >= 0, so a row *on* the hyperplane of g counts as active, and
g = 0 realises the all-ones pattern.  The all-zero pattern (D = 0) is useless to the convex
program and is always removed.

Only the row space of X matters: with X = U S V^T and Z = X V_r (r = rank X) the patterns
are exactly {1[Z g >= 0] : g in R^r}.  Rows are also rescaled to unit length (a positive
factor changes no sign), which makes ``tol`` an angle-like tolerance.

Counting.  N rows in general position (every r of them independent) cut R^r into

    C(N, r) = 2 sum_{k<r} C(N-1, k)        (Cover 1965; ``pattern_bound``)

open cones, and every other arrangement of N hyperplanes in R^r has strictly fewer.  In
general position every nonzero face pattern is also the pattern of an open cone, so the
pattern set is those C(N, r) cones plus the all-ones pattern of g = 0, minus the all-zero
pattern.  With a bias column both all-ones (g = e_bias) and all-zero (g = -e_bias) are open
cones, so the count is C(N, r) - 1: 381 for N = 20 points in the plane plus bias (rank 3).
Without a bias it can be C(N, r) + 1 (no g makes every row strictly positive, e.g. Gaussian
rows in R^3), and for degenerate data (a row and its negative) the face patterns can
exceed the number of open cones — ``pattern_bound`` is the general-position count, not an
upper bound on every pattern set.

Exact enumeration (rank <= 3).  Every nonzero g lies in a face F of the arrangement; the
closure of F is a pointed cone (the normals span R^r), so it contains an extreme ray v,
itself a one-dimensional face, and for t in (0, 1] the point v + t (g - v) stays in F.
Hence the patterns are all-ones (g = 0) together with, at every ray v,

    bits 1[z_k . v > 0] off the zero set S = {k : z_k . v = 0}, and on S the patterns
    {1[Z_S h >= 0] : h in v^perp}  — a lower-rank arrangement, enumerated recursively.

The rays are +-perp(z_i) for rank 2 and +-(z_i x z_j) for non-parallel pairs for rank 3.
Generically S holds r - 1 independent rows and takes all 2^(r-1) bit choices (for rank 3,
all four choices of the bits of i and j: docs/math.md §4.2).  Repeated directions and zero
rows are merged first (they always share a bit / are always active).  Cost O(N^3) time for
rank 3 and P <= N^2 patterns; about 1 s for N = 200, 13 s for N = 400 in general position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "EXACT_MAX_RANK",
    "Patterns",
    "arrangement_rank",
    "enumerate_patterns",
    "pattern_bound",
    "patterns",
    "sample_patterns",
    "with_bias",
]

EXACT_MAX_RANK = 3
DEFAULT_TOL = 1e-10
# Bound the size of the (rays x rows) sign table and the (samples x rows) mask table built
# at once, so memory stays O(this) whatever N and the number of samples.
_BLOCK_ENTRIES = 1 << 22


@dataclass(frozen=True)
class Patterns:
    """A set of activation patterns and how it was obtained.

    masks: (P, N) bool, row i the diagonal of D_i; unique rows in lexicographic order
        (False < True); the all-zero pattern excluded.
    complete: every pattern of the arrangement is present (exact enumeration, or sampling
        that found all C(N, r) cones of an arrangement in general position).
    method: how the set was built, e.g. "exact enumeration (rank 2)".
    found: P before any cap.
    capped: more than max_patterns were found and the set was cut (then complete is False).
    message: one line for the user: how many, complete or not, capped or not, and why.
    """

    masks: np.ndarray
    complete: bool
    method: str
    found: int
    capped: bool
    message: str


# ---------------------------------------------------------------- validation & helpers


def _as_data(X) -> np.ndarray:
    """X as a finite float N x d array with N, d >= 1, or ValueError."""
    arr = np.asarray(X)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"X must be a real numeric array, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"X must be 2-D (N x d) with N, d >= 1, got shape {arr.shape}")
    arr = arr.astype(float)
    if not np.all(np.isfinite(arr)):
        raise ValueError("X must be finite")
    return arr


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_seed(seed) -> int:
    # None would draw OS entropy and break the same-seed-same-result promise.
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_tol(tol) -> float:
    if not (isinstance(tol, int | float) and math.isfinite(tol) and 0 < tol < 1e-2):
        raise ValueError(f"tol must be a number in (0, 1e-2), got {tol!r}")
    return float(tol)


def with_bias(X) -> np.ndarray:
    """[X, 1]: the bias as a last column of ones, so x . g + b = [x, 1] . [g, b]."""
    arr = _as_data(X)
    return np.hstack([arr, np.ones((arr.shape[0], 1))])


def pattern_bound(n: int, rank: int) -> int:
    """C(n, r) = 2 sum_{k<r} C(n-1, k): the open cones of n hyperplanes in general position.

    Counts the all-zero cone when it exists (with a bias column it does), so the number of
    useful patterns of such data is pattern_bound(n, r) - 1.  Not an upper bound on the
    ``>= 0`` pattern set of arbitrary data; see the module docstring.
    """
    n = _positive_int(n, "n")
    if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or rank < 0:
        raise ValueError(f"rank must be a non-negative integer, got {rank!r}")
    if rank == 0:
        return 1  # every g gives the all-ones pattern
    return 2 * sum(math.comb(n - 1, k) for k in range(int(rank)))


def _unit_rows(Z: np.ndarray, tol: float) -> np.ndarray:
    """Rows scaled to unit length; rows shorter than tol * (longest row) set exactly to 0.

    Why: a positive factor changes no sign, and unit rows make |z . v| <= tol (v unit) a
    scale-free test for "on the hyperplane".  A negligible row is treated as the zero row,
    which is active for every g.
    """
    norms = np.linalg.norm(Z, axis=1)
    top = norms.max(initial=0.0)
    keep = norms > tol * top if top > 0 else np.zeros(len(Z), dtype=bool)
    out = np.zeros_like(Z)
    out[keep] = Z[keep] / norms[keep, None]
    return out


def _row_space(Z: np.ndarray, tol: float) -> np.ndarray:
    """Z V_r: coordinates in the row space, r = #{singular values > tol * largest}."""
    if not np.any(Z):
        return Z[:, :0]
    _, s, vt = np.linalg.svd(Z, full_matrices=False)
    r = int(np.sum(s > tol * s[0]))
    return Z @ vt[:r].T


def arrangement_rank(X, tol: float = DEFAULT_TOL) -> int:
    """Numerical rank of X after scaling rows to unit length (the r in {1[Z g >= 0]})."""
    return _row_space(_unit_rows(_as_data(X), _check_tol(tol)), tol).shape[1]


def _unique_packed(packed: np.ndarray) -> np.ndarray:
    """Unique rows of a 2-D uint8 array, in lexicographic (memcmp) order."""
    packed = np.ascontiguousarray(packed)
    # One opaque record per row: 1-D np.unique on it is several times faster than axis=0.
    rows = packed.view(np.dtype((np.void, packed.shape[1]))).ravel()
    return np.unique(rows).view(np.uint8).reshape(-1, packed.shape[1])


def _unique_rows(masks: np.ndarray, n: int) -> np.ndarray:
    """Unique rows of a (P, n) bool array in lexicographic order (False < True)."""
    if masks.shape[0] == 0 or n == 0:
        return np.ones((min(masks.shape[0], 1), n), dtype=bool)
    # Big-endian bit packing keeps byte order = bit order, so memcmp order is lexicographic.
    packed = _unique_packed(np.packbits(masks, axis=1))
    return np.unpackbits(packed, axis=1, count=n).astype(bool)


def _drop_zero(masks: np.ndarray) -> np.ndarray:
    """Remove the all-zero pattern (D = 0 contributes nothing to the convex program)."""
    return masks[masks.any(axis=1)]


# ---------------------------------------------------------------- exact enumeration


def _rays(Z: np.ndarray, tol: float) -> np.ndarray:
    """Unit directions spanning the one-dimensional flats of the arrangement, both signs.

    Rank 2: perp(z_i) for each row.  Rank 3: z_i x z_j for each pair with |z_i x z_j| > tol
    (a parallel pair meets in a plane, not a line).  Repeated rays are harmless.
    """
    if Z.shape[1] == 2:
        rays = np.stack([-Z[:, 1], Z[:, 0]], axis=1)
    else:
        i, j = np.triu_indices(len(Z), k=1)
        rays = np.cross(Z[i], Z[j])
    norms = np.linalg.norm(rays, axis=1)
    rays = rays[norms > tol] / norms[norms > tol, None]
    return np.concatenate([rays, -rays])


def _complement_basis(v: np.ndarray) -> np.ndarray:
    """An orthonormal basis of v^perp as the columns of an r x (r-1) matrix (v unit)."""
    _, _, vt = np.linalg.svd(v[None, :])
    return vt[1:].T


def _face_patterns(Z: np.ndarray, tol: float) -> np.ndarray:
    """All patterns {1[Z g >= 0] : g}, unique rows, for rank(Z) <= 3 (see module docstring).

    Rows with the same direction always share their bit, and a zero row is always active,
    so the work is done on the distinct nonzero directions and the columns copied back.
    """
    Z = _unit_rows(Z, tol)
    # Rounding on a tol grid merges (near-)repeated directions; a pair it fails to merge
    # (straddling a grid line) is still handled correctly, only more slowly.
    keys = np.round(Z / tol) + 0.0  # + 0.0 turns -0.0 into 0.0
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    reps = Z[first]
    live = np.any(reps != 0, axis=1)
    core = _distinct_face_patterns(reps[live], tol)
    out = np.ones((len(core), len(reps)), dtype=bool)
    out[:, live] = core
    return out[:, inverse.ravel()]


def _distinct_face_patterns(Z: np.ndarray, tol: float) -> np.ndarray:
    """_face_patterns for unit rows with pairwise distinct directions."""
    n = Z.shape[0]
    Z = _unit_rows(_row_space(Z, tol), tol)  # projecting moves norms by O(tol): re-unit
    r = Z.shape[1]
    ones = np.ones((1, n), dtype=bool)
    if r == 0:
        return ones
    if r == 1:  # g = +1, -1, 0
        return _unique_rows(np.stack([Z[:, 0] > 0, Z[:, 0] < 0, ones[0]]), n)
    if r > EXACT_MAX_RANK:
        raise ValueError(f"exact enumeration is implemented for rank <= 3, got rank {r}")
    vertex = _rank2_vertex_patterns if r == 2 else _rank3_vertex_patterns
    packed = np.packbits(ones, axis=1)  # g = 0
    seen: set[bytes] = set()
    rays = _rays(Z, tol)
    block = max(1, _BLOCK_ENTRIES // (4 * n))
    for start in range(0, len(rays), block):
        found = vertex(Z, rays[start : start + block], tol, seen)
        # Deduplicate per block: each cone is met at several of its rays, and the packed
        # unique set stays O(P N / 8) bytes however many rays there are.
        packed = _unique_packed(np.concatenate([packed, np.packbits(found, axis=1)]))
    return np.unpackbits(packed, axis=1, count=n).astype(bool)


def _rank2_vertex_patterns(Z, rays, tol, seen) -> np.ndarray:
    """Rank 2: at ray v the zero set S holds rows +-w (w = v rotated by -90 degrees), and
    the rank-1 arrangement on S gives 1[z . w > 0], 1[z . w < 0] and all ones on S."""
    signs = rays @ Z.T
    zero = np.abs(signs) <= tol
    base = signs > tol
    along = np.stack([rays[:, 1], -rays[:, 0]], axis=1) @ Z.T
    return np.concatenate([base | (zero & (along > 0)), base | (zero & (along < 0)), base | zero])


def _rank3_vertex_patterns(Z, rays, tol, seen: set[bytes]) -> np.ndarray:
    """Rank 3: at ray v = z_i x z_j the zero set is generically {i, j}, which takes all four
    bit choices (z_i, z_j independent in v^perp); larger zero sets (three or more coplanar
    directions) are solved as the rank-2 arrangement of S projected on v^perp."""
    signs = rays @ Z.T
    zero = np.abs(signs) <= tol
    base = signs > tol
    generic = zero.sum(axis=1) == 2
    gz, gb = zero[generic], base[generic]
    first = gz & (np.cumsum(gz, axis=1) == 1)
    found = [gb, gb | first, gb | (gz & ~first), gb | gz]
    # Rays of the same flat repeat the same (base, zero) pair, within and across blocks:
    # solve each pair once.
    packed = np.packbits(np.concatenate([base, zero], axis=1), axis=1)
    for idx in np.flatnonzero(~generic):
        key = packed[idx].tobytes()
        if key in seen:
            continue
        seen.add(key)
        on = zero[idx]
        sub = _face_patterns(Z[on] @ _complement_basis(rays[idx]), tol)
        pats = np.repeat(base[idx][None, :], len(sub), axis=0)
        pats[:, on] = sub
        found.append(pats)
    return np.concatenate(found)


def enumerate_patterns(X, tol: float = DEFAULT_TOL) -> np.ndarray:
    """Exactly the patterns {1[X g >= 0] : g in R^d} minus the all-zero one, for rank <= 3.

    Returns (P, N) bool, unique rows in lexicographic order.  Correct for degenerate data
    (repeated, collinear, zero or opposite rows; rank 1 or 2): a row with |z_k . v| <= tol
    at unit scale is treated as exactly on the hyperplane.  ValueError if rank(X) > 3.
    """
    arr = _as_data(X)
    tol = _check_tol(tol)
    rank = arrangement_rank(arr, tol)
    if rank > EXACT_MAX_RANK:
        raise ValueError(
            f"exact enumeration is implemented for rank(X) <= 3; this X has rank {rank} "
            "(use sample_patterns)"
        )
    # Copying columns back from distinct directions breaks the row order: sort again.
    return _drop_zero(_unique_rows(_face_patterns(arr, tol), arr.shape[0]))


# ---------------------------------------------------------------- sampling


def _sampled_cones(X: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """Unique 1[X g >= 0] over `samples` Gaussian g (zero pattern kept), in chunks."""
    n, d = X.shape
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ENTRIES // n)  # depends on n only, so results depend on seed only
    packed = np.zeros((0, (n + 7) // 8), dtype=np.uint8)
    for start in range(0, samples, block):
        g = rng.standard_normal((d, min(block, samples - start)))
        chunk = np.packbits((X @ g >= 0).T, axis=1)
        packed = _unique_packed(np.concatenate([packed, chunk]))
    return np.unpackbits(packed, axis=1, count=n).astype(bool)


def _with_origin(cones: np.ndarray) -> np.ndarray:
    """Sampled cones plus the all-ones pattern of g = 0, all-zero pattern removed."""
    masks = np.concatenate([cones, np.ones((1, cones.shape[1]), dtype=bool)])
    return _drop_zero(_unique_rows(masks, cones.shape[1]))


def sample_patterns(X, samples: int, seed: int) -> np.ndarray:
    """Patterns 1[X g >= 0] for `samples` Gaussian g ~ N(0, I_d), plus g = 0 (all ones).

    Returns (P, N) bool, unique rows in lexicographic order, the all-zero pattern removed.
    Gaussian g lands in an open cone with probability 1, so small cones are easily missed
    and patterns realised only on a hyperplane (degenerate data) never appear; g = 0 is
    added because it always realises the all-ones pattern, matching enumerate_patterns.
    """
    arr = _as_data(X)
    samples = _positive_int(samples, "samples")
    return _with_origin(_sampled_cones(arr, samples, _check_seed(seed)))


# ---------------------------------------------------------------- the front door


def _cap(masks: np.ndarray, max_patterns: int, seed: int) -> np.ndarray:
    """A uniformly random subset of max_patterns rows (seeded), kept in lexicographic order.

    Why random rather than the first rows: lexicographic order groups patterns by the
    first data points' bits, so a prefix would be a biased, clustered subset.
    """
    keep = np.random.default_rng(seed).choice(len(masks), size=max_patterns, replace=False)
    return masks[np.sort(keep)]


def _exact_message(count: int, rank: int, n: int) -> str:
    return (f"{count} activation patterns, complete: exact enumeration of the rank-{rank} "
            f"arrangement of N = {n} rows.")


def patterns(X, *, max_patterns: int = 5000, samples: int = 100_000, seed: int = 0) -> Patterns:
    """The activation patterns of X: exact for rank(X) <= 3, else Gaussian sampling.

    Sampling is reported complete only when it found all pattern_bound(N, r) open cones:
    only data in general position has that many, and then those cones plus g = 0 give
    every pattern.  If more than max_patterns are found, a seeded uniform subset is kept
    (capped, incomplete).  X is used as given: add the bias column first (with_bias).
    """
    arr = _as_data(X)
    max_patterns = _positive_int(max_patterns, "max_patterns")
    samples = _positive_int(samples, "samples")
    seed = _check_seed(seed)
    n = arr.shape[0]
    rank = arrangement_rank(arr)
    if rank <= EXACT_MAX_RANK:
        masks = enumerate_patterns(arr)
        method = f"exact enumeration (rank {rank})"
        complete = True
        why = _exact_message(len(masks), rank, n)
    else:
        cones = _sampled_cones(arr, samples, seed)
        masks = _with_origin(cones)
        method = f"Gaussian sampling ({samples} directions)"
        complete = len(cones) == pattern_bound(n, rank)
        if complete:
            why = (f"{len(masks)} activation patterns, complete: {samples} Gaussian directions "
                   f"found all {pattern_bound(n, rank)} cones of N = {n} rows in general "
                   f"position in rank {rank}.")
        else:
            why = (f"{len(masks)} activation patterns from {samples} Gaussian directions, "
                   f"possibly incomplete: rank {rank} > 3 has no exact enumeration and "
                   "sampling misses small cones.")
    found = len(masks)
    capped = found > max_patterns
    if capped:
        masks = _cap(masks, max_patterns, seed)
        complete = False
        why = (f"{max_patterns} of {found} activation patterns kept ({method}), incomplete: "
               f"capped at max_patterns = {max_patterns} (a seeded random subset).")
    return Patterns(masks=masks, complete=complete, method=method, found=found,
                    capped=capped, message=why)
