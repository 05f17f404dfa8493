"""Figures: pure functions from results to Plotly figures (no Streamlit, no solving).

Figures are built from plain dicts without Plotly's property validation: a live page redraws
them several times a second, and validation costs tens of milliseconds per figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from .primal import Snapshot

MAX_POINTS_PER_TRACE = 400  # keeps redraws light in the browser while a job streams
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf", "#d62728")
DUAL_COLOR, CLOSED_COLOR, TARGET_COLOR = "#d62728", "#222222", "#7f7f7f"
FONT_SIZE = 15


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
           position: str) -> tuple[dict, dict]:
    """A labelled horizontal line across one panel: (shape, annotation)."""
    shape = {"type": "line", "xref": f"{xaxis} domain", "x0": 0, "x1": 1, "yref": yaxis,
             "y0": y, "y1": y, "line": {"color": color, "dash": dash, "width": 2}}
    note = {"xref": f"{xaxis} domain", "x": 1, "xanchor": "right", "yref": yaxis, "y": y,
            "yanchor": position, "text": label, "showarrow": False,
            "font": {"color": color, "size": FONT_SIZE - 1}}
    return shape, note


def objective_figure(snapshots: Sequence[Snapshot], dual: float | None,
                     closed_primal: float | None, dual_label: str = "D",
                     title: str = "") -> go.Figure:
    """Top: the primal objective of every restart against iteration, with the dual value and
    the closed-form primal as labelled lines. Bottom (log scale): the excess over the dual."""
    traces: list[dict] = []
    for restart, snaps in sorted(by_restart(snapshots).items()):
        snaps = thin(snaps)
        color = COLORS[restart % len(COLORS)]
        x = [s.iteration for s in snaps]
        traces.append({"type": "scatter", "mode": "lines", "x": x,
                       "y": [s.objective for s in snaps], "name": f"restart {restart + 1}",
                       "line": {"color": color}, "legendgroup": str(restart)})
        if dual is not None:
            excess = [s.objective - dual for s in snaps]
            traces.append({"type": "scatter", "mode": "lines", "x": x, "xaxis": "x2",
                           "yaxis": "y2", "y": [e if e > 0 else None for e in excess],
                           "name": f"restart {restart + 1}: P - D", "showlegend": False,
                           "legendgroup": str(restart), "line": {"color": color, "dash": "dot"}})
    shapes, notes = [], []
    for value, label, color, dash, position in (
            (dual, f"{dual_label} = {dual:.4f}" if dual is not None else "", DUAL_COLOR,
             "dash", "top"),
            (closed_primal, f"theory P* = {closed_primal:.4f}"
             if closed_primal is not None else "", CLOSED_COLOR, "dot", "bottom")):
        if value is not None:
            shape, note = _level(value, label, color, dash, "x", "y", position)
            shapes.append(shape)
            notes.append(note)
    top: dict = {"domain": [0.45, 1.0], "title": {"text": "primal objective"}}
    latest = [snaps[-1].objective for snaps in by_restart(snapshots).values()]
    latest = [v for v in latest if np.isfinite(v)]
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
        "xaxis2": {"anchor": "y2", "title": {"text": "iteration"}},
        "yaxis2": {"domain": [0.0, 0.33], "type": "log", "exponentformat": "power",
                   "title": {"text": "P - D (log)"}},
        "shapes": shapes, "annotations": notes,
    }
    return _figure(traces, layout, title, height=560)


def spectrum_figure(target: Sequence[float] | None, learned: Sequence[float] | None,
                    closed_form: Sequence[float] | None, title: str = "") -> go.Figure:
    """Singular values of the target W*, of the learned end-to-end matrix and of the
    closed-form optimum, against their index."""
    traces = []
    series = (("target W*", target, TARGET_COLOR, "square-open", 16),
              ("closed form", closed_form, CLOSED_COLOR, "x-thin-open", 14),
              ("learned (live)", learned, COLORS[0], "circle", 9))
    for name, values, color, symbol, size in series:
        if values is None:
            continue
        top = max(values, default=0.0)
        values = [v for v in values if v > 1e-10 * max(top, 1e-300)]
        traces.append({"type": "scatter", "mode": "markers", "name": name,
                       "x": list(range(1, len(values) + 1)), "y": values,
                       "marker": {"color": color, "symbol": symbol, "size": size,
                                  "line": {"width": 2, "color": color}}})
    layout = {"xaxis": {"title": {"text": "index i"}, "dtick": 1},
              "yaxis": {"title": {"text": "singular value"}, "rangemode": "tozero"}}
    return _figure(traces, layout, title, height=420)


def layer_spectra_figure(layers: Sequence[Sequence[float]] | None, title: str = "") -> go.Figure:
    """Singular values of each layer (of the equivalent wide network for a parallel net)."""
    traces = [{"type": "scatter", "mode": "lines+markers", "name": f"layer {i + 1}",
               "x": list(range(1, len(values) + 1)), "y": list(values),
               "line": {"color": COLORS[i % len(COLORS)]}}
              for i, values in enumerate(layers or [])]
    layout = {"xaxis": {"title": {"text": "index i"}},
              "yaxis": {"title": {"text": "singular value"}, "rangemode": "tozero"}}
    return _figure(traces, layout, title, height=420)


def _figure(traces: list[dict], layout: dict, title: str, height: int) -> go.Figure:
    layout = {**layout, "height": height, "font": {"size": FONT_SIZE},
              "margin": {"l": 70, "r": 20, "t": 70 if title else 40, "b": 50},
              # Legend above the plot, clear of the axis titles.
              "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
              "uirevision": "keep"}  # keep the user's zoom while live data arrives
    if title:
        layout["title"] = {"text": title}
    return go.Figure({"data": traces, "layout": layout}, _validate=False)


def fit_figure(X: np.ndarray, y: np.ndarray, axes: Sequence[Sequence[float]],
               trained: Sequence[float] | None, convex: Sequence[float] | None,
               title: str = "") -> go.Figure:
    """The data and the fitted functions: the trained net (live) and the net rebuilt from the
    convex solution. 1-D inputs: curves over the points; 2-D: one heatmap per fit, points on top.
    """
    y = np.asarray(y, dtype=float).ravel()
    if len(axes) == 1:
        traces = [{"type": "scatter", "mode": "markers", "name": "data", "x": X[:, 0].tolist(),
                   "y": y.tolist(), "marker": {"color": TARGET_COLOR, "size": 9}}]
        for name, values, color, dash in (("trained net (live)", trained, COLORS[0], "solid"),
                                          ("rebuilt from the convex program", convex,
                                           DUAL_COLOR, "dash")):
            if values is not None:
                traces.append({"type": "scatter", "mode": "lines", "name": name,
                               "x": list(axes[0]), "y": list(values),
                               "line": {"color": color, "dash": dash, "width": 3}})
        layout = {"xaxis": {"title": {"text": "x"}}, "yaxis": {"title": {"text": "y"}}}
        return _figure(traces, layout, title, height=420)
    fits = [(name, values) for name, values in (("trained net (live)", trained),
                                                ("rebuilt from the convex program", convex))
            if values is not None]
    traces, layout = [], {}
    width = 1.0 / max(len(fits), 1)
    low, high = float(y.min()), float(y.max())
    for i, (name, values) in enumerate(fits):
        suffix = "" if i == 0 else str(i + 1)
        z = np.asarray(values).reshape(len(axes[1]), len(axes[0])).tolist()
        traces.append({"type": "heatmap", "x": list(axes[0]), "y": list(axes[1]), "z": z,
                       "xaxis": f"x{suffix}", "yaxis": f"y{suffix}", "zmin": low, "zmax": high,
                       "colorscale": "RdBu", "reversescale": True, "name": name,
                       "showscale": i == len(fits) - 1})
        traces.append({"type": "scatter", "mode": "markers", "x": X[:, 0].tolist(),
                       "y": X[:, 1].tolist(), "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
                       "showlegend": False, "name": "data",
                       "marker": {"color": y.tolist(), "colorscale": "RdBu",
                                  "reversescale": True, "cmin": low, "cmax": high, "size": 9,
                                  "line": {"color": "black", "width": 1}}})
        layout[f"xaxis{suffix}"] = {"domain": [i * width + 0.03, (i + 1) * width - 0.03],
                                    "title": {"text": f"x1 — {name}"}}
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "title": {"text": "x2"}}
    return _figure(traces, layout, title, height=440)


def comparison_figure(curves: Sequence[tuple[str, Sequence[Snapshot]]],
                      title: str = "") -> go.Figure:
    """Training curves of several nets in one panel, one color per net (every restart drawn):
    for deep ReLU nets, where no dual is known, this is the comparison there is."""
    traces = []
    for index, (label, snapshots) in enumerate(curves):
        color = COLORS[index % len(COLORS)]
        for restart, snaps in sorted(by_restart(snapshots).items()):
            snaps = thin(snaps)
            traces.append({"type": "scatter", "mode": "lines", "legendgroup": label,
                           "name": label, "showlegend": restart == min(
                               s.restart for s in snapshots),
                           "x": [s.iteration for s in snaps],
                           "y": [s.objective for s in snaps], "line": {"color": color}})
    layout = {"xaxis": {"title": {"text": "iteration"}},
              "yaxis": {"title": {"text": "objective (an upper bound on each optimum)"},
                        "type": "log"}}
    return _figure(traces, layout, title, height=420)


def gap_curves_figure(curves: Sequence[dict], x_label: str, series_label: str,
                      theory: Sequence[dict] = (), title: str = "") -> go.Figure:
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
    return _figure(traces, layout, title, height=620)


IMAGE_FORMATS = {"png": "image/png", "svg": "image/svg+xml"}


def image_bytes(figure: go.Figure, fmt: str) -> bytes:
    """The figure as PNG (twice the screen resolution) or SVG, rendered by kaleido in a
    headless Chromium (it finds Debian's /usr/bin/chromium itself); a few seconds each."""
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"format must be one of {', '.join(IMAGE_FORMATS)}, got {fmt!r}")
    return figure.to_image(format=fmt, scale=2 if fmt == "png" else 1)
