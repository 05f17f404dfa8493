"""Typed results: what the solvers return, what a run stores, and their statuses.

Every number the app shows comes from one of these dataclasses. A run is computed as a
:class:`RunResult`, written to JSON once (:meth:`RunResult.to_json`, the CLI's and the store's
schema) and read back as a :class:`StoredRun` (:meth:`StoredRun.from_json`); the bounds known
before training ends are a :class:`Bounds`. Statuses are enums (compare with the constants,
never with free text): :class:`SolveStatus` for every convex solve and certified bracket,
:class:`PrimalStatus` for training, :class:`JobStatus` for a job in the store.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .config import Experiment
from .data import Dataset

# Relative tolerances of a zero gap (docs/math.md §8): a trained value is accurate to about
# TRAINED_GAP_TOL of the optimum at the default settings; closed forms and convex programs
# (solved to 1e-10) agree with each other to EXACT_GAP_TOL.
TRAINED_GAP_TOL = 1e-4
EXACT_GAP_TOL = 1e-8

# -- statuses ---------------------------------------------------------------------------------


class SolveStatus(enum.StrEnum):
    """How a convex solve (or a certified bracket) ended. The first nine are CVXPY's own."""

    OPTIMAL = "optimal"
    OPTIMAL_INACCURATE = "optimal_inaccurate"
    INFEASIBLE = "infeasible"
    INFEASIBLE_INACCURATE = "infeasible_inaccurate"
    UNBOUNDED = "unbounded"
    UNBOUNDED_INACCURATE = "unbounded_inaccurate"
    INFEASIBLE_OR_UNBOUNDED = "infeasible_or_unbounded"
    USER_LIMIT = "user_limit"
    SOLVER_ERROR = "solver_error"  # the solver broke down (detail: its error)
    CERTIFIED = "certified"  # lower <= optimum <= upper, within the tolerance
    UNCERTIFIED = "optimal, certificate gap above tol"  # solved, bracket wider than asked
    TIME_LIMIT = "time limit"  # the bracket so far is the answer
    STALLED = "stalled"  # no progress before the round limit
    SEARCH_FAILED = "search failed"  # the 1-D search over t found no finite value
    NOT_COMPUTED = "not computed"  # deliberately absent (deep ReLU nets, general data)

    @property
    def solved(self) -> bool:
        return self in (SolveStatus.OPTIMAL, SolveStatus.OPTIMAL_INACCURATE,
                        SolveStatus.CERTIFIED, SolveStatus.UNCERTIFIED)

    @property
    def infeasible(self) -> bool:
        """The program has no feasible point (no network fits the targets)."""
        return self in (SolveStatus.INFEASIBLE, SolveStatus.INFEASIBLE_INACCURATE)

    @property
    def unbounded(self) -> bool:
        return self in (SolveStatus.UNBOUNDED, SolveStatus.UNBOUNDED_INACCURATE,
                        SolveStatus.INFEASIBLE_OR_UNBOUNDED)

    @classmethod
    def parse(cls, text: str) -> tuple[SolveStatus, str | None]:
        """A status and its detail from ``"status"`` or ``"status: detail"`` (stored text)."""
        head, _, detail = str(text).partition(":")
        try:
            return cls(str(text)), None
        except ValueError:
            pass
        try:
            return cls(head.strip()), detail.strip() or None
        except ValueError:
            return cls.SOLVER_ERROR, str(text)


class PrimalStatus(enum.StrEnum):
    """What the trained value is."""

    OPTIMAL = "optimal"  # feasible and at the known optimum (within primal.OPTIMUM_TOL)
    NO_REFERENCE = "feasible, no reference"  # feasible; no known optimum to compare with
    LOCAL_MINIMUM = "local minimum"  # feasible, converged, above the known optimum
    ITERATION_LIMIT = "iteration limit"  # feasible, still moving when the budget ran out, above
    BELOW_REFERENCE = "below the known optimum"  # feasible and lower: the reference is wrong
    NOT_INTERPOLATED = "not interpolated"  # no restart met the residual tolerance
    DIVERGED = "diverged"  # every restart ended at NaN or inf


