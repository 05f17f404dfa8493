"""Sweeps: a grid of experiments times seeds, each point solved by exactly a single run's code.

A :class:`Sweep` is a base Experiment, the fields to vary with their values, and a number of
seeds (seed = base.seed + i). Every point is an Experiment (clamped like any link), keyed by its
hash. :func:`run_sweep` looks each point up in the store first, so a sweep that stopped (closed
tab, killed server, crash) resumes where it was: stored points are never recomputed. The
others go to any ``concurrent.futures.Executor``: a local process pool by default, or a Dask
cluster's ``Client.get_executor()`` when DUALVIZ_DASK_SCHEDULER names a scheduler. Workers only
need the package; results come back to this process, which stores each as it completes.

This is the command line's driver (an operator's tool); sweeps started from a page run their
points as the server's jobs (dualviz.jobs). Either way a point obeys the job time limit
($DUALVIZ_JOB_TIME_LIMIT), and a local worker process the job memory limit.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import re
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from . import limits
from .config import KNOBS_BY_KEY, KNOBS_BY_NAME, ConfigError, Experiment, parse_knob
from .data import Dataset
from .explain import TRAINED_GAP_TOL
from .store import Store

SCHEDULER_ENV = "DUALVIZ_DASK_SCHEDULER"
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


# -- one point, in a worker ---------------------------------------------------------------------

class TimeLimitExceeded(Exception):
    """A sweep point ran longer than the job time limit."""


def solve_point(query: str, uploaded: Dataset | None = None,
                time_limit: float | None = None) -> dict[str, Any]:
    """The result JSON of one experiment: exactly what a single run computes (runner.run).

    time_limit: seconds after which the point is abandoned with TimeLimitExceeded (in a
    process's main thread, as in a local pool; a Dask worker's thread is limited by the
    driver instead)."""
    import torch

    from .runner import run

    torch.set_num_threads(1)
    exp, notes = Experiment.from_query(query)
    alarm = time_limit is not None and threading.current_thread() is threading.main_thread()
    if alarm:
        def expired(*_):
            raise TimeLimitExceeded(f"time limit of {time_limit:g} s exceeded "
                                    "($DUALVIZ_JOB_TIME_LIMIT)")

        signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, time_limit)
    try:
        return run(exp, uploaded, notes=notes).to_json()
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)


# -- the driver ---------------------------------------------------------------------------------

@dataclass
class Progress:
    """Where a sweep stands: counts, timing, and the results so far by hash."""

    total: int
    done: int = 0
    reused: int = 0  # found in the store, not recomputed
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    computed_seconds: float = 0.0

    @property
    def eta_seconds(self) -> float | None:
        fresh = self.done - self.reused
        if fresh <= 0:
            return None
        rate = (time.monotonic() - self.started) / fresh
        return rate * (self.total - self.done)


def _prepare_worker(memory_bytes: int | None) -> None:
    """A local pool worker: the solvers imported first, then the job memory limit on top of
    what they hold (as for a server's job)."""
    from . import runner  # noqa: F401 - torch, CVXPY and the package, before the limit
    from .worker import limit_memory

    if memory_bytes:
        limit_memory(memory_bytes)


def local_executor(workers: int | None = None, memory_bytes: int | None = None) -> Executor:
    """A process pool; forkserver children start clean (no Streamlit, no page script), each
    under the job memory limit (default: $DUALVIZ_JOB_MEMORY_MB)."""
    workers = workers or os.cpu_count() or 1
    context = multiprocessing.get_context("forkserver")
    # The fork server would import __main__ by default: a page script when a Streamlit
    # script runner set it (AppTest does). It imports the solvers instead, once for all.
    context.set_forkserver_preload(["dualviz.runner"])
    return ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_prepare_worker,
                               initargs=(memory_bytes or limits.job_memory_bytes(),))


def dask_executor(address: str) -> tuple[Executor, Any]:
    """(an Executor on the Dask scheduler at `address`, its Client to close afterwards)."""
    from distributed import Client

    client = Client(address, timeout=10)
    return client.get_executor(pure=False), client


def stored_result(store: Store, exp: Experiment) -> dict[str, Any] | None:
    """The stored result of a completed run (a solver failure keeps its numbers), else None."""
    record = store.job(exp.hash)
    return record.result if record is not None and record.status in ("done", "failed") \
        else None


