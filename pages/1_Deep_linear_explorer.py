"""Deep linear explorer: the non-convex training against the dual bound, live, and why."""

import streamlit as st

from dualviz import explain, plots
from dualviz.config import KNOBS, SYNTHETIC
from dualviz.data import DataError, load_file
from dualviz.ui import live, state

st.set_page_config(page_title="Deep linear explorer · dualviz", layout="wide")
st.title("Deep linear networks: primal vs dual")
st.caption("Training (PyTorch) against the dual (CVXPY + Clarabel) and the closed forms of "
           "Wang, Ergen & Pilanci (ICLR 2023). Every control is in the address bar: copy it to "
           "share this exact run.")

LINEAR_ONLY = {"activation": "linear", "dataset": "low-rank"}
exp, notes = state.experiment_controls(
    {k.name for k in KNOBS} - {"data", "regression_target", "rank_one_target", *LINEAR_ONLY},
    fixed=LINEAR_ONLY)
for note in notes:
    st.warning(f"Adjusted: {note}")
store = live.manager().store

upload = st.sidebar.file_uploader(
    "Upload data (.npz with X, Y; or .csv with y columns)", type=["npz", "csv"],
    help="Replaces the synthetic data; the file's digest goes into the link. Restarts the run.")
if upload is not None and st.session_state.get("_uploaded_id") != upload.file_id:
    st.session_state["_uploaded_id"] = upload.file_id
    try:
        dataset = load_file(upload, upload.name)
    except DataError as exc:
        st.sidebar.error(f"{upload.name}: {exc}")
    else:
        store.save_dataset(dataset)
        state.set_experiment(exp.replace(data=dataset.digest)[0])
        st.rerun()

if not exp.uses_synthetic_data:
    dataset = store.load_dataset(exp.data)
    if dataset is None:
        st.error(f"This link uses an uploaded data set ({exp.data}) that this server does not "
                 "have. Upload the file in the sidebar, or use synthetic data.")
        if st.button("Use synthetic data"):
            state.set_experiment(exp.replace(data=SYNTHETIC)[0])
            st.rerun()
        st.stop()
    left, right = st.columns([4, 1])
    left.info(f"Data: {dataset.name} (N = {dataset.n}, d = {dataset.d}, K = {dataset.k}); "
              "the synthetic data settings are ignored.")
    if right.button("Use synthetic data"):
        state.set_experiment(exp.replace(data=SYNTHETIC)[0])
        st.rerun()

other_arch = "parallel" if exp.arch == "standard" else "standard"
counterpart = exp.replace(arch=other_arch)[0]
views = live.manager().focus(live.watcher_id(), [exp, counterpart])
polling = any(v.active for v in views)


def fmt(value, digits=6):
    return "n/a" if value is None else f"{value:.{digits}f}"


def show_failure(view, experiment):
    st.error(f"The {experiment.arch} run failed: {live.status_line(view)}")
    with st.expander("Details"):
        st.code(view.record.error or "", language=None)
    if st.button("Run again", key=f"rerun_{experiment.hash}"):
        live.manager().rerun(experiment)
        st.rerun()


@st.fragment(run_every=live.POLL_SECONDS if polling else None)
def live_view():
    manager = live.manager()
    manager.touch(live.watcher_id())
    featured, other = manager.view(exp.hash), manager.view(counterpart.hash)
    if polling and "cancelled" in (featured.status, other.status):
        st.rerun()  # this tab was idle long enough to lose its jobs: ask for them again
    snaps = live.snapshots(featured)
    now = explain.readout(exp, featured.record.bounds, featured.record.result, snaps)

    st.caption(f"{exp.arch} net: {live.status_line(featured)} · {other_arch} net: "
               f"{live.status_line(other)} · experiment {exp.hash}")
    if featured.status == "failed":
        show_failure(featured, exp)
    cols = st.columns(5)
    cols[0].metric("P (trained" + (")" if now.final else ", so far)"), fmt(now.primal))
    cols[1].metric("D (CVXPY)", fmt(now.dual), help=now.dual_label)
    cols[2].metric("Gap P - D", fmt(now.gap))
    cols[3].metric("Relative gap", fmt(now.relative_gap))
    cols[4].metric("Closed-form P", fmt(now.closed_primal))

    left, right = st.columns([3, 2])
    left.plotly_chart(plots.objective_figure(snaps, now.dual, now.closed_primal,
                                             dual_label="D"),
                      key="objective_figure", config={"displaylogo": False})
    with right:
        end_to_end, per_layer = st.tabs(["End-to-end spectrum", "Per-layer spectra"])
        end_to_end.plotly_chart(plots.spectrum_figure(now.target_spectrum, now.learned_spectrum,
                                                      now.closed_spectrum),
                                key="spectrum_figure", config={"displaylogo": False})
        per_layer.plotly_chart(plots.layer_spectra_figure(now.layer_spectra),
                               key="layer_figure", config={"displaylogo": False})

    st.subheader("Standard vs parallel on the same data")
    columns = dict(zip((exp.arch, other_arch), st.columns(2), strict=True))
    for arch, experiment, view in ((exp.arch, exp, featured),
                                   (other_arch, counterpart, other)):
        with columns[arch]:
            reading = explain.readout(experiment, view.record.bounds, view.record.result,
                                      live.snapshots(view))
            st.markdown(f"**{arch.capitalize()} net** — P = {fmt(reading.primal, 4)}, "
                        f"D = {fmt(reading.dual, 4)}")
            verdict = explain.gap_verdict(reading.primal, reading.dual, reading.closed_primal)
            (st.success if verdict.startswith("zero") else st.info)(verdict)
            formula = explain.formula_latex(experiment, reading.target_spectrum,
                                            reading.closed_primal, reading.closed_dual)
            if formula:
                st.latex(formula)
            if view.status == "failed" and arch == other_arch:
                show_failure(view, experiment)

    if polling and not (featured.active or other.active):
        st.rerun()  # the jobs ended: one full redraw, then stop polling


live_view()
