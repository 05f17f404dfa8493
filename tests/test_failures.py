"""Failing solvers and full servers: each is a clear status, stored, and harms no other job.

Real solvers throughout: the failures below are provoked by data and settings, not mocked.
"""

import json
import math
import os
import subprocess
import sys
import time

import cvxpy
import numpy as np
import pytest
from apptest_support import open_page
from shared import LONG, QUICK, wait_for

from dualviz import __main__ as cli
from dualviz.config import KNOBS_BY_NAME, Experiment, upper_bound
from dualviz.data import validate_arrays
from dualviz.linear.programs import solve_dual
from dualviz.results import DualResult, SolveStatus, dual_failure
from dualviz.runner import dataset_for, run
from dualviz.service.jobs import JobManager
from dualviz.service.store import Store
from dualviz.solvers import guarded

pytestmark = pytest.mark.server


def unreachable_targets():
    """X of rank 2 in 3 features and targets outside its range: interpolation is infeasible,
    so the linear dual is unbounded."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((12, 2)) @ rng.standard_normal((2, 3))
    return validate_arrays(X, rng.standard_normal((12, 2)), "unreachable")


def overflowing_data():
    """Finite data so large that the squared loss overflows: training cannot stay finite."""
    rng = np.random.default_rng(0)
    return validate_arrays(1e160 * rng.standard_normal((12, 3)), rng.standard_normal((12, 2)),
                           "overflowing")


def on_data(dataset, **values) -> Experiment:
    return Experiment.from_values({"data": dataset.digest, "iterations": 50, "restarts": 2,
                                   **values})[0]


def dual(status: str, value=None, lower=None) -> DualResult:
    return DualResult(value, "a program [CVXPY/CLARABEL]", status, 0.1, lower=lower)


@pytest.mark.parametrize("status, value, lower, words", [
    ("optimal", 1.0, None, None),
    ("optimal_inaccurate", 1.0, None, None),
    ("not computed", None, None, None),  # deep ReLU on general data: nothing was asked
    ("time limit", None, 0.5, None),  # a certified bracket is an answer
    ("infeasible", None, None, "no feasible point"),
    ("infeasible: no network over these patterns fits y", None, 0.3, "no feasible point"),
    ("unbounded", None, None, "primal is infeasible"),
    ("solver_error: PanicException: boom", None, None, "numerical trouble"),
    ("user_limit", None, None, "numerical trouble"),
])
def test_dual_failures_are_named_and_answers_are_not(status, value, lower, words):
    failure = dual_failure(dual(status, value, lower))
    if words is None:
        assert failure is None
    else:
        assert words in failure and "a program" in failure


class PanicException(BaseException):
    """Stands for pyo3's PanicException, which Python sees as a BaseException."""


def test_a_clarabel_panic_becomes_a_status(monkeypatch):
    """Clarabel panicked (a Rust panic: a BaseException in Python) on this weight-decay
    search, and the CLI used to print a traceback for this link. The search now hands Clarabel
    rescaled data and no solve at all where W = 0 is optimal, so it no longer panics there: a
    panic is forced to check that it still becomes a status."""
    exp, _ = Experiment.from_query("depth=10&regularization=weight-decay&objective=squared"
                                   "&beta=0.0001")
    data = dataset_for(exp)

    def panic(*args, **kwargs):
        raise PanicException("called `Option::unwrap()` on a `None` value")

    with monkeypatch.context() as patch:
        patch.setattr(cvxpy.Problem, "solve", panic)
        result = solve_dual(exp, data.X, data.Y)
    assert result.value is None
    assert result.status == SolveStatus.SOLVER_ERROR
    assert result.status_text.startswith("solver_error: PanicException")
    assert "numerical trouble" in dual_failure(result)


def test_the_link_that_made_clarabel_panic_now_has_a_bound():
    exp, _ = Experiment.from_query("depth=10&regularization=weight-decay&objective=squared"
                                   "&beta=0.0001")
    data = dataset_for(exp)
    result = solve_dual(exp, data.X, data.Y)
    assert result.value is not None and 0 < result.value <= 0.5 * np.sum(data.Y**2)
    assert result.lower <= result.upper


def test_guarded_lets_interrupts_through():
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        guarded(interrupted)
    assert guarded(lambda: 3) == (3, None)
    assert guarded(lambda: 1 / 0) == (None, "ZeroDivisionError: division by zero")


def test_training_that_overflows_fails_with_its_numbers_kept():
    data = overflowing_data()
    result = run(on_data(data, objective="squared"), data)
    assert all(not math.isfinite(r.value) for r in result.primal.restarts)
    assert "training diverged" in result.failure
    record = result.to_json()
    json.dumps(record, allow_nan=False)  # NaN and inf became null: the JSON is valid
    assert record["failure"] == result.failure
    assert len(record["primal"]["restarts"]) == 2


