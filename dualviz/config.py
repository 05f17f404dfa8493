"""The Experiment: every knob of a run, its bounds, its validation, its URL codec and its hash.

One table drives everything (as in TensorFlow Playground): each field of :class:`Experiment`
carries a :class:`Knob` in its metadata, and the page's controls, the URL query string, the CLI's
options, the stored record and the cache key are all derived from that table. A URL key is the
CLI's long option name without its leading dashes (``--target-rank`` <-> ``target-rank=2``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from . import footprint, limits
from .data import DATASETS, RANK_ONE_TARGETS, REGRESSION_TARGETS, SPECTRA
from .limits import env_number
from .regularizers import REGULARIZERS

# Bump when a change of code changes what a stored result means: old hashes stop matching.
SCHEMA_VERSION = 3

SYNTHETIC = "synthetic"
RELU_MAX_DEPTH = 6


@dataclass(frozen=True)
class Knob:
    """One property of the state: how to parse, clamp, show and explain it."""

    name: str
    kind: str  # "choice" | "int" | "float" | "bool" | "str"
    default: Any
    group: str  # "network" | "data" | "regularization" | "solver"
    label: str
    help: str
    choices: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False  # a log-scale slider on the page
    restarts: bool = True  # changing it starts a new job (False: applies live)
    # When the knob can change a result (a predicate on the values of all knobs, by name),
    # and the words saying when it does; None: always. A knob that cannot change a result is
    # left out of the hash (one computation, one hash) and its control is disabled.
    applies_if: Callable[[Mapping[str, Any]], bool] | None = None
    applies_text: str = ""

    def applies(self, values: Mapping[str, Any]) -> bool:
        return self.applies_if is None or bool(self.applies_if(values))

    @property
    def key(self) -> str:
        """The URL query key, which is also the CLI's long option without ``--``."""
        return self.name.replace("_", "-")


def _knob(default: Any, kind: str, group: str, label: str, help: str, **spec: Any) -> Any:
    # The knob's name is filled in from the field name once the dataclass exists.
    knob = Knob(name="", kind=kind, default=default, group=group, label=label, help=help, **spec)
    return dataclasses.field(default=default, metadata={"knob": knob})


def _synthetic(values: Mapping[str, Any]) -> bool:
    return values["data"] == SYNTHETIC


def _low_rank(values: Mapping[str, Any]) -> bool:
    return _synthetic(values) and values["dataset"] == "low-rank"


_SYNTHETIC_TEXT = "synthetic data (an upload brings its own)"
_LOW_RANK_TEXT = "synthetic low-rank data"


class ConfigError(ValueError):
    """A user-facing, one-line message about a value that cannot be used at all."""


