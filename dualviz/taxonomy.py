"""The paper's taxonomy, every cell computed by the app's own solvers on a small instance.

Standard / parallel x linear / ReLU x L = 2 / L >= 3. Linear cells use the public instance HA
of docs/math.md §9 (interpolation, rescaled regularization, beta = t = 1): the closed forms and the
CVXPY dual. ReLU cells: two layers on 12 points of a 1-D regression (the convex program over
all patterns, certified by the working-set solver: its lower and upper bounds meet), three
layers on rank-one data with a sign-changing target (the closed forms and the SOCP dual), and
three layers on general data (6 points of a 1-D regression): the three-layer convex program,
certified (docs/math.md §6), is the parallel net's optimum P = D and the standard net's dual;
the standard net's P there is trained, an upper bound of its optimum, so its cell states an
upper bound of the gap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .config import Experiment
from .linear.programs import closed_form, solve_dual
from .relu.bounds import network_inputs, relu_bounds
from .runner import dataset_for
from .training.primal import solve_primal

HA_X = np.array([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]])
HA_Y = np.array([[2.0, 0], [0, 1], [1, 1]])
ZERO_GAP_TOL = 1e-6


@dataclass(frozen=True)
class Cell:
    arch: str
    activation: str
    depth: int
    primal: float  # the network's optimum P (closed form or certified convex value)
    dual: float  # the dual bound D
    how: str
    seconds: float
    data: str = ""  # "rank-one" or "general" for the L = 3 ReLU cells
    trained: bool = False  # primal is a trained value: an upper bound of the optimum


    @property
    def ratio(self) -> float:
        return self.primal / self.dual

    @property
    def zero_gap(self) -> bool:
        return abs(self.ratio - 1.0) <= ZERO_GAP_TOL

    def row(self) -> dict[str, str]:
        depth = "L = 2" if self.depth == 2 else f"L >= 3 (here {self.depth})"
        if self.data:
            depth += f", {self.data} data"
        if self.trained:
            primal, ratio = f"<= {self.primal:.6f} (trained)", f"<= {self.ratio:.6f}"
            verdict = ("zero gap within training's accuracy" if self.zero_gap else
                       f"gap at most {100 * (self.ratio - 1):.3g}% of D (P trained)")
        else:
            primal, ratio = f"{self.primal:.6f}", f"{self.ratio:.6f}"
            verdict = "zero gap" if self.zero_gap else "positive gap"
        return {"architecture": self.arch, "activation": self.activation, "depth": depth,
                "P (the net's optimum)": primal,
                "D (lower bound on P)": f"{self.dual:.6f}", "P / D": ratio,
                "verdict": verdict, "computed by": self.how, "seconds": f"{self.seconds:.2f}"}


def _linear(arch: str, depth: int) -> Cell:
    started = time.perf_counter()
    exp = Experiment(arch=arch, depth=depth, objective="interpolation",
                     regularization="rescaled", beta=1.0, t=1.0, n=3, d=4, k=2, x_rank=3)
    closed = closed_form(exp, HA_X, HA_Y)
    dual = solve_dual(exp, HA_X, HA_Y)
    return Cell(arch, "linear", depth, closed.primal, dual.value,
                "closed form (P), CVXPY + Clarabel (D) on HA", time.perf_counter() - started)


def _relu_two_layer(arch: str) -> Cell:
    started = time.perf_counter()
    exp = Experiment(activation="relu", arch=arch, depth=2, dataset="regression", d=1, n=12,
                     objective="squared", beta=0.1)
    data = dataset_for(exp, None)
    bounds = relu_bounds(exp, data.X, data.Y)
    # The convex program over all patterns IS the network's global optimum (P) and its dual
    # certificate's lower bound is D: they meet when the gap is zero.
    return Cell(arch, "ReLU", 2, bounds.dual.upper, bounds.dual.lower,
                "working-set convex program over all patterns (upper) and its dual (lower)",
                time.perf_counter() - started)


def _relu_rank_one(arch: str) -> Cell:
    started = time.perf_counter()
    exp = Experiment(activation="relu", arch=arch, depth=3, dataset="rank-one", n=8, d=3, k=1,
                     objective="interpolation", regularization="rescaled",
                     rank_one_target="sign-changing")
    data = dataset_for(exp, None)
    bounds = relu_bounds(exp, data.X, data.Y)
    return Cell(arch, "ReLU", 3, bounds.closed.primal, bounds.dual.value,
                "rank-one closed form (P), SOCP dual with CVXPY (D)",
                time.perf_counter() - started, data="rank-one")


def _relu_three_layer(arch: str) -> Cell:
    """ReLU, L = 3, general data: D from the certified three-layer program (docs/math.md §6);
    parallel P = D (its optimum); standard P trained (Adam, one restart): an upper bound."""
    started = time.perf_counter()
    exp = Experiment(activation="relu", arch=arch, depth=3, dataset="regression", d=1, n=6,
                     objective="squared", regularization="rescaled", beta=0.2,
                     optimizer="adam", lr=0.01, iterations=800, restarts=1, width=8)
    data = dataset_for(exp, None)
    bounds = relu_bounds(exp, data.X, data.Y)
    D = bounds.dual.lower  # certified over every pattern: the certificate's lower bound
    if arch == "parallel":
        return Cell(arch, "ReLU", 3, bounds.dual.upper, D,
                    "three-layer convex program: rebuilt net (upper) and dual certificate "
                    "(lower)", time.perf_counter() - started, data="general")
    trained = solve_primal(exp, network_inputs(exp, data.X), data.Y)
    return Cell(arch, "ReLU", 3, trained.value, D,
                "trained standard net (P, an upper bound), three-layer convex program (D)",
                time.perf_counter() - started, data="general", trained=True)


def cells() -> list[Cell]:
    """All ten cells, in table order."""
    return [_linear("standard", 2), _linear("parallel", 2), _linear("standard", 3),
            _linear("parallel", 3), _relu_two_layer("standard"), _relu_two_layer("parallel"),
            _relu_rank_one("standard"), _relu_rank_one("parallel"),
            _relu_three_layer("standard"), _relu_three_layer("parallel")]


# (LaTeX, one sentence) for the theory page
FORMULAS: tuple[tuple[str, str], ...] = (
    (r"P_{\text{standard}} = \beta\, t^{-(L-2)} \,\|W^*\|_{S_{2/L}}, \qquad "
     r"D = \beta\, t^{-(L-2)} \,\|W^*\|_{*}",
     "Deep linear interpolation with the rescaled regularization: the standard net pays a "
     "Schatten-2/L quasi-norm, its dual only the nuclear norm."),
    (r"\frac{P}{D} = r^{(L-2)/2} \quad \text{(r equal singular values)}",
     "So the gap opens exactly when L >= 3 and rank(W*) >= 2, and grows with both."),
    (r"P_{\text{parallel}} = D",
     "A parallel net (a sum of branches) with the rescaled regularization attains the dual: "
     "zero duality gap at every depth."),
    (r"\min_{v_i, w_i \in \mathcal{K}_i} \tfrac12 \Big\| \sum_i D_i X (v_i - w_i) - y "
     r"\Big\|^2 + \beta \sum_i \big(\|v_i\| + \|w_i\|\big)",
     "Two-layer ReLU nets: over all activation patterns D_i this convex program is the "
     "network's global optimum for enough neurons (as many as the solution's nonzero v_i and "
     "w_i; Pilanci & Ergen), so there is no gap."),
    (r"D = \frac{\beta}{T}\big(\|\alpha\| + \|\gamma\|\big), \qquad P = D \iff "
     r"\alpha, \gamma \text{ non-negatively collinear}",
     "Three ReLU layers on rank-one data X = c a^T: the parallel net reaches D; the standard "
     "net does only under this sign condition (a target changing sign with c gives "
     "P/D = sqrt 2)."),
    (r"D = \min \tfrac12 \Big\| \sum_{D} D \tilde X (q_D - r_D) - y \Big\|^2 + "
     r"\frac{\beta}{t} \sum_{D} \big(\|q_D\|_{2,1} + \|r_D\|_{2,1}\big)",
     "Three ReLU layers on general data: over all first- and second-layer patterns this "
     "convex program is the parallel net's optimum and the standard net's dual; a standard "
     "net stays above it (docs/math.md §6)."),
)
