"""A lecture hall on the department deployment: N followers of one presenter over two replicas.

A plain script (not a test: it prints figures, and "EXPECTATION FAILED: ..." lines where the
system did not behave as designed, but always exits 0). It starts deploy/run.py's deployment
(a throwaway PostgreSQL cluster, two `dualviz serve` replicas on it, haproxy in front with the
sticky cookie `dualviz_replica`), with DUALVIZ_PRESENTER_TOKEN set, then:

* the presenter: one real chromium page (Playwright) opens the explorer at
  ``?room=NAME&present=1`` with short runs (iterations=150, restarts=1) through the proxy,
  types the token and presses "Present";
* N followers (``--sessions``, default 300) arrive evenly over ``--arrival`` s (default 20).
  Each is Streamlit's websocket protocol (benchmarks/load_sessions.py's client code, no
  rendering): it first GETs ``/`` through haproxy for its sticky cookie (so the followers
  spread over both replicas), sends every request with it, opens ``/?follow=NAME``, follows
  the room's event stream (``/api/rooms/NAME/events``) as the browser's live panel does: a
  ``view`` event with the presenter's panel on the page it shows is drawn at once (the
  panel's experiment shown, its job streams followed, no rerun); one on another page or
  without a panel, with a new sequence number, reruns with that event's page and query (plus
  ``follow=NAME``); a page's own panel (not a follower's) reruns once all its job streams
  ended, as the panel does;
* once every follower shows the first experiment (or ``--settle`` s passed), the presenter
  moves the "Depth L" slider one step, ``--changes`` times (default 5), each time waiting until
  every follower shows the new experiment or ``--change-timeout`` s passed, then ``--pause`` s.

A follower "shows" an experiment when a live panel naming it (the hash of the panel's caption)
reaches it; the time of a change is taken just before the presenter's key press (one clock:
everything runs on this machine). Reported: followers on each replica (by their cookie, and
the rooms' streams each replica counts in /api/stats), per change how many followers showed
the new experiment and p50/p95/max of the time from the change to it; computations per
experiment across both replicas ("dualviz jobs: started <hash>" lines of both replicas' logs:
exactly one each is expected); peak RSS/PSS of each replica's process tree (sampled every
0.2 s), the CPU time of each replica's web server process (jobs excluded) and of this script.

The followers, the presenter's chromium, PostgreSQL, haproxy and the replicas all share this
machine's cores: on a small machine the times measure all of them together.

Usage: ``.venv/bin/python benchmarks/bench_rooms.py [--sessions 300] [--arrival 20]
[--changes 5] [--change-timeout 60] [--keep]`` (a quick check: ``--sessions 10``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import websockets
from load_sessions import (
    MEMORY_EVERY,
    Sampler,
    Session,
    follow_stream,
    live_panel,
    log_findings,
    pair_hashes,
    panel_caption,
    percentile,
    rerun_request,
    sse_events,
)
from playwright.async_api import async_playwright
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from dualviz.config import Experiment
from dualviz.testing import CHROMIUM, EXPLORER_PATH, deploy_module, free_port, launch_chromium

TOKEN = "bench-rooms-presenter-token"
ROOM = "bench-hall"
START = Experiment(iterations=150, restarts=1)
COOKIE = deploy_module().COOKIE


# -- a follower -------------------------------------------------------------------------------
@dataclass
class Follower:
    index: int
    replica: str = "?"  # the sticky cookie's value (r1, r2)
    connected_at: float | None = None  # time.time() the websocket was open
    shown: dict[str, float] = field(default_factory=dict)  # hash -> first time.time() shown
    views: int = 0  # room view events received
    moves: int = 0  # reruns sent for a view event
    room_streams: int = 0  # room event streams opened (each lasts 30 s)
    room_errors: list[str] = field(default_factory=list)
    failed: str | None = None
    exceptions: list[str] = field(default_factory=list)
    job: Session = field(default_factory=lambda: Session(0, "", ""))  # job stream counters

    def shows(self, experiment: str) -> bool:
        return experiment in self.shown


def sticky_cookie(base: str) -> str:
    """The value haproxy's first answer sets in its cookie (which replica this client keeps)."""
    with urllib.request.urlopen(f"{base}/", timeout=30) as answer:
        for header in answer.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            if name.strip() == COOKIE:
                return rest.split(";", 1)[0]
    raise RuntimeError("haproxy set no sticky cookie")


