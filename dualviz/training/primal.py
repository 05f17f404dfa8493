"""Training the non-convex network: a generator of snapshots, several restarts, the best kept.

Squared loss: minimise 0.5 ||f(X) - Y||_F^2 + R(W) directly.
Interpolation: min R(W) s.t. f(X) = Y by an augmented Lagrangian (docs/math.md §7)
    A(W; Lambda, rho) = R(W) + <Lambda, f(X) - Y> + (rho/2) ||f(X) - Y||_F^2,
minimised in W (L-BFGS with strong Wolfe line search, or Adam), then
Lambda <- Lambda + rho (f(X) - Y), and rho grows (x RHO_GROWTH, to RHO_MAX) while the residual
falls less than 4-fold per step. A subproblem ends when L-BFGS stops on its own tolerances,
when a chunk of iterations lowers A by less than INNER_STALL (relative), or after
INNER_MAX_CHUNKS chunks (a forced step, which does not raise rho). A restart has converged when
its subproblems stall at residual FINISH_RESIDUAL, or is within AT_OPTIMUM_TOL of a known
optimum; it counts only if its relative residual ||f(X) - Y|| / ||Y|| reaches RESIDUAL_TOL.

Scale. Every layer enters f linearly and every regularizer is a power of the layer norms, so
the problem for (Y, beta, t) is a rescaling of one with ||Y|| = 1 and t = 1: with s = ||Y||,
W_l = c_l V_l and f(X; W) = s f(X; V), where c_l = s^{1/L} (weight decay, L-th power), or
c_l = t on the L - 2 constrained layers and sqrt(s / t^{L-2}) on the last two (rescaled),

    R(W) = beta * g * R_1(V),   g = s^{2/L} (weight decay), s (L-th power), s t^{-(L-2)} (rescaled),

R_1 the regularizer at beta = 1. So interpolation trains on Y/s with beta' = 1 (its minimiser
does not depend on beta), and every number is reported in the original units: the augmented
Lagrangian sees the same problem at beta = 1e-4 and at beta = 1e3 (before, its penalty was out
of scale with one or the other, and no restart met the tolerance). The squared loss would be
0.5||f - Y||^2 + R = s^2 [0.5 ||f(X; V) - Y/s||^2 + beta' R_1(V)] with beta' = beta g / s^2; it
needs no penalty and trains in its own units (Scaling.of). A zero target needs no training: the
zero network is optimal.

Restarts are random (seeded by restart_seed) and, where the runner knows a solution (the closed
form of a linear net or of the parallel three-layer ReLU net on rank-one data, the rebuilt
convex solution of a two-layer ReLU net), one more starts there, with the multiplier of that
solution; each restart says where it started. The result compares the best restart with the known
optimum and says what it is (:class:`PrimalStatus`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from ..config import Experiment
from ..regularizers import REGULARIZERS
from ..results import PrimalResult, PrimalStatus, RestartResult, Snapshot, Start, Stop
from .nets import DTYPE, Net, singular_values

RESIDUAL_TOL = 1e-6
# A feasible restart within this relative distance of the known optimum has reached it.
OPTIMUM_TOL = 1e-3
# A restart stops once it is this close to the known optimum (relative), fitting Y to
# FINISH_RESIDUAL: polishing further shows nothing.
AT_OPTIMUM_TOL = 1e-8
SNAPSHOT_EVERY = 10  # optimizer iterations between snapshots (L-BFGS); Adam uses 5x this
RHO_START, RHO_GROWTH, RHO_MAX = 30.0, 10.0, 1e3
LBFGS_EVALS_PER_ITERATION = 25
# Interpolation: a restart has converged once its subproblems stall at this residual (the
# value is then within about as much, relative, of its limit): 1e-8 cost a third of a
# preset's iterations hovering at 3e-8.
FINISH_RESIDUAL = 1e-1 * RESIDUAL_TOL
INNER_STALL = 1e-10  # a chunk that lowers the augmented Lagrangian less (relative) ends it
INNER_MAX_CHUNKS = 8  # ... and so does the 8th chunk of one subproblem (L-BFGS crawls on some)


@dataclass(frozen=True)
class InitialPoint:
    """Weights to start one restart from, in the experiment's units and layer shapes
    (dualviz.footprint.layer_shapes), and what they are."""

    layers: list[np.ndarray]
    start: Start


@dataclass(frozen=True)
class Reference:
    """The known optimal value of the trained network, what it is, and where it is (if known).

    value: e.g. the closed form of a linear net, or the certified convex optimum of a two-layer
    ReLU net; kind: those words; point: the weights there, to start one restart from."""

    value: float | None
    kind: str
    point: InitialPoint | None = None


def restart_seed(seed: int, restart: int) -> int:
    """Distinct, reproducible initialisation seeds per restart."""
    return (seed * 1_000_003 + restart * 7919 + 1) % (2**63 - 1)


@dataclass(frozen=True)
class Scaling:
    """The rescaled problem training runs on (module docstring): target Y / y_scale, beta' =
    `beta`, t = 1; layer l of the reported net is layer_factors[l] times the trained one, and
    R(W) = regularizer_factor * R_1(V)."""

    y_scale: float
    beta: float
    layer_factors: tuple[float, ...]
    regularizer_factor: float
    t: float = 1.0  # the trained net's t

    @classmethod
    def of(cls, exp: Experiment, y_norm: float) -> Scaling:
        """The rescaling for interpolation; the squared loss trains in its own units (its
        beta/||Y|| is part of the problem, and its L-BFGS restarts took 2-3 times the
        iterations on the rescaled one, e.g. 178, 97, 92 instead of 25, 66, 73 on a preset)."""
        if exp.objective == "squared":
            return cls(1.0, exp.beta, (1.0,) * exp.depth, exp.beta, exp.t)
        factors, g = REGULARIZERS[exp.regularization].layer_scales(y_norm, exp.t, exp.depth)
        return cls(y_norm, 1.0, factors, exp.beta * g)


def _snapshot(net: Net, X, Y, probe, restart, iteration, objective_kind, started,
              scaling: Scaling, start: Start, done=False):
    """A snapshot in the experiment's units (the net is trained in the rescaled ones)."""
    s = scaling.y_scale
    with torch.no_grad():
        fitted = (s * net(probe)[:, 0]).tolist() if probe is not None else None
        diff = net(X) - Y
        loss = 0.5 * s * s * float(torch.sum(diff**2))
        reg = scaling.regularizer_factor * float(net.regularizer()) / net.beta
        residual = float(torch.linalg.norm(diff) / torch.linalg.norm(Y).clamp_min(1e-300))
        sv = [s * x for x in singular_values(net.end_to_end())] if not net.relu else []
        layer_sv = [[c * x for x in values] for c, values in
                    zip(scaling.layer_factors, net.layer_singular_values(), strict=True)]
    objective = reg if objective_kind == "interpolation" else loss + reg
    return Snapshot(restart, iteration, objective, loss, reg, residual, sv, layer_sv,
                    time.perf_counter() - started, done, fitted, str(start))


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


