"""How fast the explorer page reacts and streams, measured in a real browser.

A plain script (not a test; it prints figures and asserts nothing). It starts its own Streamlit
server (``streamlit run app.py``, the store in a temporary ``DUALVIZ_DATA_DIR``) and Debian's
chromium through Playwright, then, for each repetition:

1. opens the explorer page for a default-ish experiment (the defaults with another seed and
   depth, so nothing is cached) and waits until both jobs (standard and parallel) are done;
2. moves the "Depth L" slider one step right with the keyboard and, with a recorder inside the
   page that polls the DOM every 50 ms, measures
   (a) the time from the key press to the URL saying the new depth, to the status line naming
       the new experiment, and to the first solid (feasible) point of the new run;
   (b) from the live chart's draw counter: the first draw that plotted a point of the new run
       and the draws per second from it to the run's last draw, against the snapshots per second
       the job wrote (rows of ``snapshots`` in ``$DUALVIZ_DATA_DIR/dualviz.sqlite3`` for the
       experiment hash shown in the caption, over the span of their training times);
3. waits for the parallel counterpart job to finish too, so the next repetition starts idle.

Medians over the repetitions are printed last.

Usage: ``.venv/bin/python benchmarks/bench_page.py [--reps 3] [--query 'n=60&d=20']``
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from dualviz.config import Experiment
from dualviz.testing import (
    CHROMIUM,
    explorer_url,
    launch_chromium,
    page_clock,
    parse_caption,
    recorded,
    start_recording,
    streamlit_server,
    wait_for_settled,
    wait_for_state,
    wait_until_warm,
)

RUN_TIMEOUT = 180.0  # seconds for one job pair to finish

# Installed before any page script: every EventSource the page opens logs when it was created,
# when it delivered its first batch, and the objective figure's draw counter (kept by
# dualviz/ui/live_chart.js) is sampled on every animation frame, so redraws are counted exactly
# (the DOM recorder polls every 50 ms and cannot see more than 20 per second).
TRACE_JS = r"""
(() => {
  const log = window.__dvStreams = [];
  const Native = window.EventSource;
  window.EventSource = function (url, options) {
    const source = new Native(url, options);
    const entry = { url: String(url), created: Date.now(), firstBatch: null, batches: [] };
    log.push(entry);
    source.addEventListener("batch", () => {
      const now = Date.now();
      if (entry.firstBatch === null) entry.firstBatch = now;
      entry.batches.push(now);
    });
    return source;
  };
  window.EventSource.prototype = Native.prototype;
  const draws = window.__dvDraws = [];
  const paints = window.__dvPaints = [];  // frames whose drawn curves changed
  let last = null;
  let lastShape = 0;
  const sample = () => {
    const el = document.querySelector('.dv-fig-objective_figure');
    const n = el && el.dataset.draws ? +el.dataset.draws : 0;
    if (el !== last || n !== (draws.length ? draws[draws.length - 1].n : -1)) {
      // Plotted points of every restart's series (faded, solid, P - D, residual).
      const points = el && el.data ? el.data.filter((t) => t.meta && t.meta.restart !== undefined)
        .reduce((k, t) => k + (t.y || []).filter((y) => y !== null).length, 0) : 0;
      const ms = el && el.dataset.drawMs ? +el.dataset.drawMs : 0;
      draws.push({ t: Date.now(), n, points, ms, fresh: el !== last });
      last = el;
    }
    // What the screen shows, independently of the counter: the drawn curves' SVG paths.
    const paths = el ? el.querySelectorAll('.scatterlayer path.js-line') : [];
    let shape = 0;
    for (const path of paths) shape += (path.getAttribute('d') || '').length + 1;
    if (shape !== lastShape) {
      paints.push(Date.now());
      lastShape = shape;
    }
    requestAnimationFrame(sample);
  };
  requestAnimationFrame(sample);
})();
"""


@dataclass(frozen=True)
class Measurement:
    label: str
    job_seconds: float  # "done in" of the new standard job, as the page said
    to_url_ms: float | None
    to_status_ms: float | None
    to_first_point_ms: float | None
    page_updates: int
    page_window_s: float
    snapshots: int
    written_span_s: float
    median_gap_ms: float | None  # median time between two redraws
    status_updates: int  # distinct status lines ("running for ...") shown in the same window
    to_stream_ms: float | None  # key press -> the page opened the new job's event stream
    to_batch_ms: float | None  # key press -> that stream delivered its first batch
    batch_rate: float | None  # batches per second that stream delivered (first .. last)
    frames_first_ms: float | None  # key press -> first draw that plotted a point (the counter)
    frame_draws: int  # draws of the new run's figure after that one, up to its last draw
    frame_window_s: float  # from the first to the last draw
    painted_frames: int  # animation frames in that window whose drawn curves changed
    draw_ms: float | None  # mean time in Plotly per draw of the objective figure

    @property
    def frame_rate(self) -> float | None:
        return self.frame_draws / self.frame_window_s if self.frame_window_s > 0 else None

    @property
    def paint_rate(self) -> float | None:
        return self.painted_frames / self.frame_window_s if self.frame_window_s > 0 else None

    @property
    def page_rate(self) -> float | None:
        return self.page_updates / self.page_window_s if self.page_window_s > 0 else None

    @property
    def status_rate(self) -> float | None:
        return self.status_updates / self.page_window_s if self.page_window_s > 0 else None

    @property
    def written_rate(self) -> float | None:
        return self.snapshots / self.written_span_s if self.written_span_s > 0 else None


def both_done(exp: Experiment):
    def predicate(state) -> bool:
        caption = state.caption
        return (caption is not None and caption.hash == exp.hash and caption.done
                and caption.other_status.startswith("done") and "P (trained)" in state.metrics)
    return predicate


def standard_done(exp: Experiment):
    def predicate(state) -> bool:
        caption = state.caption
        return (caption is not None and caption.hash == exp.hash and caption.done
                and "P (trained)" in state.metrics)
    return predicate


def stored_snapshots(db_path: Path, job_hash: str) -> tuple[int, float]:
    """(rows, span of their training times in s) of one job's stored snapshots."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute("SELECT body FROM snapshots WHERE hash = ? ORDER BY seq",
                          (job_hash,)).fetchall()
    elapsed = [json.loads(body)["elapsed"] for (body,) in rows]
    return len(rows), (max(elapsed) - min(elapsed)) if elapsed else 0.0