async def run_follower(f: Follower, base: str, stop: asyncio.Event) -> None:
    try:
        f.replica = await asyncio.to_thread(sticky_cookie, base)
    except Exception as exc:
        f.failed = f"cookie: {type(exc).__name__}: {exc}"[:300]
        return
    headers = {"Cookie": f"{COOKIE}={f.replica}"}
    f.job.started_wall = time.time()
    view = {"page": "", "query": urlencode({"follow": ROOM}), "seq": None}
    panel: dict[str, Any] = {"experiment": None, "streams": {}, "asked": None,
                             "following": False, "page": None}
    ended: dict[str, dict] = {}
    tasks: set[asyncio.Task] = set()

    def view_query() -> str:
        params = [(k, v) for k, v in parse_qsl(view["query"]) if k != "follow"]
        return urlencode([*params, ("follow", ROOM)])

    try:
        async with websockets.connect(base.replace("http", "ws", 1) + "/_stcore/stream",
                                      subprotocols=["streamlit"], origin=base,
                                      additional_headers=headers, max_size=2**27,
                                      open_timeout=60) as ws:
            f.connected_at = time.time()
            await ws.send(rerun_request(view["query"], view["page"]))

            async def follow_room(url: str) -> None:
                """The room component's EventSource: reconnects after each 30 s stream."""
                while not stop.is_set():
                    try:
                        f.room_streams += 1
                        async for event, data, _ in sse_events(base, base + url, 0, headers):
                            if event == "view":
                                f.views += 1
                                if data.get("panel") and data["page"] == panel["page"]:
                                    # drawn in the browser: no rerun
                                    view.update(seq=data["seq"], page=data["page"],
                                                query=data["query"])
                                    show_panel(data["panel"], following=True)
                                elif data["seq"] != view["seq"]:
                                    first = view["seq"] is None
                                    view.update(seq=data["seq"], page=data["page"],
                                                query=data["query"])
                                    if not first:  # the page's own seq: no move (as the JS)
                                        f.moves += 1
                                        await ws.send(rerun_request(view_query(), view["page"]))
                            elif event == "closed":
                                f.room_errors.append("closed")
                                return
                    except (OSError, RuntimeError, asyncio.IncompleteReadError) as exc:
                        if len(f.room_errors) < 10:
                            f.room_errors.append(f"{type(exc).__name__}: {exc}"[:200])
                    await asyncio.sleep(1.0)  # "retry: 1000"

            async def follow_job(url: str, cursor: int) -> None:
                await follow_stream(f.job, base, base + url, cursor, ended, headers)
                streams = panel["streams"]
                if streams and all(u.split("/api/jobs/")[1].split("/")[0] in ended
                                   for u in streams) and panel["asked"] != set(streams) \
                        and not panel["following"]:  # a follower waits for the next panel
                    panel["asked"] = set(streams)  # every stream ended: one rerun
                    await ws.send(rerun_request(view_query(), view["page"]))

            def show_panel(data: dict, following: bool) -> None:
                """A live panel reached this follower (its page's, or the room's): it shows
                the panel's experiment and follows the job streams it names."""
                nonlocal room_task
                room = data.get("room")
                if room and room_task is None:  # the panel follows the room itself
                    view["seq"] = room["seq"]
                    room_task = asyncio.create_task(follow_room(room["url"]))
                    tasks.add(room_task)
                following = following or bool(room)
                if room:
                    panel["page"] = room["page"]
                experiment = data["experiment"]
                f.shown.setdefault(experiment, time.time())
                if experiment != panel["experiment"]:  # the panel moved: its old streams close
                    panel.update(experiment=experiment, streams={}, asked=None)
                    for task in [t for t in tasks if t is not room_task]:
                        task.cancel()
                        tasks.discard(task)
                panel["following"] = following
                for stream in data["streams"]:
                    url = stream["url"]
                    if url and url not in panel["streams"]:
                        cursor = int(urlsplit(url).query.split("after=")[1].split("&")[0])
                        task = asyncio.create_task(follow_job(url, cursor))
                        panel["streams"][url] = task
                        tasks.add(task)
                if any(s["status"].startswith("failed") for s in data["streams"]):
                    f.failed = f"a job failed: {panel_caption(data)}"[:300]

            room_task = None
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 1.0)
                except TimeoutError:
                    continue
                message = ForwardMsg()
                message.ParseFromString(raw)
                if message.WhichOneof("type") == "delta" and \
                        message.delta.WhichOneof("type") == "new_element":
                    element = message.delta.new_element
                    if element.WhichOneof("type") == "exception":
                        f.exceptions.append(element.exception.message[:300])
                        continue
                    if element.WhichOneof("type") == "bidi_component" and \
                            element.bidi_component.component_name.endswith("dualviz_room"):
                        data = json.loads(element.bidi_component.json)
                        if data.get("follow") and room_task is None:
                            view["seq"] = data["seq"]
                            room_task = asyncio.create_task(follow_room(data["url"]))
                            tasks.add(room_task)
                        continue
                data = live_panel(message)
                if data is not None:
                    show_panel(data, following=False)
    except Exception as exc:  # a refused or dropped connection is a result, not a crash
        f.failed = f.failed or f"websocket: {type(exc).__name__}: {exc}".splitlines()[0][:300]
    finally:
        for task in tasks:
            task.cancel()


