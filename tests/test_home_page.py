"""AppTest of the home page: it renders, and its instant preview follows the controls."""

from pathlib import Path

import pytest
from apptest_support import shown
from streamlit.testing.v1 import AppTest

APP = Path(__file__).parents[1] / "app.py"


@pytest.fixture
def home():
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    assert not at.exception
    return at


def metric(at, label):
    return float(next(m for m in at.metric if m.label == label).value)


def test_home_shows_a_positive_gap_at_depth_three_rank_two(home):
    assert metric(home, "P / D") == pytest.approx(2**0.5, abs=1e-4)
    assert home.info and "Positive gap" in home.info[0].value


def test_home_preview_closes_the_gap_at_depth_two(home):
    next(s for s in home.slider if s.label == "Depth L").set_value(2).run()
    assert not home.exception
    assert metric(home, "P / D") == pytest.approx(1.0, abs=1e-12)
    assert home.success and "Zero gap" in home.success[0].value


def test_home_preview_grows_with_rank(home):
    next(s for s in home.slider if s.label == "rank(W*)").set_value(4).run()
    # Equal singular values: P/D = r^{(L-2)/2} = 2 for r = 4, L = 3.
    assert metric(home, "P / D") == pytest.approx(2.0, abs=1e-4)


def test_home_links_to_the_explorers(home):
    links = home.get("page_link")[:4]
    assert [link.proto.label for link in links] == ["Deep-linear explorer", "ReLU networks",
                                                    "Gap curves", "Theory"]
    assert [link.proto.page for link in links] == ["Deep_linear_explorer", "ReLU_networks",
                                                   "Gap_curves", "Theory"]


def test_home_lists_every_preset_as_a_link_with_its_query(home):
    from urllib.parse import parse_qsl

    from dualviz.presets import PRESETS

    links = home.get("page_link")[4:]
    assert len(links) == len(PRESETS)
    for link, preset in zip(links, PRESETS, strict=True):
        assert preset.title in link.proto.label
        # the full state of the run, not only what the preset sets
        assert dict(parse_qsl(link.proto.query_string)) == preset.params
    text = " ".join(m.value for m in home.markdown)
    assert all(p.look_for in text for p in PRESETS)


def test_a_link_sets_the_preview_controls():
    from dualviz.linear.closed_forms import equal_spectrum_ratio

    at = AppTest.from_file(str(APP))
    at.query_params = {"preview-depth": "5", "preview-rank": "3", "preview-spectrum": "equal"}
    at.run()
    assert [s.value for s in at.slider] == [5, 3] and at.selectbox[0].value == "equal"
    ratio = float(next(m for m in at.metric if m.label == "P / D").value)
    assert ratio == pytest.approx(equal_spectrum_ratio(3, 5, "standard"), abs=1e-4)
    at = AppTest.from_file(str(APP))
    at.query_params = {"preview-depth": "99", "preview-spectrum": "![x](http://evil/x.png)"}
    at.run()  # out of range: the nearest value; not a choice: the default; each with a note
    assert not at.exception and at.slider[0].value == 10
    assert at.selectbox[0].value == "equal"
    warnings = [w.value for w in at.warning]
    assert any(shown(w).startswith("Adjusted: preview-depth: 99 is outside") for w in warnings)
    assert any("` preview-spectrum: '![x](http://evil/x.png)' is not" in w
               for w in warnings)  # verbatim in a code span: shown as typed, never an image
    assert at.query_params["preview-depth"] == "10"
