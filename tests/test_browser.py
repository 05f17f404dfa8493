"""The explorer page in a real browser: a real Streamlit server, Debian's chromium, Playwright.

What AppTest cannot see: the live view actually streaming to the browser while a job runs, the
slider driving the URL, and hostile links rendering safely. The module starts one server (its
store in a temporary directory) and one chromium for all tests.

Set DUALVIZ_SCREENSHOT=/some/file.png to keep a screenshot of the page after the depth-3 run.
"""

from __future__ import annotations

import os
import re
import time

import pytest
from playwright.sync_api import expect

from dualviz.config import Experiment
from dualviz.testing import (
    CHROMIUM,
    explorer_url,
    parse_caption,
    recorded,
    start_recording,
    wait_for_settled,
    wait_for_state,
)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (CI installs Debian's chromium)")]

# Big enough that the depth-3 run takes a few seconds on a 2-core machine (3.5 s on a quiet one
# with two random restarts, since training stops at the known optimum: four restarts here),
# so the live view redraws it many times; depth 2 reaches zero gap in a few seconds.
LINK = Experiment(arch="standard", activation="linear", regularization="rescaled",
                  objective="interpolation", depth=2, target_rank=2, n=200, d=40, k=10,
                  x_rank=40, width=16, iterations=3000, restarts=4)
DEPTH3 = LINK.replace(depth=3)[0]
MIN_LIVE_UPDATES = 5
TIME_BUDGET = 110.0  # seconds for the whole live test, however the phases share it


def finished(exp: Experiment):
    """A predicate: the live view shows `exp`, done, with its final metrics."""
    def predicate(state) -> bool:
        return (state.caption is not None and state.caption.hash == exp.hash
                and state.caption.done and "P (trained)" in state.metrics
                and state.metric("Relative gap") is not None)
    return predicate


def test_depth_slider_streams_the_run_and_opens_the_gap(server, page):
    tab, dialogs = page
    started = time.monotonic()
    deadline = started + TIME_BUDGET

    def left() -> float:
        return max(deadline - time.monotonic(), 1.0)

    tab.goto(explorer_url(server.url, LINK.to_query()))

    # Depth 2: training reaches the dual bound. The first page of a fresh server also waits
    # for the job fork server to warm up (torch and CVXPY imports, a tiny run).
    state = wait_for_settled(tab, finished(LINK), timeout=min(left(), 60),
                             what="the depth-2 run to finish")
    depth2_seconds = time.monotonic() - started
    relative = state.metric("Relative gap")
    assert relative is not None and abs(relative) < 1e-3, state
    old_signature = state.signature

    # Depth 3 with the real control: focus the slider's thumb, one step right.
    thumb = tab.get_by_role("slider", name="Depth L")
    assert thumb.get_attribute("aria-valuetext") == "2"
    start_recording(tab)
    thumb.focus()
    thumb.press("ArrowRight")
    changed = time.monotonic()
    expect(tab).to_have_url(re.compile(r"[?&]depth=3(&|$)"), timeout=min(left(), 10) * 1000)
    final = wait_for_settled(tab, finished(DEPTH3), timeout=left(),
                             what="the depth-3 run to finish")
    depth3_seconds = time.monotonic() - changed
    log = recorded(tab)["log"]

    # The curve of the new run, as the browser drew it while the job ran.
    live: list[str] = []
    for entry in log:
        caption = parse_caption(entry["caption"])
        if caption is None or caption.hash != DEPTH3.hash:
            continue
        if caption.done:
            break
        signature = entry["signature"]
        # Any drawn series counts: an interpolation run is drawn dashed until it is feasible.
        if signature not in (None, "[]") and signature != old_signature and \
                signature not in live:
            live.append(signature)
    assert len(live) >= MIN_LIVE_UPDATES, (
        f"the objective figure changed {len(live)} times while the depth-3 job ran "
        f"(status at the end: {final.caption_text}); log: {log}")

    print(f"\ndepth 2: page open to done {depth2_seconds:.1f} s; depth 3: slider to done "
          f"{depth3_seconds:.1f} s, job {final.caption.status}, curve redrawn {len(live)} times")
    assert final.metric("P (trained)") is not None, final.metrics
    relative, gap = final.metric("Relative gap"), final.metric("Gap P - D")
    assert relative is not None and relative > 0.05, final.metrics
    assert gap is not None and gap > 0, final.metrics
    assert "depth=3" in tab.url
    assert thumb.get_attribute("aria-valuetext") == "3"
    assert not dialogs, dialogs

    if os.environ.get("DUALVIZ_SCREENSHOT"):
        tab.screenshot(path=os.environ["DUALVIZ_SCREENSHOT"], full_page=True)


def test_hostile_link_is_clamped_and_renders_safely(server, page):
    tab, dialogs = page
    tab.goto(explorer_url(server.url, "depth=99&beta=nan&foo=<script>alert(1)</script>"))

    warning = tab.locator('[data-testid="stAlert"]').filter(has_text="Adjusted: depth")
    warning.first.wait_for(timeout=30_000)
    assert "using 10" in warning.first.inner_text()
    alerts = tab.locator('[data-testid="stAlert"]')
    alerts.filter(has_text="Adjusted: beta").first.wait_for(timeout=10_000)
    alerts = alerts.all_inner_texts()
    assert not any("foo" in text or "script" in text for text in alerts), alerts
    expect(tab).to_have_url(re.compile(r"[?&]depth=10(&|$)"), timeout=10_000)
    state = wait_for_state(tab, lambda s: s.caption is not None, timeout=10,
                           what="the live view")
    assert "foo" not in state.url and "script" not in state.url.lower(), state.url
    assert "beta=1.0" in state.url, state.url

    # Nothing from the link reached the DOM as markup, and no script ran.
    injected = tab.evaluate("() => Array.from(document.scripts).some("
                            "s => (s.textContent || '').includes('alert(1)'))")
    assert not injected
    assert not dialogs, dialogs


def test_relu_page_three_layer_mode_shows_d_certified_and_the_bounds(server, page):
    """The ReLU page's three-layer mode in a real browser: the run finishes, D is shown with
    its certified bracket and the standard net's gap is labelled an upper bound."""
    tab, dialogs = page
    exp = Experiment(activation="relu", depth=3, dataset="regression", n=8, d=1,
                     objective="squared", beta=0.1, arch="standard", width=8, branches=20,
                     optimizer="adam", lr=0.01, iterations=800, restarts=1)
    tab.goto(f"{server.url}/ReLU_networks?{exp.to_query()}")
    wait_for_settled(tab, finished(exp), timeout=150, what="the three-layer run to finish")
    body = tab.locator("body")
    expect(body).to_contain_text("D (certified)", timeout=30_000)
    expect(body).to_contain_text("upper bound of its duality gap")
    expect(body).to_contain_text("Three ReLU layers, general data")
    assert not dialogs, dialogs
