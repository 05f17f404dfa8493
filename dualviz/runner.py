"""One experiment end to end: data -> closed form, dual (CVXPY) and primal (training).

The CLI, the page's worker jobs and sweeps all call :func:`run`, so a link, a command line and
a sweep point with the same Experiment compute the same thing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .config import KNOBS_BY_NAME, ConfigError, Experiment
from .data import Dataset, rank_one, regression, synthetic
from .linear.closed_forms import target_spectrum
from .linear.programs import closed_form, solve_dual
from .relu.bounds import (
    ReluBounds,
    adds_bias_column,
    bias_note,
    network_inputs,
    probe_points,
    relu_bounds,
)
from .relu.convex import Network
from .results import Bounds, ClosedForm, DualResult, RunResult, Snapshot, SolveStatus, Start
from .training.nets import end_to_end_layers, two_layer_relu_layers
from .training.primal import InitialPoint, Reference, solve_primal


def dataset_for(exp: Experiment, uploaded: Dataset | None = None) -> Dataset:
    """The data of an experiment: seeded synthetic data, or the upload its digest names."""
    if exp.uses_synthetic_data:
        if exp.dataset == "regression":
            return regression(exp.n, exp.d, exp.regression_target, exp.noise, exp.seed)
        if exp.dataset == "rank-one":
            return rank_one(exp.n, exp.d, exp.k, exp.rank_one_target, exp.seed)
        return synthetic(exp.n, exp.d, exp.k, exp.x_rank, exp.target_rank, exp.spectrum,
                         exp.noise, exp.whiten, exp.seed,
                         interpolation=exp.objective == "interpolation")
    if uploaded is None or uploaded.digest != exp.data:
        raise ConfigError(f"this experiment uses the uploaded data set {exp.data}; "
                          "supply that file (e.g. --data FILE.npz)")
    return uploaded


def known_at_once(exp: Experiment, uploaded: Dataset | None = None) -> Bounds | None:
    """The numbers a linear net's job reports first that need no solver: its closed form and
    target spectrum (milliseconds), so a page shows them the moment a control moves, before
    the job has started. The dual is left to the job (a CVXPY solve). None for ReLU nets,
    whose bounds all come from a program."""
    if exp.activation != "linear":
        return None
    dataset = dataset_for(exp, uploaded)
    pending = DualResult(None, "", SolveStatus.NOT_COMPUTED, 0.0,
                         notes=["the dual is being solved"])
    return Bounds.of(closed_form(exp, dataset.X, dataset.Y), pending,
                     [float(x) for x in target_spectrum(dataset.X, dataset.Y)], None)


def run(exp: Experiment, uploaded: Dataset | None = None,
        on_snapshot: Callable[[Snapshot], None] | None = None,
        notes: list[str] | None = None,
        on_bounds: Callable[[dict[str, Any]], None] | None = None,
        warm_start: Callable[[str], list | None] | None = None) -> RunResult:
    """Closed form (instant), then the dual or convex program (reported to on_bounds), then
    training (each snapshot reported to on_snapshot). warm_start: see relu.bounds.relu_bounds."""
    dataset = dataset_for(exp, uploaded)
    X, Y = dataset.X, dataset.Y
    notes = list(notes or [])
    inputs, probe, relu_details = X, None, None
    trained = exp
    if exp.activation == "relu":
        bounds = relu_bounds(exp, X, Y, warm_start)
        closed, dual, relu_details = bounds.closed, bounds.dual, bounds.details
        inputs = network_inputs(exp, X)
        grid, _ = probe_points(X)
        probe = network_inputs(exp, grid, X) if grid is not None else None
        target: list[float] = []
        relu_details["bias"] = {"on": exp.bias, "column_added": adds_bias_column(exp, X)}
        notes += [n for n in (bias_note(exp, X),) if n]
        trained, width_note = _two_layer_width(exp, bounds)
        notes += [width_note] if width_note else []
        reference = _relu_reference(trained, bounds)
    else:
        closed = closed_form(exp, X, Y)
        dual = solve_dual(exp, X, Y)
        target = [float(x) for x in target_spectrum(X, Y)]
        reference = _linear_reference(exp, closed)
    if on_bounds is not None:
        on_bounds(Bounds.of(closed, dual, target, relu_details).to_json())
    primal = solve_primal(trained, inputs, Y, on_snapshot, probe, reference)
    if relu_details is not None and primal.probe is not None:
        relu_details.setdefault("fit", {"axes": probe_points(X)[1]})["trained"] = primal.probe
    return RunResult(exp, dataset, closed, dual, primal, target, notes, relu_details)


def _linear_reference(exp: Experiment, closed: ClosedForm) -> Reference | None:
    """The closed form as the known optimum of a linear net, with its factors to start from."""
    if closed.primal is None:
        return None
    point = None
    if closed.end_to_end is not None:
        layers = end_to_end_layers(exp, closed.end_to_end)
        point = InitialPoint(layers, Start.CLOSED_FORM) if layers is not None else None
    return Reference(closed.primal, "closed form", point)


def _relu_reference(exp: Experiment, bounds: ReluBounds) -> Reference | None:
    """The known optimum of a ReLU net: the convex program over all patterns (two layers; a
    restart starts from its network) or the rank-one closed form (three layers)."""
    if bounds.closed.primal is None:
        return None
    if exp.depth != 2:
        start = bounds.rank_one_start
        return Reference(bounds.closed.primal, "rank-one closed form",
                         InitialPoint(start, Start.CLOSED_FORM) if start is not None else None)
    net: Network | None = bounds.network
    layers = two_layer_relu_layers(exp, net.U, net.a) if net is not None else None
    point = InitialPoint(layers, Start.CONVEX) if layers is not None else None
    return Reference(bounds.closed.primal, "convex program over all patterns", point)


def _two_layer_width(exp: Experiment, bounds: ReluBounds) -> tuple[Experiment, str | None]:
    """A two-layer ReLU net narrower than the convex optimum's network (its active neurons)
    cannot reach that optimum (it may not even interpolate): it is trained that wide."""
    net = bounds.network
    if exp.depth != 2 or net is None:
        return exp, None
    name = "width" if exp.arch == "standard" else "branches"
    have, need = getattr(exp, name), net.width
    cap = int(KNOBS_BY_NAME[name].high)
    if have >= need or need > cap:
        return exp, None
    active = bounds.details.get("active_neurons", need)
    return dataclasses.replace(exp, **{name: need}), (
        f"{name} raised from {have} to {need} for training: the convex optimum is a network "
        f"of {active} neurons (and {need - active} more below 1e-6 of the largest, which the "
        "restart from it keeps), and a narrower net cannot reach it" if need > active else
        f"{name} raised from {have} to {need} for training: the convex optimum is a network "
        f"of {need} neurons, and a narrower net cannot reach it")
