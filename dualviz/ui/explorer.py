"""The parts every explorer page shares: data source, the job pair, the live view, failures and
the standard-vs-parallel comparison. A page supplies its controls and its main figures."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlencode, urlsplit, urlunsplit

import streamlit as st

from .. import explain
from ..config import SYNTHETIC, Experiment
from ..data import DataError, Dataset, load_file
from ..exports import rerun_snippet, result_csv
from ..plots import PROJECTOR, SCREEN, FigureStyle
from ..results import ACTIVE, FINAL, JobStatus, Snapshot
from ..runner import known_at_once
from ..service.jobs import JobView
from ..service.store import StoreError
from ..views import ROOM_KEYS
from . import charts, live, rooms, state
from .live_chart import Figure, Stream, for_followers, live_panel, panel_data

# (experiment, its readout, its snapshots, its twin of the other architecture and the twin's
# snapshots, the uploaded data set or None, the figure style) -> the panel's figures
Figures = Callable[[Experiment, explain.Readout, list[Snapshot], Experiment, list[Snapshot],
                    Dataset | None, FigureStyle], list[Figure]]


_UPLOAD_NAMES = "_dualviz_upload_names"  # digest -> the file name this session uploaded


def data_source(exp: Experiment) -> Dataset | None:
    """The sidebar upload, and the uploaded data set this experiment names (None: synthetic).

    Stops the page with a clear message when a link names data this server does not have."""
    live.store_guard()
    store = live.manager().store
    upload = st.sidebar.file_uploader(
        "Upload data (.npz with X, Y; or .csv with y columns)", type=["npz", "csv"],
        help="Replaces the synthetic data; the file's digest goes into the link. "
             "Restarts the run.")
    if upload is not None and st.session_state.get("_uploaded_id") != upload.file_id:
        st.session_state["_uploaded_id"] = upload.file_id
        try:
            dataset = load_file(upload, upload.name)
            store.save_dataset(dataset)
        except (DataError, StoreError) as exc:
            message = str(exc) if upload.name in str(exc) else f"{upload.name}: {exc}"
            st.sidebar.error(state.verbatim(message))
        else:
            st.session_state.setdefault(_UPLOAD_NAMES, {})[dataset.digest] = upload.name
            state.set_experiment(exp.replace(data=dataset.digest)[0])
            st.rerun()
    if exp.uses_synthetic_data:
        return None
    try:
        dataset = store.load_dataset(exp.data)
    except StoreError as exc:
        st.error(f"The uploaded data set {exp.data} cannot be read now: {exc}")
        st.stop()
    if dataset is None:
        st.error(f"This link uses an uploaded data set ({exp.data}) that this server does not "
                 "have. Upload the file in the sidebar, or use synthetic data.")
        if st.button("Use synthetic data"):
            state.set_experiment(exp.replace(data=SYNTHETIC)[0])
            st.rerun()
        st.stop()
    left, right = st.columns([4, 1])
    name = st.session_state.get(_UPLOAD_NAMES, {}).get(dataset.digest, dataset.name)
    left.info(f"Data: {state.verbatim(name)} (N = {dataset.n}, d = {dataset.d}, "
              f"K = {dataset.k}); the synthetic data settings have no effect.")
    if right.button("Use synthetic data"):
        state.set_experiment(exp.replace(data=SYNTHETIC)[0])
        st.rerun()
    return dataset


def show_failure(view: JobView, experiment: Experiment) -> None:
    st.error(f"The {experiment.arch} run failed: {live.status_line(view)}")
    with st.expander("Details"):
        st.code(view.record.error or "", language=None)
    if st.button("Run again", key=f"rerun_{experiment.hash}"):
        try:
            live.manager().rerun(experiment)
        except StoreError as exc:
            st.warning(str(exc))
        else:
            st.rerun()


def live_view(exp: Experiment, uploaded: Dataset | None, figures: Figures,
              dual_name: str = "D (lower bound on P)",
              notes: Callable[[Experiment, explain.Readout], None] | None = None) -> None:
    """Run `exp` and its other-architecture twin and show them in the live panel: while the
    jobs run the browser draws their streams (no rerun of this script); when they end, one
    rerun draws the final result, the comparison and the exports."""
    live.store_guard()
    other_arch = "parallel" if exp.arch == "standard" else "standard"
    counterpart = exp.replace(arch=other_arch)[0]
    jobs = live.Jobs([exp, counterpart])
    featured, other = jobs.current()
    presenter = state.view_options(st.query_params.to_dict())[0]
    style = PROJECTOR if presenter else SCREEN
    (seq, snaps), (_, twin_snaps) = live.drawn(featured), live.drawn(other)
    bounds = featured.record.known_bounds
    if bounds is None and featured.record.run is None:
        bounds = known_at_once(exp, uploaded)  # the closed form now, not when the job starts
    now = explain.readout(exp, bounds, featured.record.run, snaps)
    streams = [_stream(f"{e.arch} net", view, cursor)
               for e, view, cursor in ((exp, featured, seq), (counterpart, other,
                                                               live.drawn(other)[0]))]
    shown = now.shown()
    metrics = [{"key": "P", "label": shown["P_label"], "value": shown["P"],
                "help": "The best feasible value training reached: an upper bound on this "
                        "network's optimum."},
               {"key": "D", "label": dual_name, "value": shown["D"], "help": now.dual_label},
               {"key": "gap", "label": "Gap P - D", "value": shown["gap"],
                "help": "Zero within the stated tolerance (the solvers' accuracy)."},
               {"key": "relative", "label": "Relative gap", "value": shown["relative"]},
               {"key": "closed", "label": "Theory P*", "value": shown["closed"],
                "help": "The optimal value theory gives for this net: a closed form, or the "
                        "exact two-layer convex program; n/a where none exists."}]
    drawn = figures(exp, now, snaps, counterpart, twin_snaps, uploaded, style)
    final = featured.status in FINAL and other.status in FINAL
    version = "|".join(f"{v.record.hash}:{v.record.created}:{v.status in FINAL}:{v.status}"
                       for v in (featured, other))
    busy = any(v.status == JobStatus.BUSY for v in (featured, other))
    retry_after = live.BUSY_RETRY_SECONDS if busy else None
    live_panel("live", panel_data(version, exp.hash, streams, metrics, drawn,
                                  presenter=presenter, retry_after=retry_after, style=style))
    if rooms.sharing():  # followers draw this panel in their browsers, at a screen's scale
        shared = drawn if style is SCREEN else figures(exp, now, snaps, counterpart,
                                                       twin_snaps, uploaded, SCREEN)
        rooms.share_panel(for_followers(panel_data(version, exp.hash, streams, metrics,
                                                   shared)))
    row = st.container(horizontal=True)
    for fig in drawn:
        charts.downloads(fig.figure, fig.id, fig.id.removesuffix("_figure").replace("_", " "),
                         where=row)
    if notes is not None:
        notes(exp, now)
    if featured.status == JobStatus.FAILED:
        show_failure(featured, exp)
    if final:
        comparison(exp, counterpart, featured, other)
    else:
        st.caption("The comparison of the two nets appears when both runs have finished.")
    share_and_export(exp, featured)


def _stream(label: str, view: JobView, cursor: int) -> Stream:
    record = view.record
    active = view.status in ACTIVE
    url = (f"/api/jobs/{record.hash}/stream?after={cursor}&watcher={live.watcher_id()}"
           if active else None)
    took = None
    if record.status == JobStatus.DONE and record.started and record.finished:
        took = f"done in {record.finished - record.started:.1f} s"
    return Stream(label, url, live.status_line(view), record.started, took)


def share_url(exp: Experiment) -> str:
    """This page's address with the experiment's full state (and the view keys) as query."""
    view = {k: v for k, v in st.query_params.to_dict().items()
            if k in state.VIEW_KEYS and k not in ROOM_KEYS}  # a room is not part of a run
    query = exp.to_query() + ("&" + urlencode(view) if view else "")
    parts = urlsplit(st.context.url or "")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


def share_and_export(exp: Experiment, view: JobView) -> None:
    """The link that reproduces this view; the finished run as JSON, CSV and Python."""
    with st.expander("Share and export", expanded=False):
        st.markdown("**Link to this view** (every control, the seed included):")
        st.code(share_url(exp), language=None)
        result = view.record.result
        if result is None:
            st.caption("Exports appear when the run has finished.")
            return
        st.caption(f"Permalink of the finished run: the link above opens the stored result "
                   f"of experiment {exp.hash} at once, on this server.")
        a, b = st.columns(2)
        a.download_button("Result as JSON", json.dumps(result, indent=1),
                          file_name=f"dualviz-{exp.hash}.json", mime="application/json",
                          key=f"json_{exp.hash}")
        b.download_button("Result as CSV", result_csv(view.record.run),
                          file_name=f"dualviz-{exp.hash}.csv", mime="text/csv",
                          key=f"csv_{exp.hash}")
        st.markdown("**Rerun it in Python** (`pip install -r requirements.txt` in this "
                    "repository):")
        st.code(rerun_snippet(exp), language="python")


def comparison(exp: Experiment, counterpart: Experiment, featured: JobView,
               other: JobView) -> None:
    """Standard and parallel side by side: numbers, verdict, formula, and why."""
    st.subheader("Standard vs parallel on the same data")
    columns = dict(zip((exp.arch, counterpart.arch), st.columns(2), strict=True))
    for experiment, view in ((exp, featured), (counterpart, other)):
        with columns[experiment.arch]:
            reading = explain.readout(experiment, view.record.known_bounds, view.record.run,
                                      live.snapshots(view))
            shown = reading.shown()
            st.markdown(f"**{experiment.arch.capitalize()} net**: {shown['P_label']} = "
                        f"{shown['P']}, D (lower bound on P) = {shown['D']}")
            run = view.record.run
            explanation = run.primal.explanation if run is not None else None
            verdict = explain.gap_verdict(reading.primal, reading.dual, reading.closed_primal,
                                          explanation)
            (st.success if verdict.kind == explain.VerdictKind.ZERO_GAP else st.info)(verdict.text)
            formula = explain.formula_latex(experiment, reading.target_spectrum,
                                            reading.closed_primal, reading.closed_dual)
            if formula:
                st.latex(formula)
            if view.status == JobStatus.FAILED and experiment is counterpart:
                show_failure(view, experiment)