def train(exp: Experiment, X: np.ndarray, Y: np.ndarray, probe: np.ndarray | None = None,
          starts: list[InitialPoint] | None = None,
          optimum: float | None = None) -> Iterator[Snapshot]:
    """Train every restart in turn, yielding snapshots as the optimizer goes: exp.restarts
    random ones, then one from each of `starts`. With `probe` (inputs shaped like X), each
    snapshot also carries the first output of f there. With the known optimal value
    `optimum`, a restart stops once it is there (Stop.AT_OPTIMUM)."""
    torch.set_num_threads(1)
    Xt = torch.tensor(X, dtype=DTYPE)  # a copy: the dataset arrays are read-only
    y_norm = float(np.linalg.norm(Y))
    probe_t = torch.tensor(probe, dtype=DTYPE) if probe is not None else None
    started = time.perf_counter()
    if y_norm == 0:  # the zero network is optimal: f = 0 fits Y at no cost
        yield from _zero_target(exp, Xt, Y, probe_t, started)
        return
    scaling = Scaling.of(exp, y_norm)
    Yt = torch.tensor(Y / scaling.y_scale, dtype=DTYPE)
    plan: list[tuple[Start, list[np.ndarray] | None]] = [(Start.RANDOM, None)] * exp.restarts
    plan += [(p.start, p.layers) for p in starts or []]
    for r, (start, layers) in enumerate(plan):
        generator = torch.Generator().manual_seed(restart_seed(exp.seed, r))
        net = Net(exp, X.shape[1], Y.shape[1], generator, beta=scaling.beta, t=scaling.t)
        if layers is not None:
            net.load([w / c for w, c in zip(layers, scaling.layer_factors, strict=True)])

        yield from _train_one(exp, net, Xt, Yt, probe_t, r, started, scaling, start, optimum)


