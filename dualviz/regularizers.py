"""The regularization forms, one row each: the only place that says what a form is.

docs/math.md §2. Every module that depends on the form (the knob's choices, the net's penalty,
training's rescaling, the closed forms and duals through their family) reads it from
REGULARIZERS; adding a form is a row here plus its math in dualviz/linear/programs.py.

- weight-decay: (beta/2) sum_l ||W_l||_F^2. Its dual is the rescaled dual optimized over t.
- rescaled (the paper's): ||W_l||_F <= t for the first L - 2 layers and
  (beta/2)(||W_{L-1}||_F^2 + ||W_L||_F^2). Its dual bound is beta t^{-(L-2)}.
- lth-power: (beta/L) sum_l ||W_l||_F^L, which balancing the layers turns into the rescaled
  form with t = 1 (so its closed forms and duals are those at t = 1).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


class Family(enum.StrEnum):
    """Which closed forms and duals a form has (docs/math.md §3)."""

    NORM_BOUND = "norm bound"  # the bound beta t^{-(L-2)} on the end-to-end map
    WEIGHT_DECAY = "weight decay"  # the norm-bound dual minimized over t


@dataclass(frozen=True)
class Regularizer:
    """One regularization form.

    penalty(norms_sq, beta, depth): the regularizer from the per-layer squared Frobenius norms
    (any array type: numpy or torch, one entry per branch); layer_scales(s, t, depth): the
    factors c_l with f(X; c W) = s f(X; W) at least cost, and the factor g with
    R(c W) = g R(W) (training rescales interpolation by them, dualviz.training.primal).
    """

    name: str
    description: str
    family: Family
    has_t: bool  # the first L - 2 layers are bounded by the knob t
    penalty: Callable[[Sequence[Any], float, int], Any]
    layer_scales: Callable[[float, float, int], tuple[tuple[float, ...], float]]

    def t(self, exp_t: float) -> float:
        """The norm bound the closed forms use: the knob t, or 1 when the form fixes it."""
        return exp_t if self.has_t else 1.0

    def constrained_layers(self, depth: int) -> int:
        """How many leading layers carry the norm bound t."""
        return depth - 2 if self.has_t else 0


def _equal_scales(g_power: Callable[[int], float]):
    """Every layer scaled by s^{1/L}; the regularizer then scales by s^{g_power(L)}."""
    def scales(s: float, t: float, depth: int) -> tuple[tuple[float, ...], float]:
        return (s ** (1.0 / depth),) * depth, s ** g_power(depth)
    return scales


def _rescaled_scales(s: float, t: float, depth: int) -> tuple[tuple[float, ...], float]:
    c = depth - 2
    outer = (s / t ** c) ** 0.5
    return (t,) * c + (outer, outer), s * t ** (-c)


REGULARIZERS: dict[str, Regularizer] = {r.name: r for r in (
    Regularizer(
        "weight-decay", "(beta/2) sum ||W_l||^2", Family.WEIGHT_DECAY, False,
        lambda n, beta, depth: beta / 2 * sum(x.sum() for x in n),
        _equal_scales(lambda depth: 2.0 / depth)),
    Regularizer(
        "rescaled", "||W_l|| <= t for the first L-2 layers plus (beta/2)(||W_L-1||^2 + "
        "||W_L||^2), the paper's", Family.NORM_BOUND, True,
        lambda n, beta, depth: beta / 2 * (n[-2].sum() + n[-1].sum()),
        _rescaled_scales),
    Regularizer(
        "lth-power", "(beta/L) sum ||W_l||^L", Family.NORM_BOUND, False,
        lambda n, beta, depth: beta / depth * sum((x ** (depth / 2)).sum() for x in n),
        _equal_scales(lambda depth: 1.0)),
)}


def regularizer(name: str) -> Regularizer:
    return REGULARIZERS[name]
