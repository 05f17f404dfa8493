"""Figures are pure functions of results: check what they draw."""

import pytest

from dualviz.plots import (
    MAX_POINTS_PER_TRACE,
    layer_spectra_figure,
    objective_figure,
    spectrum_figure,
    thin,
)
from dualviz.primal import Snapshot


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


def test_objective_figure_has_a_curve_per_restart_and_labelled_bounds():
    fig = objective_figure(snaps(), dual=4.0, closed_primal=5.0).to_dict()
    top = [t for t in fig["data"] if t.get("yaxis", "y") == "y"]
    bottom = [t for t in fig["data"] if t.get("yaxis") == "y2"]
    assert [t["name"] for t in top] == ["restart 1", "restart 2"]
    assert len(bottom) == 2
    assert all(len(t["x"]) <= MAX_POINTS_PER_TRACE for t in fig["data"])
    assert fig["layout"]["yaxis2"]["type"] == "log"
    assert bottom[0]["y"][-1] == pytest.approx(1.0 + 1.0 / 1000)  # P - D
    labels = [a["text"] for a in fig["layout"]["annotations"]]
    assert labels == ["D = 4.0000", "theory P* = 5.0000"]
    assert [s["y0"] for s in fig["layout"]["shapes"]] == [4.0, 5.0]


def test_objective_figure_without_bounds_draws_only_the_curves():
    fig = objective_figure(snaps(1, 5), dual=None, closed_primal=None).to_dict()
    assert len(fig["data"]) == 1
    assert not fig["layout"]["shapes"]


def test_spectrum_figures_show_each_series_present():
    fig = spectrum_figure([2.0, 1.0, 1e-14], [1.9, 1.1], None).to_dict()
    assert [t["name"] for t in fig["data"]] == ["target W*", "learned (live)"]
    assert fig["data"][0]["y"] == [2.0, 1.0]  # numerically zero values are left out
    layers = layer_spectra_figure([[1.0, 0.5], [2.0]]).to_dict()
    assert [t["name"] for t in layers["data"]] == ["layer 1", "layer 2"]


def test_gap_curves_figure_draws_each_curve_its_band_and_the_theory():
    from dualviz.plots import gap_curves_figure

    line = {"arch": "standard", "series": 2, "x": [2, 3], "ratio": [1.0, 1.4],
            "ratio_low": [1.0, 1.3], "ratio_high": [1.0, 1.5], "gap": [0.0, 0.8],
            "gap_low": [0.0, 0.7], "gap_high": [0.0, 0.9], "seeds": [2, 2], "missing": 0}
    parallel = {**line, "arch": "parallel", "seeds": [1, 1]}
    theory = [{"arch": "standard", "series": 2, "x": [2, 3], "ratio": [1.0, 2 ** 0.5]}]
    fig = gap_curves_figure([line, parallel], "depth", "target rank", theory)
    names = [t.name for t in fig.data if t.showlegend is not False]
    assert names == ["standard, target rank = 2", "parallel, target rank = 2",
                     "theory: r^((L-2)/2), 1"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(bands) == 2  # ratio and gap bands, for the curve with 2 seeds only
    dashes = {t.name: t.line.dash for t in fig.data if t.mode == "lines+markers"}
    assert dashes == {"standard, target rank = 2": "solid", "parallel, target rank = 2": "dot"}
    assert {t.yaxis for t in fig.data} == {"y", "y2"}


def test_figures_export_as_png_and_svg_through_kaleido_and_chromium():
    from dualviz.plots import image_bytes

    fig = objective_figure(snaps(restarts=1, per_restart=50), 5.0, None)
    assert image_bytes(fig, "png").startswith(b"\x89PNG\r\n\x1a\n")
    svg = image_bytes(fig, "svg")
    assert svg.lstrip().startswith(b"<svg") and b"objective" in svg
    with pytest.raises(ValueError):
        image_bytes(fig, "gif")