def run_sweep(sweep: Sweep, store: Store, executor: Executor,
              uploaded: Dataset | None = None,
              on_result: Callable[[dict[str, Any], Experiment, dict | None, Progress], None]
              | None = None,
              should_stop: Callable[[], bool] | None = None,
              max_pending: int | None = None,
              time_limit: float | None = None) -> list[tuple[dict, Experiment, dict | None]]:
    """Solve every point not already stored, storing each result as it completes.

    Returns (coords, experiment, result JSON or None if its process failed) per point, in grid
    order; a solver failure keeps its result, with `failure` set.
    on_result is called once per point (stored ones first). should_stop is polled between
    completions: pending points are cancelled, finished ones are kept. At most max_pending
    points are in flight (default: all), so a stop does not leave a long queue behind.
    time_limit: a point still not back that long after it was submitted is stored failed and
    its result ignored (the workers' own alarm frees a local worker; see solve_point).
    """
    points = sweep.points()
    progress = Progress(total=len(points))
    results: dict[str, dict | None] = {}
    todo: list[tuple[dict, Experiment]] = []
    seen: set[str] = set()
    for coords, exp in points:
        if exp.hash in seen:
            continue  # clamping made two grid points the same experiment
        seen.add(exp.hash)
        found = stored_result(store, exp)
        if found is not None:
            results[exp.hash] = found
            progress.done += 1
            progress.reused += 1
            if on_result:
                on_result(coords, exp, found, progress)
        else:
            todo.append((coords, exp))
    progress.total = len(seen)
    limit = max_pending or len(todo) or 1
    pending: dict[Future, tuple[dict, Experiment, float]] = {}
    created: list[str] = []  # every job this sweep marked running
    queue = iter(todo)

    def submit_more() -> None:
        for coords, exp in itertools.islice(queue, max(0, limit - len(pending))):
            created.append(exp.hash)
            # running, not queued: a server's job manager would otherwise start it too
            store.create_job(exp.hash, exp.canonical.to_query(), running_in=os.getpid(),
                             replace=True)
            future = executor.submit(solve_point, exp.canonical.to_query(), uploaded,
                                     time_limit)
            pending[future] = (coords, exp, time.monotonic())

    submit_more()
    try:
        while pending:
            if should_stop is not None and should_stop():
                break
            finished, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
            late = [] if time_limit is None else [
                f for f, (_, _, t0) in pending.items()
                if f not in finished and time.monotonic() - t0 > time_limit + 5.0]
            for future in [*finished, *late]:
                coords, exp, _ = pending.pop(future)
                try:
                    if future in late:
                        future.cancel()
                        raise TimeLimitExceeded(f"time limit of {time_limit:g} s exceeded "
                                                "($DUALVIZ_JOB_TIME_LIMIT)")
                    result = future.result()
                except Exception as exc:  # a failed point is stored as failed; the sweep goes on
                    store.finish(exp.hash, "failed", error=f"{type(exc).__name__}: {exc}"[:500])
                    result = None
                    progress.failed += 1
                else:
                    store.finish_result(exp.hash, result)
                    progress.failed += bool(result.get("failure"))
                results[exp.hash] = result
                progress.done += 1
                if on_result:
                    on_result(coords, exp, result, progress)
            submit_more()
    finally:
        for future in pending:
            future.cancel()
        # Every job this sweep started, not only the pending ones: a stop (SIGTERM raises
        # SystemExit anywhere) may fall between marking a job running and submitting it, or
        # between taking its result and storing it. finish() keeps final statuses.
        for job_hash in created:
            store.finish(job_hash, "cancelled", error="the sweep was stopped")
    return [(coords, exp, results.get(exp.hash)) for coords, exp in points
            if exp.hash in results]


_SCHEDULER = re.compile(r"(tcp|tls)://[A-Za-z0-9.\-]{1,253}:[0-9]{1,5}")


def check_scheduler(address: str) -> str:
    """A Dask scheduler address as tcp://host:port (or tls://); anything else is refused."""
    address = address.strip()
    if not _SCHEDULER.fullmatch(address) or not 0 < int(address.rsplit(":", 1)[1]) < 65536:
        raise ConfigError(f"a Dask scheduler address looks like tcp://host:8786; got "
                          f"'{address[:40]}'")
    return address


def executor_for(workers: int | None = None, scheduler: str | None = None):
    """(executor, closer): Dask when a scheduler address is given or set in the environment,
    else a local process pool."""
    address = scheduler or os.environ.get(SCHEDULER_ENV)
    if address:
        executor, client = dask_executor(check_scheduler(address))
        return executor, client.close
    executor = local_executor(workers)
    return executor, lambda: executor.shutdown(cancel_futures=True)