def measure(page: Any, server_url: str, db_path: Path, base: Experiment) -> Measurement:
    target = base.replace(depth=base.depth + 1)[0]
    page.goto(explorer_url(server_url, base.to_query()))
    before = wait_for_settled(page, both_done(base), RUN_TIMEOUT,
                              f"both jobs of {base.hash} to finish")

    thumb = page.get_by_role("slider", name="Depth L")
    start_recording(page)
    thumb.focus()
    pressed = page_clock(page)
    thumb.press("ArrowRight")
    final = wait_for_state(page, standard_done(target), RUN_TIMEOUT,
                           f"the standard job of {target.hash} to finish")
    log = recorded(page)["log"]

    to_url = to_status = to_point = None
    redraws: list[float] = []  # page clock (ms) of each distinct redraw of the new run's curve
    seen: set[str] = {before.signature or ""}
    statuses: list[tuple[float, str]] = []  # (page clock, status line) of the new run
    done_at = None
    for entry in log:
        if to_url is None and f"depth={target.depth}&" in (entry["url"] or ""):
            to_url = entry["t"] - pressed
        caption = parse_caption(entry["caption"])
        if caption is None or caption.hash != target.hash:
            continue
        if to_status is None:
            to_status = entry["t"] - pressed
        if caption.done:
            done_at = entry["t"]
            break
        if not statuses or statuses[-1][1] != entry["caption"]:
            statuses.append((entry["t"], entry["caption"]))
        signature = entry["signature"] or ""
        if entry["points"] > 0 and signature not in seen:
            seen.add(signature)
            redraws.append(entry["t"])
    if redraws:
        to_point = redraws[0] - pressed
    window = ((done_at or redraws[-1]) - redraws[0]) / 1000 if redraws else 0.0
    gaps = [b - a for a, b in itertools.pairwise(redraws)]
    in_window = [t for t, _ in statuses if redraws and t >= redraws[0]]

    frames = frame_counts(page, target.hash, pressed, done_at)

    shown_hash = final.caption.hash if final.caption else target.hash
    snapshots, span = stored_snapshots(db_path, shown_hash)
    job_seconds = float(final.caption.status.split()[2]) if final.caption else float("nan")

    # Let the parallel counterpart finish so the next repetition starts on an idle machine.
    wait_for_state(page, both_done(target), RUN_TIMEOUT, f"both jobs of {target.hash}")
    return Measurement(
        label=f"depth {base.depth}->{target.depth}, seed {base.seed}",
        job_seconds=job_seconds, to_url_ms=to_url, to_status_ms=to_status,
        to_first_point_ms=to_point, page_updates=len(redraws), page_window_s=window,
        snapshots=snapshots, written_span_s=span,
        median_gap_ms=statistics.median(gaps) if gaps else None,
        status_updates=len(in_window), **frames)


