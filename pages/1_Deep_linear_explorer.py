"""Deep linear explorer: the non-convex training against the dual bound, live, and why."""

import streamlit as st

from dualviz import explain, plots
from dualviz.ui import explorer, state
from dualviz.ui.live_chart import Figure
from dualviz.views import LINEAR

st.set_page_config(page_title="Deep linear explorer · dualviz", layout="wide")
st.title("Deep linear networks: primal vs dual")
st.caption("Training (PyTorch) against the dual (CVXPY + Clarabel) and the closed forms of "
           "Wang, Ergen & Pilanci (ICLR 2023). D is a lower bound on P for every network "
           "(weak duality); a trained P is an upper bound on the network's optimum. Every "
           "control is in the address bar: copy it to share this exact run.")

exp, notes = state.experiment_controls(LINEAR)
state.show_notes(notes)
uploaded = explorer.data_source(exp)


def figures(exp, now, snaps, twin, twin_snaps, uploaded, style):
    objective = plots.objective_figure(
        snaps, now.dual, now.closed_primal, interpolation=exp.objective == "interpolation",
        dual_label=explain.dual_line_label(exp), floor=explain.excess_floor(now.dual),
        style=style)
    spectrum = plots.spectrum_figure(now.target_spectrum, now.learned_spectrum,
                                     now.closed_spectrum, style=style,
                                     threshold=now.threshold)
    return [Figure("objective_figure", "objective", objective, span=3),
            Figure("spectrum_figure", "spectrum", spectrum, span=2),
            Figure("layer_figure", "layers", plots.layer_spectra_figure(
                now.layer_spectra, title="per-layer singular values", style=style), span=5)]


explorer.live_view(exp, uploaded, figures)
