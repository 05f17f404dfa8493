"""Sweeps from a page: the server's job manager runs their points in the job places the pages
leave free (dualviz.service.jobs), so they obey the server's caps; the page reads progress and
results from the store in one query each."""

from __future__ import annotations

import functools
import os

import streamlit as st

from .. import limits
from ..results import COMPLETED
from ..service.jobs import SCHEDULER_ENV, SweepView
from ..sweep import (
    AXIS_KEYS,
    DEFAULT_SETTINGS,
    SERIES_KEYS,
    SETTING_KEYS,
    Sweep,
    sweep_from_params,
    sweep_params,
)
from . import live


def size(sweep: Sweep) -> int:
    """Grid points times seeds, before clamping merges any: known without building them."""
    count = sweep.seeds
    for _, values in sweep.vary:
        count *= len(values)
    return count


def too_large(sweep: Sweep) -> str | None:
    """Why this page will not build or run the sweep (over $DUALVIZ_MAX_SWEEP_POINTS)."""
    cap = limits.max_sweep_points()
    if size(sweep) <= cap:
        return None
    return (f"this sweep has {size(sweep)} points; this server runs at most {cap} per sweep "
            "($DUALVIZ_MAX_SWEEP_POINTS): choose fewer values or seeds")


@functools.lru_cache(maxsize=64)
def points(sweep: Sweep) -> tuple:
    """(coords, experiment) of every point: built once per sweep in this server process
    (a sweep is a frozen value), not on every redraw."""
    return tuple(sweep.points())


def hashes(sweep: Sweep) -> list[str]:
    return [e.hash for _, e in points(sweep)]


def where_points_run() -> str:
    """Which machine computes sweep points here: the operator's choice, never a visitor's."""
    address = os.environ.get(SCHEDULER_ENV)
    if address:
        return f"the Dask cluster at `{address}` (set by the operator)"
    places = limits.sweep_slots(live.manager().max_running)
    return (f"this server: at most {places} point(s) at once, in the job places that "
            "pages leave free")


def start(sweep: Sweep) -> str | None:
    """Run (or resume) the sweep for this session; why not, or None."""
    return live.manager().start_sweep(live.watcher_id(), sweep.key, sweep.to_json(),
                                      [e for _, e in points(sweep)])


def stop(sweep: Sweep) -> str | None:
    return live.manager().stop_sweep(live.watcher_id(), sweep.key)


def view(sweep: Sweep) -> SweepView:
    return live.manager().sweep_view(live.watcher_id(), sweep.key, hashes(sweep))


def results(sweep: Sweep) -> list:
    """(coords, experiment, result) for every point stored so far, in grid order (a solver
    failure keeps its numbers)."""
    stored = live.manager().store.jobs(hashes(sweep))
    out = []
    for coords, exp in points(sweep):
        record = stored.get(exp.hash)
        if record is not None and record.status in COMPLETED and record.result:
            out.append((coords, exp, record.result))
    return out


def settings_controls(base) -> tuple[Sweep, list[str]]:
    """Sidebar controls of the sweep's axes, kept in the URL next to the experiment's keys."""
    url = {k: v for k, v in st.query_params.to_dict().items() if k in SETTING_KEYS}
    sweep, notes = sweep_from_params(base, {**DEFAULT_SETTINGS, **url})
    current = sweep_params(sweep)
    if st.session_state.get("_sweep_applied") != current:  # a link: the widgets follow it
        for key in SETTING_KEYS:
            st.session_state[f"sweep_{key}"] = current.get(key, DEFAULT_SETTINGS[key])
        st.session_state["sweep_seeds"] = int(current["seeds"])
    with st.sidebar.expander("Sweep", expanded=True):
        chosen = {
            "x": st.selectbox("x axis", AXIS_KEYS, key="sweep_x", help="Restarts the sweep."),
            "x-values": st.text_input("x values", key="sweep_x-values",
                                      help="Comma-separated; clamped like a link's values."),
            "series": st.selectbox("one curve per", SERIES_KEYS, key="sweep_series"),
            "series-values": st.text_input("series values", key="sweep_series-values"),
            "seeds": str(st.slider("seeds per point", 1, 5, key="sweep_seeds",
                                   help="Mean line and min-max band over the seeds.")),
        }
    sweep, more = sweep_from_params(base, chosen)
    current = sweep_params(sweep)
    st.session_state["_sweep_applied"] = current
    if url != current:
        for key in SETTING_KEYS:
            if key in current:
                st.query_params[key] = current[key]
            elif key in st.query_params:
                del st.query_params[key]
    return sweep, notes + more
