"""`make deploy` (deploy/run.py) for real: a PostgreSQL cluster, two replicas and haproxy on
loopback. A browser through the proxy runs an experiment to its end; the proxy's cookie keeps
the browser's websocket and its live streams on one replica; the CLI's typed options are
checked."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from shared import SLOW_TRAINING, wait_for

from dualviz.config import Experiment
from dualviz.service import pgcluster
from dualviz.testing import (
    CHROMIUM,
    ROOT,
    deploy_module,
    explorer_url,
    free_port,
    wait_for_state,
)

deploy = deploy_module()
needs_deployment = pytest.mark.skipif(
    bool(pgcluster.missing_reason()) or not Path(deploy.HAPROXY).exists()
    or not CHROMIUM.exists(),
    reason="needs Debian's postgresql, haproxy and chromium (CI installs them)")

# A few seconds of training (about 4 s): the stream is open long enough to be seen on its
# replica (with L-BFGS the net's run took 2.1 s, about what the page takes to show it).
RUN = Experiment(n=120, d=30, k=8, x_rank=30, target_rank=4, width=16, iterations=2000,
                 restarts=2, seed=23, **SLOW_TRAINING)


def stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/stats", timeout=5) as answer:
        return json.loads(answer.read())


@pytest.mark.server
@pytest.mark.browser
@needs_deployment
def test_a_browser_through_the_proxy_runs_on_one_replica_to_the_end(tmp_path, browser):
    with deploy.deployment(free_port(), 2, tmp_path / "deploy") as running:
        with urllib.request.urlopen(f"{running.url}/", timeout=10) as answer:
            cookie = answer.headers.get("Set-Cookie", "")
        assert cookie.startswith(f"{deploy.COOKIE}=r"), cookie  # sticky from the first answer

        context = browser.new_context()
        tab = context.new_page()
        tab.goto(explorer_url(running.url, RUN.to_query()))
        wait_for_state(tab, lambda s: s.caption is not None and s.caption.hash == RUN.hash
                       and s.caption.status.startswith("running") and s.points > 0, 120,
                       what="the run streaming through the proxy")
        replica = next(c["value"] for c in context.cookies() if c["name"] == deploy.COOKIE)
        mine = int(replica.removeprefix("r")) - 1
        # The page's event streams reach the replica its websocket is on, and no other.
        streams = wait_for(lambda: (s := [stats(r.url)["streams"] for r in running.replicas])
                           [mine] > 0 and s, 30, what="the page's streams on its replica")
        assert streams[1 - mine] == 0, streams
        # The net's run to its end (its parallel twin, slower, is not waited for).
        state = wait_for_state(tab, lambda s: s.caption is not None and s.caption.done
                               and "P (trained)" in s.metrics, 240, what="the run done")
        assert state.metric("P (trained)") >= state.metric("D (lower bound") * (1 - 1e-6)
        context.close()


@pytest.mark.parametrize("option", [["--port", "0"], ["--port", "70000"],
                                    ["--replicas", "0"], ["--replicas", "99"]])
def test_out_of_range_options_exit_2_naming_the_range(option):
    done = subprocess.run([sys.executable, str(ROOT / "deploy" / "run.py"), *option],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2, done
    allowed = "[1, 65535]" if option[0] == "--port" else f"[1, {deploy.MAX_REPLICAS}]"
    assert option[0] in done.stderr and allowed in done.stderr, done.stderr