def _zero_target(exp, X, Y, probe, started) -> Iterator[Snapshot]:
    """One restart: the zero network (last layer zero; constrained layers keep norm t)."""
    net = Net(exp, X.shape[1], Y.shape[1], torch.Generator().manual_seed(exp.seed))
    with torch.no_grad():
        for raw in net.raw[net.constrained:]:
            raw.zero_()
    scaling = Scaling(1.0, exp.beta, (1.0,) * exp.depth, exp.beta)
    snap = _snapshot(net, X, torch.tensor(Y, dtype=DTYPE), probe, 0, 0, exp.objective, started,
                     scaling, Start.CLOSED_FORM, done=True)
    yield dataclasses.replace(snap, stopped=str(Stop.CONVERGED))


def _optimal_multiplier(net: Net, X: torch.Tensor) -> torch.Tensor:
    """Lambda minimising ||grad R(W) + J^T Lambda|| (J the Jacobian of f(X) in the weights):
    the multiplier of f(X) = Y at a known solution, so that the augmented Lagrangian starts
    stationary there instead of pulling the net off it (with Lambda = 0 its first subproblem
    trades the fit for a smaller regularizer)."""
    params = list(net.parameters())
    grads = torch.autograd.grad(net.regularizer(), params, allow_unused=True)
    reg_grad = torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                          for g, p in zip(grads, params, strict=True)])
    out = net(X)
    rows = []
    for i in range(out.numel()):
        grads = torch.autograd.grad(out.reshape(-1)[i], params, retain_graph=True,
                                    allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(p) if g is None else g).reshape(-1)
                               for g, p in zip(grads, params, strict=True)]))
    J = torch.stack(rows).detach().numpy()  # (N K) x (number of weights)
    # The least-norm solution (SVD based): J has dependent rows when f(X) is confined to a
    # subspace (rank X < N), and then only it is unique (a QR-based solve was not).
    lam = np.linalg.lstsq(J.T, -reg_grad.detach().numpy(), rcond=None)[0]
    return torch.tensor(lam, dtype=DTYPE).reshape(out.shape)


