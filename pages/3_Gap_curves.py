"""Gap curves: P/D and P - D against depth, rank, beta or width, from real solves."""

import json
import os

import streamlit as st

from dualviz import plots
from dualviz.config import KNOBS, ConfigError
from dualviz.runner import csv_text
from dualviz.sweep import SCHEDULER_ENV, check_scheduler, curves, rows, theory_curves
from dualviz.ui import charts, state, sweeps

st.set_page_config(page_title="Gap curves · dualviz", layout="wide")
st.title("Gap curves: where the duality gap opens")
st.caption(
    "Every point is a full run (training, dual, closed forms), stored as it completes: a "
    "stopped sweep resumes where it was, and single runs of the same settings reuse it. "
    "Solid lines: standard nets; dotted: parallel nets; dashed black: theory.")

START = {"n": 12, "d": 6, "k": 4, "x_rank": 4, "iterations": 300, "restarts": 2}
base, notes = state.experiment_controls(
    {k.name for k in KNOBS} - {"data", "arch", "activation", "relu_solver", "dataset",
                               "regression_target", "rank_one_target"},
    fixed={"activation": "linear", "dataset": "low-rank"}, defaults=START,
    keep=sweeps.SETTING_KEYS)
sweep, sweep_notes = sweeps.settings_controls(base)
state.show_notes(notes + sweep_notes)

scheduler = st.sidebar.text_input(
    "Dask scheduler (optional)", os.environ.get(SCHEDULER_ENV, ""),
    help="tcp://host:port of a Dask cluster; empty: a local process pool on this server.")
if scheduler.strip():
    try:
        scheduler = check_scheduler(scheduler)
    except ConfigError as exc:
        st.sidebar.error(str(exc))
        scheduler = ""
x, series = sweep.axes
total = len({e.hash for _, e in sweep.points()})



@st.fragment(run_every=1.0)
def live_curves():
    found = sweeps.results(sweep)
    busy = sweeps.running(sweep)
    if busy:
        if st.button("Stop", key="sweep_stop"):
            sweeps.stop(sweep)
            st.rerun()
    elif st.button("Run" if not found else "Resume", type="primary", key="sweep_run"):
        st.session_state["sweep_refusal"] = sweeps.refusal()
        if not st.session_state["sweep_refusal"]:
            sweeps.start(sweep, scheduler.strip() or None)
            st.rerun()
    if not busy and st.session_state.get("sweep_refusal"):
        st.warning(st.session_state["sweep_refusal"])
    done = len({e.hash for _, e, _ in found})
    eta = sweeps.eta_seconds(sweep, total, done) if busy else None
    st.progress(done / max(total, 1), text=f"{done} of {total} points"
                + (f", about {eta:.0f} s left" if eta is not None else "")
                + (" (running)" if busy else "" if done == total
                   else " (not started)" if done == 0 else " (stopped: press Resume)"))
    if not found:
        st.info("No point of this sweep is stored yet: press Run.")
        return
    lines = curves(found, x, series)
    figure = plots.gap_curves_figure(lines, x.replace("_", " "), series.replace("_", " "),
                                     theory_curves(sweep, x, series))
    charts.chart(figure, "gap_curves")
    missing = sum(c["missing"] for c in lines)
    if missing:
        st.info(f"{missing} stored point(s) have no feasible trained value or no dual and are "
                "not drawn (e.g. too few iterations or branches to interpolate).")
    a, b = st.columns(2)
    a.download_button("Download CSV", csv_text(rows(found)), file_name=f"sweep-{sweep.key}.csv",
                      mime="text/csv")
    b.download_button("Download JSON", json.dumps([r for *_, r in found], indent=1),
                      file_name=f"sweep-{sweep.key}.json", mime="application/json")


live_curves()
