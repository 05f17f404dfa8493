"""Deep linear explorer: the non-convex training against the dual bound, live, and why."""

import streamlit as st

from dualviz import plots
from dualviz.config import KNOBS
from dualviz.ui import charts, explorer, state

st.set_page_config(page_title="Deep linear explorer · dualviz", layout="wide")
st.title("Deep linear networks: primal vs dual")
st.caption("Training (PyTorch) against the dual (CVXPY + Clarabel) and the closed forms of "
           "Wang, Ergen & Pilanci (ICLR 2023). Every control is in the address bar: copy it to "
           "share this exact run.")

LINEAR_ONLY = {"activation": "linear", "dataset": "low-rank"}
exp, notes = state.experiment_controls(
    {k.name for k in KNOBS} - {"data", "regression_target", "rank_one_target", "relu_solver",
                               *LINEAR_ONLY},
    fixed=LINEAR_ONLY)
state.show_notes(notes)
uploaded = explorer.data_source(exp)


def figures(exp, now, snaps, twin, twin_snaps, uploaded):
    left, right = st.columns([3, 2])
    charts.chart(plots.objective_figure(snaps, now.dual, now.closed_primal),
                 "objective_figure", left)
    with right:
        end_to_end, per_layer = st.tabs(["End-to-end spectrum", "Per-layer spectra"])
        charts.chart(plots.spectrum_figure(now.target_spectrum, now.learned_spectrum,
                                           now.closed_spectrum), "spectrum_figure", end_to_end)
        charts.chart(plots.layer_spectra_figure(now.layer_spectra), "layer_figure", per_layer)


explorer.live_view(exp, uploaded, figures)