def _train_one(exp, net, X, Y, probe, restart, started, scaling: Scaling, start: Start,
               optimum: float | None = None) -> Iterator[Snapshot]:
    """One restart on the rescaled problem (||Y|| = 1, see Scaling)."""
    chunk = SNAPSHOT_EVERY if exp.optimizer == "lbfgs" else 5 * SNAPSHOT_EVERY
    step = _make_stepper(exp, list(net.parameters()))
    interpolation = exp.objective == "interpolation"
    multiplier = torch.zeros_like(Y)
    if interpolation and start != Start.RANDOM:
        multiplier = _optimal_multiplier(net, X)
    rho = RHO_START

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
    inner_chunks = 0  # chunks since the last multiplier step
    stalled_chunks = 0
    last_residual = float("inf")

    def snapshot(iteration: int, stopped: Stop | None = None) -> Snapshot:
        snap = _snapshot(net, X, Y, probe, restart, iteration, exp.objective, started, scaling,
                         start, done=stopped is not None)
        return snap if stopped is None else dataclasses.replace(snap, stopped=str(stopped))

    yield snapshot(0)
    while done_iterations < exp.iterations:
        n = min(chunk, exp.iterations - done_iterations)
        if interpolation:
            with torch.no_grad():
                before = float(closure())
        ran = step(closure, n)
        done_iterations += max(ran, 1)
        converged_inner = ran < n  # L-BFGS stopped on its own tolerances
        inner_chunks += 1
        inner_done = converged_inner
        forced = False
        if interpolation and not converged_inner:
            # ... or it only polishes the subproblem: a multiplier step is worth more (the
            # first subproblem of a preset took 110 iterations at a nearly constant value)
            with torch.no_grad():
                after = float(closure())
            stalled = before - after <= INNER_STALL * max(abs(after), 1e-300)
            forced = not stalled and inner_chunks >= INNER_MAX_CHUNKS
            inner_done = stalled or forced
        if interpolation and (inner_done or ran == 0):
            inner_chunks = 0
            # Subproblem solved: a multiplier step, and a larger penalty if the residual stalls.
            with torch.no_grad():
                diff = net(X) - Y
                multiplier += rho * diff
                residual = float(torch.linalg.norm(diff))  # ||Y|| = 1
            if residual > 0.25 * last_residual and not forced:
                rho = min(rho * RHO_GROWTH, RHO_MAX)
            last_residual = residual
            step.reset()  # the objective changed: L-BFGS curvature pairs are stale
        snap = snapshot(done_iterations)
        stalled_chunks = stalled_chunks + 1 if converged_inner else 0
        finished = stalled_chunks >= (3 if interpolation else 2) and (
            not interpolation or snap.residual <= FINISH_RESIDUAL)
        if not np.isfinite(snap.objective):
            yield snapshot(done_iterations, Stop.DIVERGED)
            return
        at_optimum = optimum is not None and \
            abs(snap.objective - optimum) <= AT_OPTIMUM_TOL * max(abs(optimum), 1e-300) and \
            (not interpolation or snap.residual <= FINISH_RESIDUAL)
        if finished or at_optimum or done_iterations >= exp.iterations:
            stop = Stop.CONVERGED if finished else Stop.AT_OPTIMUM if at_optimum \
                else Stop.ITERATIONS
            yield snapshot(done_iterations, stop)
            return
        yield snap


def is_feasible(exp: Experiment, snapshot: Snapshot) -> bool:
    """Finite, and (for interpolation) within the residual tolerance."""
    return bool(np.isfinite(snapshot.objective)) and (
        exp.objective == "squared" or snapshot.residual <= RESIDUAL_TOL)


def summarize(exp: Experiment, snapshots: list[Snapshot], seconds: float,
              reference: Reference | None = None) -> PrimalResult:
    """The best restart among those that are finite and (for interpolation) feasible, and what
    it is: compared with reference.value where there is one (see PrimalStatus)."""
    finals = [s for s in snapshots if s.done]
    # A restart from a known solution starts feasible at the optimum and may leave it (ReLU
    # kinks: the multiplier from relu'(0) = 0 is not exact) for a worse or infeasible end: it
    # reports its start then. (The least feasible point of every trajectory would be biased
    # low: a point at residual 1e-6 undercuts the optimum by about as much.)
    kept = []
    for last in finals:
        candidates = [last]
        if last.start != Start.RANDOM:
            candidates += [s for s in snapshots if s.restart == last.restart and s.iteration == 0]
        feasible_ones = [s for s in candidates if is_feasible(exp, s)]
        kept.append(min(feasible_ones, key=lambda s: s.objective) if feasible_ones else last)
    restarts = [RestartResult(s.restart, s.objective, s.residual, last.iteration,
                              is_feasible(exp, s), Start(last.start),
                              Stop(last.stopped) if last.stopped else Stop.ITERATIONS,
                              s.iteration)
                for s, last in zip(kept, finals, strict=True)]
    finals = kept
    feasible = [s for s, r in zip(finals, restarts, strict=True) if r.feasible]
    ref = reference.value if reference is not None else None
    kind = reference.kind if reference is not None else None
    random_values = [r.value for r in restarts if r.feasible and r.start == Start.RANDOM]
    best_random = min(random_values) if random_values else None
    notes = []
    if not feasible:
        finite = [r for r in restarts if np.isfinite(r.value) and np.isfinite(r.residual)]
        if not finite:
            status, text = PrimalStatus.DIVERGED, (
                f"diverged: the objective became NaN or inf in all {len(restarts)} restarts")
            notes.append("every restart diverged")
            return PrimalResult(None, None, None, restarts, None, None, seconds, notes,
                                status=status, explanation=text, reference=ref,
                                reference_kind=kind)
        closest = min(finite, key=lambda r: r.residual)
        notes.append(f"no restart reached the interpolation tolerance {RESIDUAL_TOL:g}")
        text = (f"not interpolated: residual {closest.residual:.2e} (tolerance "
                f"{RESIDUAL_TOL:g}) at best, restart {closest.restart + 1} "
                f"({closest.start}), objective {closest.value:.6g}")
        return PrimalResult(None, None, None, restarts, None, None, seconds, notes,
                            status=PrimalStatus.NOT_INTERPOLATED, explanation=text,
                            reference=ref, reference_kind=kind, best_infeasible=closest,
                            best_random=best_random)
    best = min(feasible, key=lambda s: s.objective)
    best_result = restarts[finals.index(best)]
    if len(feasible) < len(finals):
        notes.append(f"{len(finals) - len(feasible)} of {len(finals)} restarts were not feasible "
                     "and were left out")
    status, text = _verdict(best.objective, best_result, ref, kind, best_random)
    return PrimalResult(best.objective, best.residual, best.restart, restarts,
                        best.singular_values, best.layer_singular_values, seconds, notes,
                        best.probe, status, text, ref, kind, None, best_random)