class Start(enum.StrEnum):
    """Where a training restart started."""

    RANDOM = "random"  # ~1/sqrt(fan_in) Gaussian layers, seeded by restart_seed
    CLOSED_FORM = "closed form"  # the closed-form optimum (docs/math.md §3, §5)
    CONVEX = "convex solution"  # the net rebuilt from the convex solution (docs/math.md §4)


class Stop(enum.StrEnum):
    """Why a training restart stopped."""

    CONVERGED = "converged"  # the optimiser's own tolerances (and the residual, if any)
    ITERATIONS = "iteration budget"  # exp.iterations used up
    AT_OPTIMUM = "at the known optimum"  # within AT_OPTIMUM_TOL of it (and fitting Y)
    DIVERGED = "diverged"  # NaN or inf


class JobStatus(enum.StrEnum):
    """A job's state in the store; BUSY is never stored (the server refused it for now)."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its worker died or the server stopped
    BUSY = "busy"  # every job place is taken: ask again shortly

    @property
    def active(self) -> bool:
        return self in ACTIVE

    @property
    def final(self) -> bool:
        return self in FINAL


class SweepStatus(enum.StrEnum):
    """A sweep's state (a page's sweep as the store keeps it; NEW: never started)."""

    RUNNING = "running"
    STOPPED = "stopped"  # by the session that started it
    PAUSED = "paused"  # nobody watched it
    FINISHED = "finished"
    INTERRUPTED = "interrupted"  # its server or CLI driver died
    FAILED = "failed"
    NEW = "new"


ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
COMPLETED = frozenset({JobStatus.DONE, JobStatus.FAILED})  # a result is stored (failed: kept)
FINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED,
                   JobStatus.INTERRUPTED})
RERUNNABLE = frozenset({JobStatus.CANCELLED, JobStatus.INTERRUPTED})


# -- what the solvers return ------------------------------------------------------------------


@dataclass(frozen=True)
class ClosedForm:
    """What theory predicts for one experiment; None where no closed form exists.

    primal: optimal value of the chosen architecture; dual: the dual value (or, for weight
    decay, the rescaled dual optimized over t); spectrum: singular values of the optimal
    end-to-end matrix; dual_label says which dual it is; end_to_end: that optimal matrix
    (d x K) where the primal is known (a training restart starts from its factors).
    """

    primal: float | None
    dual: float | None
    spectrum: np.ndarray | None
    dual_label: str
    notes: tuple[str, ...] = field(default=())
    end_to_end: np.ndarray | None = None


@dataclass(frozen=True)
class DualResult:
    """A dual value with how it was obtained; value is None unless the solver succeeded."""

    value: float | None
    method: str
    status: SolveStatus
    seconds: float
    t_star: float | None = None  # the optimizing t, for the weight-decay bound
    notes: list[str] = field(default_factory=list)
    # A certified bracket lower <= optimum <= upper, where the solver provides one
    lower: float | None = None
    upper: float | None = None
    certified: bool | None = None
    detail: str | None = None  # the solver's own words for a failure

    def __post_init__(self) -> None:
        if not isinstance(self.status, SolveStatus):  # a solver's text: typed once, here
            status, detail = SolveStatus.parse(self.status)
            object.__setattr__(self, "status", status)
            if self.detail is None:
                object.__setattr__(self, "detail", detail)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> DualResult:
        data = dict(data or {})
        status, detail = SolveStatus.parse(data.get("status", SolveStatus.NOT_COMPUTED))
        return cls(data.get("value"), data.get("method", ""), status,
                   float(data.get("seconds") or 0.0), data.get("t_star"),
                   list(data.get("notes") or []), data.get("lower"), data.get("upper"),
                   data.get("certified"), data.get("detail") or detail)

    @property
    def status_text(self) -> str:
        return f"{self.status}: {self.detail}" if self.detail else str(self.status)


@dataclass(frozen=True)
class Snapshot:
    """The state of one training restart after `iteration` optimizer iterations."""

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
    start: str = Start.RANDOM  # where this restart started
    stopped: str | None = None  # the last snapshot: why the restart stopped (a Stop)


@dataclass(frozen=True)
class RestartResult:
    restart: int
    value: float
    residual: float
    iterations: int
    feasible: bool
    start: Start = Start.RANDOM
    stopped: Stop = Stop.ITERATIONS
    kept_at: int | None = None  # the iteration of the point reported (0: a known start kept)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RestartResult:
        return cls(int(data["restart"]), _number(data.get("value")),
                   _number(data.get("residual")), int(data.get("iterations") or 0),
                   bool(data.get("feasible")), Start(data.get("start", Start.RANDOM)),
                   Stop(data.get("stopped", Stop.ITERATIONS)), data.get("kept_at"))


@dataclass(frozen=True)
class PrimalResult:
    """Best feasible restart (value None when none was feasible); a restart's value is that of
    its last point, or of its start when it started from a known solution that training left
    for a worse or infeasible point (RestartResult.kept_at = 0).

    status and explanation say what the value is (:class:`PrimalStatus`), comparing it with
    `reference` (the known optimum, of kind `reference_kind`, when there is one).
    best_infeasible: when no restart is feasible, the one closest to interpolating (smallest
    residual), so that a run is never a bare n/a. best_random: the best feasible value among
    the randomly initialised restarts (None if none), to show what training alone found when a
    restart started from a known solution.
    """

    value: float | None
    residual: float | None
    best_restart: int | None
    restarts: list[RestartResult]
    singular_values: list[float] | None
    layer_singular_values: list[list[float]] | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    probe: list[float] | None = None  # the best restart's f at the probe points
    status: PrimalStatus = PrimalStatus.NO_REFERENCE
    explanation: str = ""
    reference: float | None = None
    reference_kind: str | None = None
    best_infeasible: RestartResult | None = None
    best_random: float | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> PrimalResult:
        """The stored primal (its spectra and probe are stored elsewhere: None here)."""
        data = dict(data or {})
        infeasible = data.get("best_infeasible")
        return cls(data.get("value"), data.get("residual"), data.get("best_restart"),
                   [RestartResult.from_json(r) for r in data.get("restarts") or []],
                   None, None, float(data.get("seconds") or 0.0), list(data.get("notes") or []),
                   None, PrimalStatus(data.get("status", PrimalStatus.NO_REFERENCE)),
                   data.get("explanation") or "", data.get("reference"),
                   data.get("reference_kind"),
                   RestartResult.from_json(infeasible) if infeasible else None,
                   data.get("best_random"))


def _number(value: Any) -> float:
    """A stored float (JSON keeps NaN and inf as null)."""
    return float("nan") if value is None else float(value)


# -- what a run stores ------------------------------------------------------------------------


@dataclass(frozen=True)
class ClosedFormSummary:
    """The closed form as stored: its values, which dual it is, and the notes."""

    primal: float | None = None
    dual: float | None = None
    dual_label: str = "dual"
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spectra:
    """Singular values: of W* (target), of the closed-form optimum, of the trained net."""

    target: list[float] | None = None
    closed_form: list[float] | None = None
    learned: list[float] | None = None


@dataclass(frozen=True)
class Bounds:
    """What is known before training ends: the closed form, the dual, the ReLU details."""

    dual: DualResult
    closed_form: ClosedFormSummary
    spectrum: Spectra
    relu: dict[str, Any] | None = None  # patterns, neurons, solver, certificate, fitted curves

    @classmethod
    def of(cls, closed: ClosedForm, dual: DualResult, target: list[float],
           relu: dict[str, Any] | None) -> Bounds:
        return cls(dual, ClosedFormSummary(closed.primal, closed.dual, closed.dual_label,
                                           tuple(closed.notes)),
                   Spectra(target, None if closed.spectrum is None
                           else [float(x) for x in closed.spectrum]), relu)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Bounds:
        data = data or {}
        return cls(**_bounds_fields(data))

    def to_json(self) -> dict[str, Any]:
        dual = asdict(self.dual)
        dual["status"] = str(self.dual.status)
        return finite({"relu": self.relu, "dual": dual,
                       "closed_form": {**asdict(self.closed_form),
                                       "notes": list(self.closed_form.notes)},
                       "spectrum": asdict(self.spectrum)})


def _bounds_fields(data: Mapping[str, Any]) -> dict[str, Any]:
    closed = dict(data.get("closed_form") or {})
    spectrum = data.get("spectrum") or {}
    return {"dual": DualResult.from_json(data.get("dual")),
            "closed_form": ClosedFormSummary(closed.get("primal"), closed.get("dual"),
                                             closed.get("dual_label") or "dual",
                                             tuple(closed.get("notes") or ())),
            "spectrum": Spectra(spectrum.get("target"), spectrum.get("closed_form"),
                                spectrum.get("learned")),
            "relu": data.get("relu")}


@dataclass(frozen=True)
class StoredRun(Bounds):
    """A finished run as the store and the CLI's JSON keep it, read back typed."""

    experiment: dict[str, Any] = field(default_factory=dict)  # Experiment.to_record()
    data: dict[str, Any] = field(default_factory=dict)  # name, digest, n, d, k
    notes: list[str] = field(default_factory=list)
    primal: PrimalResult = field(default_factory=lambda: PrimalResult.from_json(None))
    gap: float | None = None
    relative_gap: float | None = None
    failure: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> StoredRun:
        data = data or {}
        return cls(**_bounds_fields(data), experiment=dict(data.get("experiment") or {}),
                   data=dict(data.get("data") or {}), notes=list(data.get("notes") or []),
                   primal=PrimalResult.from_json(data.get("primal")), gap=data.get("gap"),
                   relative_gap=data.get("relative_gap"), failure=data.get("failure"))


