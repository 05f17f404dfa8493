"""Sweeps: what a grid of experiments is, and how a page or a command line names one.

A :class:`Sweep` is a base Experiment, the fields to vary with their values, and a number of
seeds (seed = base.seed + i). Every point is an Experiment (clamped like any link), keyed by its
hash, and solved by exactly a single run's code: dualviz.service.sweeps runs them (a process
pool or a Dask cluster, for the command line; the server's jobs, for a page), and
dualviz.gapcurves turns their results into curves and rows.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any

from .config import KNOBS_BY_KEY, KNOBS_BY_NAME, ConfigError, Experiment, parse_knob

MAX_PAGE_SEEDS = 5  # seeds per point of a sweep from a page
# What a sweep may vary (the seed is varied by `seeds`)
SWEEPABLE = ("depth", "target_rank", "x_rank", "beta", "width", "branches", "arch",
             "regularization", "t", "n", "d", "objective", "activation", "relu_solver")
MAX_POINTS = 2000
MAX_SEEDS = 20


@dataclass(frozen=True)
class Sweep:
    """base x product(vary values) x seeds; vary is ((field, (value, ...)), ...)."""

    base: Experiment
    vary: tuple[tuple[str, tuple[Any, ...]], ...]
    seeds: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.seeds <= MAX_SEEDS:
            raise ConfigError(f"seeds must be in [1, {MAX_SEEDS}], got {self.seeds}")
        names = [name for name, _ in self.vary]
        if len(set(names)) != len(names):
            raise ConfigError("each field can be varied once")
        for name, values in self.vary:
            if name not in SWEEPABLE:
                raise ConfigError(f"cannot vary {name!r}; choose from {', '.join(SWEEPABLE)}")
            if not values:
                raise ConfigError(f"no values given for {name}")
        size = self.seeds
        for _, values in self.vary:
            size *= len(values)
        if size > MAX_POINTS:
            raise ConfigError(f"{size} points is over the cap of {MAX_POINTS}")

    def points(self) -> list[tuple[dict[str, Any], Experiment]]:
        """(the varied values plus the seed index, the clamped experiment) for every point.

        A point whose values are clamped (e.g. target_rank above rank X) is kept with the
        clamped experiment: the curve shows what was computed."""
        names = [name for name, _ in self.vary]
        out = []
        for combo in itertools.product(*(values for _, values in self.vary)):
            for i in range(self.seeds):
                coords = dict(zip(names, combo, strict=True))
                exp, _ = self.base.replace(**coords, seed=self.base.seed + i)
                out.append(({**coords, "seed_index": i}, exp))
        return out

    @property
    def axes(self) -> tuple[str, str]:
        """(x, series) of a gap-curve sweep: the varied fields other than arch, in order;
        series "none" when only one is varied."""
        x, *rest = [name for name, _ in self.vary if name != "arch"]
        return x, rest[0] if rest else "none"

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base.to_query(), "vary": [[n, list(v)] for n, v in self.vary],
                "seeds": self.seeds}

    @property
    def key(self) -> str:
        """Names the sweep (its progress row in the store)."""
        return hashlib.sha256(json.dumps(self.to_json()).encode()).hexdigest()[:16]


def parse_vary(text: str) -> tuple[str, tuple[Any, ...], list[str]]:
    """'depth=2,3,4' -> ('depth', (2, 3, 4), notes): each value parsed and clamped by the knob
    table like a link's; an unreadable value is an error."""
    name, sep, values = text.partition("=")
    knob = KNOBS_BY_KEY.get(name.strip()) or KNOBS_BY_NAME.get(name.strip())
    if not sep or knob is None:
        raise ConfigError(f"--vary wants FIELD=v1,v2,...; got '{text[:40]}'")
    if knob.name not in SWEEPABLE:
        raise ConfigError(f"cannot vary {knob.key}; choose from "
                          f"{', '.join(KNOBS_BY_NAME[n].key for n in SWEEPABLE)}")
    parsed, notes = [], []
    for raw in (v.strip() for v in values.split(",")):
        if not raw:
            continue
        value, note = parse_knob(knob, raw)
        if note and ("not a" in note or "not one of" in note):
            raise ConfigError(f"--vary {note.split('; using')[0]}")
        if note:
            notes.append(note)
        parsed.append(value)
    if not parsed:
        raise ConfigError(f"--vary {knob.key}: no values")
    return knob.name, tuple(dict.fromkeys(parsed)), notes


