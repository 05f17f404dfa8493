"""Figures: pure functions from results to Plotly figures (no Streamlit, no solving).

A figure is plain Plotly JSON ({"data": [...], "layout": {...}}), never a go.Figure: every
session's page run draws its figures, and building go.Figure objects, even unvalidated, was a
seventh of the server's time under 40 sessions. Plotly reads the JSON as it is (st.plotly_chart,
Plotly.js, the image exports of dualviz/service/images.py); tests/test_plots.py checks that it
is the JSON plotly itself makes of it.

A live figure grows in the browser (dualviz/ui/live_chart.py) from the same functions that
draw it here: :func:`restart_series` turns snapshots into the points of each restart's traces
(the page's first drawing and every streamed batch alike), :func:`restart_trace` is the trace
a restart's series is drawn with, and traces that change as a whole (the learned spectrum, the
fitted function) carry a `meta` role naming what replaces their values.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.io as pio

from .results import Snapshot
from .training.primal import RESIDUAL_TOL

MAX_POINTS_PER_TRACE = 400  # keeps redraws light in the browser while a job streams
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf", "#d62728")
DUAL_COLOR, CLOSED_COLOR, TARGET_COLOR = "#d62728", "#222222", "#7f7f7f"
# The series of one restart in the objective figure, in trace order.
RESTART_SERIES = ("feasible", "infeasible", "excess", "residual")
TINY = 1e-300


@dataclass(frozen=True)
class FigureStyle:
    """Sizes for a screen or a projector (presenter mode: larger text, taller figures; the
    layout grows instead of being zoomed, so nothing is cut)."""

    font: int = 15
    height: float = 1.0  # a factor on every figure's height
    marker: float = 1.0

    def px(self, base: int) -> int:
        return round(base * self.height)


SCREEN = FigureStyle()
PROJECTOR = FigureStyle(font=20, height=1.3, marker=1.4)


def thin(points: Sequence, limit: int = MAX_POINTS_PER_TRACE) -> list:
    """At most `limit` evenly spaced points, always keeping the first and the last."""
    if len(points) <= limit:
        return list(points)
    index = np.unique(np.linspace(0, len(points) - 1, limit).round().astype(int))
    return [points[i] for i in index]


def by_restart(snapshots: Sequence[Snapshot]) -> dict[int, list[Snapshot]]:
    out: dict[int, list[Snapshot]] = {}
    for s in snapshots:
        out.setdefault(s.restart, []).append(s)
    return out


def _level(y: float, label: str, color: str, dash: str, xaxis: str, yaxis: str,
           position: str, style: FigureStyle) -> tuple[dict, dict]:
    """A labelled horizontal line across one panel: (shape, annotation)."""
    shape = {"type": "line", "xref": f"{xaxis} domain", "x0": 0, "x1": 1, "yref": yaxis,
             "y0": y, "y1": y, "line": {"color": color, "dash": dash, "width": 2}}
    note = {"xref": f"{xaxis} domain", "x": 1, "xanchor": "right", "yref": yaxis, "y": y,
            "yanchor": position, "text": label, "showarrow": False,
            "font": {"color": color, "size": style.font - 1}}
    return shape, note


def feasible(snapshot: Snapshot, interpolation: bool) -> bool:
    """An iterate whose value bounds the optimum from above: finite, and (interpolation)
    within the residual tolerance (docs/math.md §7)."""
    return bool(np.isfinite(snapshot.objective)) and (
        not interpolation or snapshot.residual <= RESIDUAL_TOL)


def restart_series(snapshots: Sequence[Snapshot], dual: float | None, interpolation: bool,
                   floor: float, before: dict[int, Snapshot] | None = None
                   ) -> dict[int, dict[str, tuple[list, list]]]:
    """The points of each restart's series, as (x, y) per name of RESTART_SERIES:

    - feasible: the objective of feasible iterates (a gap, None, where the run is not);
    - infeasible: the objective of iterates outside the interpolation tolerance, joined to
      the feasible iterates on either side (so the faded stretch meets the solid one);
    - excess: P - D of feasible iterates, at least `floor` (a log axis: within the zero-gap
      tolerance a point sits on the floor instead of leaving a hole);
    - residual: ||f(X) - Y|| / ||Y|| of every iterate (interpolation only).

    before: the last snapshot of each restart already drawn (a stream's earlier batches), so
    segments continue across batches."""
    out: dict[int, dict[str, tuple[list, list]]] = {}
    last = dict(before or {})
    for s in snapshots:
        points = out.setdefault(s.restart, {name: ([], []) for name in RESTART_SERIES})
        now = feasible(s, interpolation)
        previous = last.get(s.restart)
        was = previous is not None and feasible(previous, interpolation)
        value = float(s.objective) if np.isfinite(s.objective) else None
        added = [("feasible", s.iteration, value if now else None)]
        if not now:
            if was:
                added.append(("infeasible", previous.iteration, float(previous.objective)))
            added.append(("infeasible", s.iteration, value))
        elif previous is not None and not was:  # the faded stretch ends here
            added += [("infeasible", s.iteration, value), ("infeasible", s.iteration, None)]
        if dual is not None:
            added.append(("excess", s.iteration, max(value - dual, floor)
                          if now and value is not None else None))
        if interpolation:
            added.append(("residual", s.iteration, max(float(s.residual), 1e-16)
                          if np.isfinite(s.residual) else None))
        for name, x, y in added:
            points[name][0].append(x)
            points[name][1].append(y)
        last[s.restart] = s
    return out


def restart_labels(snapshots: Sequence[Snapshot]) -> dict[int, str]:
    """How each restart that did not start at random started ("from the closed form"): its
    legend says so, so that a curve starting at the optimum is never read as training that
    found it."""
    return {s.restart: f"from the {s.start}" for s in snapshots
            if getattr(s, "start", "random") != "random"}


def restart_trace(restart: int, name: str, label: str = "",
                  style: FigureStyle = SCREEN) -> dict:
    """The trace that draws series `name` of one restart (its color is the restart's)."""
    color = COLORS[restart % len(COLORS)]
    title = f"restart {restart + 1}" + (f" ({label})" if label else "")
    base = {"type": "scatter", "mode": "lines", "x": [], "y": [], "legendgroup": str(restart),
            "meta": {"restart": restart, "series": name}, "connectgaps": False}
    if name == "feasible":
        return {**base, "name": title, "line": {"color": color, "width": 2.5}}
    if name == "infeasible":
        return {**base, "name": f"{title}: not yet feasible", "showlegend": False,
                "opacity": 0.35, "line": {"color": color, "dash": "dot", "width": 2}}
    axis = {"excess": ("x2", "y2"), "residual": ("x3", "y3")}[name]
    return {**base, "xaxis": axis[0], "yaxis": axis[1], "showlegend": False,
            "name": f"{title}: {'P - D' if name == 'excess' else 'residual'}",
            "line": {"color": color, "width": 2, "dash": "solid" if name == "excess"
                     else "dash"}}


def objective_layout(dual: float | None, closed_primal: float | None, dual_label: str,
                     style: FigureStyle = SCREEN) -> tuple[list, list]:
    """(shapes, annotations) of the objective figure: the dual, labelled as the lower bound it
    is, and the closed-form optimum."""
    shapes, notes = [], []
    for value, label, color, dash, position in (
            (dual, f"{dual_label} = {dual:.6g} (lower bound on P)" if dual is not None else "",
             DUAL_COLOR, "dash", "top"),
            (closed_primal, f"theory P* = {closed_primal:.6g}"
             if closed_primal is not None else "", CLOSED_COLOR, "dot", "bottom")):
        if value is not None:
            shape, note = _level(value, label, color, dash, "x", "y", position, style)
            shapes.append(shape)
            notes.append(note)
    return shapes, notes


def objective_figure(snapshots: Sequence[Snapshot], dual: float | None,
                     closed_primal: float | None, dual_label: str = "D",
                     title: str = "", interpolation: bool = False, floor: float = 1e-12,
                     labels: dict[int, str] | None = None,
                     style: FigureStyle = SCREEN) -> dict:
    """Top: the primal objective of every restart against iteration (faded where the iterate is
    not yet feasible: its value bounds nothing), with the dual and the closed-form primal as
    labelled lines. Below (log scales): the excess P - D of feasible iterates, and for
    interpolation the residual with its tolerance. labels: restart -> how it started."""
    thinned = [s for snaps in by_restart(snapshots).values() for s in thin(snaps)]
    labels = {**restart_labels(snapshots), **(labels or {})}
    traces: list[dict] = []
    for restart, series in sorted(restart_series(thinned, dual, interpolation, floor).items()):
        for name in RESTART_SERIES:
            if (name == "excess" and dual is None) or (name == "residual"
                                                       and not interpolation):
                continue
            trace = restart_trace(restart, name, labels.get(restart, ""), style)
            traces.append({**trace, "x": series[name][0], "y": series[name][1]})
    shapes, notes = objective_layout(dual, closed_primal, dual_label, style)
    domains = ([0.52, 1.0], [0.27, 0.45], [0.0, 0.2]) if interpolation else \
        ([0.42, 1.0], [0.0, 0.33], None)
    top: dict = {"domain": domains[0], "title": {"text": "primal objective"}}
    latest = [snaps[-1].objective for snaps in by_restart(snapshots).values()
              if feasible(snaps[-1], interpolation)]
    levels = [v for v in (dual, closed_primal) if v is not None]
    if latest and levels:
        # Early iterates can be far off; keep the bounds and where each restart is in view.
        finals = latest + levels
        low, high = min(finals), max(finals)
        pad = 0.25 * (high - low) + 0.05 * abs(high) + 1e-9
        top["range"] = [low - pad, high + 3 * pad]
    layout = {
        "xaxis": {"anchor": "y", "matches": "x2", "showticklabels": False},
        "yaxis": top,
        "xaxis2": {"anchor": "y2", "showticklabels": not interpolation,
                   **({} if interpolation else {"title": {"text": "iteration"}})},
        "yaxis2": {"domain": domains[1], **log_axis(), "title": {"text": "P - D"}},
        "shapes": shapes, "annotations": notes,
    }
    if interpolation:
        layout["xaxis2"]["matches"] = "x3"
        layout["xaxis3"] = {"anchor": "y3", "title": {"text": "iteration"}}
        layout["yaxis3"] = {"domain": domains[2], **log_axis(), "title": {"text": "residual"}}
        shape, note = _level(RESIDUAL_TOL, f"feasible below {RESIDUAL_TOL:g}", TARGET_COLOR,
                             "dot", "x3", "y3", "top", style)
        layout["shapes"] = [*shapes, shape]
        layout["annotations"] = [*notes, note]
    return _figure(traces, layout, title, height=620 if interpolation else 560, style=style)


def log_axis() -> dict:
    """A log axis whose labels always carry their magnitude, at any span of the data (the
    span grows as a live run goes): decades as powers (10^-4, 10^-2) over a decade or more,
    full numbers (0.002, 0.003) within one. (A tick every decade, dtick 1, labelled nothing
    at all within one decade.) Plotly's digits between decades (2, 5) are drawn at 3/4 of
    the font, too small on a projector: those ticks stay, unlabelled. nticks 4 keeps a short
    panel uncrowded."""
    return {"type": "log", "nticks": 4, "exponentformat": "power", "showexponent": "all",
            "minorloglabels": "none"}


def spectrum_figure(target: Sequence[float] | None, learned: Sequence[float] | None,
                    closed_form: Sequence[float] | None, title: str = "",
                    threshold: float | None = None, style: FigureStyle = SCREEN) -> dict:
    """Singular values of the target W*, of the learned end-to-end matrix (live) and of the
    closed-form optimum, against their index. A value the closed form cuts to zero is drawn
    at 0 at its index, with the threshold below which the closed form cuts (`threshold`)."""
    traces = []
    series = (("target W*", target, TARGET_COLOR, "square-open", 16, "target"),
              ("closed form", closed_form, CLOSED_COLOR, "x-thin-open", 14, "closed"),
              ("learned (live)", learned, COLORS[0], "circle", 9, "learned"))
    for name, values, color, symbol, size, role in series:
        if values is None:
            continue
        traces.append({"type": "scatter", "mode": "markers", "name": name,
                       "meta": {"role": role}, **spectrum_points(values, keep_zeros=role
                                                                 == "closed"),
                       "marker": {"color": color, "symbol": symbol,
                                  "size": size * style.marker,
                                  "line": {"width": 2, "color": color}}})
    layout = {"xaxis": {"title": {"text": "index i"}, "dtick": 1},
              "yaxis": {"title": {"text": "singular value"}, "rangemode": "tozero"}}
    if threshold is not None:
        shape, note = _level(threshold, f"cut below {threshold:.4g}", CLOSED_COLOR, "dot",
                             "x", "y", "bottom", style)
        layout.update(shapes=[shape], annotations=[note])
    return _figure(traces, layout, title, height=420, style=style)


def spectrum_points(values: Sequence[float], keep_zeros: bool = False) -> dict:
    """x (index from 1) and y of a spectrum: numerically zero values are left out, or (a
    closed form's cut values) drawn as exact zeros at their index."""
    top = max(values, default=0.0)
    cut = 1e-10 * max(top, TINY)
    if keep_zeros:
        return {"x": list(range(1, len(values) + 1)),
                "y": [v if v > cut else 0.0 for v in values]}
    kept = [v for v in values if v > cut]
    return {"x": list(range(1, len(kept) + 1)), "y": kept}


def layer_spectra_figure(layers: Sequence[Sequence[float]] | None, title: str = "",
                         style: FigureStyle = SCREEN) -> dict:
    """Singular values of each layer (of the equivalent wide network for a parallel net)."""
    traces = [{"type": "scatter", "mode": "lines+markers", "name": f"layer {i + 1}",
               "meta": {"role": "layer", "index": i},
               "x": list(range(1, len(values) + 1)), "y": list(values),
               "line": {"color": COLORS[i % len(COLORS)]}}
              for i, values in enumerate(layers or [])]
    layout = {"xaxis": {"title": {"text": "index i"}},
              "yaxis": {"title": {"text": "singular value"}, "rangemode": "tozero"}}
    return _figure(traces, layout, title, height=420, style=style)


def _figure(traces: list[dict], layout: dict, title: str, height: int,
            style: FigureStyle = SCREEN) -> dict:
    font = style.font
    layout = {**layout, "height": style.px(height), "font": {"size": font},
              # Margins follow the text size, so labels are not cut on a projector. The right
              # one holds half the last x label: narrower, automargin widened it whenever a
              # live run's range ended on a tick, which costs a second full redraw (a live
              # objective figure's mean draw 18.7 -> 16.5 ms with this margin).
              "margin": {"l": 4 * font + 12, "r": 2 * font + 10,
                         "t": (4 if title else 2) * font + 14,
                         "b": 3 * font + 10},
              # Legend above the plot, clear of the axis titles.
              "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0,
                         "font": {"size": font - 1}},
              "uirevision": "keep"}  # keep the user's zoom while live data arrives
    for name, axis in layout.items():
        if name.startswith(("xaxis", "yaxis")) and isinstance(axis, dict):
            axis.setdefault("automargin", True)
            # Plotly's default ("hide past div") measures every tick label on every redraw:
            # a quarter of a live figure's redraw. The margins above keep the labels inside.
            axis.setdefault("ticklabeloverflow", "allow")
    if title:
        layout["title"] = {"text": title}
    # The template is plotly's default, as go.Figure would have put it in (one shared dict).
    return {"data": traces, "layout": {**layout, "template": _template()}}


@functools.cache
def _template() -> dict:
    return pio.templates[pio.templates.default].to_plotly_json()


def fit_figure(X: np.ndarray, y: np.ndarray, axes: Sequence[Sequence[float]],
               trained: Sequence[float] | None, convex: Sequence[float] | None,
               title: str = "", style: FigureStyle = SCREEN) -> dict:
    """The data and the fitted functions: the trained net (live) and the net rebuilt from the
    convex solution. 1-D inputs: curves over the points; 2-D: one heatmap per fit, points on top.
    The trained net's trace has the role "trained": a stream replaces its values."""
    y = np.asarray(y, dtype=float).ravel()
    if len(axes) == 1:
        traces = [{"type": "scatter", "mode": "markers", "name": "data", "x": X[:, 0].tolist(),
                   "y": y.tolist(), "marker": {"color": TARGET_COLOR,
                                               "size": 9 * style.marker}}]
        for name, values, color, dash, role in (
                ("trained net (live)", trained, COLORS[0], "solid", "trained"),
                ("rebuilt from the convex program", convex, DUAL_COLOR, "dash", "convex")):
            traces.append({"type": "scatter", "mode": "lines", "name": name,
                           "meta": {"role": role}, "x": list(axes[0]),
                           "y": list(values) if values is not None else [],
                           "line": {"color": color, "dash": dash, "width": 3}})
        layout = {"xaxis": {"title": {"text": "x"}}, "yaxis": {"title": {"text": "y"}}}
        return _figure(traces, layout, title, height=420, style=style)
    fits = [(name, values, role) for name, values, role in (
        ("trained net (live)", trained, "trained"),
        ("rebuilt from the convex program", convex, "convex")) if values is not None
        or role == "trained"]
    traces, layout = [], {}
    width = 1.0 / max(len(fits), 1)
    low, high = float(y.min()), float(y.max())
    for i, (name, values, role) in enumerate(fits):
        suffix = "" if i == 0 else str(i + 1)
        z = np.asarray(values).reshape(len(axes[1]), len(axes[0])).tolist() \
            if values is not None else []
        traces.append({"type": "heatmap", "x": list(axes[0]), "y": list(axes[1]), "z": z,
                       "meta": {"role": role, "shape": [len(axes[1]), len(axes[0])]},
                       "xaxis": f"x{suffix}", "yaxis": f"y{suffix}", "zmin": low, "zmax": high,
                       "colorscale": "RdBu", "reversescale": True, "name": name,
                       "showscale": i == len(fits) - 1})
        traces.append({"type": "scatter", "mode": "markers", "x": X[:, 0].tolist(),
                       "y": X[:, 1].tolist(), "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
                       "showlegend": False, "name": "data",
                       "marker": {"color": y.tolist(), "colorscale": "RdBu",
                                  "reversescale": True, "cmin": low, "cmax": high,
                                  "size": 9 * style.marker,
                                  "line": {"color": "black", "width": 1}}})
        layout[f"xaxis{suffix}"] = {"domain": [i * width + 0.03, (i + 1) * width - 0.03],
                                    "title": {"text": f"x1 — {name}"}}
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "title": {"text": "x2"}}
    return _figure(traces, layout, title, height=440, style=style)


