"""The push channel in a real browser: a live run grows in the browser from its stream, a reload
reattaches, two tabs see the same run, a closed tab's stream ends on the server, and presenter
mode fits a projector. A real server (python -m dualviz serve), Debian's chromium.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request

import pytest
from shared import SLOW_TRAINING

from dualviz.config import Experiment
from dualviz.testing import (
    CHROMIUM,
    VIEWPORT,
    explorer_url,
    recorded,
    start_recording,
    streamlit_server,
    wait_for_state,
)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (CI installs Debian's chromium)")]

# Several seconds of training with three restarts (a standard net, so the run has a gap).
RUN = Experiment(n=200, d=40, k=10, x_rank=40, target_rank=5, width=16, iterations=20000,
                 restarts=3, depth=3)
# Running for about 12 s (its twin 21 s): long enough to close its tab mid-run, short enough
# not to hold a job place for the next tests (the module's server cancels a closed tab's job
# 20 s after its stream went away).
ENDLESS = RUN.replace(restarts=8, iterations=1000, seed=3, **SLOW_TRAINING)[0]


def slow_run(seed: int) -> Experiment:
    """RUN trained by Adam: about 10-14 s (20 s under CI's load; its twin 23 s), so it outlasts
    a page's loading and what a test does meanwhile; RUN's L-BFGS (9 s under load) once ended
    before a second tab drew, and before the state with its dual reached the page."""
    return RUN.replace(seed=seed, restarts=1, iterations=7000, **SLOW_TRAINING)[0]

FIGURE_DATA_JS = """() => {
  const gd = document.querySelector('.dv-fig-objective_figure');
  if (!gd || !gd.data) return null;
  return gd.data.map(t => ({meta: t.meta, x: t.x, y: t.y}));
}"""


# True once every streamed point of the objective figure lies within its axes' ranges, on the
# axes the live chart ranges (autoranged, or given a range by it: spec.ranges); an axis the
# page's figure fixed may leave far-off early iterates out.
POINTS_IN_VIEW_JS = """() => {
  const gd = document.querySelector('.dv-fig-objective_figure');
  if (!gd || !gd._fullLayout) return false;
  let root = gd;
  while (root && !root.__dv) root = root.parentElement;
  const spec = root && root.__dv.figures.objective_figure;
  if (!spec) return false;
  const inside = (axis, v) => {
    if (!axis || !axis.range || v === null || v === undefined) return true;  // not drawn yet
    const u = axis.type === 'log' ? (v > 0 ? Math.log10(v) : null) : v;
    const ours = (spec.ranges || {})[axis._name];
    const managed = axis.autorange === true ||
      (ours && ours[0] === axis.range[0] && ours[1] === axis.range[1]);
    if (!managed) return true;
    const [a, b] = axis.range;
    return u === null || (u >= Math.min(a, b) - 1e-9 && u <= Math.max(a, b) + 1e-9);
  };
  return gd.data.filter(t => t.meta && t.meta.restart !== undefined).every(t => {
    const xa = gd._fullLayout['xaxis' + (t.xaxis || 'x').slice(1)];
    const ya = gd._fullLayout['yaxis' + (t.yaxis || 'y').slice(1)];
    return (t.x || []).every((x, i) => inside(xa, x) && inside(ya, t.y[i]));
  });
}"""


def running(exp):
    return lambda s: (s.caption is not None and s.caption.hash == exp.hash
                      and s.caption.status.startswith("running"))


def done(exp, twin_too=True):
    """The featured run is done (and its twin on the other architecture, unless a test
    checks only the featured one: waiting for it would hold the test for the twin's run)."""
    return lambda s: (s.caption is not None and s.caption.hash == exp.hash and s.caption.done
                      and (not twin_too or s.caption.other_status.startswith("done")))


def stats(server) -> dict:
    with urllib.request.urlopen(f"{server.url}/api/stats", timeout=5) as response:
        return json.loads(response.read())


def solid_points(tab) -> dict[int, list[tuple[float, float]]]:
    """The drawn (iteration, objective) points of each restart's solid trace."""
    out = {}
    for trace in tab.evaluate(FIGURE_DATA_JS) or []:
        if trace["meta"] and trace["meta"].get("series") == "feasible":
            out[trace["meta"]["restart"]] = [(x, y) for x, y in zip(trace["x"], trace["y"],
                                                                     strict=True)
                                             if y is not None]
    return out


def streamed_points(tab) -> dict[tuple[int, str], list[tuple[float, float | None]]]:
    """The (iteration, value) points of every restart's series as drawn, gaps included: an
    augmented Lagrangian's iterates are drawn faded (not yet feasible) until they are."""
    return {(t["meta"]["restart"], t["meta"]["series"]): list(zip(t["x"], t["y"], strict=True))
            for t in tab.evaluate(FIGURE_DATA_JS) or []
            if t["meta"] and "restart" in t["meta"]}


def points_while_running(tab, exp) -> dict[tuple[int, str], list] | None:
    """`streamed_points` once the tab draws more than three points of `exp` while it runs,
    else None; a tab showing `exp` done before that fails the test at once."""
    state = wait_for_state(tab, lambda s: True, 5, what="the page")
    assert not done(exp, twin_too=False)(state), "the run ended before the page drew it"
    if not running(exp)(state):
        return None
    points = streamed_points(tab)
    drawn = sum(y is not None for series in points.values() for _, y in series)
    return points if drawn > 3 else None


def test_the_curve_grows_in_the_browser_while_the_job_runs(server, page):
    tab, dialogs = page
    tab.goto(explorer_url(server.url, RUN.to_query()))
    wait_for_state(tab, lambda s: s.caption is not None and s.caption.hash == RUN.hash, 120,
                   what="the panel")
    start_recording(tab)
    # Points beyond the axes are drawn in place (clipped) only until the next full redraw
    # grows the axes (at most GROW_EVERY_MS = 0.3 s later in live_chart.js).
    longest_out = 0.0
    out_since = None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        in_view = tab.evaluate(POINTS_IN_VIEW_JS)
        now = time.monotonic()
        out_since = None if in_view else (out_since or now)
        longest_out = max(longest_out, now - out_since if out_since else 0.0)
        if done(RUN, twin_too=False)(wait_for_state(tab, lambda s: True, 5, what="the page")):
            break
        time.sleep(0.1)
    log = recorded(tab)["log"]
    paints = [e for e in log if e["figureChanged"] and e["points"] > 0
              and e["caption"] and "running" in e["caption"].split(" · ")[0]]
    assert len(paints) >= 10, f"{len(paints)} paints while running; log {log[:5]}"
    points = [e["points"] for e in paints]
    assert points == sorted(points) and points[-1] > points[0]  # it grew, it never shrank
    assert longest_out < 2.0, f"points out of view for {longest_out:.1f} s"
    tab.wait_for_function(POINTS_IN_VIEW_JS, timeout=10_000)
    assert not dialogs


def test_the_dual_line_is_drawn_while_the_job_runs(server, page):
    """A linear net's dual comes from its job (a CVXPY solve) after the page was drawn with
    the closed form: the stream's state relayouts the figure, without a rerun."""
    tab, _ = page
    exp = slow_run(seed=17)
    tab.goto(explorer_url(server.url, exp.to_query()))
    deadline = time.monotonic() + 120
    while points_while_running(tab, exp) is None:
        assert time.monotonic() < deadline, "no points drawn while the job ran"
        time.sleep(0.1)
    notes = tab.wait_for_function("""() => {
      const gd = document.querySelector('.dv-fig-objective_figure');
      const notes = (gd && gd.layout && gd.layout.annotations || []).map(a => a.text);
      return notes.some(t => t.includes('(lower bound on P)')) && notes;
    }""", timeout=30_000).json_value()
    state = wait_for_state(tab, lambda s: True, 5, what="the page")
    assert running(exp)(state), "the run ended before its dual line was drawn"
    # Named as the finished figure names it (the stream once said "Lagrangian dual (SDP)").
    drawn = next(float(re.fullmatch(r"D = (\S+) \(lower bound on P\)", note).group(1))
                 for note in notes if "(lower bound on P)" in note)
    assert drawn == pytest.approx(state.metric("D (lower bound"), rel=1e-3), (notes, state)


def test_no_feasible_point_is_drawn_below_the_dual_on_the_parallel_preset(server, page):
    """Weak duality, as drawn: the solid (feasible) curve never dips below D; iterates that
    are not yet feasible are drawn faded and may (their value bounds nothing)."""
    from dualviz.presets import PRESETS

    tab, _ = page
    preset = next(p for p in PRESETS if p.title == "A parallel net closes it")
    exp = Experiment.from_values(preset.query)[0]
    tab.goto(explorer_url(server.url, exp.to_query()))
    faded_below = False
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        state = wait_for_state(tab, lambda s: s.caption is not None
                               and s.caption.hash == exp.hash, 60, what="the panel")
        dual = state.metric("D (lower bound")
        if dual is not None:
            for trace in tab.evaluate(FIGURE_DATA_JS) or []:
                series = (trace["meta"] or {}).get("series")
                ys = [y for y in trace["y"] if y is not None]
                if series == "feasible":
                    assert all(y >= dual * (1 - 1e-6) for y in ys), (dual, min(ys))
                elif series == "infeasible" and ys and min(ys) < dual:
                    faded_below = True
        if state.caption.done and state.caption.other_status.startswith("done"):
            break
        time.sleep(0.3)
    assert state.caption.done
    assert faded_below, "the augmented Lagrangian's early iterates lie below D (drawn faded)"


def test_a_reload_mid_run_reattaches_without_duplicated_points(server, page):
    tab, _ = page
    exp = RUN.replace(seed=11)[0]
    tab.goto(explorer_url(server.url, exp.to_query()))
    wait_for_state(tab, lambda s: running(exp)(s) and s.points > 3, 120, what="points drawn")
    tab.reload()
    wait_for_state(tab, lambda s: running(exp)(s) and s.points > 0, 60,
                   what="reattached to the running job")
    time.sleep(1.5)  # the stream adds to what the reloaded page drew
    for restart, points in solid_points(tab).items():
        iterations = [x for x, _ in points]
        assert iterations == sorted(set(iterations)), (restart, iterations)


def test_two_tabs_on_one_experiment_see_the_same_points(server, browser):
    exp = slow_run(seed=12)
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(2)]
    try:
        tabs = [context.new_page() for context in contexts]
        for tab in tabs:
            tab.goto(explorer_url(server.url, exp.to_query()))
        # Streamed, not redrawn from the store: what each browser drew while the job ran,
        # read as soon as that tab shows points (both tabs watched at once).
        drawn = {}
        deadline = time.monotonic() + 120
        while len(drawn) < len(tabs) and time.monotonic() < deadline:
            for index, tab in enumerate(tabs):
                if index not in drawn and (points := points_while_running(tab, exp)):
                    drawn[index] = points
            time.sleep(0.1)
        assert len(drawn) == len(tabs), f"points streaming in tabs {sorted(drawn)} only"
        a, b = drawn[0], drawn[1]
        shared = [key for key in set(a) & set(b) if a[key] and b[key]]
        assert shared
        for key in shared:
            common = min(len(a[key]), len(b[key]))
            assert a[key][:common] == b[key][:common], key
    finally:
        for context in contexts:
            context.close()


def test_closing_a_tab_ends_its_stream_on_the_server(server, browser):
    hashes = {ENDLESS.hash, ENDLESS.replace(arch="parallel")[0].hash}

    def subscribed() -> int:
        return sum(n for h, n in stats(server)["subscribers"].items() if h in hashes)

    context = browser.new_context(viewport=VIEWPORT)
    try:
        tab = context.new_page()
        tab.goto(explorer_url(server.url, ENDLESS.to_query()))
        wait_for_state(tab, running(ENDLESS), 120, what="the endless run streaming")
        deadline = time.monotonic() + 10
        while subscribed() < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert subscribed() == 2  # the run and its twin, one stream each
    finally:
        context.close()
    deadline = time.monotonic() + 15
    while subscribed() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert subscribed() == 0


def test_the_stream_serves_only_jobs_stored_here(server):
    for path in ("/api/jobs/0123456789abcdef/stream", "/api/jobs/..%2F..%2Fetc/stream",
                 "/api/jobs/<script>/stream"):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(server.url + path, timeout=5)
        assert info.value.code in (400, 404), path  # refused: not a job of this server
    with urllib.request.urlopen(server.url + "/", timeout=5) as response:
        headers = {k.lower(): v for k, v in response.headers.items()}
    assert headers["content-security-policy"] == "frame-ancestors 'self'"
    assert headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in headers


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)])
def test_presenter_mode_fits_a_projector(server, browser, size, tmp_path):
    """Every figure's labels inside its box, text large enough, nothing cut (look at the
    screenshots: DUALVIZ_SCREENSHOT_DIR keeps them)."""
    exp = Experiment(depth=3, target_rank=2, iterations=150, restarts=1)
    context = browser.new_context(viewport={"width": size[0], "height": size[1]})
    tab = context.new_page()
    tab.goto(explorer_url(server.url, exp.to_query() + "&present=1"))
    wait_for_state(tab, done(exp), 180, what="the preset run done")
    # A finished run's caption can come before the component has loaded Plotly and drawn.
    tab.wait_for_function("""() => { const figs = [...document.querySelectorAll('.dv-figure')];
      return figs.length > 0 && figs.every(gd => gd._fullLayout) &&
             figs.some(gd => gd.data.some(t => (t.x || []).length > 0)); }""", timeout=60_000)
    tab.wait_for_timeout(500)  # the stream's last batch
    report = tab.evaluate("""() => [...document.querySelectorAll('.dv-figure')].map(gd => {
      const box = gd.getBoundingClientRect();
      const texts = [...gd.querySelectorAll('text')].filter(t => (t.textContent || '').trim());
      const outside = texts.filter(t => { const r = t.getBoundingClientRect();
        return r.width > 0 && (r.left < box.left - 1 || r.right > box.right + 1 ||
                               r.top < box.top - 1 || r.bottom > box.bottom + 1); })
        .map(t => t.textContent);
      const sizes = texts.map(t => parseFloat(getComputedStyle(t).fontSize));
      return {id: gd.className, outside, smallest: Math.min(...sizes), width: box.width};
    })""")
    assert report, "no figure drawn"
    for figure in report:
        assert not figure["outside"], figure
        assert figure["smallest"] >= 18, figure
    directory = os.environ.get("DUALVIZ_SCREENSHOT_DIR")
    shot = (tmp_path if not directory else __import__("pathlib").Path(directory)) / \
        f"presenter-{size[0]}x{size[1]}.png"
    tab.screenshot(path=str(shot))
    tab.locator(".dv-live").screenshot(path=str(shot.with_suffix(".panel.png")))
    context.close()



def test_streams_beyond_the_servers_cap_are_refused_and_the_page_catches_up(tmp_path, browser):
    """DUALVIZ_MAX_STREAMS=2: while one tab's two streams are open a third is refused with
    503; a second tab on the same run is refused at first, asks again, and still ends with the
    final result (nothing else would rerun it)."""
    exp = slow_run(seed=31)  # both streams stay open while the test acts
    with streamlit_server(tmp_path, extra_env={"DUALVIZ_MAX_STREAMS": "2"}) as server:
        first = browser.new_page(viewport=VIEWPORT)
        first.goto(explorer_url(server.url, exp.to_query()))
        wait_for_state(first, running(exp), 120, "the first tab's run to start")
        deadline = time.monotonic() + 60
        while stats(server)["streams"] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stats(server)["streams"] == 2
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.url}/api/jobs/{exp.hash}/stream", timeout=5)
        assert refused.value.code == 503
        second = browser.new_page(viewport=VIEWPORT)
        second.goto(explorer_url(server.url, exp.to_query()))
        state = wait_for_state(second, done(exp, twin_too=False), 240,
                           "the refused tab's final result")
        assert "P (trained)" in state.metrics
        assert stats(server)["streams"] <= 2
        first.close()
        second.close()
