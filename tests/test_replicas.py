"""Two real `dualviz serve` replicas on one PostgreSQL store, and kill -9 of the one running a job.

Each experiment is computed once across the replicas (each server logs one line per
computation); when the replica running a job is killed, its lease expires and the other replica,
whose visitor still watches the job, claims it and finishes it; finished results are untouched.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from shared import SLOW_TRAINING, wait_for

from dualviz.config import Experiment
from dualviz.service.store import DATABASE_URL_ENV, Store
from dualviz.testing import CHROMIUM, explorer_url, streamlit_server, wait_for_state

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(),
                                 reason=f"{CHROMIUM} is missing (CI installs Debian's chromium)")]

QUICK = Experiment(iterations=150, restarts=1)
# Still training when its replica is killed, short enough to finish on the other (~7 s; with
# L-BFGS it took 2.7 s, and the kill could come after the end).
MEDIUM = Experiment(n=100, d=20, k=5, x_rank=20, target_rank=3, width=16, iterations=5000,
                    restarts=3, **SLOW_TRAINING)
LEASE = "3"


def started(log: Path) -> list[str]:
    return re.findall(r"dualviz jobs: started ([0-9a-f]{16})", log.read_text(errors="replace"))


def done(tab, timeout=240):
    return wait_for_state(tab, lambda s: s.caption is not None
                          and s.caption.status.startswith("done")
                          and s.caption.other_status.startswith("done")
                          and "P (trained)" in s.metrics, timeout=timeout, what="both done")


def replicas(tmp_path: Path, url: str):
    env = {DATABASE_URL_ENV: url, "DUALVIZ_JOB_LEASE": LEASE, "DUALVIZ_MAX_JOBS": "2"}
    return (streamlit_server(tmp_path / "a", extra_env=env),
            streamlit_server(tmp_path / "b", extra_env=env))


def test_two_replicas_compute_once_and_survive_kill_9_of_the_running_one(tmp_path, pg_url,
                                                                         browser):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = replicas(tmp_path, pg_url)
    with first as a, second as b:
        tab_a, tab_b = browser.new_page(), browser.new_page()
        # the same experiment from both replicas: computed once, shown by both
        tab_a.goto(explorer_url(a.url, QUICK.to_query()))
        tab_b.goto(explorer_url(b.url, QUICK.to_query()))
        done(tab_a)
        done(tab_b)
        twin = QUICK.replace(arch="parallel")[0]
        for exp in (QUICK, twin):
            assert (started(a.log_path) + started(b.log_path)).count(exp.hash) == 1
        store = Store(tmp_path / "reader", url=pg_url)
        kept = {h: store.job(h) for h in (QUICK.hash, twin.hash)}

        tab_a.goto(explorer_url(a.url, MEDIUM.to_query()))
        tab_b.goto(explorer_url(b.url, MEDIUM.to_query()))
        wait_for(lambda: (j := store.job(MEDIUM.hash)) and j.status == "running"
                 and store.snapshots(MEDIUM.hash), 120, what="MEDIUM running")
        runner, survivor, survivor_tab = ((a, b, tab_b) if MEDIUM.hash in started(a.log_path)
                                          else (b, a, tab_a))
        assert MEDIUM.hash not in started(survivor.log_path)
        os.kill(runner.process.pid, signal.SIGKILL)  # the replica only, as a crash would

        # its lease expires; the survivor, whose visitor still watches, computes it again
        wait_for(lambda: MEDIUM.hash in started(survivor.log_path), 60,
                 what="the survivor claims the job")
        record = wait_for(lambda: (j := store.job(MEDIUM.hash)) and j.status == "done" and j,
                          240, what="the job done on the survivor")
        assert record.result["experiment"]["hash"] == MEDIUM.hash
        done(survivor_tab)
        for job_hash, before in kept.items():  # finished results intact, not computed again
            after = store.job(job_hash)
            assert (after.status, after.finished, after.result) == \
                (before.status, before.finished, before.result)
            assert started(survivor.log_path).count(job_hash) + \
                started(runner.log_path).count(job_hash) == 1
        store.close()
