"""Presenter mode and controls hidden by a link (present=1, hide=...)."""

from apptest_support import open_page, panel

from dualviz.ui.state import view_options

PAGE = "1_Deep_linear_explorer.py"


def labels(at) -> set[str]:
    widgets = [*at.slider, *at.selectbox, *at.number_input, *at.checkbox]
    return {w.label for w in widgets}


def test_view_options_parse_and_note_bad_values():
    present, hidden, notes = view_options({"present": "1", "hide": "depth,beta"})
    assert present and {"depth", "beta", "optimizer", "iterations"} <= hidden and notes == []
    present, hidden, notes = view_options({"present": "<b>x</b>", "hide": "nope,depth"})
    assert not present and hidden == {"depth"} and len(notes) == 2
    assert view_options({}) == (False, set(), [])


def test_presenter_link_hides_solver_and_chosen_controls_and_keeps_their_values():
    at = open_page(PAGE, "present=1&hide=depth,target-rank&depth=4&target-rank=3"
                         "&iterations=50&restarts=1")
    shown = labels(at)
    assert "Depth L" not in shown and "rank(W*)" not in shown
    assert "Optimizer" not in shown and "Iterations" not in shown  # the solver group
    assert "Width" in shown or "Branches" in shown  # the rest is still there
    assert at.query_params["present"] == "1" and at.query_params["hide"] == "depth,target-rank"
    assert at.query_params["depth"] == "4" and at.query_params["target-rank"] == "3"
    assert any("font-size: 125%" in m.value for m in at.markdown)  # larger, never zoomed
    assert not any("zoom" in m.value for m in at.markdown)
    assert panel(at)["presenter"] is True  # the live panel draws for a projector too


def test_without_present_every_control_is_shown():
    at = open_page(PAGE, "iterations=50&restarts=1")
    assert {"Depth L", "rank(W*)", "Optimizer"} <= labels(at)
    assert not any("font-size: 125%" in m.value for m in at.markdown)
    assert panel(at)["presenter"] is False