def _verdict(value: float, best: RestartResult, ref: float | None, kind: str | None,
             best_random: float | None) -> tuple[PrimalStatus, str]:
    """The status of a feasible best value against the known optimum, with one sentence."""
    if ref is None:
        return PrimalStatus.NO_REFERENCE, (f"feasible, P = {value:.6g}; no known optimum to "
                                           "compare with: an upper bound on this net's optimum")
    excess = (value - ref) / max(abs(ref), 1e-300) if ref else value
    at = f"P = {value:.6g}, the known optimum P* = {ref:.6g} ({kind})"
    if abs(excess) <= OPTIMUM_TOL or abs(value - ref) <= 1e-12:
        text = f"at the known optimum: {at}"
        if best.start != Start.RANDOM:
            text += f"; reached by the restart started from the {best.start}"
            if best_random is None:
                text += ", no random restart was feasible"
            elif (best_random - ref) > OPTIMUM_TOL * max(abs(ref), 1e-300):
                text += (f"; the best random restart stopped at {best_random:.6g}, "
                         f"{_percent(best_random, ref)} above it (a local minimum or too few "
                         "iterations)")
            else:  # said even when close: a lecture shows what training from scratch does
                text += (f"; the best random restart reached {best_random:.7g} "
                         f"({_percent(best_random, ref)} above it)")
        return PrimalStatus.OPTIMAL, text
    if excess < 0:
        return PrimalStatus.BELOW_REFERENCE, (
            f"below the known optimum: {at}; the reference or the feasibility tolerance is "
            "wrong")
    if best.stopped == Stop.ITERATIONS:
        return PrimalStatus.ITERATION_LIMIT, (
            f"stopped by the iteration budget at P = {value:.6g}, {_percent(value, ref)} above "
            f"the known optimum P* = {ref:.6g} ({kind}): more iterations may reach it")
    return PrimalStatus.LOCAL_MINIMUM, (
        f"stopped at P = {value:.6g}, {_percent(value, ref)} above the known optimum "
        f"P* = {ref:.6g} ({kind}): a local minimum")


def _percent(value: float, ref: float) -> str:
    return f"{100 * (value - ref) / abs(ref):.3g}%" if ref else f"{value - ref:.3g}"


def solve_primal(exp: Experiment, X: np.ndarray, Y: np.ndarray,
                 on_snapshot: Callable[[Snapshot], None] | None = None,
                 probe: np.ndarray | None = None,
                 reference: Reference | None = None) -> PrimalResult:
    """Run :func:`train` to the end (with one more restart from reference.point, if any) and
    summarize it against reference.value."""
    started = time.perf_counter()
    snapshots = []
    starts = [reference.point] if reference is not None and reference.point else []
    optimum = reference.value if reference is not None else None
    for snap in train(exp, X, Y, probe, starts, optimum):
        snapshots.append(snap)
        if on_snapshot is not None:
            on_snapshot(snap)
    return summarize(exp, snapshots, time.perf_counter() - started, reference)
