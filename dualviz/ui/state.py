"""The page state: sidebar controls generated from the knob table, kept in the URL."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import streamlit as st

from ..config import (
    GROUPS,
    KNOBS,
    KNOBS_BY_KEY,
    Experiment,
    Knob,
    format_value,
    parse_knob,
    upper_bound,
)
from ..views import VIEW_KEYS, View

_APPLIED = "_dualviz_applied_query"  # the query string the widgets currently reflect
_NOTES = "_dualviz_pending_notes"
_TOUCHED = "_dualviz_touched"  # knobs the visitor changed since the last run
_SHOWN_NOTES = "_dualviz_link_notes"  # (experiment hash, notes of the link that opened it)
_URL_FIRST = "_dualviz_url_first"  # the next run's widgets follow the URL, whatever they say
_EARLIER = "_dualviz_earlier_queries"  # queries the widgets reflected before _APPLIED's
EARLIER_KEPT = 20
_APPLIED_AT = "_dualviz_applied_at"  # time.monotonic() when _APPLIED was set
_PAGES = "_dualviz_run_pages"  # (page of the previous run, page of this run)
STALE_SECONDS = 10.0  # a rerun request older than this is not in flight any more
GROUP_TITLES = {"network": "Network", "regularization": "Objective and regularization",
                "data": "Data", "solver": "Solver"}


# Presenter mode: text a quarter larger through the root font size (Streamlit sizes in rem),
# the main area as wide as the screen; the figures are drawn larger by plots.PROJECTOR.
# Not a CSS zoom: that cut Plotly's labels and axes.
_PRESENTER_CSS = ("<style>html {font-size: 125%;} [data-testid='stMainBlockContainer'] "
                  "{max-width: 100%;}</style>")


def view_options(params: Mapping[str, str]) -> tuple[bool, set[str], list[str]]:
    """(presenter mode, knob names hidden by the link, notes) from `present` and `hide`.

    present=1 hides the solver controls and enlarges the page; hide=depth,beta hides those
    controls (their values still come from the link). Unknown names are ignored with a note.
    """
    notes: list[str] = []
    present_text = str(params.get("present", "0")).strip().lower()
    present = present_text in ("1", "true", "yes", "on")
    if present_text not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
        notes.append(f"present: '{present_text[:20]}' is not a yes/no value; using 0")
    hidden: set[str] = set()
    for key in filter(None, (k.strip() for k in str(params.get("hide", "")).split(","))):
        knob = KNOBS_BY_KEY.get(key)
        if knob is None:
            notes.append(f"hide: '{key[:20]}' is not a control; ignored")
        else:
            hidden.add(knob.name)
    if present:
        hidden |= {k.name for k in KNOBS if k.group == "solver"}
    return present, hidden, notes


def widget_key(knob: Knob) -> str:
    return f"knob_{knob.name}"


def _url_values() -> dict[str, str]:
    return st.query_params.to_dict()


def _write_url(exp: Experiment, keep: tuple[str, ...] = ()) -> None:
    """The experiment's keys, plus the page's own keys in `keep` (e.g. a sweep's axes)."""
    own = {k: v for k, v in _url_values().items() if k in keep}
    st.query_params.from_dict({**own, **exp.to_params()})


def _remember(query: str) -> None:
    earlier = [q for q in st.session_state.get(_EARLIER, []) if q != query]
    st.session_state[_EARLIER] = [*earlier, query][-EARLIER_KEPT:]


def _apply(query: str) -> None:
    """The widgets reflect `query` now; the one they reflected before is kept as earlier."""
    before = st.session_state.get(_APPLIED)
    if before and before != query:
        _remember(before)
    st.session_state[_APPLIED] = query
    st.session_state[_APPLIED_AT] = time.monotonic()


def _forget_applied() -> None:
    """The next run reseeds the widgets from the URL (the query they reflected is earlier)."""
    before = st.session_state.pop(_APPLIED, None)
    if before:
        _remember(before)


def start_of_run(page_path: str) -> None:
    """Called by app.py as every run starts: which page the previous run showed."""
    st.session_state[_PAGES] = (st.session_state.get(_PAGES, (None, None))[1], page_path)


def _is_stale(url_query: str) -> bool:
    """The run's URL is one this session showed before its latest, seconds ago, on this page:
    a rerun request the browser sent before it drew the latest URL (a component's trigger,
    the end of a job, a second quick change) carries the older address. Not a link: a page
    link arrives from another page, and the browser's Back button is a history navigation;
    both are followed."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    applied = st.session_state.get(_APPLIED)
    previous_page, this_page = st.session_state.get(_PAGES, (None, None))
    ctx = get_script_run_ctx()
    return (applied is not None and url_query != applied
            and url_query in st.session_state.get(_EARLIER, [])
            and previous_page == this_page
            and time.monotonic() - st.session_state.get(_APPLIED_AT, -math.inf) < STALE_SECONDS
            and not getattr(ctx, "is_history_navigation", False))


def url_first() -> None:
    """In the next run the URL is the truth: the controls are reseeded from it, whatever
    widget states the browser's request carried. A follower's page (its URL is the
    presenter's view; a rerun request sent before the browser drew the move carries the old
    widget values) and a follower detaching (it keeps the view it shows)."""
    st.session_state[_URL_FIRST] = True


def _touch(name: str) -> None:
    """on_change of a control: the visitor changed it (not a lost widget state)."""
    st.session_state.setdefault(_TOUCHED, set()).add(name)


def _widget(knob: Knob, applies: bool = True, **callback: Any) -> Any:
    """The control of one knob; `callback`: on_change and its args, given to the widget.
    A knob that cannot change this experiment's result is shown disabled, saying when it
    would (its value is kept for then)."""
    key = widget_key(knob)
    help_text = knob.help + ("  \nChanging it restarts the run." if knob.restarts
                             else "  \nApplies live.")
    if not applies:
        help_text = f"No effect here: it applies to {knob.applies_text} only.  \n" + knob.help
        callback["disabled"] = True
    if knob.kind == "choice":
        return st.selectbox(knob.label, knob.choices, key=key, help=help_text, **callback)
    if knob.kind == "bool":
        return st.checkbox(knob.label, key=key, help=help_text, **callback)
    if knob.kind == "int":
        low, high = int(knob.low), int(upper_bound(knob))
        if high - low <= 30:
            return st.slider(knob.label, low, high, key=key, help=help_text, **callback)
        return st.number_input(knob.label, low, high, step=1, key=key, help=help_text, **callback)
    return st.number_input(knob.label, float(knob.low), float(upper_bound(knob)), key=key,
                           format="%.6g", help=help_text, **callback)


def experiment_controls(view: View) -> tuple[Experiment, list[str]]:
    """Sidebar controls for the knobs `view` offers; the URL is read first and written back.

    The view's fixed values pin knobs the page does not offer (e.g. activation on the linear
    page), its defaults are the starting values where the URL says nothing, its `keep` keys
    are the page's own and stay in the URL. Returns the experiment and notes on anything that
    was clamped or ignored.
    """
    fixed = dict(view.fixed)
    keep = (*view.keep, *VIEW_KEYS)
    present, hidden, view_notes = view_options(_url_values())
    shown = set(view.offers or ()) - hidden
    if present:
        st.markdown(_PRESENTER_CSS, unsafe_allow_html=True)  # a constant: no user text
    if st.session_state.pop(_URL_FIRST, False):
        _forget_applied()
        st.session_state.pop(_TOUCHED, None)
    url_exp, url_notes = view.experiment(_url_values())
    if _is_stale(url_exp.to_query()):  # the widgets keep their state; the URL is rewritten
        url_exp, url_notes = view.experiment(dict(parse_qsl(st.session_state[_APPLIED])))
        _write_url(url_exp, keep)  # now: a rerun below must not meet the older URL again
    url_notes = [n for n in url_notes if not n.startswith("ignored unknown setting")]
    link_notes = url_notes + st.session_state.pop(_NOTES, [])
    if st.session_state.get(_APPLIED) != url_exp.to_query():
        # A link was opened (or the URL edited): the widgets follow the URL.
        for knob in KNOBS:
            st.session_state[widget_key(knob)] = getattr(url_exp, knob.name)
        _apply(url_exp.to_query())
    raw = url_exp.to_dict()
    touched = st.session_state.pop(_TOUCHED, set())
    stale = False
    for group in GROUPS:
        knobs = [k for k in KNOBS if k.group == group and k.name in shown]
        if not knobs:
            continue
        with st.sidebar.expander(GROUP_TITLES[group], expanded=group != "solver"):
            for knob in knobs:
                value = _widget(knob, knob.applies({**raw, **fixed}), on_change=_touch,
                                args=(knob.name,))
                if knob.name in touched or value == raw[knob.name]:
                    raw[knob.name] = value
                else:
                    # Changed, yet the visitor did not touch it: a rerun request came without
                    # this widget's state (a websocket client; a browser after a full rerun
                    # asked for by a fragment) and Streamlit fell back to the widget's default.
                    # The URL stays the truth: the widgets are reseeded from it.
                    stale = True
    if stale:
        _forget_applied()
        st.rerun()
    exp, clamp_notes = Experiment.from_values({**raw, **fixed})
    if {k: v for k, v in _url_values().items() if k not in keep} != exp.to_params():
        _write_url(exp, keep)
        if clamp_notes:
            # The widgets show the unclamped values: rerun so they are reseeded from the URL.
            # ... and the link's own notes survive the rerun (the URL is clean by then).
            st.session_state[_NOTES] = url_notes + clamp_notes
            _forget_applied()
            st.rerun()
        _apply(exp.to_query())
    # A link's notes stay while its experiment is shown (reruns, such as the redraw when a
    # job ends, would otherwise clear them within a second); a change of control ends them.
    if link_notes:
        st.session_state[_SHOWN_NOTES] = (exp.hash, link_notes)
    shown_for, kept = st.session_state.get(_SHOWN_NOTES, (None, []))
    return exp, (kept if shown_for == exp.hash else []) + view_notes


def set_experiment(exp: Experiment) -> None:
    """Change the state from code (a button, an upload): URL first, widgets follow."""
    _write_url(exp)
    _forget_applied()


def linked_controls(knobs: tuple[Knob, ...]) -> tuple[dict[str, Any], list[str]]:
    """Widgets for a page's own knobs (not an Experiment's), kept in the URL under their keys.

    A link sets them, bad values clamped with a note (parse_knob, as for the experiment's
    knobs); moving one writes the URL, where only values other than the default appear.
    Returns the values by knob name and the notes.
    """
    url = _url_values()
    values, notes = {}, []
    for knob in knobs:
        values[knob.name], note = parse_knob(knob, url.get(knob.key, knob.default))
        notes += [note] if note else []
    applied = "_dualviz_applied_" + ",".join(k.key for k in knobs)
    if st.session_state.get(applied) != values:  # a link was opened: the widgets follow it
        for knob in knobs:
            st.session_state[widget_key(knob)] = values[knob.name]
    chosen = {knob.name: _widget(knob) for knob in knobs}
    for knob in knobs:
        if chosen[knob.name] == knob.default:
            st.query_params.pop(knob.key, None)
        else:
            st.query_params[knob.key] = format_value(knob, chosen[knob.name])
    st.session_state[applied] = chosen
    return chosen, notes


def show_notes(notes: list[str]) -> None:
    """What a link asked for and did not get, as visible warnings. The notes quote the
    visitor's text: shown verbatim, so it never renders as a link, an image or HTML."""
    for note in notes:
        st.warning(f"Adjusted: {verbatim(note)}")


def verbatim(text: str) -> str:
    """Markdown that shows `text` exactly as typed: a code span, fenced by more backticks
    than any run inside it. Backslash escapes are not enough: Streamlit's markdown turns
    www.x.org and http://... into links even when their punctuation is escaped."""
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"
