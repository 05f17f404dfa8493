"""Verdicts and formulas shown next to the numbers."""

import pytest

from dualviz import explain
from dualviz.config import Experiment
from dualviz.explain import gap_verdict
from dualviz.linear.programs import formula_latex

HA_SIGMA = [2.14035951, 1.19115959]


def test_zero_and_positive_gaps_state_their_tolerance():
    verdict = gap_verdict(3.3315191, 3.3315191 + 1e-9).text
    assert verdict.startswith("zero duality gap within training's accuracy")
    assert "0.0001 D" in verdict
    verdict = gap_verdict(4.6464895, 3.3315191).text
    assert verdict.startswith("P - D = 1.31497 (39.47 % of D): the duality gap is at most this")
    # a trained value is an upper bound: 7.3e-5 relative is zero only below the stated 1e-4
    assert gap_verdict(1.0 + 7.3e-5, 1.0).text.startswith("zero duality gap")
    assert gap_verdict(1.0 + 2e-4, 1.0).text.startswith("P - D = 0.0002")


def test_with_a_closed_form_the_gap_is_the_theory_s_and_training_is_judged_apart():
    verdict = gap_verdict(6.787173, 6.782364, closed_primal=6.782364).text
    assert verdict.startswith("zero duality gap: the optimum P* = D = 6.782364 (|P* - D| < 1e-08")
    assert "0.0709% above it: a local minimum" in verdict
    verdict = gap_verdict(4.6464895, 3.3315191, closed_primal=4.6464895083).text
    assert verdict.startswith("positive duality gap: P* - D = 1.31497 (39.47 % of D)")
    assert verdict.endswith("training reached it (P = 4.64649)")
    words = "stopped at P = 5, 7.61% above the known optimum: a local minimum"
    assert gap_verdict(5.0, 3.3315191, 4.6464895, explanation=words).text.endswith(words)


def test_a_dual_above_an_exact_primal_blames_the_dual_never_the_primal():
    verdict = gap_verdict(5.747695, 5.749147, closed_primal=5.747695).text
    assert "exceeds the exact optimum" in verdict and "dual solve is inaccurate" in verdict
    assert "feasible enough" not in verdict


def test_missing_values_give_no_verdict():
    assert gap_verdict(None, 1.0).text.startswith("no verdict yet")
    assert gap_verdict(None, 1.0, explanation="not interpolated: residual 1.0e-03").text.endswith(
        "not interpolated: residual 1.0e-03")
    assert gap_verdict(1.0, None).text.startswith("no dual here: P = 1 is an upper bound")


def test_gaps_are_written_one_way():
    assert explain.gap_text(-1e-9, 4.0) == "0 (|P - D| < 0.0004)"  # never -0.000000
    assert explain.gap_text(1.656854, 4.0) == "1.656854"
    assert explain.relative_text(1.656854, 4.0) == "41.42 % of D"
    assert explain.relative_text(1e-7, 4.0) == "0 % (< 0.01 %)"


@pytest.mark.parametrize(("arch", "regularization", "expected"), [
    ("standard", "rescaled", ["S_{2/L}", "2.14^{2/3} + 1.191^{2/3}", "= 4.6465"]),
    ("parallel", "rescaled", ["\\|W^*\\|_*", "(2.14 + 1.191)", "= 3.3315"]),
    ("standard", "weight-decay", ["\\sum_i \\sigma_i^{2/L}", "= 4.1768"]),
    ("parallel", "weight-decay", ["P_{\\text{standard}} \\;>\\; D", "= 4.1768",
                                  "= 3.3460"]),
])
def test_formula_plugs_in_the_numbers(arch, regularization, expected):
    exp = Experiment(arch=arch, regularization=regularization, depth=3)
    latex = formula_latex(exp, HA_SIGMA, primal=4.1767764639 if regularization == "weight-decay"
                          else 4.6464895083, dual=3.3459501326 if regularization == "weight-decay"
                          else 3.3315191)
    for piece in expected:
        assert piece in latex


def test_the_parallel_weight_decay_formula_says_equal_where_the_closed_forms_agree():
    exp = Experiment(arch="parallel", regularization="weight-decay", depth=2)
    latex = formula_latex(exp, HA_SIGMA, primal=3.3315191, dual=3.3315191)
    assert "P_{\\text{standard}} \\;=\\; D" in latex and ">" not in latex


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
    sampled = explain.certificate_sentence(cert, complete=False)
    assert "the optimum of the program over these patterns lies in" in sampled
    assert "an upper bound on the network's optimum" in sampled


@pytest.mark.parametrize(("args", "kind"), [
    ((3.3315191, 3.3315191 + 1e-9), explain.VerdictKind.ZERO_GAP),
    ((4.6464895, 3.3315191), explain.VerdictKind.POSITIVE_GAP),
    ((4.6464895, 3.3315191, 4.6464895083), explain.VerdictKind.POSITIVE_GAP),
    ((6.787173, 6.782364, 6.782364), explain.VerdictKind.ZERO_GAP),
    ((5.747695, 5.749147, 5.747695), explain.VerdictKind.INCONSISTENT),
    ((3.0, 3.3315191), explain.VerdictKind.INCONSISTENT),
    ((None, 1.0), explain.VerdictKind.PENDING),
    ((1.0, None), explain.VerdictKind.NO_DUAL),
])
def test_a_verdict_says_what_kind_of_statement_it_is(args, kind):
    """The page colours a verdict by its kind, never by the first word of its text."""
    assert gap_verdict(*args).kind == kind
