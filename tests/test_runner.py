"""The numbers a page shows before a job starts are the job's own."""

from __future__ import annotations

import pytest

from dualviz.config import Experiment
from dualviz.results import Bounds
from dualviz.runner import known_at_once, run


@pytest.mark.parametrize("query", [
    "depth=3&objective=interpolation&regularization=rescaled&seed=4",
    "depth=4&objective=squared&regularization=weight-decay&beta=0.5&whiten=1&seed=7",
    "depth=2&objective=interpolation&regularization=lth-power&target-rank=3&seed=1",
])
def test_the_closed_form_known_at_once_is_what_the_job_reports(query):
    exp, _ = Experiment.from_query(query + "&iterations=5&restarts=1")
    early = known_at_once(exp)
    reported = []
    run(exp, on_bounds=reported.append)
    job = Bounds.from_json(reported[0])
    assert early is not None and early.closed_form.primal is not None
    assert early.closed_form == job.closed_form
    assert early.spectrum.target == pytest.approx(job.spectrum.target, rel=1e-12)
    assert early.spectrum.closed_form == pytest.approx(job.spectrum.closed_form, rel=1e-12)
    assert early.dual.value is None  # the dual is the job's: never a number it did not solve


def test_relu_nets_wait_for_their_program():
    exp, _ = Experiment.from_query("activation=relu&depth=2")
    assert known_at_once(exp) is None