@dataclass(frozen=True)
class RunResult:
    """One experiment computed end to end (dualviz.runner.run)."""

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
        """P - D, from the trained primal and the dual."""
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

    @property
    def bounds(self) -> Bounds:
        return Bounds.of(self.closed, self.dual, self.target_spectrum, self.relu)

    def to_json(self) -> dict[str, Any]:
        """The CLI's JSON schema (also what the store keeps)."""
        primal = asdict(self.primal)
        del primal["layer_singular_values"], primal["singular_values"], primal["probe"]
        bounds = self.bounds.to_json()
        bounds["spectrum"]["learned"] = self.primal.singular_values
        return finite({
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


# -- failures ---------------------------------------------------------------------------------

_WHY_NOT_FEASIBLE = ("the program has no feasible point: no network fits these targets exactly "
                     "(e.g. equal inputs with different targets); use the squared loss")
_WHY_UNBOUNDED = ("the dual is unbounded, so the primal is infeasible: Y is not in the range "
                  "of X and no network interpolates it; use the squared loss")


def dual_failure(dual: DualResult) -> str | None:
    """The dual or convex solver's breakdown as one sentence, or None if it gave an answer.

    An answer is a value or a certified bracket; NOT_COMPUTED (deep ReLU nets on general data)
    is a deliberate absence, not a failure.
    """
    if dual.status.infeasible:  # a bracket's lower end says nothing then
        return f"{dual.method}: {dual.status}: {_WHY_NOT_FEASIBLE}"
    if dual.status.unbounded:
        return f"{dual.method}: {dual.status}: {_WHY_UNBOUNDED}"
    if dual.value is not None or dual.lower is not None \
            or dual.status == SolveStatus.NOT_COMPUTED:
        return None
    return (f"{dual.method}: numerical trouble (status '{dual.status_text}'): try a larger "
            "beta, fewer samples or rescaled data")


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


def finite(value: Any) -> Any:
    """JSON has no NaN or inf: map them to null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
