"""Sweeps (issue 5): the same numbers as single runs, resumable, local or on a Dask cluster."""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Executor
from pathlib import Path

import pytest
import torch

from dualviz.config import ConfigError, Experiment
from dualviz.gapcurves import rows
from dualviz.runner import run
from dualviz.service.store import Store
from dualviz.service.sweeps import local_executor, run_sweep
from dualviz.sweep import MAX_POINTS, Sweep, parse_vary

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
# Small and quick: N = 6 points, 60 L-BFGS iterations, one restart.
BASE = Experiment(n=6, d=4, k=3, x_rank=3, target_rank=2, iterations=60, restarts=1,
                  objective="squared")
GRID = Sweep(BASE, (("depth", (2, 3)), ("arch", ("standard", "parallel"))), seeds=1)


class CountingExecutor(Executor):
    """A real executor that counts what it is asked to compute."""

    def __init__(self, inner: Executor):
        self.inner = inner
        self.submitted: list[str] = []

    def submit(self, fn, /, *args, **kwargs):
        self.submitted.append(args[0])
        return self.inner.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, *, cancel_futures=False):
        self.inner.shutdown(wait=wait, cancel_futures=cancel_futures)


def same_numbers(result: dict, single: dict) -> None:
    assert result["experiment"]["hash"] == single["experiment"]["hash"]
    for part in ("primal", "dual"):
        assert single[part]["value"] is not None
        assert result[part]["value"] == pytest.approx(single[part]["value"], rel=1e-9,
                                                      abs=1e-12), part


@pytest.fixture
def store(tmp_path):
    handle = Store(tmp_path)
    yield handle
    handle.close()


def test_sweep_points_equal_single_runs_and_are_stored(store):
    torch.set_num_threads(1)  # as in every job
    executor = CountingExecutor(local_executor(2))
    try:
        points = run_sweep(GRID, store, executor)
    finally:
        executor.shutdown()
    assert len(points) == len(executor.submitted) == 4
    for coords, exp, result in points:
        assert (exp.depth, exp.arch) == (coords["depth"], coords["arch"])
        same_numbers(result, run(exp).to_json())
        assert store.job(exp.hash).status == "done" and store.job(exp.hash).result == result
    table = rows(points)
    assert [r["depth"] for r in table] == [2, 2, 3, 3] and all(r["status"] == "done"
                                                               for r in table)
    # a second run computes nothing
    again = CountingExecutor(local_executor(1))
    try:
        assert [r for *_, r in run_sweep(GRID, store, again)] == [r for *_, r in points]
    finally:
        again.shutdown()
    assert again.submitted == []


