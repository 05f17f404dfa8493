"""Verdicts and formulas shown next to the numbers."""

import pytest

from dualviz import explain
from dualviz.config import Experiment
from dualviz.explain import formula_latex, gap_verdict

HA_SIGMA = [2.14035951, 1.19115959]


def test_zero_and_positive_gaps():
    assert gap_verdict(3.3315191, 3.3315191 + 1e-9).startswith("zero duality gap")
    verdict = gap_verdict(4.6464895, 3.3315191)
    assert verdict.startswith("positive duality gap: P - D = 1.3150")
    assert "39.47% of D" in verdict


def test_training_stuck_above_a_zero_gap_optimum_is_not_called_a_gap():
    verdict = gap_verdict(6.787173, 6.782364, closed_primal=6.782364)
    assert verdict.startswith("zero duality gap in theory")
    assert "local minimum" in verdict


def test_training_stuck_above_a_positive_gap_optimum_says_both():
    verdict = gap_verdict(5.0, 3.3315191, closed_primal=4.6464895)
    assert verdict.startswith("positive duality gap")
    assert "0.3535 above the closed-form optimum 4.6465" in verdict


def test_missing_values_give_no_verdict():
    assert gap_verdict(None, 1.0).startswith("no verdict yet")
    assert gap_verdict(1.0, None).startswith("no dual here: P = 1.0000 is an upper bound")


@pytest.mark.parametrize(("arch", "regularization", "expected"), [
    ("standard", "rescaled", ["S_{2/L}", "2.14^{2/3} + 1.191^{2/3}", "= 4.6465"]),
    ("parallel", "rescaled", ["\\|W^*\\|_*", "(2.14 + 1.191)", "= 3.3315"]),
    ("standard", "weight-decay", ["\\sum_i \\sigma_i^{2/L}", "= 4.1768"]),
    ("parallel", "weight-decay", ["P_{\\text{standard}}", "= 4.1768", "= 3.3460"]),
])
def test_formula_plugs_in_the_numbers(arch, regularization, expected):
    exp = Experiment(arch=arch, regularization=regularization, depth=3)
    latex = formula_latex(exp, HA_SIGMA, primal=4.1767764639 if regularization == "weight-decay"
                          else 4.6464895083, dual=3.3459501326 if regularization == "weight-decay"
                          else 3.3315191)
    for piece in expected:
        assert piece in latex


def test_no_formula_without_a_closed_form():
    assert formula_latex(Experiment(objective="squared"), HA_SIGMA, 1.0, 1.0) is None
    assert formula_latex(Experiment(), None, 1.0, 1.0) is None


def test_certificate_sentence_gives_the_bracket_and_says_whether_it_is_certified():
    cert = {"lower": 1.0, "upper": 1.0 + 1e-10, "relative_gap": 1e-10, "certified": True,
            "residual": 0.0}
    text = explain.certificate_sentence(cert)
    assert text.startswith("certified optimal to 1.0e-10") and "[1, 1.0000000001]" in text
    loose = {**cert, "upper": 1.5, "relative_gap": 1 / 3, "certified": False}
    text = explain.certificate_sentence(loose)
    assert text.startswith("not certified") and "[1, 1.5]" in text and "3.3e-01" in text
    fitted = {**cert, "residual": 2e-9}
    assert "relative residual of 2.0e-09" in explain.certificate_sentence(fitted)
    assert explain.certificate_sentence(None).startswith("no certificate")