# -- the presenter ----------------------------------------------------------------------------
@dataclass
class Change:
    depth: str
    experiment: str
    at: float  # time.time() just before the key press
    url_at: float | None = None  # the presenter's URL had the new depth
    followers_shown: int | None = None  # the presenter page's follower count then
    waited_s: float = 0.0


def presenter_view(href: str) -> dict[str, str]:
    return {k: v for k, v in parse_qsl(urlsplit(href).query)
            if k not in ("room", "present", "follow")}


async def wait_until(check, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(every)
    return False


async def run(args, deployment, folder: Path) -> dict[str, Any]:
    base = deployment.url
    followers = [Follower(i) for i in range(1, args.sessions + 1)]
    stop = asyncio.Event()
    changes: list[Change] = []
    notes: list[str] = []
    out: dict[str, Any] = {"followers": followers, "changes": changes, "notes": notes}
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        page = await (await browser.new_context(viewport={"width": 1400, "height": 1100})
                      ).new_page()
        t = time.monotonic()
        await page.goto(f"{base}{EXPLORER_PATH}?room={ROOM}&present=1&{START.to_query()}",
                        timeout=120_000)
        await page.get_by_label("Presenter token", exact=True).fill(TOKEN)
        await page.get_by_role("button", name="Present", exact=True).click()
        await page.get_by_text(f"Room {ROOM}").wait_for(timeout=120_000)
        print(f"presenter: room {ROOM} open after {time.monotonic() - t:.1f} s", flush=True)
        first = pair_hashes(presenter_view(await page.evaluate("location.href")))[0]
        out["first"] = first

        async def follower_count() -> int | None:
            with contextlib.suppress(Exception):
                value = await page.locator(".dv-room").first.get_attribute("data-followers",
                                                                            timeout=2000)
                return int(value) if value else None
            return None

        async def arrive(f: Follower, delay: float) -> None:
            await asyncio.sleep(delay)
            await run_follower(f, base, stop)

        t_arrival = time.time()
        tasks = [asyncio.create_task(arrive(f, args.arrival * i / max(len(followers), 1)))
                 for i, f in enumerate(followers)]
        await asyncio.sleep(args.arrival)

        async def all_show(experiment: str) -> bool:
            return all(f.shows(experiment) or f.failed for f in followers)

        ok = await wait_until(lambda: all_show(first), args.settle)
        out["settled_s"] = time.time() - t_arrival
        out["first_shown"] = sum(f.shows(first) for f in followers)
        print(f"followers: {out['first_shown']} of {len(followers)} show the first experiment "
              f"{first} {out['settled_s']:.1f} s after the first arrived"
              + ("" if ok else f" (gave up waiting after {args.settle:g} s)"), flush=True)
        out["stats"] = {}
        for i, server in enumerate(deployment.replicas, 1):
            with contextlib.suppress(Exception), \
                    urllib.request.urlopen(f"{server.url}/api/stats", timeout=10) as answer:
                out["stats"][f"r{i}"] = json.loads(answer.read())
        out["presenter_count_start"] = await follower_count()
        await asyncio.sleep(args.pause)

        thumb = page.get_by_role("slider", name="Depth L")
        for _ in range(args.changes):
            depth = str(int(presenter_view(await page.evaluate("location.href"))["depth"]) + 1)
            await thumb.focus()
            change = Change(depth, "", time.time())
            await thumb.press("ArrowRight")

            async def url_has_depth(depth=depth) -> bool:
                return presenter_view(await page.evaluate("location.href")).get("depth") == depth

            if await wait_until(url_has_depth, 30, every=0.05):
                change.url_at = time.time()
            view = presenter_view(await page.evaluate("location.href"))
            change.experiment = pair_hashes(view)[0]
            changes.append(change)
            await wait_until(lambda c=change: all_show(c.experiment), args.change_timeout)
            change.waited_s = time.time() - change.at
            change.followers_shown = await follower_count()
            n = sum(f.shows(change.experiment) for f in followers)
            print(f"change to depth {depth} ({change.experiment}): {n} of {len(followers)} "
                  f"followers show it after {change.waited_s:.1f} s", flush=True)
            await asyncio.sleep(args.pause)
        stop.set()
        await asyncio.wait(tasks, timeout=30)
        await browser.close()
    return out


# -- reporting --------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=300, help="followers (default 300)")
    parser.add_argument("--arrival", type=float, default=20.0,
                        help="seconds over which the followers arrive (default 20)")
    parser.add_argument("--changes", type=int, default=5, help="depth changes (default 5)")
    parser.add_argument("--settle", type=float, default=120.0,
                        help="seconds to wait for all followers to show the first experiment")
    parser.add_argument("--change-timeout", type=float, default=60.0,
                        help="seconds to wait for all followers after a change (default 60)")
    parser.add_argument("--pause", type=float, default=3.0,
                        help="seconds between the followers' arrival and a change (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args()
    deploy = deploy_module()
    from dualviz.service import pgcluster

    reason = pgcluster.missing_reason()
    if reason or not Path(deploy.HAPROXY).exists() or not CHROMIUM.exists():
        print(f"bench_rooms: cannot run: {reason or 'haproxy or chromium is missing'}")
        return
    print(f"dualviz rooms benchmark: {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} cores, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start")
    print(f"{args.sessions} followers arriving over {args.arrival:g} s, {args.changes} depth "
          f"changes; presenter: {EXPLORER_PATH}?room={ROOM}&present=1&{START.to_query()}",
          flush=True)
    folder = Path(tempfile.mkdtemp(prefix="dualviz-bench-rooms-"))
    env = {**os.environ, "DUALVIZ_PRESENTER_TOKEN": TOKEN}
    port = free_port()
    own_cpu = time.process_time()
    try:
        t = time.monotonic()
        with deploy.deployment(port, 2, folder, env=env) as running:
            print(f"deployment up in {time.monotonic() - t:.1f} s at {running.url} "
                  f"(replicas {', '.join(s.url for s in running.replicas)}; logs in {folder})",
                  flush=True)
            samplers = [Sampler(s.process.pid, folder / "no-sqlite-store")
                        for s in running.replicas]
            with contextlib.ExitStack() as stack:
                for sampler in samplers:
                    stack.enter_context(sampler)
                out = asyncio.run(run(args, running, folder))
                time.sleep(MEMORY_EVERY * 2)
        findings = [log_findings(folder / f"replica{i}.log") for i in (1, 2)]
        report(args, out, samplers, findings, time.process_time() - own_cpu)
    finally:
        if args.keep:
            print(f"kept the logs in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def report(args, out, samplers, findings, own_cpu: float) -> None:
    followers: list[Follower] = out["followers"]
    changes: list[Change] = out["changes"]
    failures: list[str] = []
    print("\n== results")
    per_replica = Counter(f.replica for f in followers if f.connected_at is not None)
    print(f"followers connected:            {sum(per_replica.values())} of {len(followers)} "
          f"({', '.join(f'{r}: {n}' for r, n in sorted(per_replica.items()))})")
    for name, stats in sorted(out.get("stats", {}).items()):
        print(f"  {name} /api/stats at settle:    room + presence streams "
              f"{stats.get('room_streams')}, rooms {stats.get('rooms')}, "
              f"job streams {stats.get('streams')}")
    print(f"presenter's follower count:     {out.get('presenter_count_start')} at the start, "
          + ", ".join(str(c.followers_shown) for c in changes) + " after each change")
    print(f"first experiment {out.get('first')}: shown by {out.get('first_shown')} followers "
          f"{fmt_s(out.get('settled_s'))} after the first arrival")
    columns = "change  depth  experiment        shown   p50 s   p95 s   max s  presenter URL s"
    print(columns)
    for i, c in enumerate(changes, 1):
        lags = [f.shown[c.experiment] - c.at for f in followers if c.experiment in f.shown]
        shown = len(lags)
        print(f"{i:>6}  {c.depth:>5}  {c.experiment}  {shown:>3}/{len(followers):<3} "
              f"{fmt_s(percentile(lags, 50)):>6}  {fmt_s(percentile(lags, 95)):>6}  "
              f"{fmt_s(max(lags) if lags else None):>6}  "
              f"{fmt_s(None if c.url_at is None else c.url_at - c.at):>6}")
        connected = sum(f.connected_at is not None for f in followers)
        if shown < connected:
            failures.append(f"change {i} (depth {c.depth}, {c.experiment}): {connected - shown}"
                            f" of {connected} connected followers never showed it within "
                            f"{args.change_timeout:g} s")
    all_lags = [f.shown[c.experiment] - c.at for c in changes for f in followers
                if c.experiment in f.shown]
    if all_lags:
        print(f"all changes:                    p50 {fmt_s(percentile(all_lags, 50))} s, "
              f"p95 {fmt_s(percentile(all_lags, 95))} s, max {fmt_s(max(all_lags))} s "
              f"(n={len(all_lags)})")
    starts = Counter()
    per_log = []
    for (count, _), i in zip(findings, (1, 2), strict=True):
        starts.update(count)
        per_log.append(f"r{i}: {sum(count.values())}")
    expected = {h for c in [out.get("first"), *(c.experiment for c in changes)] if c
                for h in pair_hashes(_query_of(c, out, changes))}
    print(f"computations started:           {sum(starts.values())} ({', '.join(per_log)}; "
          f"{len(starts)} distinct experiments, {len(expected)} expected: each depth and its "
          f"other-architecture twin)")
    print("  per experiment:               "
          + ", ".join(f"{h}: {n}" for h, n in sorted(starts.items())))
    twice = {h: n for h, n in starts.items() if n > 1}
    if twice:
        failures.append(f"computed more than once across the replicas: {twice}")
    missing = expected - set(starts)
    if missing:
        failures.append(f"experiments never computed: {sorted(missing)}")
    for i, sampler in enumerate(samplers, 1):
        p = sampler.peaks
        print(f"replica r{i}: peak tree {p.rss_mb:.0f} MB RSS / {p.pss_mb:.0f} MB PSS "
              f"(web server alone {p.streamlit_mb:.0f} MB RSS; up to {p.processes} processes, "
              f"{p.job_processes} jobs at once); web server CPU {p.server_cpu_s:.1f} s over "
              f"{p.wall_s:.0f} s ({100 * p.server_cpu_s / max(p.wall_s, 1e-9):.0f}% of a core)")
    print(f"this script (followers + presenter driver) CPU: {own_cpu:.1f} s")
    failed = [f for f in followers if f.failed]
    for reason, n in Counter(f.failed for f in failed).most_common(5):
        print(f"followers failed ({n}): {reason}")
    if failed:
        failures.append(f"{len(failed)} followers failed (see above)")
    room_errors = Counter(e for f in followers for e in f.room_errors)
    for error, n in room_errors.most_common(5):
        print(f"room stream error x{n}: {error}")
    job_errors = Counter(e for f in followers for e in f.job.stream_errors)
    for error, n in job_errors.most_common(5):
        print(f"job stream error x{n}: {error}")
    exceptions = Counter(e for f in followers for e in f.exceptions)
    for text, n in exceptions.most_common(3):
        failures.append(f"{n} followers show an exception: {text[:200]!r}")
    print(f"room views received:            {sum(f.views for f in followers)}, moves "
          f"(reruns for a view) {sum(f.moves for f in followers)}, room streams opened "
          f"{sum(f.room_streams for f in followers)}, job batches "
          f"{sum(f.job.batches for f in followers)}")
    for (_, trouble), i in zip(findings, (1, 2), strict=True):
        if trouble:
            print(f"replica r{i} log: {len(trouble)} troubling lines, first ones:")
            for line in trouble[:8]:
                print(f"  | {line[:200]}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for failure in failures:
        print(f"EXPECTATION FAILED: {failure}")
    print(f"\n{len(failures)} expectation(s) failed" if failures else "\nall expectations met")


def _query_of(experiment: str, out, changes) -> dict[str, str]:
    """The presenter's query for one of its experiments (START with that change's depth)."""
    depth = START.depth
    for c in changes:
        if c.experiment == experiment:
            depth = int(c.depth)
    return dict(parse_qsl(START.replace(depth=depth)[0].to_query()))


def fmt_s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
