"""Figures: pure functions from results to Plotly figures (no Streamlit, no solving)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .primal import Snapshot

MAX_POINTS_PER_TRACE = 400  # keeps redraws light in the browser while a job streams
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf", "#d62728")
DUAL_COLOR, CLOSED_COLOR, TARGET_COLOR = "#d62728", "#000000", "#7f7f7f"
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


def objective_figure(snapshots: Sequence[Snapshot], dual: float | None,
                     closed_primal: float | None, dual_label: str = "dual D",
                     title: str = "") -> go.Figure:
    """Top: the primal objective of every restart against iteration, with the dual value and
    the closed-form primal as labelled lines. Bottom (log scale): the excess over the dual."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        row_heights=[0.6, 0.4],
                        subplot_titles=("primal objective", "primal - dual (log scale)"))
    for restart, snaps in sorted(by_restart(snapshots).items()):
        snaps = thin(snaps)
        color = COLORS[restart % len(COLORS)]
        x = [s.iteration for s in snaps]
        fig.add_trace(go.Scatter(x=x, y=[s.objective for s in snaps], mode="lines",
                                 name=f"restart {restart + 1}", line={"color": color},
                                 legendgroup=str(restart)), row=1, col=1)
        if dual is not None:
            excess = [s.objective - dual for s in snaps]
            fig.add_trace(go.Scatter(
                x=x, y=[e if e > 0 else None for e in excess], mode="lines",
                line={"color": color, "dash": "dot"}, legendgroup=str(restart),
                showlegend=False, name=f"restart {restart + 1}: P - D"), row=2, col=1)
    if dual is not None:
        fig.add_hline(y=dual, line={"color": DUAL_COLOR, "dash": "dash", "width": 2}, row=1, col=1,
                      annotation_text=f"{dual_label} = {dual:.4f}",
                      annotation_position="bottom right")
    if closed_primal is not None:
        fig.add_hline(y=closed_primal, line={"color": CLOSED_COLOR, "dash": "dot", "width": 2},
                      row=1, col=1, annotation_text=f"closed-form P = {closed_primal:.4f}",
                      annotation_position="top right")
    values = [s.objective for s in snapshots if np.isfinite(s.objective)]
    levels = [v for v in (dual, closed_primal) if v is not None]
    if values and levels:
        # Early iterates can be far off; keep the bounds and the end of training in view.
        finals = [v for v in values[-20:]] + levels
        low, high = min(finals), max(finals)
        pad = 0.25 * (high - low) + 0.05 * abs(high) + 1e-9
        fig.update_yaxes(range=[low - pad, high + 3 * pad], row=1, col=1)
    fig.update_yaxes(type="log", row=2, col=1, exponentformat="power")
    fig.update_xaxes(title_text="iteration", row=2, col=1)
    return _style(fig, title, height=560)


def spectrum_figure(target: Sequence[float] | None, learned: Sequence[float] | None,
                    closed_form: Sequence[float] | None, title: str = "") -> go.Figure:
    """Singular values of the target W*, of the learned end-to-end matrix and of the
    closed-form optimum, against their index."""
    fig = go.Figure()
    series = (("target W*", target, TARGET_COLOR, "square-open", 14),
              ("closed form", closed_form, CLOSED_COLOR, "x", 12),
              ("learned (live)", learned, COLORS[0], "circle", 10))
    for name, values, color, symbol, size in series:
        if values is None:
            continue
        values = [v for v in values if v > 1e-10 * max(max(values, default=0), 1e-300)]
        fig.add_trace(go.Scatter(x=list(range(1, len(values) + 1)), y=values, mode="markers",
                                 name=name, marker={"color": color, "symbol": symbol,
                                                    "size": size, "line": {"width": 2}}))
    fig.update_xaxes(title_text="index i", dtick=1)
    fig.update_yaxes(title_text="singular value", rangemode="tozero")
    return _style(fig, title, height=380)


def layer_spectra_figure(layers: Sequence[Sequence[float]] | None, title: str = "") -> go.Figure:
    """Singular values of each layer (of the equivalent wide network for a parallel net)."""
    fig = go.Figure()
    for i, values in enumerate(layers or []):
        fig.add_trace(go.Scatter(x=list(range(1, len(values) + 1)), y=list(values),
                                 mode="lines+markers", name=f"layer {i + 1}",
                                 line={"color": COLORS[i % len(COLORS)]}))
    fig.update_xaxes(title_text="index i")
    fig.update_yaxes(title_text="singular value", rangemode="tozero")
    return _style(fig, title, height=380)


def _style(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(title=title or None, height=height, font={"size": FONT_SIZE},
                      margin={"l": 60, "r": 20, "t": 60 if title else 40, "b": 50},
                      legend={"orientation": "h", "y": -0.15}, template="plotly_white",
                      uirevision="keep")  # keep the user's zoom while live data arrives
    return fig