def test_a_killed_sweep_resumes_without_recomputing_stored_points(tmp_path):
    env = {**os.environ, "DUALVIZ_DATA_DIR": str(tmp_path)}
    query = BASE.replace(iterations=400)[0].to_query()
    argv = [sys.executable, "-m", "dualviz", "sweep", "--query", query, "--vary",
            "depth=2,3,4", "--vary", "target-rank=1,2", "--workers", "1"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sweep = Sweep(Experiment.from_query(query)[0],
                  (("depth", (2, 3, 4)), ("target_rank", (1, 2))))
    store = Store(tmp_path)
    try:
        deadline = time.monotonic() + 120
        done: list[str] = []
        while time.monotonic() < deadline and len(done) < 2:
            time.sleep(0.2)
            done = [e.hash for _, e in sweep.points()
                    if (j := store.job(e.hash)) is not None and j.status == "done"]
        os.killpg(proc.pid, signal.SIGKILL)  # the crash: driver and workers at once
        proc.wait()
        assert 2 <= len(done) < 6, done
        done = [e.hash for _, e in sweep.points()
                if (j := store.job(e.hash)) is not None and j.status == "done"]
        executor = CountingExecutor(local_executor(2))
        try:
            points = run_sweep(sweep, store, executor)
        finally:
            executor.shutdown()
        submitted = {Experiment.from_query(q)[0].hash for q in executor.submitted}
        assert submitted.isdisjoint(done) and len(submitted) == 6 - len(done)
        assert all(result is not None for *_, result in points) and len(points) == 6
    finally:
        store.close()


def test_the_same_sweep_on_a_dask_cluster_gives_the_same_numbers(store, tmp_path):
    distributed = pytest.importorskip("distributed")
    local = Store(tmp_path / "local")
    executor = local_executor(2)
    try:
        expected = {e.hash: r for _, e, r in run_sweep(GRID, local, executor)}
    finally:
        executor.shutdown()
        local.close()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        points = run_sweep(GRID, store, client.get_executor(pure=False))
        # Asked of each worker (scheduler_info() returns its cached, worker-less identity
        # when the scheduler does not answer in time, as under a loaded CI machine).
        worker_pids = client.run(os.getpid)
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids.values()
    assert len(points) == 4
    for _, exp, result in points:
        same_numbers(result, expected[exp.hash])
        assert store.job(exp.hash).status == "done"  # results came back to this store


def test_stop_keeps_what_finished_and_cancels_the_rest(store):
    executor = local_executor(1)
    seen = []
    try:
        points = run_sweep(GRID, store, executor, max_pending=1,
                           on_result=lambda *a: seen.append(a[1].hash),
                           should_stop=lambda: len(seen) >= 1)
    finally:
        executor.shutdown(cancel_futures=True)
    assert len(points) == 1
    statuses = [store.job(e.hash) for _, e in GRID.points()]
    assert sum(1 for j in statuses if j is not None and j.status == "done") == 1
    assert all(j is None or j.status in ("done", "cancelled") for j in statuses)


def test_vary_parsing_and_limits():
    assert parse_vary("depth=2,3,3,4") == ("depth", (2, 3, 4), [])
    name, values, notes = parse_vary("target-rank=1,99")
    assert name == "target_rank" and values[-1] < 99 and notes
    assert parse_vary("arch=parallel,standard")[1] == ("parallel", "standard")
    for bad in ("depth", "seed=1,2", "depth=2,x", "arch=wide", "nope=1", "depth="):
        with pytest.raises(ConfigError):
            parse_vary(bad)
    with pytest.raises(ConfigError):
        Sweep(BASE, (("depth", tuple(range(2, 11))), ("beta", tuple(range(1, 300)))))
    assert MAX_POINTS >= 100
    with pytest.raises(ConfigError):
        Sweep(BASE, (("depth", (2,)),), seeds=0)


def test_cli_sweep_prints_the_solve_schema_for_every_point(tmp_path):
    env = {**os.environ, "DUALVIZ_DATA_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "dualviz", "sweep", "--query", BASE.to_query(), "--vary",
         "depth=2,3", "--seeds", "2", "--workers", "2", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)
    results = json.loads(out.stdout)
    assert [(r["experiment"]["depth"], r["experiment"]["seed"]) for r in results] == \
        [(2, 0), (2, 1), (3, 0), (3, 1)]
    assert all({"experiment", "primal", "dual", "gap", "relative_gap"} <= set(r)
               for r in results)
    assert "[" not in out.stderr  # no progress bar when stderr is not a terminal


def test_page_settings_round_trip_and_clamp():
    from dualviz.sweep import sweep_from_params, sweep_params

    sweep, notes = sweep_from_params(BASE, {"x": "depth", "x-values": "2,3,4", "series":
                                            "target-rank", "series-values": "1,2", "seeds": "2"})
    assert notes == []
    assert dict(sweep.vary) == {"depth": (2, 3, 4), "target_rank": (1, 2),
                                "arch": ("standard", "parallel")}
    assert sweep_from_params(BASE, sweep_params(sweep))[0] == sweep
    hostile, notes = sweep_from_params(BASE, {"x": "<script>", "x-values": "1e308,nan",
                                              "series": "depth", "seeds": "99"})
    assert dict(hostile.vary)["depth"] and hostile.seeds == 5 and len(notes) >= 2
    assert all("\n" not in n for n in notes)
    for seeds, used in (("1e308", 5), ("-5", 1), ("2.5", 2), ("nan", 1)):
        clamped, notes = sweep_from_params(BASE, {"seeds": seeds})
        assert clamped.seeds == used and [n for n in notes if n.startswith("seeds:")], seeds


def test_curves_and_theory_agree_with_the_closed_forms(store):
    """Real solves: the closed-form P/D of every point equals the theory curve r^((L-2)/2)."""
    from dualviz.gapcurves import curves, theory_curves

    base = BASE.replace(objective="interpolation", regularization="rescaled", spectrum="equal",
                        iterations=200, restarts=1)[0]
    sweep = Sweep(base, (("depth", (2, 3, 4)), ("target_rank", (1, 2)),
                         ("arch", ("standard", "parallel"))))
    executor = local_executor(2)
    try:
        points = run_sweep(sweep, store, executor)
    finally:
        executor.shutdown()
    theory = {(c["arch"], c["series"]): dict(zip(c["x"], c["ratio"], strict=True))
              for c in theory_curves(sweep, "depth", "target_rank")}
    for coords, exp, result in points:
        closed = result["closed_form"]
        expected = theory[(exp.arch, coords["target_rank"])][coords["depth"]]
        assert closed["primal"] / closed["dual"] == pytest.approx(expected, rel=1e-9)
    lines = curves(points, "depth", "target_rank")
    assert {(c["arch"], c["series"]) for c in lines} <= set(theory)
    for line in lines:
        assert line["x"] == sorted(line["x"]) and all(s == 1 for s in line["seeds"])
        assert all(lo <= m <= hi for lo, m, hi in zip(line["ratio_low"], line["ratio"],
                                                      line["ratio_high"], strict=True))


def test_points_in_flight_are_running_so_no_job_manager_starts_them(store):
    """A server sharing the store starts queued jobs: a sweep's points must not look queued."""
    seen_statuses = []

    def on_result(coords, exp, result, progress):
        seen_statuses.extend(store.job(e.hash).status for _, e in GRID.points()
                             if store.job(e.hash) is not None)

    executor = local_executor(1)
    try:
        run_sweep(GRID, store, executor, on_result=on_result, max_pending=2)
    finally:
        executor.shutdown()
    assert "queued" not in seen_statuses and "running" in seen_statuses
    assert store.jobs_with_status("queued") == []


class StoppedAtSubmit(CountingExecutor):
    """A real executor where SIGTERM's handler (SystemExit) fires inside the `stop_at`-th
    submit: after the sweep marked that point running, before it holds a future for it."""

    def __init__(self, inner: Executor, stop_at: int):
        super().__init__(inner)
        self.stop_at = stop_at

    def submit(self, fn, /, *args, **kwargs):
        if len(self.submitted) + 1 == self.stop_at:
            raise SystemExit(143)
        return super().submit(fn, *args, **kwargs)


def test_a_stop_between_marking_a_point_running_and_submitting_it_leaves_none_running(store):
    """The CLI sweep's SIGTERM can land anywhere; a CI run once left a point running (found
    by the test below). Every point the sweep started must end final."""
    executor = StoppedAtSubmit(local_executor(1), stop_at=3)
    try:
        with pytest.raises(SystemExit):
            run_sweep(GRID, store, executor, max_pending=2)
    finally:
        executor.shutdown(cancel_futures=True)
    statuses = [j.status for _, e in GRID.points() if (j := store.job(e.hash))]
    assert len(statuses) == 3  # two submitted, the third marked running when the stop came
    assert "running" not in statuses and "queued" not in statuses, statuses


def test_stopping_a_cli_sweep_with_sigterm_leaves_no_point_running(tmp_path):
    """An operator's Ctrl-C or kill sends SIGTERM to the CLI driver's process group."""
    env = {**os.environ, "DUALVIZ_DATA_DIR": str(tmp_path)}
    query = BASE.replace(iterations=400)[0].to_query()
    proc = subprocess.Popen([sys.executable, "-m", "dualviz", "sweep", "--query", query,
                             "--vary", "depth=2,3,4", "--vary", "target-rank=1,2",
                             "--workers", "1"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sweep = Sweep(Experiment.from_query(query)[0],
                  (("depth", (2, 3, 4)), ("target_rank", (1, 2))))
    store = Store(tmp_path)
    try:
        def statuses():
            return [j.status for _, e in sweep.points() if (j := store.job(e.hash))]

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and "done" not in statuses():
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        final = statuses()
        assert "done" in final and "running" not in final and "queued" not in final, final
    finally:
        store.close()


def test_only_well_formed_scheduler_addresses_are_used():
    from dualviz.service.sweeps import check_scheduler

    assert check_scheduler(" tcp://10.0.0.5:8786 ") == "tcp://10.0.0.5:8786"
    assert check_scheduler("tls://scheduler.example.org:8786")
    for bad in ("http://x:1", "tcp://x", "tcp://x:0", "tcp://x:99999", "tcp://a b:1",
                "file:///etc/passwd", "tcp://x:1/path"):
        with pytest.raises(ConfigError):
            check_scheduler(bad)