def rows(points: Iterable[tuple[dict, Experiment, dict | None]]) -> list[dict[str, Any]]:
    """One flat row per point for CSV: the varied values, P, D, the gaps, the hash."""
    out = []
    for coords, exp, result in points:
        result = result or {}
        out.append({**coords, "seed": exp.seed, "arch": exp.arch,
                    "primal": (result.get("primal") or {}).get("value"),
                    "dual": (result.get("dual") or {}).get("value"),
                    "gap": result.get("gap"), "relative_gap": result.get("relative_gap"),
                    "hash": exp.hash,
                    "status": "done" if result and not result.get("failure") else "failed"})
    return out


# -- the page's view of a sweep: settings in the URL, curves for the figure ---------------------

AXES = ("depth", "target_rank", "x_rank", "beta", "width", "branches")
SERIES = ("target_rank", "x_rank", "regularization", "beta", "none")
AXIS_KEYS = tuple(KNOBS_BY_NAME[a].key for a in AXES)  # as in the URL
SERIES_KEYS = tuple(KNOBS_BY_NAME[a].key if a != "none" else a for a in SERIES)
DEFAULT_SETTINGS = {"x": "depth", "x-values": "2,3,4,5", "series": "target-rank",
                    "series-values": "1,2,3", "seeds": "1"}


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


def curves(points: Iterable[tuple[dict, Experiment, dict | None]], x: str,
           series: str) -> list[dict[str, Any]]:
    """Mean, min and max over seeds of P/D and P - D, per (arch, series value), against x.

    Points without a feasible primal or a dual are left out (counted in `missing`). A gap
    within the zero-gap tolerance of a trained value (explain.TRAINED_GAP_TOL of D) is drawn
    as exactly 0 (and P/D as 1), not as a scatter of rounding errors."""
    groups: dict[tuple, dict[Any, list[tuple[float, float]]]] = {}
    missing: dict[tuple, int] = {}
    for coords, exp, result in points:
        key = (exp.arch, coords.get(series) if series != "none" else None)
        primal = ((result or {}).get("primal") or {}).get("value")
        dual = ((result or {}).get("dual") or {}).get("value")
        if primal is None or dual is None or dual == 0:
            missing[key] = missing.get(key, 0) + 1
            continue
        gap = primal - dual
        if abs(gap) <= TRAINED_GAP_TOL * abs(dual):  # a zero gap, stated once (§8): exactly 0
            gap = 0.0
        groups.setdefault(key, {}).setdefault(coords[x], []).append((1.0 + gap / dual, gap))
    out = []
    for (arch, value), by_x in sorted(groups.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        xs = sorted(by_x)
        ratios = [[r for r, _ in by_x[v]] for v in xs]
        gaps = [[g for _, g in by_x[v]] for v in xs]
        out.append({"arch": arch, "series": value, "x": xs,
                    "ratio": [sum(r) / len(r) for r in ratios],
                    "ratio_low": [min(r) for r in ratios], "ratio_high": [max(r) for r in ratios],
                    "gap": [sum(g) / len(g) for g in gaps],
                    "gap_low": [min(g) for g in gaps], "gap_high": [max(g) for g in gaps],
                    "seeds": [len(r) for r in ratios],
                    "missing": missing.get((arch, value), 0)})
    return out


def theory_curves(sweep: Sweep, x: str, series: str) -> list[dict[str, Any]]:
    """P/D = r^{(L-2)/2} (standard) and 1 (parallel) where the theory gives it (docs/math.md
    §3.2): deep linear nets, interpolation, rescaled or L-th power regularization, equal
    singular values, the x axis or the series being depth and target rank."""
    from .theory import equal_spectrum_ratio

    base = sweep.base
    if not (base.activation == "linear" and base.objective == "interpolation"
            and base.regularization in ("rescaled", "lth-power") and base.spectrum == "equal"
            and base.dataset == "low-rank" and base.uses_synthetic_data):
        return []
    named = dict(sweep.vary)
    out = []
    for arch in ("standard", "parallel"):
        for value in named.get(series, (None,)):
            xs = list(named[x])
            coords = [{x: v, **({series: value} if value is not None else {})} for v in xs]
            exps = [base.replace(**c)[0] for c in coords]
            out.append({"arch": arch, "series": value, "x": xs,
                        "ratio": [equal_spectrum_ratio(e.target_rank, e.depth, arch)
                                  for e in exps]})
    return out