def comparison_figure(curves: Sequence[tuple[str, Sequence[Snapshot]]], title: str = "",
                      interpolation: bool = False, style: FigureStyle = SCREEN) -> dict:
    """Training curves of several nets in one panel, one color per net (every restart drawn,
    feasible iterates only): for deep ReLU nets, where no dual is known, this is the
    comparison there is. A trace's meta names its net (`curve`) and restart, so a stream
    extends it."""
    traces = []
    for index, (label, snapshots) in enumerate(curves):
        for restart, snaps in sorted(by_restart(snapshots).items()):
            series = restart_series(thin(snaps), None, interpolation, 0.0)[restart]
            traces.append(comparison_trace(index, label, restart, style) |
                          {"x": series["feasible"][0], "y": series["feasible"][1]})
    layout = {"xaxis": {"title": {"text": "iteration"}},
              "yaxis": {"title": {"text": "objective (an upper bound on each optimum)"},
                        **log_axis()}}
    return _figure(traces, layout, title, height=420, style=style)


def comparison_trace(index: int, label: str, restart: int, style: FigureStyle = SCREEN) -> dict:
    """The trace of one restart of net `index` in :func:`comparison_figure`."""
    return {"type": "scatter", "mode": "lines", "legendgroup": label, "name": label,
            "showlegend": restart == 0, "meta": {"curve": index, "restart": restart,
                                                 "series": "feasible"},
            "x": [], "y": [], "line": {"color": COLORS[index % len(COLORS)],
                                       "width": 2 * style.marker}}


