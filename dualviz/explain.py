"""Words and formulas for a result: verdicts and docs/math.md §3 with this run's numbers plugged in.

Pure functions of an Experiment and numbers; the pages only display what these return.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from .config import Experiment
from .data import spectrum_values
from .linear.closed_forms import interpolation_rescaled_dual, interpolation_rescaled_standard
from .linear.programs import formula_latex as formula_latex  # the pages read words here
from .linear.programs import spectrum_threshold
from .results import EXACT_GAP_TOL, TRAINED_GAP_TOL, Bounds, Snapshot, StoredRun
from .training.primal import is_feasible


def excess_floor(dual: float | None) -> float:
    """Where P - D sits on a log axis when it is within the zero-gap tolerance (or below 0,
    which a feasible point reaches only through the solvers' rounding)."""
    return TRAINED_GAP_TOL * max(abs(dual or 0.0), 1e-8)


def gap_text(gap: float | None, dual: float | None, tol: float = TRAINED_GAP_TOL) -> str:
    """P - D in one way everywhere: '0 (|P - D| < tol)' within the tolerance, else the
    value with its sign."""
    if gap is None or dual is None:
        return "n/a"
    scale = max(abs(dual), 1e-12)
    if abs(gap) <= tol * scale:
        return f"0 (|P - D| < {tol * scale:.1g})"
    return f"{gap:.7g}"


def relative_text(gap: float | None, dual: float | None, tol: float = TRAINED_GAP_TOL) -> str:
    """(P - D)/|D| in one way everywhere: a percentage of D."""
    if gap is None or dual is None or dual == 0:
        return "n/a"
    relative = gap / abs(dual)
    if abs(relative) <= tol:
        return f"0 % (< {100 * tol:.1g} %)"
    return f"{100 * relative:.4g} % of D"


class LiveReadout:
    """The numbers of a running job, kept up to date batch by batch (one per stream, however
    many browsers watch it): the best feasible value so far, or else the best infeasible one
    with its residual, against the bounds known before training."""

    def __init__(self, exp: Experiment):
        self.exp = exp
        self.dual: float | None = None
        self.closed: float | None = None
        self.final_primal: float | None = None
        self.final = False
        self.best_feasible: float | None = None
        self.best_infeasible: tuple[float, float] | None = None  # (value, residual)
        self.explanation: str | None = None  # what the final value is (the result's words)

    def bounds(self, bounds: Bounds | None, result: StoredRun | None) -> None:
        """The numbers known before training (bounds), or the final ones (result)."""
        source = result or bounds
        if source is None:
            return
        self.dual = source.dual.value
        self.closed = source.closed_form.primal
        if result is not None:
            self.final = True
            self.final_primal = result.primal.value
            infeasible = result.primal.best_infeasible
            if infeasible is not None and infeasible.residual == infeasible.residual:
                self.best_infeasible = (infeasible.value, infeasible.residual)
            self.explanation = result.primal.explanation

    def add(self, snapshots: Sequence[Snapshot]) -> None:
        for s in snapshots:
            if is_feasible(self.exp, s):
                if self.best_feasible is None or s.objective < self.best_feasible:
                    self.best_feasible = float(s.objective)
            elif s.objective == s.objective and (self.best_infeasible is None
                                                 or s.residual < self.best_infeasible[1]):
                self.best_infeasible = (float(s.objective), float(s.residual))

    @property
    def primal(self) -> float | None:
        return self.final_primal if self.final else self.best_feasible

    def shown(self) -> dict[str, str]:
        """The metric texts of a page (label and value)."""
        primal = self.primal
        if primal is not None:
            p_text = f"{primal:.7g}"
        elif self.best_infeasible is not None:
            value, residual = self.best_infeasible
            p_text = (f"not interpolated: residual {residual:.1e}" if self.final else
                      f"{value:.7g} (not feasible yet: residual {residual:.1e})")
        else:
            p_text = "n/a"
        gap = None if primal is None or self.dual is None else primal - self.dual
        return {"P_label": "P (trained)" if self.final else "P (best feasible so far)",
                "P": p_text, "D_label": "D (lower bound on P)",
                "D": "n/a" if self.dual is None else f"{self.dual:.7g}",
                "gap": gap_text(gap, self.dual), "relative": relative_text(gap, self.dual),
                "closed": "n/a" if self.closed is None else f"{self.closed:.7g}"}

    def levels(self) -> dict[str, float | str | None]:
        """The horizontal lines of the objective figure."""
        return {"dual": self.dual, "closed": self.closed,
                "dual_label": dual_line_label(self.exp)}


def dual_line_label(exp: Experiment) -> str:
    """The name of the dual's line in the objective figure, live and final alike: a two-layer
    ReLU net's bound is the convex program's optimum, every other one the dual D."""
    return "convex optimum" if exp.activation == "relu" and exp.depth == 2 else "D"


def _within(a: float, b: float, tol: float) -> bool:
    return abs(a - b) <= tol * max(abs(b), 1e-12)


class VerdictKind(enum.StrEnum):
    ZERO_GAP = "zero gap"  # within the stated tolerance
    POSITIVE_GAP = "positive gap"  # P* - D (exact) or at most P - D (trained)
    INCONSISTENT = "inconsistent"  # a bound crossed: a solver is inaccurate
    NO_DUAL = "no dual"  # only the trained upper bound exists
    PENDING = "pending"  # nothing feasible yet


@dataclass(frozen=True)
class Verdict:
    """One line on the duality gap, and what kind of statement it is."""

    kind: VerdictKind
    text: str

    def __str__(self) -> str:
        return self.text


def gap_verdict(primal: float | None, dual: float | None, closed_primal: float | None = None,
                explanation: str | None = None) -> Verdict:
    """One line on the duality gap, its direction and its tolerance stated (docs/math.md §8).

    D is a lower bound on the network's optimum P* (weak duality) and a trained P an upper
    bound on it. Where theory gives P* (a closed form, a certified convex program), the gap is
    P* - D, compared to EXACT_GAP_TOL, and training is judged against P* separately; where it
    does not, P - D bounds the gap from above, compared to TRAINED_GAP_TOL. explanation: what
    the trained value is (the result's primal explanation)."""
    if dual is None:
        if primal is None:
            return Verdict(VerdictKind.PENDING, "no verdict yet: neither the trained value nor "
                                                "a dual is available")
        return Verdict(VerdictKind.NO_DUAL, (
            f"no dual here: P = {primal:.6g} is an upper bound on this network's optimum "
            "(training finds a feasible point, not a certificate)"))
    if closed_primal is not None:
        return _exact_verdict(primal, dual, closed_primal, explanation)
    if primal is None:
        return Verdict(VerdictKind.PENDING, "no verdict yet: " + (
            explanation or "training has not reached a feasible point"))
    gap = primal - dual
    if _within(primal, dual, TRAINED_GAP_TOL):
        return Verdict(VerdictKind.ZERO_GAP, (
            f"zero duality gap within training's accuracy: |P - D| = {abs(gap):.1e} < "
            f"{TRAINED_GAP_TOL:g} D"))
    if gap < 0:
        return Verdict(VerdictKind.INCONSISTENT, (
            f"the trained P lies {-gap:.3g} below the lower bound D, which weak duality "
            "forbids for a feasible point: a numerical inaccuracy of the dual solve"))
    return Verdict(VerdictKind.POSITIVE_GAP, (
        f"P - D = {gap:.6g} ({relative_text(gap, dual)}): the duality gap is at most this "
        "(P is trained: an upper bound on the optimum)"))


def _exact_verdict(primal: float | None, dual: float, closed_primal: float,
                   explanation: str | None) -> Verdict:
    """The verdict where theory gives the optimum P*: the gap P* - D, then training on P*."""
    gap = closed_primal - dual
    if _within(closed_primal, dual, EXACT_GAP_TOL):
        kind, text = VerdictKind.ZERO_GAP, (f"zero duality gap: the optimum P* = D = {dual:.7g} "
                                            f"(|P* - D| < {EXACT_GAP_TOL:g} D)")
    elif gap > 0:
        kind, text = VerdictKind.POSITIVE_GAP, (
            f"positive duality gap: P* - D = {gap:.6g} "
            f"({relative_text(gap, dual, EXACT_GAP_TOL)}), P* from theory")
    else:
        kind, text = VerdictKind.INCONSISTENT, (
            f"D = {dual:.7g} exceeds the exact optimum P* = {closed_primal:.7g} by "
            f"{-gap:.3g}, which weak duality forbids: the dual solve is inaccurate")
    if primal is None:
        return Verdict(kind, text + "; " + (explanation or
                                             "training did not reach a feasible point"))
    if _within(primal, closed_primal, TRAINED_GAP_TOL):
        return Verdict(kind, text + f"; training reached it (P = {primal:.7g})")
    if primal > closed_primal:
        return Verdict(kind, text + "; " + (explanation or (
            f"training stopped at P = {primal:.7g}, "
            f"{100 * (primal - closed_primal) / abs(closed_primal):.3g}% above it: a local "
            "minimum, or too few iterations or branches")))
    return Verdict(kind, text + f"; the trained P = {primal:.7g} lies below it within its "
                                "tolerance")


def certificate_sentence(certificate: dict | None, complete: bool = True) -> str:
    """What the convex solver proved, in one sentence: "certified optimal to X" with the
    bracket, or the bracket alone when the certificate is not tight; never a bare number.
    complete=False (sampled patterns): the bracket is that of the program over the sampled
    patterns, whose upper end (a network attains it) bounds the network's optimum from above;
    the lower end bounds only the restricted program."""
    if not certificate:
        return "no certificate: the convex solver returned no solution"
    lower, upper = certificate["lower"], certificate["upper"]
    relative = certificate["relative_gap"]
    what = "the optimum" if complete else "the optimum of the program over these patterns"
    bracket = f"{what} lies in [{lower:.12g}, {upper:.12g}]"
    if not complete:
        bracket += (f"; {upper:.12g} is an upper bound on the network's optimum (a network "
                    "attains it), the lower end bounds only the restricted program")
    residual = certificate.get("residual") or 0.0
    fit = f"; the network fits y to a relative residual of {residual:.1e}" if residual else ""
    if certificate["certified"]:
        return f"certified optimal to {relative:.1e} (relative): {bracket}{fit}"
    return (f"not certified to the tolerance: {bracket} (relative gap {relative:.1e}){fit}; "
            "the solver stopped early")


@dataclass(frozen=True)
class Preview:
    """The home page's instant numbers: interpolation of a target with r singular values of
    the chosen spectrum, rescaled regularization, beta = t = 1 (docs/math.md §3.1, §3.2)."""

    primal: float  # the standard net: ||W*||_{S_{2/L}}
    dual: float  # ||W*||_*, which the parallel net attains
    verdict: Verdict

    @property
    def ratio(self) -> float:
        return self.primal / self.dual


def closed_form_preview(depth: int, rank: int, spectrum: str) -> Preview:
    sigma = spectrum_values(spectrum, rank)
    primal = interpolation_rescaled_standard(sigma, 1.0, 1.0, depth)
    dual = interpolation_rescaled_dual(sigma, 1.0, 1.0, depth)
    if _within(primal, dual, EXACT_GAP_TOL):
        verdict = Verdict(VerdictKind.ZERO_GAP, "Zero gap: L = 2 or a rank-one target.")
    else:
        verdict = Verdict(VerdictKind.POSITIVE_GAP, f"Positive gap: depth {depth} with a "
                                                    f"rank-{rank} target. Try L = 2 or rank 1.")
    return Preview(primal, dual, verdict)


@dataclass(frozen=True)
class Readout:
    """The numbers a page shows for one job, final or so far."""

    primal: float | None  # best feasible trained value (so far, while running)
    dual: float | None
    closed_primal: float | None
    closed_dual: float | None
    dual_label: str
    final: bool
    learned_spectrum: list[float] | None
    layer_spectra: list[list[float]] | None
    target_spectrum: list[float] | None
    closed_spectrum: list[float] | None
    relu: dict | None = None  # ReLU details: patterns, neurons, fitted functions, rank-one
    live: LiveReadout | None = None  # the same numbers as a stream keeps them
    threshold: float | None = None  # where the squared-loss closed form cuts the spectrum

    @property
    def gap(self) -> float | None:
        return None if self.primal is None or self.dual is None else self.primal - self.dual

    @property
    def relative_gap(self) -> float | None:
        return None if self.gap is None or not self.dual else self.gap / abs(self.dual)

    def shown(self) -> dict[str, str]:
        """The metric texts of a page, as the live stream writes them."""
        return self.live.shown()


def readout(exp: Experiment, bounds: Bounds | None, result: StoredRun | None,
            snapshots: Sequence[Snapshot]) -> Readout:
    """Numbers from the stored result when the job is done, else from the bounds (known before
    training) and the snapshots so far: P is the best feasible value reached yet."""
    source = result or bounds or Bounds.from_json(None)
    live = LiveReadout(exp)
    live.bounds(bounds, result)
    live.add(snapshots)
    last = snapshots[-1] if snapshots else None
    if result is not None:
        best = [s for s in snapshots if s.done and s.restart == result.primal.best_restart]
        learned = source.spectrum.learned
        layers = best[-1].layer_singular_values if best else None
    else:
        learned = last.singular_values if last else None
        layers = last.layer_singular_values if last else None
    closed = source.closed_form
    return Readout(live.primal, live.dual, closed.primal, closed.dual,
                   closed.dual_label or "dual", result is not None, learned, layers,
                   source.spectrum.target, source.spectrum.closed_form, source.relu, live,
                   spectrum_threshold(exp))


def three_layer_lines(three: dict | None, arch: str) -> list[str]:
    """The three-layer convex program's result (docs/math.md §6) in sentences, each with its
    direction and tolerance: what D is, which way its bracket bounds, and what it means for
    the parallel and the standard net. `three` is the run's relu["three_layer"]."""
    if not three:
        return []
    lower, upper = three.get("lower"), three.get("upper")
    relative = three.get("relative_gap")
    sizes = (f"{three.get('first_layer_patterns')} first-layer patterns, "
             f"{three.get('second_layer_patterns')} second-layer patterns priced, "
             f"{three.get('seconds', 0.0):.2f} s")
    if three.get("exact") and three.get("certified"):
        head = (f"D (certified) = {upper:.10g}: the three-layer convex program over every "
                f"pattern, {lower:.10g} <= D <= {upper:.10g} (relative gap {relative:.1e} "
                f"<= 1e-8; lower from the dual certificate, upper from the rebuilt network's "
                f"objective; {sizes}).")
    elif three.get("exact"):
        low = "-inf" if lower is None else f"{lower:.10g}"
        high = "inf" if upper is None else f"{upper:.10g}"
        head = (f"D is not certified to 1e-8 ({three.get('status')}): {low} <= D <= {high}, "
                f"the lower end from the dual certificate, the upper from a real network "
                f"({sizes}).")
    else:
        high = "inf" if upper is None else f"{upper:.10g}"
        head = (f"D <= {high}: the program over the patterns priced (some patterns sampled) "
                "gives the objective of a real parallel net, an upper bound of D; there is no "
                f"lower bound of D here, so P - D below is not a bound on any gap ({sizes}).")
    roles = ("D is the parallel net's global optimum (enough branches) and the standard net's "
             "Lagrangian dual: no trained net of either kind can go below it.")
    if arch == "parallel":
        net = (f"The parallel net: its trained P is an upper bound of its optimum D, so "
               f"P - D >= 0 measures training only; the network rebuilt from the program has "
               f"{three.get('branches')} branches of up to {three.get('width')} first-layer "
               "neurons.")
    else:
        net = ("The standard net: its best trained P (over the restarts) is an upper bound of "
               "its optimum, so P_standard - D is an upper bound of its duality gap (the gap "
               "itself may be smaller, never negative).")
    return [head, roles, net]
