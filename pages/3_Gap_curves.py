"""Gap curves: P/D and P - D against depth, rank, beta or width, from real solves."""

import json

import streamlit as st

from dualviz import plots
from dualviz.exports import csv_text
from dualviz.gapcurves import curves, rows, theory_curves
from dualviz.results import SweepStatus
from dualviz.ui import charts, live, state, sweeps
from dualviz.views import GAP_CURVES

st.set_page_config(page_title="Gap curves · dualviz", layout="wide")
st.title("Gap curves: where the duality gap opens")
st.caption(
    "Every point is a full run (training, dual, closed forms), stored as it completes: a "
    "stopped sweep resumes where it was, and single runs of the same settings reuse it. "
    "Solid lines: standard nets; dotted: parallel nets; dashed black: theory. D is a lower "
    "bound on P (weak duality), so P/D >= 1; a gap within the zero-gap tolerance (1e-4 of D) "
    "is drawn as 0.")

base, notes = state.experiment_controls(GAP_CURVES)
sweep, sweep_notes = sweeps.settings_controls(base)
state.show_notes(notes + sweep_notes)
live.store_guard()
st.sidebar.caption(f"Sweep points run on {sweeps.where_points_run()}.")
x, series = sweep.axes
refusal = sweeps.too_large(sweep)
if refusal is None and not base.uses_synthetic_data and \
        not live.manager().store.has_dataset(base.data):
    refusal = (f"this link uses an uploaded data set ({base.data}) that this server does not "
               "have: upload it on the Deep-linear explorer first")
if refusal is not None:
    st.error(state.verbatim(refusal))
    st.stop()
total = len(set(sweeps.hashes(sweep)))
running = sweeps.view(sweep).is_running


@st.fragment(run_every=1.0 if running else None)
def live_curves():
    now = sweeps.view(sweep)
    if now.is_running and now.yours:
        if st.button("Stop", key="sweep_stop"):
            st.session_state["sweep_refusal"] = sweeps.stop(sweep)
            st.rerun()
    elif not now.is_running and st.button("Run" if now.done == 0 else "Resume",
                                          type="primary", key="sweep_run"):
        st.session_state["sweep_refusal"] = sweeps.start(sweep)
        st.rerun()
    if st.session_state.get("sweep_refusal"):
        st.warning(state.verbatim(st.session_state["sweep_refusal"]))
    if now.message and now.status not in (SweepStatus.NEW, SweepStatus.FINISHED):
        st.info(state.verbatim(now.message))
    eta = f", about {now.eta_seconds:.0f} s left" if now.eta_seconds is not None else ""
    where = (" (running)" if now.is_running else "" if now.done == total
             else " (not started)" if now.done == 0 else " (stopped: press Resume)")
    st.progress(now.done / max(total, 1), text=f"{now.done} of {total} points{eta}{where}")
    found = sweeps.results(sweep)
    if not found:
        st.info("No point of this sweep is stored yet: press Run.")
    else:
        lines = curves(found, x, series)
        figure = plots.gap_curves_figure(lines, x.replace("_", " "),
                                         series.replace("_", " "),
                                         theory_curves(sweep, x, series))
        charts.chart(figure, "gap_curves")
        missing = sum(c["missing"] for c in lines)
        if missing:
            st.info(f"{missing} stored point(s) have no feasible trained value or no dual and "
                    "are not drawn (e.g. too few iterations or branches to interpolate).")
        a, b = st.columns(2)
        a.download_button("Download CSV", csv_text(rows(found)),
                          file_name=f"sweep-{sweep.key}.csv", mime="text/csv")
        b.download_button("Download JSON", json.dumps([r for *_, r in found], indent=1),
                          file_name=f"sweep-{sweep.key}.json", mime="application/json")
    if running and not now.is_running:
        st.rerun()  # the sweep ended: one full redraw, then no more polling


live_curves()