def gap_curves_figure(curves: Sequence[dict], x_label: str, series_label: str,
                      theory: Sequence[dict] = (), title: str = "",
                      style: FigureStyle = SCREEN) -> dict:
    """Top: P/D against x; bottom: P - D. One color per series value, solid for standard and
    dotted for parallel nets; the band is min..max over seeds; theory curves dashed black."""
    traces = []
    values = sorted({str(c["series"]) for c in curves} | {str(c["series"]) for c in theory})
    color = {v: COLORS[i % len(COLORS)] for i, v in enumerate(values)}
    for curve in curves:
        name = curve["arch"] + ("" if curve["series"] is None
                                else f", {series_label} = {curve['series']}")
        line = {"color": color[str(curve["series"])],
                "dash": "solid" if curve["arch"] == "standard" else "dot", "width": 3}
        for key, yaxis in (("ratio", "y"), ("gap", "y2")):
            if len(curve["x"]) > 1 and max(curve["seeds"]) > 1:  # the band over seeds
                traces.append({"type": "scatter", "mode": "lines", "x": curve["x"] +
                               curve["x"][::-1], "y": curve[f"{key}_high"] +
                               curve[f"{key}_low"][::-1], "fill": "toself", "opacity": 0.2,
                               "line": {"width": 0, "color": line["color"]}, "yaxis": yaxis,
                               "hoverinfo": "skip", "showlegend": False, "legendgroup": name})
            traces.append({"type": "scatter", "mode": "lines+markers", "name": name,
                           "legendgroup": name, "showlegend": key == "ratio", "x": curve["x"],
                           "y": curve[key], "line": line, "marker": {"size": 9},
                           "yaxis": yaxis})
    for index, curve in enumerate(theory):
        traces.append({"type": "scatter", "mode": "lines", "name": "theory: r^((L-2)/2), 1",
                       "legendgroup": "theory", "showlegend": index == 0, "x": curve["x"],
                       "y": curve["ratio"], "line": {"color": CLOSED_COLOR, "dash": "dash",
                                                     "width": 1.5}, "yaxis": "y"})
    ticks = sorted({x for c in curves for x in c["x"]} | {x for c in theory for x in c["x"]})
    layout = {"xaxis": {"title": {"text": x_label}, "anchor": "y2", "tickmode": "array",
                        "tickvals": ticks},
              "yaxis": {"title": {"text": "P / D"}, "domain": [0.45, 1.0]},
              "yaxis2": {"title": {"text": "P - D"}, "domain": [0.0, 0.38]}}
    return _figure(traces, layout, title, height=620, style=style)

