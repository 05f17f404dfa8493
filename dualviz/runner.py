"""One experiment end to end: data -> closed form, dual (CVXPY) and primal (training).

The CLI, the page's worker jobs and sweeps all call :func:`run`, so a link, a command line and
a sweep point with the same Experiment compute the same thing.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import KNOBS_BY_NAME, ConfigError, Experiment
from .data import Dataset, rank_one, regression, synthetic
from .dual import DualResult, solve_dual
from .nets import end_to_end_layers, two_layer_relu_layers
from .primal import InitialPoint, PrimalResult, Reference, Snapshot, Start, solve_primal
from .relu import (
    ReluBounds,
    adds_bias_column,
    bias_note,
    network_inputs,
    probe_points,
    relu_bounds,
)
from .relu_convex import Network
from .theory import ClosedForm, closed_form, target_spectrum


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


@dataclass(frozen=True)
class RunResult:
    experiment: Experiment
    dataset: Dataset
    closed: ClosedForm
    dual: DualResult
    primal: PrimalResult
    target_spectrum: list[float]
    notes: list[str] = field(default_factory=list)
    relu: dict[str, Any] | None = None  # ReLU experiments: patterns, neurons, fitted functions

    @property
    def gap(self) -> float | None:
        """P - D, from the trained primal and the CVXPY dual."""
        if self.primal.value is None or self.dual.value is None:
            return None
        return self.primal.value - self.dual.value

    @property
    def relative_gap(self) -> float | None:
        """(P - D) / |D|."""
        if self.gap is None or self.dual.value == 0:
            return None
        return self.gap / abs(self.dual.value)

    @property
    def failure(self) -> str | None:
        """Why this run failed (a solver broke down), or None. Its numbers are kept either way."""
        return run_failure(self.dual, self.primal)

    def to_json(self) -> dict[str, Any]:
        """The CLI's JSON schema (also what the store keeps)."""
        primal = asdict(self.primal)
        del primal["layer_singular_values"], primal["singular_values"], primal["probe"]
        bounds = bounds_json(self.closed, self.dual, self.target_spectrum, self.relu)
        bounds["spectrum"]["learned"] = self.primal.singular_values
        return _finite({
            "experiment": self.experiment.to_record(),
            "data": {"name": self.dataset.name, "digest": self.dataset.digest,
                     "n": self.dataset.n, "d": self.dataset.d, "k": self.dataset.k},
            "notes": self.notes,
            "primal": primal,
            **bounds,
            "gap": self.gap,
            "relative_gap": self.relative_gap,
            "failure": self.failure,
        })


_DUAL_TROUBLE = {
    "infeasible": "the program has no feasible point: no network fits these targets exactly "
                  "(e.g. equal inputs with different targets); use the squared loss",
    "unbounded": "the dual is unbounded, so the primal is infeasible: Y is not in the range "
                 "of X and no network interpolates it; use the squared loss",
}


def dual_failure(dual: DualResult) -> str | None:
    """The dual or convex solver's breakdown as one sentence, or None if it gave an answer.

    An answer is a value or a certified bracket; "not computed" (deep ReLU nets on general
    data) is a deliberate absence, not a failure.
    """
    for word, why in _DUAL_TROUBLE.items():
        if dual.status.startswith(word):  # a bracket's lower end says nothing then
            return f"{dual.method}: {dual.status.split(':')[0]}: {why}"
    if dual.value is not None or dual.lower is not None or dual.status == "not computed":
        return None
    return (f"{dual.method}: numerical trouble (status '{dual.status}'): try a larger beta, "
            "fewer samples or rescaled data")


def primal_failure(primal: PrimalResult) -> str | None:
    """Training that diverged (NaN or inf) in every restart, or None."""
    if primal.restarts and not any(math.isfinite(r.value) for r in primal.restarts):
        return (f"training diverged: the objective became NaN or inf in all "
                f"{len(primal.restarts)} restarts; lower the learning rate or rescale the data")
    return None


def run_failure(dual: DualResult, primal: PrimalResult) -> str | None:
    """Every reason a run failed, joined, or None."""
    reasons = [r for r in (dual_failure(dual), primal_failure(primal)) if r]
    return "; ".join(reasons) or None


def _finite(value: Any) -> Any:
    """JSON has no NaN or inf: map them to null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def bounds_json(closed: ClosedForm, dual: DualResult, target: list[float],
                relu: dict[str, Any] | None) -> dict[str, Any]:
    """What is known before training starts (shown while the primal runs)."""
    return _finite({"relu": relu, "dual": asdict(dual),
                    "closed_form": {"primal": closed.primal, "dual": closed.dual,
                                    "dual_label": closed.dual_label, "notes": list(closed.notes)},
                    "spectrum": {"target": target,
                                 "closed_form": None if closed.spectrum is None
                                 else [float(x) for x in closed.spectrum]}})


def run(exp: Experiment, uploaded: Dataset | None = None,
        on_snapshot: Callable[[Snapshot], None] | None = None,
        notes: list[str] | None = None,
        on_bounds: Callable[[dict[str, Any]], None] | None = None,
        warm_start: Callable[[str], list | None] | None = None) -> RunResult:
    """Closed form (instant), then the dual or convex program (reported to on_bounds), then
    training (each snapshot reported to on_snapshot). warm_start: see relu.relu_bounds."""
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
        on_bounds(bounds_json(closed, dual, target, relu_details))
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
        t = 1.0 if exp.regularization == "lth-power" else exp.t
        layers = end_to_end_layers(exp, closed.end_to_end, t)
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



def csv_text(rows: list[dict[str, Any]]) -> str:
    """Rows of one shape as CSV text (None as an empty cell)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    return buffer.getvalue()


RESTART_COLUMNS = ("restart", "start", "value", "residual", "iterations", "feasible")


def result_csv(result: dict[str, Any]) -> str:
    """A finished run as CSV: one row per restart, with the run's P, D and gap repeated."""
    shared = {"hash": result["experiment"]["hash"], "P": result["primal"]["value"],
              "D": (result.get("dual") or {}).get("value"), "gap": result.get("gap"),
              "relative_gap": result.get("relative_gap")}
    return csv_text([{**shared, **{k: r.get(k) for k in RESTART_COLUMNS}}
                     for r in result["primal"]["restarts"]])


def rerun_snippet(exp: Experiment) -> str:
    """Python that reruns this experiment with the package (an uploaded file must be given)."""
    data = ("" if exp.uses_synthetic_data else
            "from dualviz.data import load_file\n"
            "with open('YOUR_DATA_FILE.npz', 'rb') as f:  # the file uploaded as "
            f"{exp.data}\n    uploaded = load_file(f, 'YOUR_DATA_FILE.npz')\n")
    return ("from dualviz.config import Experiment\n"
            "from dualviz.runner import run\n\n"
            f"{data}"
            f"exp, notes = Experiment.from_query({exp.to_query()!r})\n"
            f"result = run(exp{'' if exp.uses_synthetic_data else ', uploaded'})\n"
            "print('P =', result.primal.value, 'D =', result.dual.value, "
            "'gap =', result.gap)\n")