# -- the page's view of a sweep: settings in the URL, curves for the figure ---------------------

AXES = ("depth", "target_rank", "x_rank", "beta", "width", "branches", "n")
SERIES = ("target_rank", "x_rank", "regularization", "beta", "none")
AXIS_KEYS = tuple(KNOBS_BY_NAME[a].key for a in AXES)  # as in the URL
SERIES_KEYS = tuple(KNOBS_BY_NAME[a].key if a != "none" else a for a in SERIES)
DEFAULT_SETTINGS = {"x": "depth", "x-values": "2,3,4,5", "series": "target-rank",
                    "series-values": "1,2,3", "seeds": "1"}
SETTING_KEYS = tuple(DEFAULT_SETTINGS)  # a gap-curve sweep's own URL keys


def sweep_from_params(base: Experiment, params: dict[str, str]) -> tuple[Sweep, list[str]]:
    """The gap-curve sweep of a page URL: x axis and values, series and values, seeds; both
    architectures always. Bad values fall back to the defaults with a note, never raise."""
    notes: list[str] = []

    def choice(key: str, allowed: tuple[str, ...]) -> str:
        value = str(params.get(key, DEFAULT_SETTINGS[key])).replace("-", "_")
        if value not in allowed:
            notes.append(f"{key}: '{value[:20]}' is not one of "
                         f"{', '.join(a.replace('_', '-') for a in allowed)}; using "
                         f"{DEFAULT_SETTINGS[key]}")
            value = DEFAULT_SETTINGS[key].replace("-", "_")
        return value

    def values(key: str, name: str) -> tuple[Any, ...]:
        text = str(params.get(key, DEFAULT_SETTINGS[key]))[:200]
        try:
            _, parsed, clamped = parse_vary(f"{name}={text}")
        except ConfigError as exc:
            notes.append(f"{key}: {exc}; using the defaults")
            # the default values where the default axis is shown, else the base experiment's
            default_axis = DEFAULT_SETTINGS[key.removesuffix("-values")].replace("-", "_")
            fallback = DEFAULT_SETTINGS[key] if name == default_axis else str(getattr(base, name))
            _, parsed, clamped = parse_vary(f"{name}={fallback}")
        notes.extend(clamped)
        return parsed[:12]

    x = choice("x", AXES)
    series = choice("series", SERIES)
    if series == x:
        notes.append(f"series: the x axis is already {x}; using none")
        series = "none"
    seeds_text = str(params.get("seeds", "1"))
    try:
        asked = float(seeds_text)
        seeds = int(min(max(asked, 1), MAX_PAGE_SEEDS))
        if seeds != asked:
            notes.append(f"seeds: {seeds_text[:20]} is not a whole number in "
                         f"[1, {MAX_PAGE_SEEDS}]; using {seeds}")
    except (ValueError, OverflowError):  # nan gives ValueError in int()
        seeds = 1
        notes.append(f"seeds: '{seeds_text[:20]}' is not a number; using 1")
    vary = [(x, values("x-values", x))]
    if series != "none":
        vary.append((series, values("series-values", series)))
    vary.append(("arch", ("standard", "parallel")))
    return Sweep(base, tuple(vary), seeds), notes


def sweep_params(sweep: Sweep) -> dict[str, str]:
    """The URL keys of a gap-curve sweep (inverse of sweep_from_params)."""
    named = dict(sweep.vary)
    x, series = sweep.axes
    out = {"x": KNOBS_BY_NAME[x].key, "x-values": ",".join(map(str, named[x])),
           "seeds": str(sweep.seeds), "series": series}
    if series != "none":
        out["series"] = KNOBS_BY_NAME[series].key
        out["series-values"] = ",".join(map(str, named[series]))
    return out
