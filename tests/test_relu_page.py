"""AppTest of the ReLU page: the two-layer convex program and rank-one three-layer duality."""

import time

import pytest
from apptest_support import metric, open_page, panel, run_until_done

from dualviz.config import Experiment

pytestmark = pytest.mark.server

PAGE = "2_ReLU_networks.py"


def test_first_visit_shows_the_exact_two_layer_optimum_and_the_fitted_functions():
    at = run_until_done(open_page(PAGE, "iterations=1500&restarts=2"))
    assert at.query_params["activation"] == "relu" and at.query_params["depth"] == "2"
    info = " ".join(i.value for i in at.info)
    assert "39 activation patterns, complete" in info and "neurons" in info
    assert "working set" in info and "certified optimal to" in info  # never a bare number
    optimum = metric(at, "Theory P*")
    assert metric(at, "D (convex") == pytest.approx(optimum, abs=1e-6)
    assert metric(at, "P (trained)") == pytest.approx(optimum, rel=1e-3)
    assert [f["id"] for f in panel(at)["figures"]] == ["objective_figure", "fit_figure"]
    assert all("zero duality gap" in s.value for s in at.success) and len(at.success) == 2


def test_the_cvxpy_cross_check_shows_its_certificate_too():
    at = run_until_done(open_page(PAGE, "iterations=200&restarts=1&relu-solver=cvxpy"))
    info = " ".join(i.value for i in at.info)
    assert "CVXPY/CLARABEL" in info and "certified optimal to" in info
    assert at.query_params["relu-solver"] == "cvxpy"


def test_rank_one_mode_explains_the_sign_condition_next_to_the_numbers():
    exp = Experiment(activation="relu", depth=3, dataset="rank-one", n=8, d=3, k=1,
                     objective="interpolation", width=8, branches=8, iterations=2000, restarts=3)
    at = run_until_done(open_page(PAGE, exp.to_query()))
    assert metric(at, "Relative gap") == pytest.approx(2**0.5 - 1, abs=1e-4)
    why = " ".join(m.value for m in at.markdown if m.value.startswith("**Why"))
    assert "P/D = 1.41421" in why and "one sign" in why
    assert any("positive duality gap" in i.value for i in at.info)  # standard
    assert any("zero duality gap" in s.value for s in at.success)  # parallel


def test_vector_output_with_two_layers_fails_with_a_message_and_the_page_works():
    at = open_page(PAGE, "dataset=low-rank&k=3&depth=2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not at.error:
        time.sleep(0.3)
        at.run()
    assert not at.exception
    assert any("scalar output" in e.value and "K = 3" in e.value for e in at.error)
    assert any(b.label == "Run again" for b in at.button)


def test_three_layer_general_data_mode_shows_every_bound_with_its_direction():
    """Three layers on 8 points: D (certified) for both nets, the parallel net trained onto
    it, the standard net above it with its gap labelled an upper bound."""
    exp = Experiment(activation="relu", depth=3, dataset="regression", n=8, d=1,
                     objective="squared", beta=0.1, arch="standard", width=8, branches=20,
                     optimizer="adam", lr=0.01, iterations=1500, restarts=2)
    at = run_until_done(open_page(PAGE, exp.to_query()))
    assert not at.exception
    text = " ".join(m.value for m in at.markdown if m.value.startswith("**Three layers"))
    assert "D (certified)" in text and "<= D <=" in text  # the bracket, both directions
    assert "lower from the dual certificate, upper from the rebuilt network" in text
    assert "upper bound of its duality gap" in text  # the standard net's P - D
    assert "no trained net of either kind can go below it" in text
    D = metric(at, "D (convex")
    assert metric(at, "P (trained)") >= D * (1 - 1e-9)
    assert "fit_figure" in [f["id"] for f in panel(at)["figures"]]
    verdicts = " ".join(i.value for i in at.info) + " ".join(s.value for s in at.success)
    assert "the duality gap is at most this" in verdicts  # standard: P - D bounds the gap
    assert "zero duality gap" in verdicts  # parallel: P* = D, certified
    modes = next(m.value for m in at.markdown if m.value.startswith("Modes"))
    assert "[Three ReLU layers, general data](/ReLU_networks?" in modes
