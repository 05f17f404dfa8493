"""AppTest of the gap-curves page: a sweep started from the page, drawn as it arrives."""

import time

import pytest
from apptest_support import open_page, shown

pytestmark = pytest.mark.server

PAGE = "3_Gap_curves.py"
QUERY = "x-values=2,3&series-values=1,2&iterations=60&restarts=1&objective=squared&n=8&d=4&k=3"


def progress_text(at) -> str:
    return at.get("progress")[0].proto.text


def test_a_sweep_runs_from_the_page_and_its_points_arrive():
    at = open_page(PAGE, QUERY)
    assert at.query_params["x"] == "depth" and at.query_params["series"] == "target-rank"
    assert progress_text(at).startswith("0 of 8 points")
    assert [b.label for b in at.button] == ["Run"]
    at.button[0].click().run()
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and progress_text(at) != "8 of 8 points":
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception
    assert progress_text(at) == "8 of 8 points"
    assert len(at.get("plotly_chart")) == 1
    assert [b.label for b in at.get("download_button")] == ["PNG", "SVG", "Download CSV",
                                                            "Download JSON"]
    # A fresh session on the same link finds every point stored: nothing to run.
    again = open_page(PAGE, QUERY)
    assert progress_text(again) == "8 of 8 points" and [b.label for b in again.button] == [
        "Resume"]


def test_bad_sweep_settings_in_a_link_are_clamped_with_notes():
    at = open_page(PAGE, "x=%3Cscript%3E&x-values=1e308&seeds=nan&series=bogus")
    notes = " ".join(shown(w.value) for w in at.warning)
    assert "x:" in notes and "seeds:" in notes and "series:" in notes
    assert at.query_params["x"] == "depth" and at.query_params["seeds"] == "1"
