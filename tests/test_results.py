"""Typed results end to end: a run written as JSON reads back into the same dataclasses."""

import json

import pytest

from dualviz.config import Experiment
from dualviz.results import (
    Bounds,
    DualResult,
    JobStatus,
    PrimalStatus,
    SolveStatus,
    Start,
    Stop,
    StoredRun,
)
from dualviz.runner import run


@pytest.fixture(scope="module")
def finished():
    result = run(Experiment(iterations=40, restarts=2, depth=3))
    return result, json.loads(json.dumps(result.to_json()))  # as the store keeps it


def test_a_stored_run_reads_back_typed_with_the_same_numbers(finished):
    result, stored = finished
    back = StoredRun.from_json(stored)
    assert back.primal.value == pytest.approx(result.primal.value, rel=1e-15)
    assert back.dual.value == pytest.approx(result.dual.value, rel=1e-15)
    assert back.gap == pytest.approx(result.gap, rel=1e-12)
    assert isinstance(back.dual.status, SolveStatus) and back.dual.status == result.dual.status
    assert isinstance(back.primal.status, PrimalStatus)
    assert back.primal.status == result.primal.status
    assert [r.start for r in back.primal.restarts] == [Start.RANDOM, Start.RANDOM,
                                                       Start.CLOSED_FORM]
    assert all(isinstance(r.stopped, Stop) for r in back.primal.restarts)
    assert back.closed_form.primal == pytest.approx(result.closed.primal, rel=1e-15)
    assert back.spectrum.target == pytest.approx(result.target_spectrum)
    assert back.experiment["hash"] == result.experiment.hash and back.failure is None


def test_the_bounds_known_before_training_round_trip(finished):
    result, _ = finished
    written = json.loads(json.dumps(result.bounds.to_json()))
    back = Bounds.from_json(written)
    assert back.dual == result.dual and back.closed_form == result.bounds.closed_form
    assert Bounds.from_json(back.to_json()) == back


@pytest.mark.parametrize(("text", "status", "detail"), [
    ("optimal", SolveStatus.OPTIMAL, None),
    ("optimal, certificate gap above tol", SolveStatus.UNCERTIFIED, None),
    ("infeasible: no network over these patterns fits y", SolveStatus.INFEASIBLE,
     "no network over these patterns fits y"),
    ("solver_error: PanicException: boom", SolveStatus.SOLVER_ERROR, "PanicException: boom"),
    ("something new", SolveStatus.SOLVER_ERROR, "something new"),
])
def test_a_status_text_is_parsed_once_into_a_status_and_its_detail(text, status, detail):
    dual = DualResult(None, "m", text, 0.0)
    assert (dual.status, dual.detail) == (status, detail)
    assert DualResult.from_json({"status": dual.status_text}).status == status


def test_job_statuses_partition_into_active_and_final():
    stored = [s for s in JobStatus if s != JobStatus.BUSY]
    assert all(s.active != s.final for s in stored)
    assert not JobStatus.BUSY.active and not JobStatus.BUSY.final
