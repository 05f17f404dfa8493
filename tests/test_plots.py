"""Figures are pure functions of results: check what they draw."""

import pytest

from dualviz.plots import (
    MAX_POINTS_PER_TRACE,
    layer_spectra_figure,
    objective_figure,
    spectrum_figure,
    thin,
)
from dualviz.results import Snapshot


def snaps(restarts=2, per_restart=1000):
    return [Snapshot(restart=r, iteration=i, objective=5.0 + 1.0 / (i + 1), loss=0.0,
                     regularizer=5.0, residual=0.0, singular_values=[2.0, 1.0],
                     layer_singular_values=[[1.0, 0.5]], elapsed=0.0,
                     done=i == per_restart - 1)
            for r in range(restarts) for i in range(per_restart)]


def test_thin_keeps_the_ends_and_the_limit():
    points = list(range(10_000))
    out = thin(points, 400)
    assert len(out) <= 400 and out[0] == 0 and out[-1] == 9_999
    assert thin(points[:10], 400) == points[:10]


def test_objective_figure_has_the_series_of_every_restart_and_labelled_bounds():
    fig = objective_figure(snaps(), dual=4.0, closed_primal=5.0)
    solid = [t for t in fig["data"] if t["meta"]["series"] == "feasible"]
    excess = [t for t in fig["data"] if t.get("yaxis") == "y2"]
    assert [t["name"] for t in solid] == ["restart 1", "restart 2"]
    assert len(excess) == 2 and len(fig["data"]) == 6  # squared loss: no residual panel
    assert all(len(t["x"]) <= MAX_POINTS_PER_TRACE for t in fig["data"])
    assert fig["layout"]["yaxis2"]["type"] == "log"
    assert excess[0]["y"][-1] == pytest.approx(1.0 + 1.0 / 1000)  # P - D
    labels = [a["text"] for a in fig["layout"]["annotations"]]
    assert labels == ["D = 4 (lower bound on P)", "theory P* = 5"]
    assert [s["y0"] for s in fig["layout"]["shapes"]] == [4.0, 5.0]


def interpolation_run(dual=4.0):
    """An augmented-Lagrangian run: infeasible iterates far below D, then feasible ones."""
    out = []
    for i in range(40):
        residual = 10.0 ** (-i / 4)  # feasible (<= 1e-6) from i = 24 on
        objective = dual * (0.5 + 0.5 * i / 23) if i < 24 else dual + 1.0 / i
        out.append(Snapshot(restart=0, iteration=i, objective=objective, loss=0.0,
                            regularizer=objective, residual=residual, singular_values=[1.0],
                            layer_singular_values=[[1.0]], elapsed=0.0, done=i == 39))
    return out


def test_no_feasible_curve_is_drawn_below_the_dual():
    run = interpolation_run()
    fig = objective_figure(run, dual=4.0, closed_primal=None, interpolation=True,
                           floor=1e-9)
    by_series = {t["meta"]["series"]: t for t in fig["data"]}
    solid = [y for y in by_series["feasible"]["y"] if y is not None]
    assert solid and min(solid) >= 4.0  # every solid point is a feasible iterate
    faded = [y for y in by_series["infeasible"]["y"] if y is not None]
    assert min(faded) < 4.0 and by_series["infeasible"]["opacity"] < 0.5
    # the faded stretch meets the solid one at the first feasible iterate
    assert by_series["infeasible"]["x"][-2] == by_series["feasible"]["x"][24] == 24
    excess = by_series["excess"]["y"]
    assert all(e is None for e in excess[:24]) and all(e > 0 for e in excess[24:])
    assert by_series["residual"]["yaxis"] == "y3" and fig["layout"]["yaxis3"]["type"] == "log"


def test_streamed_batches_draw_what_one_drawing_draws():
    from dualviz.plots import restart_series

    run = interpolation_run()
    whole = restart_series(run, 4.0, True, 1e-9)
    first = restart_series(run[:20], 4.0, True, 1e-9)
    rest = restart_series(run[20:], 4.0, True, 1e-9, before={0: run[19]})
    for name, (x, y) in whole[0].items():
        assert first[0][name][0] + rest[0][name][0] == x, name
        assert first[0][name][1] + rest[0][name][1] == y, name


def test_objective_figure_without_bounds_draws_only_the_curves():
    fig = objective_figure(snaps(1, 5), dual=None, closed_primal=None)
    assert [t["meta"]["series"] for t in fig["data"]] == ["feasible", "infeasible"]
    assert not fig["layout"]["shapes"]


def test_spectrum_figures_show_each_series_present():
    fig = spectrum_figure([2.0, 1.0, 1e-14], [1.9, 1.1], None)
    assert [t["name"] for t in fig["data"]] == ["target W*", "learned (live)"]
    assert fig["data"][0]["y"] == [2.0, 1.0]  # numerically zero values are left out
    cut = spectrum_figure([2.6, 1.45, 0.9], None, [2.2, 0.0, 0.0], threshold=1.5)
    closed = next(t for t in cut["data"] if t["meta"]["role"] == "closed")
    assert closed["x"] == [1, 2, 3] and closed["y"] == [2.2, 0.0, 0.0]  # cut values: zeros
    assert cut["layout"]["shapes"][0]["y0"] == 1.5
    layers = layer_spectra_figure([[1.0, 0.5], [2.0]])
    assert [t["name"] for t in layers["data"]] == ["layer 1", "layer 2"]


def test_gap_curves_figure_draws_each_curve_its_band_and_the_theory():
    import plotly.graph_objects as go

    from dualviz.plots import gap_curves_figure

    line = {"arch": "standard", "series": 2, "x": [2, 3], "ratio": [1.0, 1.4],
            "ratio_low": [1.0, 1.3], "ratio_high": [1.0, 1.5], "gap": [0.0, 0.8],
            "gap_low": [0.0, 0.7], "gap_high": [0.0, 0.9], "seeds": [2, 2], "missing": 0}
    parallel = {**line, "arch": "parallel", "seeds": [1, 1]}
    theory = [{"arch": "standard", "series": 2, "x": [2, 3], "ratio": [1.0, 2 ** 0.5]}]
    fig = gap_curves_figure([line, parallel], "depth", "target rank", theory)
    traces = go.Figure(fig).data  # plotly's reading of the JSON (defaults filled in)
    names = [t.name for t in traces if t.showlegend is not False]
    assert names == ["standard, target rank = 2", "parallel, target rank = 2",
                     "theory: r^((L-2)/2), 1"]
    bands = [t for t in traces if t.fill == "toself"]
    assert len(bands) == 2  # ratio and gap bands, for the curve with 2 seeds only
    dashes = {t.name: t.line.dash for t in traces if t.mode == "lines+markers"}
    assert dashes == {"standard, target rank = 2": "solid", "parallel, target rank = 2": "dot"}
    assert {t.yaxis for t in traces} == {"y", "y2"}


def test_figures_are_the_json_plotly_itself_makes_of_them():
    """Figures are plain Plotly JSON (a go.Figure cost the server a seventh of its time): the
    same JSON, default template included, as plotly's own figure of it, so a plotly upgrade
    that changed what a figure means fails here."""
    import json

    import plotly.graph_objects as go

    for fig in (objective_figure(snaps(), dual=4.0, closed_primal=5.0),
                spectrum_figure([3.0, 2.0, 1.0], [2.9, 1.5, 0.2], [3.0, 2.0, 0.0],
                                threshold=0.5)):
        assert json.dumps(fig, sort_keys=True) == \
            json.dumps(go.Figure(fig).to_plotly_json(), sort_keys=True)