@dataclass(frozen=True)
class Experiment:
    """Every knob of one run. Construct with valid values, or use :meth:`from_values` to clamp."""

    # network
    arch: str = _knob(
        "standard", "choice", "network", "Architecture",
        "standard: one chain of layers; parallel: a sum of branches, each ending in one neuron "
        "(the paper's parallel net).", choices=("standard", "parallel"))
    activation: str = _knob(
        "linear", "choice", "network", "Activation",
        "linear: deep linear network (closed forms exist); relu: ReLU network.",
        choices=("linear", "relu"))
    depth: int = _knob(3, "int", "network", "Depth L", "Number of weight layers L.", low=2, high=10)
    width: int = _knob(
        8, "int", "network", "Width",
        "Hidden width of the standard net (and of the inner layers of each parallel branch). "
        "Below rank(W*) the net cannot interpolate.", low=1, high=256,
        applies_if=lambda v: v["arch"] == "standard" or v["depth"] >= 3,
        applies_text="standard nets, and parallel nets with L >= 3 (a two-layer branch is "
                     "one neuron)")
    branches: int = _knob(
        8, "int", "network", "Branches",
        "Number of branches m of the parallel net; m >= rank(W*) is needed to interpolate.",
        low=1, high=256, applies_if=lambda v: v["arch"] == "parallel",
        applies_text="parallel nets")
    bias: bool = _knob(
        True, "bool", "network", "Bias",
        "ReLU nets: a bias in the first layer, as a column of ones appended to X (none is added "
        "when X already has a constant column: that column is the bias). Linear nets have no "
        "bias; rank-one data is trained without one (its closed forms are for that net).",
        applies_if=lambda v: v["activation"] == "relu", applies_text="ReLU nets")
    # regularization
    objective: str = _knob(
        "interpolation", "choice", "regularization", "Objective",
        "interpolation: min regularizer s.t. f(X) = Y; squared: 0.5||f(X) - Y||^2 + regularizer.",
        choices=("interpolation", "squared"))
    regularization: str = _knob(
        "rescaled", "choice", "regularization", "Regularization",
        "; ".join(f"{r.name}: {r.description}" for r in REGULARIZERS.values()) + ".",
        choices=tuple(REGULARIZERS))
    beta: float = _knob(
        1.0, "float", "regularization", "beta", "Regularization strength beta > 0.",
        low=1e-4, high=1e3, log=True)
    t: float = _knob(
        1.0, "float", "regularization", "t",
        "Norm bound t of the constrained layers (rescaled regularization only).",
        low=1e-2, high=1e2, log=True, applies_if=lambda v: v["regularization"] == "rescaled",
        applies_text="the rescaled regularization (L-th power is rescaled with t = 1)")
    # data
    data: str = _knob(
        SYNTHETIC, "str", "data", "Data",
        "'synthetic', or the digest of an uploaded data set (set by the upload, not by hand).")
    dataset: str = _knob(
        "low-rank", "choice", "data", "Synthetic data",
        "low-rank: X and W* of chosen ranks and spectrum (deep linear nets); regression: points "
        "in [-1, 1]^d with a scalar target (ReLU nets, with a bias); rank-one: X = c a^T "
        "(three-layer ReLU duality).", choices=DATASETS,
        applies_if=_synthetic, applies_text=_SYNTHETIC_TEXT)
    regression_target: str = _knob(
        "sine", "choice", "data", "Regression target",
        "Scalar target of the regression data: sin(pi sum x), |sum x| - 1/2, or a random "
        "three-neuron ReLU teacher.", choices=REGRESSION_TARGETS,
        applies_if=lambda v: _synthetic(v) and v["dataset"] == "regression",
        applies_text="synthetic regression data")
    rank_one_target: str = _knob(
        "sign-changing", "choice", "data", "Rank-one target",
        "Target of rank-one data Y = c+ alpha^T + c- gamma^T: sign-changing (Y = c), collinear "
        "(gamma = alpha/2: zero gap) or generic (independent alpha, gamma).",
        choices=RANK_ONE_TARGETS,
        applies_if=lambda v: _synthetic(v) and v["dataset"] == "rank-one",
        applies_text="synthetic rank-one data")
    n: int = _knob(
        20, "int", "data", "Samples N", "Number of samples (rows of X).", low=1, high=2000,
        applies_if=_synthetic, applies_text=_SYNTHETIC_TEXT)
    d: int = _knob(5, "int", "data", "Features d", "Number of input features.", low=1, high=200,
                   applies_if=_synthetic, applies_text=_SYNTHETIC_TEXT)
    k: int = _knob(
        3, "int", "data", "Outputs K", "Number of outputs (columns of Y).", low=1, high=20,
        applies_if=lambda v: _synthetic(v) and v["dataset"] != "regression",
        applies_text="synthetic low-rank and rank-one data (regression targets are scalar)")
    x_rank: int = _knob(
        5, "int", "data", "rank(X)", "Rank of the data matrix X (at most min(N, d)).",
        low=1, high=200, applies_if=_low_rank, applies_text=_LOW_RANK_TEXT)
    target_rank: int = _knob(
        2, "int", "data", "rank(W*)",
        "Rank of the target map W* (at most min(rank X, K)); rank >= 2 and L >= 3 open the gap "
        "of a standard net.", low=1, high=20, applies_if=_low_rank,
        applies_text=_LOW_RANK_TEXT)
    spectrum: str = _knob(
        "equal", "choice", "data", "Spectrum of W*",
        "Singular values of W*: equal (all 2), linear (2, 2(r-1)/r, ..., 2/r) or geometric "
        "(2, 1, 0.5, ...).", choices=SPECTRA, applies_if=_low_rank,
        applies_text=_LOW_RANK_TEXT)
    noise: float = _knob(
        0.0, "float", "data", "Noise",
        "Std of Gaussian noise added to Y (kept in the range of X under interpolation).",
        low=0.0, high=10.0, applies_if=lambda v: _synthetic(v) and v["dataset"] != "rank-one",
        applies_text="synthetic low-rank and regression data")
    whiten: bool = _knob(
        False, "bool", "data", "Whiten X", "Make X^T X = I (needs rank(X) = d <= N); enables the "
        "closed forms for the squared loss.", applies_if=_low_rank,
        applies_text=_LOW_RANK_TEXT)
    seed: int = _knob(
        0, "int", "data", "Seed", "Random seed of the data and of the initialisations.",
        low=0, high=2**31 - 1)
    # solver
    optimizer: str = _knob(
        "lbfgs", "choice", "solver", "Optimizer",
        "lbfgs: L-BFGS with strong Wolfe line search (an augmented Lagrangian for "
        "interpolation); adam: Adam.", choices=("lbfgs", "adam"))
    iterations: int = _knob(
        400, "int", "solver", "Iterations", "Optimizer iterations per restart.",
        low=1, high=20000, log=True)
    restarts: int = _knob(
        3, "int", "solver", "Restarts",
        "Independent random initialisations; the best feasible one is kept.", low=1, high=20)
    lr: float = _knob(
        1.0, "float", "solver", "Learning rate",
        "L-BFGS: initial step (1 is standard); Adam: step size (about 0.01).",
        low=1e-5, high=10.0, log=True)
    relu_solver: str = _knob(
        "working-set", "choice", "solver", "ReLU convex solver",
        "Two-layer ReLU nets: working-set solves the convex program by column generation and "
        "certifies it with a dual bound (fast); cvxpy solves it over all patterns at once "
        "with CVXPY + Clarabel (a cross-check, slower).", choices=("working-set", "cvxpy"),
        applies_if=lambda v: v["activation"] == "relu" and v["depth"] == 2,
        applies_text="two-layer ReLU nets")

    def __post_init__(self) -> None:
        # The table's bounds, not this server's caps: caps apply where values arrive (links,
        # the CLI, pages: from_values), so a module may build a fixed small instance anywhere.
        clean, notes = _normalize({k.name: getattr(self, k.name) for k in KNOBS}, caps=False)
        if notes:
            raise ConfigError("invalid experiment: " + "; ".join(notes))
        for name, value in clean.items():  # canonical types (e.g. 3 -> 3.0 for a float knob)
            object.__setattr__(self, name, value)

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> tuple[Experiment, list[str]]:
        """Parse, validate and clamp raw values (strings from a URL or CLI are fine).

        Keys may be field names (``target_rank``) or URL keys (``target-rank``). Unknown keys are
        ignored. Returns the experiment and one note per value that was changed. This server's
        caps ($DUALVIZ_MAX_<KNOB>, the job memory) apply to given values and defaults alike.
        """
        raw: dict[str, Any] = {}
        notes: list[str] = []
        for key, value in values.items():
            knob = KNOBS_BY_KEY.get(str(key)) or KNOBS_BY_NAME.get(str(key))
            if knob is None:
                notes.append(f"ignored unknown setting '{_short(key)}'")
                continue
            raw[knob.name] = value
        clean, clamp_notes = _normalize(raw)
        if "bias" in raw and parse_knob(KNOBS_BY_NAME["bias"], raw["bias"])[0] \
                and not clean["bias"] and clean["activation"] == "relu":
            clamp_notes.append("bias: rank-one data is trained without a bias (its closed forms "
                               "are for that net); using 0")
        return cls(**clean), notes + clamp_notes

    @classmethod
    def from_query(cls, query: str) -> tuple[Experiment, list[str]]:
        """Decode a URL query string (a leading ``?`` is allowed); the last repeated key wins."""
        pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
        return cls.from_values(dict(pairs))

    def replace(self, **changes: Any) -> tuple[Experiment, list[str]]:
        """A copy with some values changed, clamped like :meth:`from_values`."""
        return Experiment.from_values({**self.to_dict(), **changes})

    # -- views --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {k.name: getattr(self, k.name) for k in KNOBS}

    def to_params(self) -> dict[str, str]:
        """URL key -> text of every knob, in table order."""
        return {k.key: format_value(k, getattr(self, k.name)) for k in KNOBS}

    def to_query(self) -> str:
        """Every knob, in table order, so a link does not depend on today's defaults."""
        return urlencode(self.to_params())

    def to_record(self) -> dict[str, Any]:
        """The JSON form used by the CLI and the store: every knob plus the hash."""
        return {**self.to_dict(), "hash": self.hash}

    def applies(self, name: str) -> bool:
        """Whether the knob `name` can change this experiment's result (see Knob.applies_if)."""
        return KNOBS_BY_NAME[name].applies(self.to_dict())

    @functools.cached_property  # (a page run asks for the hash some 30 times: 6% of the run)
    def canonical(self) -> Experiment:
        """The same computation with every knob that cannot change it at its default: what
        is hashed, stored and run (a link keeps the visitor's values, e.g. t while weight
        decay is chosen, for when they apply again)."""
        values = self.to_dict()
        return dataclasses.replace(self, **{k.name: k.default for k in KNOBS
                                            if not k.applies(values)})

    @functools.cached_property
    def hash(self) -> str:
        """A stable content hash: the key of every cached or stored result of this run.
        Experiments that differ only in knobs that cannot change the result share it."""
        payload = json.dumps({"schema": SCHEMA_VERSION, **self.canonical.to_dict()},
                             sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    @property
    def uses_synthetic_data(self) -> bool:
        return self.data == SYNTHETIC


KNOBS: tuple[Knob, ...] = tuple(
    dataclasses.replace(f.metadata["knob"], name=f.name) for f in dataclasses.fields(Experiment)
)
KNOBS_BY_NAME: dict[str, Knob] = {k.name: k for k in KNOBS}
KNOBS_BY_KEY: dict[str, Knob] = {k.key: k for k in KNOBS}
GROUPS: tuple[str, ...] = ("network", "regularization", "data", "solver")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _short(value: Any, limit: int = 40) -> str:
    """A value as one short line, safe to put in a message."""
    try:
        text = str(value)
    except ValueError:  # e.g. an int too long for str()
        text = f"<{type(value).__name__}>"
    text = text.encode("unicode_escape").decode("ascii")  # newlines and controls stay visible
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_value(knob: Knob, value: Any) -> str:
    """A knob's value as URL text."""
    if knob.kind == "bool":
        return "1" if value else "0"
    return repr(value) if knob.kind == "float" else str(value)


def parse_knob(knob: Knob, value: Any, caps: bool = True) -> tuple[Any, str | None]:
    """One raw value -> (clean value, note or None). Never raises. caps: apply this server's
    cap ($DUALVIZ_MAX_<KNOB>) as well as the table's bounds."""
    shown = _short(value)
    if knob.kind == "choice":
        text = str(value).strip().lower()
        if text in knob.choices:
            return text, None
        return knob.default, (f"{knob.key}: '{shown}' is not one of {', '.join(knob.choices)}; "
                              f"using {knob.default}")
    if knob.kind == "bool":
        if isinstance(value, bool):
            return value, None
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE, None
        return knob.default, f"{knob.key}: '{shown}' is not a yes/no value; using {knob.default}"
    if knob.kind == "str":
        text = str(value)
        if knob.name == "data" and not _is_data_ref(text):
            return knob.default, (f"{knob.key}: '{shown}' is not a data set reference; "
                                  "using synthetic")
        return text, None
    # numeric
    try:
        number = float(value) if not isinstance(value, bool) else float("nan")
    except OverflowError:  # an int beyond float range: clamp it like inf
        number = math.inf if value > 0 else -math.inf
    except (TypeError, ValueError):
        number = float("nan")
    number += 0.0  # -0.0 -> 0.0, so equal experiments hash equally
    if math.isnan(number):
        return knob.default, f"{knob.key}: '{shown}' is not a number; using {knob.default}"
    assert knob.low is not None and knob.high is not None
    high = upper_bound(knob) if caps else knob.high
    if not knob.low <= number <= high:
        clamped = min(max(number, knob.low), high)
        clamped = int(clamped) if knob.kind == "int" else clamped
        why = "" if high == knob.high else f" (this server's cap, ${cap_variable(knob)})"
        return clamped, (f"{knob.key}: {shown} is outside [{_fmt_bound(knob.low)}, "
                         f"{_fmt_bound(high)}]{why}; using {clamped}")
    if knob.kind == "int":
        whole = round(number)
        note = None if whole == number else f"{knob.key}: {shown} is not whole; using {whole}"
        return whole, note
    return number, None


def cap_variable(knob: Knob) -> str:
    """The environment variable that lowers a numeric knob's upper bound on a server."""
    return f"DUALVIZ_MAX_{knob.name.upper()}"


def upper_bound(knob: Knob) -> float:
    """The knob's upper bound here: the table's, or lower where $DUALVIZ_MAX_<NAME> caps it
    (a shared server limits the size and length of every job: N, width, iterations, ...).

    A cap that is not a positive number, or is below the knob's lower bound, is ignored (and
    reported once): a typo must not stop a server."""
    assert knob.high is not None and knob.low is not None
    cap = env_number(cap_variable(knob), knob.high)
    return min(knob.high, cap) if knob.low <= cap else knob.high


def _fmt_bound(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


def _is_data_ref(text: str) -> bool:
    # An uploaded data set is named by its 16-hex-digit content digest.
    return text == SYNTHETIC or (len(text) == 16 and all(c in "0123456789abcdef" for c in text))


def _normalize(raw: Mapping[str, Any], caps: bool = True) -> tuple[dict[str, Any], list[str]]:
    """Per-knob parsing and clamping, then the constraints that tie knobs together. caps:
    this server's caps apply too (to given values and to defaults), and a network too big
    for a job's memory is made smaller."""
    values: dict[str, Any] = {}
    notes: list[str] = []
    for knob in KNOBS:
        if knob.name in raw:
            value, note = parse_knob(knob, raw[knob.name], caps)
            if note:
                notes.append(note)
        else:
            value = knob.default
            if caps and knob.kind in ("int", "float") and value > upper_bound(knob):
                value = int(upper_bound(knob)) if knob.kind == "int" else upper_bound(knob)
                notes.append(f"{knob.key}: the default {format_value(knob, knob.default)} is "
                             f"above this server's cap (${cap_variable(knob)}); using "
                             f"{format_value(knob, value)}")
        values[knob.name] = value

    def lower(name: str, bound: int, why: str) -> None:
        if values[name] > bound:
            notes.append(f"{KNOBS_BY_NAME[name].key}: {values[name]} exceeds {why}; using {bound}")
            values[name] = bound

    if values["activation"] == "relu":
        lower("depth", RELU_MAX_DEPTH, f"{RELU_MAX_DEPTH} for ReLU networks")
    if values["dataset"] == "rank-one" and values["data"] == SYNTHETIC and values["bias"] \
            and values["activation"] == "relu":
        # The rank-one closed forms (docs/math.md §5) are those of a net without bias: the
        # data X = c a^T exists to show them, so it is trained without one (a link that asks
        # for one gets a note from from_values).
        values["bias"] = False
    if values["dataset"] == "low-rank":  # the rank and whitening knobs shape the low-rank data
        if values["whiten"]:
            lower("d", values["n"], "N (a whitened X needs d <= N)")
            if values["x_rank"] != values["d"]:
                notes.append(f"x-rank: a whitened X has full rank; using {values['d']}")
                values["x_rank"] = values["d"]
        lower("x_rank", min(values["n"], values["d"]), "min(N, d)")
        lower("target_rank", min(values["x_rank"], values["k"]), "min(rank X, K)")
    if caps and values["data"] == SYNTHETIC:  # an upload's shape is checked when it runs
        notes += fit_network(values, limits.job_memory_bytes())
    return values, notes


def network_dimensions(values: Mapping[str, Any], n: int, d: int, k: int) -> dict[str, Any]:
    """The arguments of footprint.training_bytes for these knob values on N x d -> K data
    (a ReLU net's bias is one more input)."""
    return {"arch": values["arch"], "depth": values["depth"],
            "d": d + (values["activation"] == "relu"), "k": k, "width": values["width"],
            "branches": values["branches"], "n": n, "optimizer": values["optimizer"]}


def fit_network(values: dict[str, Any], budget: int, n: int | None = None,
                d: int | None = None, k: int | None = None) -> list[str]:
    """Make the network small enough to train within `budget` bytes (footprint.fits): a
    smaller width first, then (a parallel net) fewer branches, since the branches are what a
    parallel net needs to reach its dual (m >= rank W*) and any inner width works. Changes
    `values`; one note per change. n, d, k: the data's shape (default: the synthetic data's
    knobs)."""
    shape = (values["n"] if n is None else n, values["d"] if d is None else d,
             (1 if values["dataset"] == "regression" else values["k"]) if k is None else k)
    notes = []
    names = ("width", "branches") if values["arch"] == "parallel" else ("width",)
    for name in names:
        def fits_at(size: int, name: str = name) -> bool:
            return footprint.fits(**network_dimensions({**values, name: size}, *shape),
                                  budget=budget)

        if fits_at(values[name]):
            return notes
        best = footprint.largest_fitting(1, values[name], fits_at)
        needed = footprint.training_bytes(**network_dimensions(values, *shape))
        notes.append(f"{KNOBS_BY_NAME[name].key}: a net this large needs about "
                     f"{needed / 2**20:.0f} MB to train, more than this server gives a job "
                     f"($DUALVIZ_JOB_MEMORY_MB = {budget / 2**20:.0f} MB); using {best or 1}")
        values[name] = best or 1
        if best is not None:
            return notes
    return notes
