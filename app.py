"""dualviz home page: what the app shows, an instant closed-form preview, and what is coming."""

import streamlit as st

from dualviz.data import spectrum_values
from dualviz.presets import PRESETS, PREVIEW_KNOBS
from dualviz.theory import interpolation_rescaled_dual, interpolation_rescaled_standard
from dualviz.ui import state

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
    preview, notes = state.linked_controls(PREVIEW_KNOBS)
    state.show_notes(notes)
depth, rank = preview["preview_depth"], preview["preview_rank"]
sigma = spectrum_values(preview["preview_spectrum"], rank)
primal = interpolation_rescaled_standard(sigma, 1.0, 1.0, depth)
dual = interpolation_rescaled_dual(sigma, 1.0, 1.0, depth)
with right:
    a, b, c = st.columns(3)
    a.metric("Standard net, P", f"{primal:.4f}")
    b.metric("D (lower bound) = parallel net", f"{dual:.4f}")
    c.metric("P / D", f"{primal / dual:.4f}")
    if primal / dual > 1 + 1e-12:
        st.info(f"Positive gap: depth {depth} with a rank-{rank} target. Try L = 2 or rank 1.")
    else:
        st.success("Zero gap: L = 2 or a rank-one target.")

st.subheader("Explore")
st.page_link("pages/1_Deep_linear_explorer.py", label="Deep-linear explorer",
             icon=":material/show_chart:",
             help="Choose depth, width, data rank and spectrum, regularization; watch training "
                  "approach (or miss) the dual bound, with live spectra, standard vs parallel.")
st.page_link("pages/2_ReLU_networks.py", label="ReLU networks", icon=":material/hub:",
             help="The two-layer convex program (exact over all activation patterns), rank-one "
                  "three-layer duality and its sign condition, deep parallel vs standard nets.")
st.page_link("pages/3_Gap_curves.py", label="Gap curves", icon=":material/ssid_chart:",
             help="Sweep depth, rank, beta or width: P/D and P - D for standard and parallel "
                  "nets from real solves, against the theory; resumable, on a Dask cluster too.")
st.page_link("pages/4_Theory.py", label="Theory", icon=":material/table_chart:",
             help="The paper's taxonomy (standard / parallel x linear / ReLU x depth), every "
                  "cell computed live, and the main formulas.")
st.markdown(
    "Every control of an explorer lives in the page's address: copy it to share the exact run "
    "(the random seed included).")

st.subheader("Presets for a lecture")
for preset in PRESETS:
    st.page_link(preset.page, label=f"**{preset.title}**", query_params=preset.query,
                 icon=":material/play_circle:")
    st.markdown(f"{preset.shows} *Look for:* {preset.look_for}")

st.subheader("What is coming")
st.markdown(
    "- **Gap curves**: sweeps over depth, rank, beta and width, locally or on a Dask cluster.\n"
    "- **Sharing**: links that reproduce runs, classroom presets, presenter mode, exports.\n\n"
    "The same solvers run from the command line: "
    "`python -m dualviz solve --depth 3 --target-rank 2 --json`."
)
