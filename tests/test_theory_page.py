"""The taxonomy: each cell's verdict comes from a live computation and matches the paper."""

import pytest
from apptest_support import open_page

from dualviz.taxonomy import cells


def test_every_cell_has_the_verdict_of_the_paper():
    table = {(c.arch, c.activation, c.depth, c.data): c for c in cells()}
    assert len(table) == 10
    gaps = {key for key, cell in table.items() if not cell.zero_gap}
    assert gaps == {("standard", "linear", 3, ""), ("standard", "ReLU", 3, "rank-one"),
                    ("standard", "ReLU", 3, "general")}
    # three layers, general data: D certified; the standard P is trained (an upper bound)
    par, std = table[("parallel", "ReLU", 3, "general")], table[("standard", "ReLU", 3, "general")]
    assert 0 <= par.primal - par.dual <= 1e-8 * par.primal and not par.trained
    assert std.trained and std.dual == par.dual and std.primal > std.dual
    assert "<=" in std.row()["P (the net's optimum)"] and "at most" in std.row()["verdict"]
    # docs/math.md §9 (HA, rescaled, beta = t = 1, L = 3) and the rank-one sqrt(2)
    assert table[("standard", "linear", 3, "")].primal == pytest.approx(4.6464895083, abs=1e-9)
    assert table[("standard", "linear", 3, "")].dual == pytest.approx(3.3315191000, abs=1e-7)
    assert table[("standard", "ReLU", 3, "rank-one")].ratio == pytest.approx(2 ** 0.5, rel=1e-7)
    two_layer = table[("standard", "ReLU", 2, "")]
    assert 0 <= two_layer.primal - two_layer.dual <= 1e-8 * two_layer.primal


def test_theory_page_shows_the_table_and_the_formulas():
    at = open_page("4_Theory.py")
    frame = at.dataframe[0].value
    assert len(frame) == 10 and list(frame["verdict"]).count("positive gap") == 2
    assert any("general data" in depth for depth in frame["depth"])
    assert any(v.startswith("gap at most") for v in frame["verdict"])
    assert len(at.latex) >= 5