def frame_counts(page: Any, job_hash: str, pressed: float, done_at: float | None) -> dict:
    """From TRACE_JS's logs: when the new job's stream opened and first delivered, the batches
    it delivered per second, and the draws of the new run's objective figure (the figure
    element that drew the most between the key press and the status saying done): the first
    draw that plotted a point, and draws per second from that draw to the run's last draw."""
    streams = [s for s in page.evaluate("() => window.__dvStreams || []")
               if f"/api/jobs/{job_hash}/stream" in s["url"] and s["created"] >= pressed]
    to_stream = min((s["created"] for s in streams), default=None)
    batches = sorted(t for s in streams for t in s["batches"])
    end = done_at if done_at is not None else float("inf")
    segments: list[list[dict]] = []
    for entry in page.evaluate("() => window.__dvDraws || []"):
        if entry["fresh"] or not segments:
            segments.append([])
        if pressed <= entry["t"] <= end and entry["n"] > 0 and entry["points"] > 0:
            segments[-1].append(entry)
    best = max(segments, key=lambda seg: seg[-1]["n"] - seg[0]["n"] if seg else -1,
               default=[])
    batch_span = (batches[-1] - batches[0]) / 1000 if len(batches) > 1 else 0.0
    return {"to_stream_ms": None if to_stream is None else to_stream - pressed,
            "to_batch_ms": batches[0] - pressed if batches else None,
            "batch_rate": (len(batches) - 1) / batch_span if batch_span > 0 else None,
            "frames_first_ms": best[0]["t"] - pressed if best else None,
            "frame_draws": best[-1]["n"] - best[0]["n"] if best else 0,
            "draw_ms": ((best[-1]["ms"] - best[0]["ms"]) / (best[-1]["n"] - best[0]["n"])
                        if best and best[-1]["n"] > best[0]["n"] else None),
            "frame_window_s": (best[-1]["t"] - best[0]["t"]) / 1000 if best else 0.0,
            "painted_frames": sum(best[0]["t"] < t <= best[-1]["t"]
                                  for t in page.evaluate("() => window.__dvPaints || []"))
            if best else 0}


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


COLUMNS = (
    ("run", 22, lambda m: m.label, ""),
    ("job s", 6, lambda m: m.job_seconds, ".1f"),
    ("->URL ms", 9, lambda m: m.to_url_ms, ".0f"),
    ("->status ms", 12, lambda m: m.to_status_ms, ".0f"),
    ("->1st solid ms", 15, lambda m: m.to_first_point_ms, ".0f"),
    ("redraws", 8, lambda m: m.page_updates, "d"),
    ("redraw/s", 9, lambda m: m.page_rate, ".2f"),
    ("redraw gap ms", 14, lambda m: m.median_gap_ms, ".0f"),
    ("status/s", 9, lambda m: m.status_rate, ".2f"),
    ("->stream ms", 11, lambda m: m.to_stream_ms, ".0f"),
    ("->batch ms", 10, lambda m: m.to_batch_ms, ".0f"),
    ("batches/s", 9, lambda m: m.batch_rate, ".1f"),
    ("->draw ms", 9, lambda m: m.frames_first_ms, ".0f"),
    ("draws/s", 8, lambda m: m.frame_rate, ".1f"),
    ("ms/draw", 8, lambda m: m.draw_ms, ".1f"),
    ("painted/s", 9, lambda m: m.paint_rate, ".1f"),
    ("snapshots", 10, lambda m: m.snapshots, "d"),
    ("written/s", 10, lambda m: m.written_rate, ".1f"),
)