def test_failed_jobs_are_stored_failed_with_results_and_other_jobs_finish(tmp_path):
    jobs = JobManager(tmp_path, max_running=2)
    try:
        unreachable, overflowing = unreachable_targets(), overflowing_data()
        for dataset in (unreachable, overflowing):
            jobs.store.save_dataset(dataset)
        infeasible = on_data(unreachable, depth=2)
        diverging = on_data(overflowing, objective="squared")
        jobs.focus("a", [infeasible, diverging])
        jobs.focus("b", [QUICK])
        for exp, words in ((infeasible, "unbounded"), (diverging, "training diverged")):
            failed = wait_for(lambda e=exp: (v := jobs.view(e.hash)).status == "failed" and v,
                              timeout=120)
            assert words in failed.record.error
            assert failed.record.result["failure"] == failed.record.error
            assert failed.record.result["experiment"]["hash"] == exp.hash  # numbers kept
        assert wait_for(lambda: jobs.view(QUICK.hash).status == "done", timeout=120)
    finally:
        jobs.shutdown()
    reopened = Store(tmp_path)
    assert reopened.job(QUICK.hash).result["primal"]["value"] is not None
    assert reopened.job(infeasible.hash).status == "failed"


def test_cli_prints_the_numbers_then_exits_1_with_one_line(tmp_path):
    data = unreachable_targets()
    path = tmp_path / "unreachable.npz"
    np.savez(path, X=data.X, Y=data.Y)
    done = subprocess.run([sys.executable, "-m", "dualviz", "solve", "--data", str(path),
                           "--depth", "2", "--iterations", "30", "--restarts", "1", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert json.loads(done.stdout)["failure"].startswith("Lagrangian dual")
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dualviz: failed: ") and "unbounded" in lines[0]


def test_a_full_queue_refuses_without_storing_and_admits_when_a_place_frees(tmp_path):
    jobs = JobManager(tmp_path, max_running=1, max_queued=1)
    try:
        assert jobs.ready.wait(120)
        waiting, refused = (QUICK.replace(seed=s)[0] for s in (1, 2))
        jobs.focus("a", [LONG])
        wait_for(lambda: jobs.view(LONG.hash).status == "running")
        assert jobs.focus("b", [waiting])[0].status == "queued"
        view = jobs.focus("c", [refused])[0]
        assert view.status == "busy" and view.active
        assert "queue is full (1 runs waiting, the cap is 1)" in view.record.error
        assert jobs.store.job(refused.hash) is None  # nothing stored for it
        jobs.release("a")  # LONG cancelled: `waiting` starts, the queue empties
        wait_for(lambda: jobs.view(waiting.hash).status != "queued")
        assert jobs.focus("c", [refused])[0].status in ("queued", "running")
        wait_for(lambda: jobs.view(refused.hash).status == "done", timeout=120)
    finally:
        jobs.shutdown()


def test_a_restart_leaves_a_live_sweep_driver_s_points_running(tmp_path):
    store = Store(tmp_path)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        store.create_job("live", "q", running_in=alive.pid)
        store.create_job("dead", "q", running_in=gone.pid)
        store.create_job("queued", "q")
        assert store.mark_interrupted() == 2
        assert [store.job(h).status for h in ("live", "dead", "queued")] == \
            ["running", "interrupted", "interrupted"]
    finally:
        alive.kill()
        alive.wait()


def test_server_caps_lower_knob_bounds_with_a_note(monkeypatch):
    monkeypatch.setenv("DUALVIZ_MAX_N", "100")
    monkeypatch.setenv("DUALVIZ_MAX_ITERATIONS", "not a number")  # ignored, never fatal
    monkeypatch.setenv("DUALVIZ_MAX_WIDTH", "0")  # below the knob's lowest value: ignored
    exp, notes = Experiment.from_values({"n": 500, "iterations": 5000, "width": 200})
    assert (exp.n, exp.iterations, exp.width) == (100, 5000, 200)
    assert notes == ["n: 500 is outside [1, 100] (this server's cap, $DUALVIZ_MAX_N); "
                     "using 100"]
    assert upper_bound(KNOBS_BY_NAME["n"]) == 100
    assert upper_bound(KNOBS_BY_NAME["iterations"]) == KNOBS_BY_NAME["iterations"].high


def test_cli_obeys_the_server_caps(monkeypatch):
    monkeypatch.setenv("DUALVIZ_MAX_RESTARTS", "1")
    args = cli.build_parser().parse_args(["solve", "--query", "restarts=9"])
    exp, _, notes = cli.experiment_from_args(args)  # a link's value: clamped, noted
    assert exp.restarts == 1 and "DUALVIZ_MAX_RESTARTS" in notes[0]
    args = cli.build_parser().parse_args(["solve", "--restarts", "9"])
    with pytest.raises(cli.UsageError, match=r"--restarts: 9 is outside \[1, 1\] "
                                             r"\(this server's cap, \$DUALVIZ_MAX_RESTARTS\)"):
        cli.experiment_from_args(args)  # a typed option: refused


def test_the_page_shows_a_solver_failure_with_its_message_and_run_again():
    """The explorer, on uploaded data its interpolation cannot fit: a clear failed status."""
    data = unreachable_targets()
    Store(os.environ["DUALVIZ_DATA_DIR"]).save_dataset(data)  # the pages' store (conftest)
    exp = on_data(data, depth=2, iterations=30, restarts=1)
    at = open_page("1_Deep_linear_explorer.py", exp.to_query())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not at.error:
        time.sleep(0.3)
        at.run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "run failed" in errors and "unbounded" in errors and "range of X" in errors, errors
    assert any(b.label == "Run again" for b in at.button)
    assert Store(os.environ["DUALVIZ_DATA_DIR"]).job(exp.hash).status == "failed"
