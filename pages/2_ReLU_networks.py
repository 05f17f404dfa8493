"""ReLU networks: the two-layer convex program, rank-one three-layer duality, deep nets."""

import streamlit as st

from dualviz import explain, plots
from dualviz.presets import RELU_PRESETS
from dualviz.runner import dataset_for
from dualviz.ui import explorer, state
from dualviz.ui.live_chart import Figure
from dualviz.views import RELU

st.set_page_config(page_title="ReLU networks · dualviz", layout="wide")
st.title("ReLU networks: convex programs and duality")
st.caption(
    "Two layers (L = 2, scalar output): the convex program over all activation patterns is "
    "the global optimum of the network (for enough neurons). Three layers on rank-one data "
    "X = c a^T: closed forms for the standard net and the dual. Three layers, general data "
    "(scalar output, d <= 2, N <= 32): the three-layer convex program D, certified. Deeper "
    "nets: training only. "
    "Every number says which way it bounds: a dual or convex value D is a lower bound on the "
    "network's optimum, a trained value an upper bound.")

st.markdown("Modes (each link carries its full state): " + " · ".join(
    f"[{preset.title}](/{preset.link})" for preset in RELU_PRESETS))
exp, notes = state.experiment_controls(RELU)
state.show_notes(notes)
uploaded = explorer.data_source(exp)
data = dataset_for(exp, uploaded)


def figures(exp, now, snaps, twin, twin_snaps, uploaded, style):
    relu = now.relu or {}
    interpolation = exp.objective == "interpolation"
    out = [Figure("objective_figure", "objective", plots.objective_figure(
        snaps, now.dual, now.closed_primal, interpolation=interpolation,
        dual_label=explain.dual_line_label(exp),
        floor=explain.excess_floor(now.dual), style=style), span=3)]
    fit = relu.get("fit") or {}
    trained = snaps[-1].probe if snaps and not now.final else fit.get("trained")
    if fit.get("axes"):
        out.append(Figure("fit_figure", "fit", plots.fit_figure(
            data.X, data.Y, fit["axes"], trained, fit.get("convex"), style=style), span=2))
    else:
        out.append(Figure("layer_figure", "layers", plots.layer_spectra_figure(
            now.layer_spectra, title="per-layer singular values", style=style), span=2))
    if exp.depth >= 3 and not relu.get("rank_one"):
        out.append(Figure("comparison_figure", "comparison", plots.comparison_figure(
            [(f"{exp.arch} (this net)", snaps), (twin.arch, twin_snaps)],
            title="Standard vs parallel training (each curve bounds its own optimum from above)",
            interpolation=interpolation, style=style), curves=[0, 1]))
    return out


def notes(exp, now):
    relu = now.relu or {}
    patterns = relu.get("patterns")
    if patterns:
        solver = relu.get("solver") or {}
        st.info(f"{patterns['message']} Convex program ({relu['convex_label']}), solved by "
                f"{solver.get('method', 'n/a')} in {solver.get('seconds', 0):.2f} s: "
                f"{explain.certificate_sentence(relu.get('certificate'), patterns['complete'])}"
                f". The network rebuilt "
                f"from it has {relu['active_neurons']} neurons.")
    if relu.get("rank_one"):
        st.markdown("**Why (rank-one data).** " + relu["rank_one"]["explanation"])
    if relu.get("three_layer"):
        st.markdown("**Three layers, general data.** " + " ".join(
            explain.three_layer_lines(relu["three_layer"], exp.arch)))
    elif exp.depth >= 3 and not relu.get("rank_one"):
        st.info("Deep ReLU nets on general data: no dual is computed here. Each trained value "
                "is an upper bound on its own network's optimum; the paper proves that the "
                "parallel net (enough branches, rescaled regularization) has zero duality gap.")


explorer.live_view(exp, uploaded, figures, dual_name="D (convex / dual: a lower bound on P)",
                   notes=notes)