def print_table(results: list[Measurement]) -> None:
    header = " ".join(f"{name:>{width}}" if i else f"{name:<{width}}"
                      for i, (name, width, _, _) in enumerate(COLUMNS))
    print(header)
    print("-" * len(header))
    for m in results:
        cells = [f"{m.label:<{COLUMNS[0][1]}}"]
        cells += [f"{fmt(get(m), spec):>{width}}" for _, width, get, spec in COLUMNS[1:]]
        print(" ".join(cells))
    print("-" * len(header))
    cells = [f"{'median':<{COLUMNS[0][1]}}"]
    for _, width, get, spec in COLUMNS[1:]:
        value = median([get(m) for m in results])
        spec = ".1f" if spec == "d" else spec
        cells.append(f"{fmt(value, spec):>{width}}")
    print(" ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions, 1-50 (default 3)")
    parser.add_argument("--query", default="",
                        help="link parameters every experiment takes instead of the defaults, "
                             "e.g. 'n=60&d=20&optimizer=adam&lr=0.01' for longer runs")
    args = parser.parse_args()
    if not 1 <= args.reps <= 50:
        parser.error(f"--reps {args.reps}: allowed 1..50")
    if args.query:
        _, notes = Experiment.from_query(args.query)
        if notes:
            parser.error(f"--query: {'; '.join(notes)}")
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: install Debian's chromium")

    # Default-ish experiments; a new seed and depth each time, so no result is cached.
    base, _ = Experiment.from_query(args.query)
    bases = [base.replace(depth=2 + i % 3, seed=101 + i)[0] for i in range(args.reps)]
    print(f"dualviz page benchmark: {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    print(f"experiments: {base.to_query()} with depth and seed as shown")
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="dualviz-bench-") as tmp:
        data_dir = Path(tmp)
        started = time.monotonic()
        with streamlit_server(data_dir) as server, sync_playwright() as playwright:
            print(f"server up in {time.monotonic() - started:.1f} s at {server.url}; its solvers "
                  f"warm {wait_until_warm(server.url):.1f} s later")
            browser = launch_chromium(playwright)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_init_script(TRACE_JS)
            page = context.new_page()
            for i, base in enumerate(bases, 1):
                result = measure(page, server.url, data_dir / "dualviz.sqlite3", base)
                print(f"  run {i}/{len(bases)} ({result.label}) measured", flush=True)
                results.append(result)
            browser.close()
    print()
    print_table(results)
    frame_rate = median([m.frame_rate for m in results])
    written_rate = median([m.written_rate for m in results])
    if frame_rate and written_rate:
        paint_rate = median([m.paint_rate for m in results])
        print(f"\nthe page drew the new run's curve {frame_rate:.1f} times/s (its draw "
              f"counter; the curves changed on screen {paint_rate or 0:.1f} times/s) while the "
              f"job wrote {written_rate:.1f} snapshots/s.")
    print("\n->URL, ->status, ->1st solid: from the key press on the slider to the URL showing "
          "the new depth, to the status line naming the new experiment, to the first solid "
          "(feasible) point of the new run (DOM recorder, polled every 50 ms). redraws, "
          "redraw/s, redraw gap: distinct renders seen by that recorder (at most 20/s). "
          "->stream, ->batch, batches/s: the page opened the new job's event stream, its first "
          "batch arrived, batches per second it delivered. ->draw, draws/s: the first draw that "
          "plotted a point of the new run (any series: faded not-yet-feasible iterates count) "
          "and draws per second from it to the run's last draw, from the live chart's own draw "
          "counter (it counts Plotly calls) sampled every animation frame; ms/draw: the mean "
          "time a draw of that figure spent in Plotly; painted/s: animation frames in the same "
          "window in which the figure's drawn curves (their SVG paths) changed, a witness "
          "independent of the counter. written/s: stored "
          "snapshots over the span of their training times. status/s: distinct status lines "
          "per second over the redraw window.")

if __name__ == "__main__":
    main()
