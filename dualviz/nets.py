"""PyTorch networks: standard and parallel, linear (ReLU later), with the three regularizers.

Both architectures are one batched module. A standard net is a single branch whose layers are
W_1 (d x m), W_2..W_{L-1} (m x m), W_L (m x K). A parallel net with M branches stacks, per
branch j, W_{1,j}..W_{L-2,j} (inner width m), a column w_{L-1,j} and a row w_{L,j} (1 x K), so
f(X) = sum_j phi(... phi(X W_{1,j}) ...) w_{L-1,j} w_{L,j}. Layer l is a tensor [branches, in, out].

Under the rescaled regularization the first L-2 layers are reparametrised as W = t V / ||V||_F
(per branch), which holds the constraint ||W_l||_F <= t at equality; the optimum lies there.
"""

from __future__ import annotations

import torch

from .config import Experiment

DTYPE = torch.float64


def layer_shapes(arch: str, depth: int, d: int, k: int, width: int,
                 branches: int) -> list[tuple[int, int, int]]:
    """[branches, fan_in, fan_out] of each layer."""
    if arch == "standard":
        dims = [d] + [width] * (depth - 1) + [k]
        return [(1, dims[i], dims[i + 1]) for i in range(depth)]
    dims = [d] + [width] * (depth - 2) + [1, k]
    return [(branches, dims[i], dims[i + 1]) for i in range(depth)]


class Net(torch.nn.Module):
    """A standard or parallel deep network; see the module docstring for the shapes."""

    def __init__(self, exp: Experiment, d: int, k: int, generator: torch.Generator):
        super().__init__()
        self.depth = exp.depth
        self.relu = exp.activation == "relu"
        self.regularization = exp.regularization
        self.beta = exp.beta
        self.t = exp.t
        shapes = layer_shapes(exp.arch, exp.depth, d, k, exp.width, exp.branches)
        # ~1/sqrt(fan_in), never tiny: for L >= 3 the origin is a stationary point.
        self.raw = torch.nn.ParameterList(
            torch.nn.Parameter(torch.randn(s, generator=generator, dtype=DTYPE) / s[1] ** 0.5)
            for s in shapes
        )

    @property
    def constrained(self) -> int:
        """How many leading layers carry the norm bound t (rescaled regularization)."""
        return self.depth - 2 if self.regularization == "rescaled" else 0

    def weights(self) -> list[torch.Tensor]:
        """The effective layers, with the rescaled ones projected onto ||W||_F = t."""
        out = []
        for i, v in enumerate(self.raw):
            if i < self.constrained:
                v = self.t * v / torch.linalg.matrix_norm(v).clamp_min(1e-300)[:, None, None]
            out.append(v)
        return out

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        h = X.unsqueeze(0)
        ws = self.weights()
        for i, w in enumerate(ws):
            h = h @ w
            if self.relu and i < len(ws) - 1:
                h = torch.relu(h)
        return h.sum(0)

    def end_to_end(self) -> torch.Tensor:
        """sum_j W_{1,j} ... W_{L,j} (d x K): the linear map a linear net computes."""
        product = self.weights()[0]
        for w in self.weights()[1:]:
            product = product @ w
        return product.sum(0)

    def regularizer(self) -> torch.Tensor:
        """weight-decay: (beta/2) sum ||W_l||^2; rescaled: (beta/2)(||W_{L-1}||^2 + ||W_L||^2);
        lth-power: (beta/L) sum ||W_l||^L. Norms are Frobenius, per branch, summed over branches."""
        ws = self.weights()
        norms_sq = [torch.sum(w**2, dim=(1, 2)) for w in ws]
        if self.regularization == "weight-decay":
            return self.beta / 2 * sum(n.sum() for n in norms_sq)
        if self.regularization == "rescaled":
            return self.beta / 2 * (norms_sq[-2].sum() + norms_sq[-1].sum())
        return self.beta / self.depth * sum((n ** (self.depth / 2)).sum() for n in norms_sq)

    def layer_singular_values(self) -> list[list[float]]:
        """Singular values of each layer of the equivalent single wide network.

        For a parallel net the first layer is the branches side by side (d x M m), the last is
        them stacked (M x K), and the inner layers are block-diagonal (the union of the
        branches' singular values).
        """
        out = []
        ws = [w.detach() for w in self.weights()]
        for i, w in enumerate(ws):
            _, fan_in, fan_out = w.shape
            if i == 0:
                values = singular_values(w.permute(1, 0, 2).reshape(fan_in, -1))
            elif i == len(ws) - 1:
                values = singular_values(w.reshape(-1, fan_out))
            else:
                values = sorted((x for block in w for x in singular_values(block)), reverse=True)
            out.append(values)
        return out


def singular_values(matrix: torch.Tensor) -> list[float]:
    """The singular values, largest first; none for a matrix with NaN or inf entries (a
    diverged run: the SVD has no answer there, and the run must still report)."""
    if not bool(torch.isfinite(matrix).all()):
        return []
    return torch.linalg.svdvals(matrix).tolist()
