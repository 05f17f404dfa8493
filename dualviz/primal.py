"""Training the non-convex network: a generator of snapshots, several restarts, the best kept.

Squared loss: minimise 0.5 ||f(X) - Y||_F^2 + R(W) directly.
Interpolation: min R(W) s.t. f(X) = Y by an augmented Lagrangian (DESIGN §5)
    A(W; Lambda, rho) = R(W) + <Lambda, f(X) - Y> + (rho/2) ||f(X) - Y||_F^2,
minimised in W (L-BFGS with strong Wolfe line search, or Adam), then
Lambda <- Lambda + rho (f(X) - Y), and rho grows while the residual stalls.
A restart counts only if its relative residual ||f(X) - Y|| / ||Y|| reaches RESIDUAL_TOL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from .config import Experiment
from .nets import DTYPE, Net, singular_values

RESIDUAL_TOL = 1e-6
SNAPSHOT_EVERY = 10  # optimizer iterations between snapshots (L-BFGS); Adam uses 5x this
RHO_START, RHO_GROWTH, RHO_MAX = 10.0, 10.0, 1e3
LBFGS_EVALS_PER_ITERATION = 25


@dataclass(frozen=True)
class Snapshot:
    """The state of one restart after `iteration` optimizer iterations."""

    restart: int
    iteration: int
    objective: float  # loss + regularizer (squared) or regularizer (interpolation)
    loss: float  # 0.5 ||f(X) - Y||^2
    regularizer: float
    residual: float  # ||f(X) - Y||_F / ||Y||_F
    singular_values: list[float]  # of the end-to-end matrix
    layer_singular_values: list[list[float]]
    elapsed: float  # seconds since this training started
    done: bool = False  # the last snapshot of this restart
    probe: list[float] | None = None  # f at the probe points (a fitted curve), when asked


@dataclass(frozen=True)
class RestartResult:
    restart: int
    value: float
    residual: float
    iterations: int
    feasible: bool


@dataclass(frozen=True)
class PrimalResult:
    """Best feasible restart (value None when none was feasible)."""

    value: float | None
    residual: float | None
    best_restart: int | None
    restarts: list[RestartResult]
    singular_values: list[float] | None
    layer_singular_values: list[list[float]] | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    probe: list[float] | None = None  # the best restart's f at the probe points


def restart_seed(seed: int, restart: int) -> int:
    """Distinct, reproducible initialisation seeds per restart."""
    return (seed * 1_000_003 + restart * 7919 + 1) % (2**63 - 1)


def _snapshot(net: Net, X, Y, probe, restart, iteration, objective_kind, started, done=False):
    with torch.no_grad():
        fitted = net(probe)[:, 0].tolist() if probe is not None else None
        diff = net(X) - Y
        loss = 0.5 * float(torch.sum(diff**2))
        reg = float(net.regularizer())
        residual = float(torch.linalg.norm(diff) / torch.linalg.norm(Y).clamp_min(1e-300))
        sv = singular_values(net.end_to_end()) if not net.relu else []
    objective = reg if objective_kind == "interpolation" else loss + reg
    return Snapshot(restart, iteration, objective, loss, reg, residual, sv,
                    net.layer_singular_values(), time.perf_counter() - started, done, fitted)


def _make_stepper(exp: Experiment, params) -> Callable[[Callable[[], torch.Tensor], int], int]:
    """A function that runs up to n optimizer iterations on a closure; returns how many ran."""
    if exp.optimizer == "lbfgs":
        holder: dict[str, torch.optim.LBFGS] = {}
        # Squared loss: a generous evaluation budget, since torch's default (1.25 per
        # iteration) cuts chunks short on kinked ReLU losses and a short chunk reads as
        # convergence. Interpolation keeps the default: its augmented Lagrangian takes a
        # multiplier step whenever a chunk ends early, and these frequent, inexact steps are
        # what reached the closed forms to 1e-9 (full inner solves stalled 4e-4 above on HA).
        evals_per_iteration = (LBFGS_EVALS_PER_ITERATION if exp.objective == "squared"
                               else 1.25)

        def step_lbfgs(closure, n):
            opt = holder.get("opt")
            if opt is None:
                opt = holder["opt"] = torch.optim.LBFGS(
                    params, lr=exp.lr, max_iter=n, history_size=50,
                    tolerance_grad=1e-12, tolerance_change=1e-15, line_search_fn="strong_wolfe")
            opt.param_groups[0].update(max_iter=n, max_eval=int(evals_per_iteration * n))
            before = opt.state[opt._params[0]].get("n_iter", 0)
            opt.step(closure)
            return opt.state[opt._params[0]].get("n_iter", 0) - before

        step_lbfgs.reset = holder.clear  # type: ignore[attr-defined]
        return step_lbfgs

    adam = torch.optim.Adam(params, lr=exp.lr)

    def step_adam(closure, n):
        for _ in range(n):
            adam.zero_grad()
            closure()
            adam.step()
        return n

    step_adam.reset = lambda: None  # type: ignore[attr-defined]
    return step_adam


def train(exp: Experiment, X: np.ndarray, Y: np.ndarray,
          probe: np.ndarray | None = None) -> Iterator[Snapshot]:
    """Train every restart in turn, yielding snapshots as the optimizer goes; with `probe`
    (inputs shaped like X), each snapshot also carries the first output of f there."""
    torch.set_num_threads(1)
    Xt = torch.tensor(X, dtype=DTYPE)  # a copy: the dataset arrays are read-only
    Yt = torch.tensor(Y, dtype=DTYPE)
    probe_t = torch.tensor(probe, dtype=DTYPE) if probe is not None else None
    started = time.perf_counter()
    for r in range(exp.restarts):
        generator = torch.Generator().manual_seed(restart_seed(exp.seed, r))
        net = Net(exp, X.shape[1], Y.shape[1], generator)
        yield from _train_one(exp, net, Xt, Yt, probe_t, r, started)


def _train_one(exp, net, X, Y, probe, restart, started) -> Iterator[Snapshot]:
    chunk = SNAPSHOT_EVERY if exp.optimizer == "lbfgs" else 5 * SNAPSHOT_EVERY
    step = _make_stepper(exp, list(net.parameters()))
    interpolation = exp.objective == "interpolation"
    multiplier = torch.zeros_like(Y)
    rho = RHO_START
    y_norm = float(torch.linalg.norm(Y)) or 1.0

    def closure():
        if torch.is_grad_enabled():
            for p in net.parameters():
                p.grad = None
        diff = net(X) - Y
        if interpolation:
            value = net.regularizer() + torch.sum(multiplier * diff) + rho / 2 * torch.sum(diff**2)
        else:
            value = 0.5 * torch.sum(diff**2) + net.regularizer()
        if torch.is_grad_enabled():
            value.backward()
        return value

    done_iterations = 0
    stalled_chunks = 0
    last_residual = float("inf")
    def snapshot(iteration: int, done: bool = False) -> Snapshot:
        return _snapshot(net, X, Y, probe, restart, iteration, exp.objective, started, done)

    yield snapshot(0)
    while done_iterations < exp.iterations:
        n = min(chunk, exp.iterations - done_iterations)
        ran = step(closure, n)
        done_iterations += max(ran, 1)
        converged_inner = ran < n  # L-BFGS stopped on its own tolerances
        if interpolation and (converged_inner or ran == 0):
            # Subproblem solved: a multiplier step, and a larger penalty if the residual stalls.
            with torch.no_grad():
                diff = net(X) - Y
                multiplier += rho * diff
                residual = float(torch.linalg.norm(diff)) / y_norm
            if residual > 0.25 * last_residual:
                rho = min(rho * RHO_GROWTH, RHO_MAX)
            last_residual = residual
            step.reset()  # the objective changed: L-BFGS curvature pairs are stale
        snap = snapshot(done_iterations)
        stalled_chunks = stalled_chunks + 1 if converged_inner else 0
        finished = stalled_chunks >= (3 if interpolation else 2) and (
            not interpolation or snap.residual <= 1e-2 * RESIDUAL_TOL)
        if finished or done_iterations >= exp.iterations or not np.isfinite(snap.objective):
            yield snapshot(done_iterations, done=True)
            return
        yield snap


def is_feasible(exp: Experiment, snapshot: Snapshot) -> bool:
    """Finite, and (for interpolation) within the residual tolerance."""
    return bool(np.isfinite(snapshot.objective)) and (
        exp.objective == "squared" or snapshot.residual <= RESIDUAL_TOL)


def summarize(exp: Experiment, snapshots: list[Snapshot], seconds: float) -> PrimalResult:
    """The best restart among those that are finite and (for interpolation) feasible."""
    finals = [s for s in snapshots if s.done]
    restarts = [RestartResult(s.restart, s.objective, s.residual, s.iteration,
                              is_feasible(exp, s)) for s in finals]
    feasible = [s for s, r in zip(finals, restarts, strict=True) if r.feasible]
    notes = []
    if not feasible:
        notes.append("no restart reached the interpolation tolerance "
                     f"{RESIDUAL_TOL:g}" if exp.objective == "interpolation"
                     else "every restart diverged")
        return PrimalResult(None, None, None, restarts, None, None, seconds, notes)
    best = min(feasible, key=lambda s: s.objective)
    if len(feasible) < len(finals):
        notes.append(f"{len(finals) - len(feasible)} of {len(finals)} restarts were not feasible "
                     "and were left out")
    return PrimalResult(best.objective, best.residual, best.restart, restarts,
                        best.singular_values, best.layer_singular_values, seconds, notes,
                        best.probe)


def solve_primal(exp: Experiment, X: np.ndarray, Y: np.ndarray,
                 on_snapshot: Callable[[Snapshot], None] | None = None,
                 probe: np.ndarray | None = None) -> PrimalResult:
    """Run :func:`train` to the end and summarize it."""
    started = time.perf_counter()
    snapshots = []
    for snap in train(exp, X, Y, probe):
        snapshots.append(snap)
        if on_snapshot is not None:
            on_snapshot(snap)
    return summarize(exp, snapshots, time.perf_counter() - started)
