"""The reference instances of the three-layer program (docs/math.md §6 and §9): tiny data on which
the program, the rebuilt network and the certificate were checked, shared by the tests and the
benchmark so that both use the same numbers."""

from __future__ import annotations

import numpy as np

from .patterns import with_bias


def smooth1d() -> tuple[np.ndarray, np.ndarray]:
    """Six sorted points of [-1, 1] with a bias column; y = sin(2.5 x) + 0.3 x."""
    rng = np.random.default_rng(0)
    x = np.sort(rng.uniform(-1, 1, 6))
    return with_bias(x[:, None]), np.sin(2.5 * x) + 0.3 * x


def rand2d() -> tuple[np.ndarray, np.ndarray]:
    """Six Gaussian points in the plane with a bias column; Gaussian y."""
    rng = np.random.default_rng(3)
    X0 = rng.standard_normal((6, 2))
    return with_bias(X0), rng.standard_normal(6)


def rank_one_control() -> tuple[np.ndarray, np.ndarray]:
    """Rank-one data (one column, no bias) with Gaussian y: the rank-one formulas apply."""
    rng = np.random.default_rng(4)
    x = np.sort(rng.uniform(-1, 1, 6))
    return x[:, None], rng.standard_normal(6)
