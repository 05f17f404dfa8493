"""kill -9 of a real server during a run and during a sweep, then a restart on the same store.

After the restart the store opens, finished results are intact (and not computed again), and
what was interrupted is marked so and runs again when asked. A real `streamlit run` server and
Debian's chromium, as in the other browser tests.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from shared import LONG, QUICK, wait_for

from dualviz.config import Experiment
from dualviz.service.store import Store, pid_alive
from dualviz.sweep import sweep_from_params
from dualviz.testing import CHROMIUM, explorer_url, streamlit_server, wait_for_state
from dualviz.ui.sweeps import SETTING_KEYS
from dualviz.views import GAP_CURVES

pytestmark = [pytest.mark.browser, pytest.mark.server,
              pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (CI installs Debian's chromium)")]

SWEEP_QUERY = {"n": "12", "d": "6", "k": "4", "x-rank": "4", "iterations": "150",
               "restarts": "1", "x": "depth", "x-values": "2,3,4", "series": "target-rank",
               "series-values": "1,2", "seeds": "1"}


def both_done(tab):
    return wait_for_state(tab, lambda s: s.caption is not None
                          and s.caption.status.startswith("done")
                          and s.caption.other_status.startswith("done")
                          and "P (trained)" in s.metrics,
                          timeout=180, what="both jobs done")


def started_hashes(log: Path) -> list[str]:
    return re.findall(r"dualviz jobs: started ([0-9a-f]{16})", log.read_text(errors="replace"))


def test_kill_9_during_a_run_then_restart(tmp_path, browser):
    twin = QUICK.replace(arch="parallel")[0]
    with streamlit_server(tmp_path) as first:
        tab = browser.new_page()
        tab.goto(explorer_url(first.url, QUICK.to_query()))
        both_done(tab)
        tab.goto(explorer_url(first.url, LONG.to_query()))
        store = Store(tmp_path)
        running = wait_for(lambda: (j := store.job(LONG.hash)) and j.status == "running"
                           and store.snapshots(LONG.hash) and j, 120, what="LONG running")
        os.kill(first.process.pid, signal.SIGKILL)  # the server only, as a crash would
        first.process.wait()
        # Its fork server sees its stdin close and ends the job processes.
        wait_for(lambda: not pid_alive(running.pid), 30, what="the job process gone")
        tab.close()
    before = {h: store.job(h) for h in (QUICK.hash, twin.hash)}
    assert all(r.status == "done" and r.result for r in before.values())

    with streamlit_server(tmp_path, log_path=tmp_path / "second.log") as second:
        tab = browser.new_page()
        tab.goto(explorer_url(second.url, QUICK.to_query()))
        state = both_done(tab)
        assert float(state.metrics["P (trained)"]) == pytest.approx(
            before[QUICK.hash].result["primal"]["value"], abs=1e-6)
        reopened = Store(tmp_path)  # the store opens, finished results intact
        for job_hash, record in before.items():
            assert reopened.job(job_hash) == record
        interrupted = reopened.job(LONG.hash)
        assert interrupted.status == "interrupted", interrupted
        assert "server stopped" in interrupted.error
        tab.goto(explorer_url(second.url, LONG.to_query()))  # asked again: it runs again
        rerun = wait_for(lambda: (j := reopened.job(LONG.hash)).status == "running" and j,
                         120, what="LONG running again")
        assert rerun.created > interrupted.created
        assert QUICK.hash not in started_hashes(tmp_path / "second.log")  # not recomputed
        tab.close()


def test_kill_9_during_a_sweep_then_restart_and_resume(tmp_path, browser):
    """The server dies during a sweep it runs (its job processes end with it): finished
    points are kept, points in flight are marked, Resume completes the rest."""
    with streamlit_server(tmp_path) as first:
        tab = browser.new_page()
        tab.goto(GAP_CURVES.url(first.url, SWEEP_QUERY))
        tab.get_by_role("button", name="Run").click(timeout=60_000)
        store = Store(tmp_path)
        base, _ = Experiment.from_values({**{k: v for k, v in SWEEP_QUERY.items()
                                             if k not in SETTING_KEYS},
                                          "activation": "linear", "dataset": "low-rank"})
        sweep, _ = sweep_from_params(base, SWEEP_QUERY)
        hashes = {e.hash for _, e in sweep.points()}

        def finished():
            return {h: j for h in hashes if (j := store.job(h)) and j.status == "done"}

        wait_for(lambda: len(finished()) >= 2, 180, what="two sweep points stored")
        flying = [j.pid for h in hashes if (j := store.job(h)) and j.status == "running"]
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait()
        wait_for(lambda: not any(pid_alive(p) for p in flying), 30,
                 what="the points' processes gone")
        tab.close()
    kept = finished()
    in_flight = {h for h in hashes if (j := store.job(h)) and j.status == "running"}
    assert len(kept) < len(hashes)

    with streamlit_server(tmp_path, log_path=tmp_path / "second.log") as second:
        tab = browser.new_page()
        tab.goto(GAP_CURVES.url(second.url, SWEEP_QUERY))
        tab.get_by_role("button", name="Resume").wait_for(timeout=60_000)
        reopened = Store(tmp_path)
        for job_hash, record in kept.items():  # finished points intact
            assert reopened.job(job_hash) == record
        for job_hash in in_flight:  # marked by the restarted server, never left "running"
            assert reopened.job(job_hash).status == "interrupted"
        # the progress line is drawn just after the button: wait for it, do not sample it
        tab.get_by_text(f"{len(kept)} of {len(hashes)} points").wait_for(timeout=30_000)
        tab.get_by_role("button", name="Resume").click()
        wait_for(lambda: all((j := reopened.job(h)) and j.status == "done" for h in hashes),
                 300, what="the sweep completed")
        for job_hash, record in kept.items():  # resumed, not recomputed
            assert reopened.job(job_hash).finished == record.finished
        tab.close()
