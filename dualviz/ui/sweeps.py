"""Sweeps from a page: the driver is the CLI (`python -m dualviz sweep`) in its own process
group, so a local process pool never starts inside the Streamlit server; its points are
stored like any job, which is all the page reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import streamlit as st

from ..config import env_number
from ..store import DATA_DIR_ENV, pid_alive
from ..sweep import (
    AXIS_KEYS,
    DEFAULT_SETTINGS,
    SERIES_KEYS,
    Sweep,
    stored_result,
    sweep_from_params,
    sweep_params,
)
from . import live


def command(sweep: Sweep, scheduler: str | None) -> list[str]:
    argv = [sys.executable, "-m", "dualviz", "sweep", "--query", sweep.base.to_query(),
            "--seeds", str(sweep.seeds), "--workers", str(live.manager().max_running)]
    for name, values in sweep.vary:
        argv += ["--vary", f"{name}={','.join(map(str, values))}"]
    if scheduler:
        argv += ["--scheduler", scheduler]
    return argv


DEFAULT_MAX_SWEEPS = 1  # sweeps started from pages running at once per server


def refusal() -> str | None:
    """Why a new sweep cannot start now (the server's cap, $DUALVIZ_MAX_SWEEPS), or None."""
    cap = int(env_number("DUALVIZ_MAX_SWEEPS", DEFAULT_MAX_SWEEPS))
    busy = len(live.manager().store.running_sweeps())
    if busy < cap:
        return None
    return (f"{busy} sweep(s) already running on this server (the cap is {cap}): try again "
            "when one has finished. Points already stored are shown meanwhile.")


def start(sweep: Sweep, scheduler: str | None = None) -> None:
    store = live.manager().store
    env = {**os.environ, DATA_DIR_ENV: str(store.data_dir)}
    process = subprocess.Popen(command(sweep, scheduler), env=env, start_new_session=True,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, preexec_fn=lambda: os.nice(10))
    # Registered now (the CLI registers again with the same pid), so the page shows Stop at
    # once and a second click cannot start a second driver.
    store.sweep_started(sweep.key, sweep.to_json(), process.pid)


def running(sweep: Sweep) -> bool:
    status = live.manager().store.sweep_status(sweep.key)
    return status is not None and status[0] == "running" and pid_alive(status[1])


def stop(sweep: Sweep) -> None:
    status = live.manager().store.sweep_status(sweep.key)
    if status is not None and pid_alive(status[1]):
        os.killpg(status[1], signal.SIGTERM)  # the driver and its pool workers
    live.manager().store.sweep_finished(sweep.key)


def eta_seconds(sweep: Sweep, total: int, done: int) -> float | None:
    """Remaining time at the rate of the points finished since the driver started."""
    store = live.manager().store
    status = store.sweep_status(sweep.key)
    if status is None or status[0] != "running" or done >= total:
        return None
    started = store.sweep_started_at(sweep.key)
    finished = [j.finished for _, e in sweep.points()
                if (j := store.job(e.hash)) is not None and j.result is not None
                and j.finished is not None and started is not None and j.finished >= started]
    if not finished:
        return None
    rate = (max(finished) - started) / len(finished)
    return rate * (total - done)


def results(sweep: Sweep) -> list:
    """(coords, experiment, result) for every point stored so far, in grid order."""
    store = live.manager().store
    out = []
    for coords, exp in sweep.points():
        found = stored_result(store, exp)
        if found is not None:
            out.append((coords, exp, found))
    return out


SETTING_KEYS = ("x", "x-values", "series", "series-values", "seeds")


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
