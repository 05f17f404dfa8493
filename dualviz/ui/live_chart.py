"""The live panel: a job's status, numbers and figures, growing in the browser from the push
channel (dualviz/ui/server.py) while the job runs; no Streamlit script reruns per snapshot.

A Streamlit custom component (components v2: the page's own DOM, no iframe). Python draws
every figure (dualviz.plots) and says which stream feeds it; live_chart.js routes each batch of
the stream to the figure's traces, at most once per animation frame. When every stream has
ended, the component asks for one rerun, which draws the final result.

A room's follower (dualviz/ui/rooms.py) draws the presenter's panel: the room's event stream
brings each new panel, drawn in the browser with no rerun (a follower at a job's end waits
for the presenter's final panel instead of rerunning its own page).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import streamlit as st

from ..plots import COLORS, RESTART_SERIES, SCREEN, FigureStyle, comparison_trace, restart_trace

PLOTLY_URL = "/vendor/plotly.min.js"  # served by dualviz/ui/server.py, from the plotly package
_WATCHER_PARAM = re.compile(r"&watcher=[0-9a-f]*")
_HERE = Path(__file__).parent
_COMPONENT = st.components.v2.component(
    "dualviz_live", html='<div class="dv-live"><div class="dv-caption" '
                         'data-testid="stCaptionContainer"><p></p></div>'
                         '<div class="dv-metrics"></div><div class="dv-figures"></div></div>',
    css=(_HERE / "live_chart.css").read_text(),
    js=(_HERE / "room_stream.js").read_text() + (_HERE / "live_chart.js").read_text(),
    isolate_styles=False)  # Plotly puts its CSS in the document's head


@dataclass
class Stream:
    """One job the panel follows: its label, its stream's URL (None: nothing more will come)
    and what the page knew when it was drawn."""

    label: str
    url: str | None
    status: str  # the status line when drawn
    started: float | None = None
    done_text: str | None = None


@dataclass
class Figure:
    """A figure of the panel: which stream (or streams, for a comparison) feed it."""

    id: str
    role: str  # objective | spectrum | layers | fit | comparison | static
    figure: dict  # Plotly JSON (dualviz.plots)
    stream: int | None = 0
    span: int = 5  # of five columns
    curves: list[int] = field(default_factory=list)  # comparison: the curve of each stream


def _templates(role: str, style: FigureStyle) -> dict[str, dict]:
    """The traces a stream adds when a restart starts after the page was drawn."""
    if role == "objective":
        out = {}
        for name in RESTART_SERIES:
            trace = restart_trace(0, name, style=style)
            trace["name"] = trace["name"].replace("restart 1", "restart {restart}")
            out[name] = trace
        return out
    if role == "comparison":
        trace = comparison_trace(0, "", 0, style)
        return {"feasible": {**trace, "showlegend": False}}
    return {}


def panel_data(version: str, experiment: str, streams: list[Stream],
               metrics: list[dict[str, str]], figures: list[Figure], featured: int = 0,
               presenter: bool = False, retry_after: float | None = None,
               style: FigureStyle = SCREEN) -> dict:
    """What the panel is drawn from (JSON): version changes when what the panel follows
    changes (a new job, a job that ended), so the browser rebuilds the panel; otherwise it
    keeps streaming across reruns."""
    specs = []
    for fig in figures:
        spec = {"id": fig.id, "role": fig.role, "figure": fig.figure,
                "span": fig.span, "colors": list(COLORS),
                "templates": _templates(fig.role, style)}
        if fig.role == "comparison":
            spec["streams"] = list(range(len(fig.curves)))
            spec["curves"] = fig.curves
            spec["stream"] = None
        else:
            spec["stream"] = fig.stream
        specs.append(spec)
    return {"version": version, "plotly": PLOTLY_URL, "experiment": experiment,
            "featured": featured, "presenter": presenter, "retry_after": retry_after,
            "streams": [vars(s) for s in streams], "metrics": metrics, "figures": specs}


def for_followers(data: dict) -> dict:
    """The panel as a room's followers draw it: without this session's watcher id in its
    stream addresses (a follower's stream must not count as the presenter watching) and
    without the retry a busy server asks of the presenter's page."""
    streams = [{**s, "url": s["url"] and _WATCHER_PARAM.sub("", s["url"])}
               for s in data["streams"]]
    return {**data, "streams": streams, "retry_after": None, "presenter": False}


def live_panel(key: str, data: dict, room: dict | None = None) -> Any:
    """Draw the panel from :func:`panel_data`; returns the component's result (its `ended`
    and `retry` triggers rerun the page). room: {"name", "url", "seq", "page"} of the room
    whose panels the browser follows, from the view this run drew (its `moved` and `closed`
    triggers rerun the page)."""
    if room is not None:
        data = {**data, "room": room}
    return _COMPONENT(key=key, data=data, on_ended_change=lambda: None,
                      on_retry_change=lambda: None, on_moved_change=lambda: None,
                      on_closed_change=lambda: None)
