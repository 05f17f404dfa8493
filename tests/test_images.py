"""The export browser (dualviz/service/images.py): real kaleido, real Debian chromium."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from dualviz.plots import objective_figure
from dualviz.results import Snapshot
from dualviz.service import images
from dualviz.service.images import ImageFailed, ImagesBusy, Renderer


@pytest.fixture(scope="module")
def renderer():
    one = Renderer()
    yield one
    one.close()


def figure():
    snaps = [Snapshot(restart=0, iteration=i, objective=5.0 + 1.0 / (i + 1), loss=0.0,
                      regularizer=5.0, residual=0.0, singular_values=[2.0, 1.0],
                      layer_singular_values=[[1.0, 0.5]], elapsed=0.01 * i, done=i == 49)
             for i in range(50)]
    return objective_figure(snaps, 5.0, None)


def test_figures_export_as_png_and_svg(renderer):
    assert renderer.render(figure(), "png").startswith(b"\x89PNG\r\n\x1a\n")
    svg = renderer.render(figure(), "svg")
    assert svg.lstrip().startswith(b"<svg") and b"objective" in svg
    with pytest.raises(ValueError, match="png, svg"):
        renderer.render(figure(), "gif")


def test_the_export_page_loads_only_local_files():
    """kaleido's default page loads MathJax from a CDN: ours names local files only."""
    sources = re.findall(r'src="([^"]+)"', images.offline_page().generate_index())
    assert sources, "the page loads no script: plotly.js missing?"
    for source in sources:
        url = urlparse(source)
        assert url.scheme == "file", source
        assert Path(url.path).is_file(), source


def test_a_hall_of_clicks_gets_one_browser_and_a_bounded_queue(renderer):
    renderer.render(figure(), "svg")  # warm
    started = renderer.started
    results: list = []
    renderer._turn.acquire()  # a render under way: the next ones queue behind it
    try:
        waiting = [threading.Thread(target=lambda: results.append(renderer.render(figure(), "png")))
                   for _ in range(images.MAX_WAITING + 1)]
        for thread in waiting:
            thread.start()
        deadline = time.monotonic() + 10
        while renderer._places._value > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ImagesBusy, match="camera button"):
            renderer.render(figure(), "png")
    finally:
        renderer._turn.release()
    for thread in waiting:
        thread.join(timeout=60)
    assert len(results) == images.MAX_WAITING + 1
    assert all(r.startswith(b"\x89PNG") for r in results)
    assert renderer.started == started  # every queued render used the warm browser


def test_a_figure_the_browser_cannot_draw_fails_alone(renderer):
    renderer.render(figure(), "svg")
    started = renderer.started
    with pytest.raises(ImageFailed, match="non-array figure data"):
        renderer.render({"data": 5, "layout": {}}, "png")
    assert renderer.render(figure(), "svg").lstrip().startswith(b"<svg")
    assert renderer.started == started


def test_an_idle_browser_closes_and_the_next_export_starts_one():
    renderer = Renderer(idle_seconds=0.5)
    try:
        renderer.render(figure(), "svg")
        assert renderer.running
        deadline = time.monotonic() + 15
        while renderer.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not renderer.running
        assert renderer.render(figure(), "svg").lstrip().startswith(b"<svg")
        assert renderer.started == 2
    finally:
        renderer.close()


@pytest.mark.parametrize("low, high", [(2e-3, 5e-3), (0.9e-3, 1.1e-3), (2e-3, 7e-2),
                                       (3e-5, 8e-4), (1e-6, 1e-1), (1e-12, 1e2)])
def test_a_log_axis_labels_its_magnitude_at_any_span(renderer, low, high):
    """Drawn by Plotly itself (the SVG export): the P - D panel of a run whose gap stays
    within one decade had no tick label at all with a tick every decade."""
    from dualviz.plots import log_axis

    svg = renderer.render({"data": [{"type": "scatter", "x": [0, 1], "y": [low, high]}],
                           "layout": {"height": 200, "width": 500, "yaxis": log_axis()}},
                          "svg").decode()
    labels = [re.sub(r"<[^>]+>|\u200b", "", text).replace("\u2212", "-") for text in
              re.findall(r'<g class="ytick">(.*?)</g>', svg)]
    labels = [t for t in labels if t]
    assert 1 <= len(labels) <= 8, labels  # some, and few enough for a short projected panel
    # Every label says its magnitude: a power of ten or a full number (no lone digit, which
    # Plotly draws at 3/4 of the font).
    assert all(re.fullmatch(r"10-?\d+|1|\d*\.\d+", t) for t in labels), labels
