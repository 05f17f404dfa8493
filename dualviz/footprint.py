"""How much memory training a network takes, known before anything is allocated.

Pure arithmetic on the shapes (no torch), so a link can be checked, and clamped, where it is
parsed. The estimate counts what grows with the network:

    parameters P (float64), their gradient, and the optimizer's state:
        L-BFGS keeps 2 * LBFGS_HISTORY past steps and gradients (P each), Adam 2 moments;
    activations: every layer's output for the N samples, kept for the backward pass
        (with the ReLU masks and the gradients flowing back: about 3 copies).

It leaves out what does not grow with the network (the interpreter, torch, CVXPY: the warm
process a job is forked from), which the job memory limit does not count either.
"""

from __future__ import annotations

import math

FLOAT_BYTES = 8
LBFGS_HISTORY = 50  # the history_size of dualviz.training.primal's L-BFGS
ACTIVATION_COPIES = 3
# A network may use this share of a job's memory; the rest is for the data, the solvers'
# temporaries and the snapshots.
NETWORK_SHARE = 0.5


def layer_shapes(arch: str, depth: int, d: int, k: int, width: int,
                 branches: int) -> list[tuple[int, int, int]]:
    """[branches, fan_in, fan_out] of each layer (dualviz.training.nets: the architectures)."""
    if arch == "standard":
        dims = [d] + [width] * (depth - 1) + [k]
        return [(1, dims[i], dims[i + 1]) for i in range(depth)]
    dims = [d] + [width] * (depth - 2) + [1, k]
    return [(branches, dims[i], dims[i + 1]) for i in range(depth)]


def parameter_count(shapes: list[tuple[int, int, int]]) -> int:
    return sum(math.prod(shape) for shape in shapes)


def training_bytes(arch: str, depth: int, d: int, k: int, width: int, branches: int, n: int,
                   optimizer: str) -> int:
    """Estimated peak bytes of training this network on N samples (module docstring)."""
    shapes = layer_shapes(arch, depth, d, k, width, branches)
    params = parameter_count(shapes)
    state = 2 * LBFGS_HISTORY + 4 if optimizer == "lbfgs" else 5
    outputs = sum(b * fan_out for b, _, fan_out in shapes)  # per sample
    return FLOAT_BYTES * (params * state + ACTIVATION_COPIES * n * outputs)


def fits(arch: str, depth: int, d: int, k: int, width: int, branches: int, n: int,
         optimizer: str, budget: int) -> bool:
    return training_bytes(arch, depth, d, k, width, branches, n, optimizer) \
        <= NETWORK_SHARE * budget


def largest_fitting(low: int, high: int, fits_at) -> int | None:
    """The largest v in [low, high] with fits_at(v) (fits_at decreasing in v), or None."""
    if not fits_at(low):
        return None
    while low < high:
        mid = (low + high + 1) // 2
        if fits_at(mid):
            low = mid
        else:
            high = mid - 1
    return low
