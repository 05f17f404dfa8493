"""Projections on polyhedral cones K = {u : A u >= 0}, as the ReLU programs need them.

A cone K_i = {u : (2 D_i - I) X u >= 0} holds the weight vectors whose ReLU pattern on X is
D_i. The pricing of the working-set solver needs ||Pi_K(h)|| (the dual constraint of a column),
its Newton solver Pi_K(v) itself and the rows active there (the face, whose null space is the
derivative of the projection).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

ROW_TOL = 1e-12  # a row is violated below -ROW_TOL ||p|| (normalised slack)
WALK_STEPS = 4  # rows entering a warm-started face before the full NNLS takes over


def cone_violation(A: np.ndarray, h: np.ndarray, cutoff: float = -1.0,
                   norms: np.ndarray | None = None) -> float:
    """||Pi_K(h)|| for K = {u : A u >= 0}, i.e. max_{u in K, ||u|| <= 1} h^T u.

    Returns early with an upper bound once it is <= cutoff (see :func:`polar_projection`).
    norms: the row norms of A, if known (zeros replaced by ones).
    """
    return polar_projection(A, h, cutoff, norms)[0]


def _face_multipliers(rows: np.ndarray, h: np.ndarray) -> np.ndarray:
    """z = argmin ||h + rows^T z||: the normal equations (a few rows: fast), least squares
    when the rows are dependent."""
    try:
        z = -np.linalg.solve(rows @ rows.T, rows @ h)
        if np.isfinite(z).all():
            return z
    except np.linalg.LinAlgError:
        pass
    return -np.linalg.lstsq(rows.T, h, rcond=None)[0]


def _walk_from_face(A: np.ndarray, h: np.ndarray, norms: np.ndarray,
                    face: np.ndarray) -> tuple[float, np.ndarray] | None:
    """Lawson and Hanson's active-set steps for min_{mu >= 0} ||h + A^T mu||, started from the
    face of a projection at a nearby h; None after WALK_STEPS (or a dependent row).

    The face's rows with positive least-squares multipliers start it; then the most violated
    row enters, and where the new least-squares multipliers z turn non-positive, mu moves toward
    z until one reaches zero and its row leaves. Exact once no row is violated.
    """
    scale = float(np.linalg.norm(h))
    passive = np.unique(face)
    z = np.zeros(0)
    while passive.size:
        z = _face_multipliers(A[passive], h)
        if z.min() > 0:
            break
        passive, z = passive[z > 0], np.zeros(0)
    mu = np.zeros(A.shape[0])
    mu[passive] = z
    for _ in range(WALK_STEPS):
        p = h + A[passive].T @ mu[passive]
        slack = (A @ p) / norms
        slack[passive] = np.inf
        enter = int(np.argmin(slack))
        length = float(np.linalg.norm(p))
        # relative to ||p|| as the NNLS below (pricing compares viol with beta to 1e-9); the
        # floor keeps p = 0 (h in the polar cone) from chasing rounding
        if slack[enter] >= -ROW_TOL * max(length, 1e-4 * scale):
            return length, mu
        passive = np.append(passive, enter)
        if passive.size > A.shape[1]:
            return None
        z = _face_multipliers(A[passive], h)
        if z[-1] <= 0:  # dependent on the others at this precision
            return None
        while z.min() <= 0:
            current = mu[passive]
            ratio = np.where(z <= 0, current / np.maximum(current - z, 1e-300), np.inf)
            leaving = int(np.argmin(ratio))
            current += ratio[leaving] * (z - current)
            current[leaving] = 0.0
            mu[passive] = np.maximum(current, 0.0)
            passive = passive[current > 0]
            z = _face_multipliers(A[passive], h) if passive.size else np.zeros(0)
        mu[passive] = z
    return None


def polar_projection(A: np.ndarray, h: np.ndarray, cutoff: float = -1.0,
                     norms: np.ndarray | None = None,
                     start: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """(||h + A^T mu||, mu): mu >= 0 minimises it, so that h + A^T mu = Pi_K(h).

    Pi_K(h) = h + A^T mu with mu = argmin_{mu >= 0} ||h + A^T mu|| (Moreau: h minus its
    projection on the polar cone {-A^T mu}). First a few active-set steps from the rows `start`
    (the face of a projection at a nearby h: mostly right or one row off, see
    :func:`_walk_from_face`). Otherwise it is computed on a growing subset S of the rows, by
    non-negative least squares: the
    projection on K_S (fewer constraints, a larger cone) has norm >= ||Pi_K(h)||, and equals
    it as soon as it lies in K. Returns early with that upper bound (any mu >= 0 gives one)
    once it is <= cutoff.
    """
    if norms is None:
        norms = np.linalg.norm(A, axis=1)
        norms[norms == 0] = 1.0
    mu = np.zeros(A.shape[0])
    if start is not None and len(start):
        found = _walk_from_face(A, h, norms, np.asarray(start, dtype=int))
        if found is not None:
            return found
    slack = (A @ h) / norms
    if slack.min(initial=0.0) >= 0:
        return float(np.linalg.norm(h)), mu
    d = h.shape[0]
    chosen = np.zeros(A.shape[0], dtype=bool)
    chosen[np.argsort(slack)[: 2 * d]] = True
    chosen &= slack < 0
    if start is not None:
        chosen[start] = True
    while True:
        rows = A[chosen]
        mu_rows, bound = nnls(rows.T, -h, maxiter=50 * max(rows.shape))
        mu[:] = 0.0
        mu[chosen] = mu_rows
        if bound <= cutoff:
            return float(bound), mu
        p = h + rows.T @ mu_rows
        slack = (A @ p) / norms
        worst = (slack < -ROW_TOL * max(float(np.linalg.norm(p)), 1e-300)) & ~chosen
        if not worst.any():
            return float(bound), mu
        order = np.argsort(np.where(worst, slack, np.inf))[: 2 * d]
        chosen[order[worst[order]]] = True


def project_on_cone(A: np.ndarray, v: np.ndarray, norms: np.ndarray,
                    face: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(Pi_K(v), face): the projection on K = {u : A u >= 0} and the rows F with a positive
    multiplier there (Pi_K(v) = v + A_F^T mu_F, A_F Pi_K(v) = 0), warm started from `face`,
    the face of a nearby projection (:func:`polar_projection`). norms: row norms (no zeros)."""
    _, mu = polar_projection(A, v, -1.0, norms, face)
    face = np.flatnonzero(mu > 0)
    return v + A[face].T @ mu[face], face
