"""PyTorch networks: standard and parallel, linear or ReLU, with the regularizers of
dualviz.regularizers.

Both architectures are one batched module. A standard net is a single branch whose layers are
W_1 (d x m), W_2..W_{L-1} (m x m), W_L (m x K). A parallel net with M branches stacks, per
branch j, W_{1,j}..W_{L-2,j} (inner width m), a column w_{L-1,j} and a row w_{L,j} (1 x K), so
f(X) = sum_j phi(... phi(X W_{1,j}) ...) w_{L-1,j} w_{L,j}. Layer l is a tensor [branches, in, out].

Under the rescaled regularization the first L-2 layers are reparametrised as W = t V / ||V||_F
(per branch), which holds the constraint ||W_l||_F <= t at equality; the optimum lies there.
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import Experiment
from ..footprint import layer_shapes  # one place for the shapes: memory estimates use them too
from ..regularizers import REGULARIZERS

DTYPE = torch.float64


class Net(torch.nn.Module):
    """A standard or parallel deep network; see the module docstring for the shapes."""

    def __init__(self, exp: Experiment, d: int, k: int, generator: torch.Generator,
                 beta: float | None = None, t: float | None = None):
        """beta, t: the net's own values where they differ from the experiment's (training
        runs on a rescaled problem, see dualviz.training.primal)."""
        super().__init__()
        self.depth = exp.depth
        self.relu = exp.activation == "relu"
        self.regularization = exp.regularization
        self.beta = exp.beta if beta is None else beta
        self.t = exp.t if t is None else t
        shapes = layer_shapes(exp.arch, exp.depth, d, k, exp.width, exp.branches)
        # ~1/sqrt(fan_in), never tiny: for L >= 3 the origin is a stationary point.
        self.raw = torch.nn.ParameterList(
            torch.nn.Parameter(torch.randn(s, generator=generator, dtype=DTYPE) / s[1] ** 0.5)
            for s in shapes
        )

    def load(self, layers: list[np.ndarray]) -> None:
        """Set the effective layers (shapes as layer_shapes); constrained layers must have
        ||W_l||_F = t per branch, or be zero (a zero branch)."""
        with torch.no_grad():
            for raw, layer in zip(self.raw, layers, strict=True):
                if tuple(layer.shape) != tuple(raw.shape):
                    raise ValueError(f"layer of shape {layer.shape}, expected {tuple(raw.shape)}")
                raw.copy_(torch.as_tensor(layer, dtype=DTYPE))

    @property
    def constrained(self) -> int:
        """How many leading layers carry the norm bound t (rescaled regularization)."""
        return REGULARIZERS[self.regularization].constrained_layers(self.depth)

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
        """The experiment's regularizer (dualviz.regularizers); norms are Frobenius, per
        branch, summed over branches."""
        norms_sq = [torch.sum(w**2, dim=(1, 2)) for w in self.weights()]
        return REGULARIZERS[self.regularization].penalty(norms_sq, self.beta, self.depth)

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


def end_to_end_layers(exp: Experiment, W: np.ndarray) -> list[np.ndarray] | None:
    """Layers of a linear net (this experiment's shapes) whose end-to-end map is W (d x K), at
    the least regularizer for that map (docs/math.md §3); None if the net has too few units for
    rank(W). With W = sum_i s_i u_i v_i^T:

    standard net, one diagonal chain per singular value: layer l carries a_{l,i} with
    prod_l a_{l,i} = s_i; weight decay and L-th power a_{l,i} = s_i^{1/L} (balanced); rescaled
    (L >= 3) a_{l,i} = t s_i^{1/L} / ||s^{1/L}||_2 on the L - 2 constrained layers (norm t) and
    sqrt(s_i / a^{L-2}) on the last two. Parallel net, one branch per singular value: branch i
    is u_i -> e_1 -> ... -> e_1 -> v_i^T with scalars s_i^{1/L} on every layer (weight decay,
    L-th power) or t on the constrained layers and sqrt(s_i / t^{L-2}) on the last two
    (rescaled). Other units are zero.
    """
    t = exp.t  # used only where the form bounds layers by t
    U, s, Vt = np.linalg.svd(np.asarray(W, dtype=float), full_matrices=False)
    keep = s > 1e-12 * max(float(s[0]) if s.size else 0.0, 1e-300)
    U, s, Vt = U[:, keep], s[keep], Vt[keep]
    r, L = s.size, exp.depth
    d, k = W.shape
    shapes = layer_shapes(exp.arch, L, d, k, exp.width, exp.branches)
    layers = [np.zeros(shape) for shape in shapes]
    if r > (exp.width if exp.arch == "standard" else exp.branches):
        return None
    if r == 0:
        return _zero_branch_directions(layers, exp.regularization, L, t)
    c = REGULARIZERS[exp.regularization].constrained_layers(L)
    if c:
        inner = t * s ** (1.0 / L) / np.linalg.norm(s ** (1.0 / L))  # standard: per value
        inner_parallel = np.full(r, t)
        outer = np.sqrt(s / inner ** c)
        outer_parallel = np.sqrt(s / t ** c)
    else:
        inner = inner_parallel = outer = outer_parallel = s ** (1.0 / L)
    if exp.arch == "standard":
        idx = np.arange(r)
        for layer_index, layer in enumerate(layers):
            scale = inner if layer_index < c else outer
            if layer_index == 0:
                layer[0, :, :r] = U * scale
            elif layer_index == L - 1:
                layer[0, :r, :] = scale[:, None] * Vt
            else:
                layer[0, idx, idx] = scale
        return layers
    for layer_index, layer in enumerate(layers):
        scale = inner_parallel if layer_index < c else outer_parallel
        if layer_index == 0:
            layer[:r, :, 0] = U.T * scale[:, None]
        elif layer_index == L - 1:
            layer[:r, 0, :] = scale[:, None] * Vt
        else:
            layer[:r, 0, 0] = scale
    return _zero_branch_directions(layers, exp.regularization, L, t, first=r)


def _zero_branch_directions(layers, regularization, depth, t, first=0):
    """Constrained layers have norm t in every branch, also in an unused one (whose last two
    layers are zero, so it adds nothing): give them a fixed direction."""
    for layer in layers[:REGULARIZERS[regularization].constrained_layers(depth)]:
        for j in range(first, layer.shape[0]):
            if not layer[j].any():
                layer[j, 0, 0] = t
    return layers


def two_layer_relu_layers(exp: Experiment, U: np.ndarray, a: np.ndarray,
                          k: int = 1) -> list[np.ndarray] | None:
    """Layers of a two-layer ReLU net (this experiment's shapes) computing
    sum_j (X u_j)_+ a_j, with u_j the columns of U (d x m); None if it has fewer than m
    neurons. At L = 2 every regularization is (beta/2) sum_j (||u_j||^2 + a_j^2)."""
    d, m = U.shape
    if exp.depth != 2:
        raise ValueError("two_layer_relu_layers needs depth 2")
    shapes = layer_shapes(exp.arch, 2, d, k, exp.width, exp.branches)
    layers = [np.zeros(shape) for shape in shapes]
    if m > (exp.width if exp.arch == "standard" else exp.branches):
        return None
    if exp.arch == "standard":
        layers[0][0, :, :m] = U
        layers[1][0, :m, 0] = a
    else:
        layers[0][:m, :, 0] = U.T
        layers[1][:m, 0, 0] = a
    return layers


def rank_one_parallel_layers(exp: Experiment, a: np.ndarray, alpha: np.ndarray,
                             gamma: np.ndarray) -> list[np.ndarray] | None:
    """Layers of the parallel three-layer ReLU net at its optimum on rank-one data
    X = c a^T (||a|| = 1, docs/math.md §5): one branch per side of c,

        relu(relu(X (q a e_1^T)) s e_1) r^T = q s c+ r^T = c+ alpha^T   (and -a, c-, gamma),

    with ||W_1|| = q = t, s^2 = ||alpha|| / t, r = alpha / (t s) under the rescaled
    regularization (cost beta ||alpha|| / t), balanced q = s = ||r|| = ||alpha||^{1/3} under the
    L-th power (cost beta ||alpha||). None unless the net is parallel with L = 3 and two
    branches or more."""
    if exp.arch != "parallel" or exp.depth != 3 or exp.branches < 2:
        return None
    a = np.asarray(a, dtype=float)
    shapes = layer_shapes("parallel", 3, a.size, len(alpha), exp.width, exp.branches)
    layers = [np.zeros(shape) for shape in shapes]
    rescaled = REGULARIZERS[exp.regularization].has_t
    for j, (sign, target) in enumerate(((1.0, alpha), (-1.0, gamma))):
        size = float(np.linalg.norm(target))
        if size == 0:
            continue
        if rescaled:
            q, s = exp.t, np.sqrt(size / exp.t)
            r = target / (q * s)
        else:
            q = s = size ** (1.0 / 3.0)
            r = target / (q * s)
        layers[0][j, :, 0] = sign * q * a
        layers[1][j, 0, 0] = s
        layers[2][j, 0, :] = r
    return _zero_branch_directions(layers, exp.regularization, 3, exp.t)
