"""dualviz home page: what the app shows, an instant closed-form preview, and the presets."""

import streamlit as st

from dualviz import explain
from dualviz.presets import PRESETS, PREVIEW_KNOBS
from dualviz.ui import state
from dualviz.views import GAP_CURVES, LINEAR, RELU, THEORY

st.set_page_config(page_title="dualviz: duality gaps of deep networks", layout="wide")

st.title("dualviz")
st.markdown(
    "**See, live, when a deep neural network has a duality gap.** dualviz trains the "
    "non-convex network (the primal, in PyTorch), solves its convex dual (CVXPY, or a closed "
    "form) and compares the two, after Wang, Ergen & Pilanci, *Parallel Deep Neural Networks "
    "Have Zero Duality Gap* (ICLR 2023)."
)
st.markdown(
    "The paper's story in one line: a **standard** deep linear network with L >= 3 layers "
    "fitting a target of rank >= 2 has a **positive duality gap**; the same network in "
    "**parallel** form (a sum of branches) with the paper's rescaled regularization has "
    "**zero gap**."
)

st.subheader("Instant preview: the closed forms")
st.caption(
    "Interpolation of a target W* with the rescaled regularization, beta = t = 1. "
    "Standard primal `P = ||W*||_S(2/L)`, dual `D = ||W*||_*` (which the parallel net "
    "attains). "
    "These are formulas evaluated instantly; the solver pages train the networks for real."
)
left, right = st.columns([1, 2])
with left:
    # in the URL (preview-depth=..., ...): the home page's state travels in a link too
    chosen, notes = state.linked_controls(PREVIEW_KNOBS)
    state.show_notes(notes)
preview = explain.closed_form_preview(chosen["preview_depth"], chosen["preview_rank"],
                                      chosen["preview_spectrum"])
with right:
    a, b, c = st.columns(3)
    a.metric("Standard net, P", f"{preview.primal:.4f}")
    b.metric("D (lower bound) = parallel net", f"{preview.dual:.4f}")
    c.metric("P / D", f"{preview.ratio:.4f}")
    zero = preview.verdict.kind == explain.VerdictKind.ZERO_GAP
    (st.success if zero else st.info)(preview.verdict.text)

st.subheader("Explore")
for view in (LINEAR, RELU, GAP_CURVES, THEORY):
    st.page_link(view.script, label=view.title, icon=view.icon, help=view.help)
st.markdown(
    "Every control of an explorer lives in the page's address: copy it to share the exact run "
    "(the random seed included).")

st.subheader("Presets for a lecture")
st.caption("Each title is a link carrying every setting of its run, the seed included: open "
           "it in a new tab, or copy it for your slides.")
for preset in PRESETS:
    st.page_link(preset.view.script, label=f"**{preset.title}**", query_params=preset.params,
                 icon=":material/play_circle:")
    st.markdown(f"{preset.shows} *Look for:* {preset.look_for}")

st.markdown(
    "The same solvers run from the command line: "
    "`dualviz solve --depth 3 --target-rank 2 --json`.")
