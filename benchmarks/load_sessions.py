"""Many browser sessions on one server at once: shared jobs, the caps, the queue, memory.

A plain script (not a test: it prints figures, and "EXPECTATION FAILED: ..." lines where the
server did not behave as designed, but always exits 0). Each scenario starts its own Streamlit
server (``streamlit run app.py``, the store in a fresh temporary ``DUALVIZ_DATA_DIR``) and one
Debian chromium (through Playwright's async API) holding one browser context per session; the
sessions open their links at the same moment.

* ``same``: every session opens the same classroom preset link (the first deep-linear explorer
  preset), with ``DUALVIZ_MAX_JOBS=2``. The explorer runs the experiment and its
  other-architecture twin, so the server must compute exactly 2 jobs however many sessions
  watch: counted from the server's ``dualviz jobs: started <hash> as pid <pid>`` lines and
  from the distinct hashes in the store's ``jobs`` table. Every session must end with both nets
  "done in" and the same P.
* ``different``: every session opens the same preset with another seed (1..N) and short runs
  (``iterations=150&restarts=1``), so there are 2N distinct jobs, with ``DUALVIZ_MAX_JOBS=2``
  and ``DUALVIZ_MAX_QUEUED=10``. The store is sampled every 0.5 s: jobs running must stay <= 2,
  jobs queued <= 10; sessions the full queue refused show "waiting: ..." and ask again every
  2 s until their jobs get a place, so all of them should finish.

Per session: the time from the start of ``page.goto`` to the first Plotly figure drawn (a
``.js-plotly-plot`` whose ``.data`` is not empty), to the first plotted point of the objective
figure, and to the final result (both nets "done in" and the final "P (trained)" metric). These
instants are taken by a recorder inside each page (polling the DOM every 100 ms, on the page's
own clock, which is the machine's wall clock, reading textContent so as not to force layouts),
so they do not depend on how quickly Playwright gets round to each of the pages. Under load the
browser may draw the figures only after the final numbers; each session waits for both.

Memory: every 0.2 s, the RSS (VmRSS) and PSS (smaps_rollup) of the server's whole process tree
(streamlit, the job launcher and the job processes forked from it), summed; PSS splits the
pages the forked jobs share with the launcher, so it is the better estimate of the memory
actually used, RSS the upper bound. The browser runs on the same machine and competes for the
same cores, so on a small machine the times measure the browser as much as the server.

Usage: ``.venv/bin/python benchmarks/load_sessions.py [--sessions 20]
[--scenario same|different|both] [--timeout 600] [--max-jobs 2] [--max-queued 10] [--keep]``
(a small check: ``--sessions 4``; ``--sessions 4 --scenario different --max-queued 2`` makes
the queue refuse sessions, to exercise the "waiting:" path with few sessions).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import websockets
from playwright.async_api import async_playwright
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from dualviz.config import Experiment
from dualviz.presets import PRESETS
from dualviz.testing import (
    _CAPTION,
    CHROMIUM,
    VIEWPORT,
    launch_chromium,
    parse_caption,
    streamlit_server,
    wait_until_warm,
)
from dualviz.views import LINEAR

STARTED_LINE = re.compile(r"dualviz jobs: started (?P<hash>[0-9a-f]{16}) as pid (?P<pid>\d+)")
# Lines of the server's log worth showing: tracebacks, scheduler errors, Streamlit errors.
TROUBLE_LINE = re.compile(r"Traceback|Error|Exception|scheduler error|Killed|Segmentation",
                          re.IGNORECASE)
MEMORY_EVERY = 0.2  # s between memory samples of the server's process tree
STORE_EVERY = 0.5  # s between samples of the store's job statuses
READ_EVERY = 0.5  # s between two reads of a page by the script
# A websocket session that hears nothing for this long before its result has stalled: seen when
# a fragment's timed rerun reaches the server just as the fragment asked for a full rerun (jobs
# ended); the server logs "The fragment with id ... does not exist anymore" and the page is not
# redrawn again. Counted per session and reported; the client then asks for a full run.
STALL_SECONDS = 5.0
FIGURE_GRACE = 60.0  # s a finished session waits for its figures before it gives up on them
BENIGN_404 = ("/_stcore/health", "/_stcore/host-config")
DIFFERENT_RUN = {"iterations": "150", "restarts": "1"}

# The recorder, installed in every page before its scripts run. The caption regex is
# browser_support's, rewritten for JS (named groups are (?<name>...) there).
_RECORDER_JS = r"""
(() => {
  if (window.top !== window || window.__dvLoad) return;
  const CAPTION = new RegExp(__CAPTION__);
  const rec = {figureAt: null, pointAt: null, captionAt: null, doneAt: {},
               waitingSeen: false, waitingAt: null, statuses: [], hashes: [], queries: []};
  window.__dvLoad = rec;
  const caption = () => {
    for (const el of document.querySelectorAll('[data-testid="stCaptionContainer"]')) {
      const text = el.textContent || '';
      if (text.includes(' · experiment ')) return text.trim();
    }
    return null;
  };
  const finalMetric = () => {
    for (const el of document.querySelectorAll('[data-testid="stMetricLabel"]')) {
      if ((el.textContent || '').trim() === 'P (trained)') return true;
    }
    return false;
  };
  const tick = () => {
    const now = Date.now();
    const query = location.search;  // the experiment as the URL says it (the page rewrites it)
    if ((rec.queries.at(-1) || [])[1] !== query && rec.queries.length < 50) {
      rec.queries.push([now, query]);
    }
    if (rec.figureAt === null || rec.pointAt === null) {
      for (const el of document.querySelectorAll('.js-plotly-plot')) {
        if (!el.data || !el.data.length) continue;
        if (rec.figureAt === null) rec.figureAt = now;
        const box = el.closest('.st-key-objective_figure');
        if (rec.pointAt === null && box && el.data.some(t => (t.x || []).length > 0)) {
          rec.pointAt = now;
        }
      }
    }
    const text = caption();
    if (text === null) return;
    if (rec.captionAt === null) rec.captionAt = now;
    if (text.includes('waiting:')) {
      rec.waitingSeen = true;
      if (rec.waitingAt === null) rec.waitingAt = now;
    }
    const m = CAPTION.exec(text);
    if (!m) return;
    if (!rec.hashes.includes(m.groups.hash)) rec.hashes.push(m.groups.hash);
    for (const s of [m.groups.status, m.groups.other_status]) {
      const word = s.split(/[ :(]/)[0];
      if (!rec.statuses.includes(word)) rec.statuses.push(word);
    }
    if (!(m.groups.hash in rec.doneAt) && m.groups.status.startsWith('done')
        && m.groups.other_status.startsWith('done') && finalMetric()) {
      rec.doneAt[m.groups.hash] = now;  // per experiment: the page may move to another one
    }
  };
  setInterval(tick, 100);
})();
""".replace("__CAPTION__", json.dumps(_CAPTION.pattern.replace("(?P<", "(?<")))

# What the script reads from a page: the caption, the metrics, Streamlit exceptions, the recorder.
_READ_JS = r"""() => {
  let caption = null;
  for (const el of document.querySelectorAll('[data-testid="stCaptionContainer"]')) {
    const text = el.innerText || '';
    if (text.includes(' · experiment ')) { caption = text.trim(); break; }
  }
  const metrics = {};
  for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
    const label = m.querySelector('[data-testid="stMetricLabel"]');
    const value = m.querySelector('[data-testid="stMetricValue"]');
    if (label && value) metrics[label.innerText.trim()] = value.innerText.trim();
  }
  const exceptions = Array.from(document.querySelectorAll('[data-testid="stException"]'))
                          .map(el => (el.innerText || '').trim().slice(0, 500));
  return {caption: caption, metrics: metrics, exceptions: exceptions,
          rec: window.__dvLoad || null};
}"""


# -- the server's process tree and store ------------------------------------------------------
def _proc_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state letter) of every process."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()  # after "pid (comm) "
        table[int(entry.name)] = (int(fields[1]), fields[0])
    return table


def process_tree(root: int) -> list[int]:
    """`root` and all its live (non-zombie) descendants."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table and table[pid][1] != "Z":
            tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def _kib(path: str, key: str) -> int:
    """A "Key:   123 kB" line of a /proc file, in KiB (0 if the process is gone)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Peaks:
    rss_mb: float = 0.0  # the whole tree, summed VmRSS
    pss_mb: float = 0.0  # the whole tree, summed Pss
    streamlit_mb: float = 0.0  # the streamlit process alone (VmRSS)
    processes: int = 0
    job_processes: int = 0  # children of the launcher, i.e. jobs being computed
    running: int = 0  # store: jobs with status running
    queued: int = 0  # store: jobs with status queued
    memory_samples: int = 0
    store_samples: int = 0
    store_errors: list[str] = field(default_factory=list)
    server_cpu_s: float = 0.0  # CPU time (user + system) of the streamlit process alone
    wall_s: float = 0.0  # over this much wall time


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (not its children), from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Sampler:
    """A thread sampling the server's process tree (every 0.2 s) and its store (every 0.5 s)."""

    def __init__(self, server_pid: int, db_path: Path):
        self.server_pid = server_pid
        self.db_path = db_path
        self.peaks = Peaks()
        self._launcher: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)

    def __enter__(self) -> Sampler:
        self._cpu_start = cpu_seconds(self.server_pid)
        self._wall_start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.peaks.server_cpu_s = cpu_seconds(self.server_pid) - self._cpu_start
        self.peaks.wall_s = time.monotonic() - self._wall_start

    def _run(self) -> None:
        next_store = 0.0
        while not self._stop.is_set():
            self._sample_memory()
            if time.monotonic() >= next_store:
                self._sample_store()
                next_store = time.monotonic() + STORE_EVERY
            self._stop.wait(MEMORY_EVERY)

    def _sample_memory(self) -> None:
        tree = process_tree(self.server_pid)
        if not tree:
            return
        rss = {pid: _kib(f"/proc/{pid}/status", "VmRSS:") for pid in tree}
        pss = sum(_kib(f"/proc/{pid}/smaps_rollup", "Pss:") for pid in tree)
        if self._launcher not in tree:
            self._launcher = next((pid for pid in tree
                                   if "dualviz.service.launcher" in _cmdline(pid)), None)
        jobs = 0
        if self._launcher is not None:
            table = _proc_table()
            jobs = sum(1 for pid in tree if table.get(pid, (0, ""))[0] == self._launcher)
        p = self.peaks
        p.rss_mb = max(p.rss_mb, sum(rss.values()) / 1024)
        p.pss_mb = max(p.pss_mb, pss / 1024)
        p.streamlit_mb = max(p.streamlit_mb, rss.get(self.server_pid, 0) / 1024)
        p.processes = max(p.processes, len(tree))
        p.job_processes = max(p.job_processes, jobs)
        p.memory_samples += 1

    def _sample_store(self) -> None:
        if not self.db_path.exists():
            return
        try:
            with contextlib.closing(sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True,
                                                    timeout=5)) as db:
                counts = dict(db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"))
        except sqlite3.Error as exc:  # the table may not exist yet
            if "no such table" not in str(exc) and len(self.peaks.store_errors) < 5:
                self.peaks.store_errors.append(repr(exc))
            return
        self.peaks.running = max(self.peaks.running, counts.get("running", 0))
        self.peaks.queued = max(self.peaks.queued, counts.get("queued", 0))
        self.peaks.store_samples += 1


def stored_jobs(db_path: Path) -> dict[str, str]:
    """hash -> status of every job in the store."""
    if not db_path.exists():
        return {}
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True,
                                            timeout=30)) as db:
        return dict(db.execute("SELECT hash, status FROM jobs"))


def job_times(db_path: Path) -> dict[str, tuple[float, float]]:
    """hash -> (started, finished) wall times of the stored jobs that finished."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as db:
        rows = db.execute("SELECT hash, started, finished FROM jobs WHERE started IS NOT NULL "
                          "AND finished IS NOT NULL").fetchall()
    return {h: (a, b) for h, a, b in rows}


def log_findings(log_path: Path) -> tuple[Counter[str], list[str]]:
    """(job starts per hash, troubling lines) of the server's log."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return Counter(), [f"(could not read {log_path})"]
    starts = Counter(m["hash"] for m in STARTED_LINE.finditer(text))
    trouble = [line for line in text.splitlines() if TROUBLE_LINE.search(line)]
    return starts, trouble


# -- the sessions -------------------------------------------------------------------------------
@dataclass
class Session:
    index: int
    url: str
    expected_hash: str  # the experiment the link asks for (the explorer's featured job)
    started_wall: float = 0.0  # time.time() when page.goto started
    first_figure_s: float | None = None
    first_point_s: float | None = None
    final_s: float | None = None  # both nets "done in" and the final P shown
    waiting_seen: bool = False
    statuses: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)  # experiments the caption named, in order
    queries: list[list] = field(default_factory=list)  # [page ms, location.search], in order
    waiting_at_s: float | None = None  # first "waiting:" caption
    caption: str | None = None  # the last caption read
    shown_hash: str | None = None
    p_value: str | None = None  # the final "P (trained)" as shown
    failed: str | None = None  # a job failed, or the page could not be read
    exceptions: list[str] = field(default_factory=list)  # st.exception boxes on the page
    page_errors: list[str] = field(default_factory=list)  # uncaught JS errors
    console_errors: list[str] = field(default_factory=list)  # console.error messages
    http_errors: list[str] = field(default_factory=list)  # responses >= 400: "status url"
    stalls: int = 0  # websocket client: times the page stopped updating (STALL_SECONDS)
    batches: int = 0  # websocket client: stream batches received
    ended_s: float | None = None  # websocket client: every stream's end event received
    stream_errors: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.final_s is not None and self.p_value is not None


def _since(session: Session, at_ms: float | None) -> float | None:
    return None if at_ms is None else max(at_ms / 1000 - session.started_wall, 0.0)


def _absorb(session: Session, raw: dict[str, Any]) -> None:
    rec = raw.get("rec") or {}
    session.first_figure_s = _since(session, rec.get("figureAt"))
    session.first_point_s = _since(session, rec.get("pointAt"))
    session.waiting_seen = session.waiting_seen or bool(rec.get("waitingSeen"))
    session.waiting_at_s = _since(session, rec.get("waitingAt"))
    session.statuses = rec.get("statuses") or session.statuses
    session.hashes = rec.get("hashes") or session.hashes
    session.queries = rec.get("queries") or session.queries
    session.caption = raw.get("caption") or session.caption
    for text in raw.get("exceptions") or []:
        if text not in session.exceptions:
            session.exceptions.append(text)


def _final_p(raw: dict[str, Any]) -> tuple[str, str] | None:
    """(experiment hash, final P) if the page shows both nets done, else None."""
    caption = parse_caption(raw.get("caption"))
    if caption is None or not caption.done or not caption.other_status.startswith("done"):
        return None
    p_value = (raw.get("metrics") or {}).get("P (trained)")
    return (caption.hash, p_value) if p_value is not None else None


def _console_error(session: Session, message: Any) -> None:
    # "Failed to load resource" repeats an HTTP error, which _http_error keeps (with its URL).
    if message.type == "error" and not message.text.startswith("Failed to load resource") \
            and len(session.console_errors) < 20:
        session.console_errors.append(message.text[:300])


def _http_error(session: Session, response: Any) -> None:
    path = urlsplit(response.url).path
    # Streamlit's frontend first probes /<page>/_stcore/{health,host-config} on a deep link,
    # then the root: those 404s are expected.
    benign = response.status == 404 and path.endswith(BENIGN_404) and \
        not path.startswith("/_stcore/")
    if response.status >= 400 and not benign and len(session.http_errors) < 20:
        session.http_errors.append(f"{response.status} {response.url}")


async def run_session(browser: Any, session: Session, deadline: float,
                      contexts: list[Any]) -> Session:
    context = await browser.new_context(viewport=VIEWPORT)
    contexts.append(context)
    await context.add_init_script(_RECORDER_JS)
    page = await context.new_page()
    page.on("pageerror", lambda exc: session.page_errors.append(str(exc)[:300]))
    page.on("console", lambda msg: _console_error(session, msg))
    page.on("response", lambda response: _http_error(session, response))
    session.started_wall = time.time()
    try:
        await page.goto(session.url, timeout=max(deadline - time.monotonic(), 1) * 1000)
    except Exception as exc:
        session.failed = f"page.goto: {exc}".splitlines()[0]
        return session
    candidate: tuple[str, str] | None = None  # (hash, final P), confirmed by a second read
    while time.monotonic() < deadline:
        await asyncio.sleep(READ_EVERY)
        try:
            raw = await page.evaluate(_READ_JS)
        except Exception:  # a rerun or navigation can interrupt evaluate(): read again
            continue
        _absorb(session, raw)
        caption = parse_caption(raw.get("caption"))
        if caption is not None:
            session.shown_hash = caption.hash
            bad = [s for s in (caption.status, caption.other_status) if s.startswith("failed")]
            if bad:
                session.failed = f"a job failed: {raw.get('caption')}"
                break
        if session.p_value is None:
            final = _final_p(raw)
            if final is not None and final == candidate:  # the same on two reads: settled
                shown, p_value = final
                if shown != session.expected_hash:  # it will not come back by itself
                    session.failed = (f"the page ended on experiment {shown}, not the "
                                      f"{session.expected_hash} its link asked for")
                    break
                session.p_value = p_value
                done_at = ((raw.get("rec") or {}).get("doneAt") or {}).get(shown)
                session.final_s = _since(session, done_at)
                if session.final_s is None:  # the recorder missed it (should not happen)
                    session.final_s = time.time() - session.started_wall
            candidate = final
        # Under load the browser can draw the figures well after the final numbers: keep
        # reading until all have been seen (for at most FIGURE_GRACE s after the numbers).
        if session.p_value is not None:
            if session.first_figure_s is not None and session.first_point_s is not None:
                break
            if time.time() - session.started_wall - session.final_s > FIGURE_GRACE:
                break
    return session


# -- sessions as the Streamlit protocol (no browser): what the server alone costs ------------
async def sse_events(base: str, url: str, after: int,
                     headers: dict[str, str] | None = None) -> Any:
    """The (event, data, id) of one Server-Sent Events response, read with asyncio streams
    (HTTP/1.1, chunked), as a browser's EventSource does; ends with the response. `headers`
    are sent too (e.g. a proxy's sticky cookie)."""
    parts = urlsplit(base)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        target = urlsplit(url)
        path = f"{target.path}?{target.query}" if target.query else target.path
        writer.write((f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                      f"Accept: text/event-stream\r\nLast-Event-ID: {after}\r\n"
                      + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
                      + "Connection: close\r\n\r\n").encode())
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"stream answered {status.decode().strip()}")
        while (await reader.readline()).strip():
            pass  # the headers (the body is chunked: uvicorn streams)
        buffer = b""
        while True:
            size = int((await reader.readline()).strip() or b"0", 16)
            if size == 0:
                return
            buffer += await reader.readexactly(size)
            await reader.readexactly(2)
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                fields: dict[str, str] = {}
                for line in block.decode().splitlines():
                    if line.startswith(":") or ":" not in line:
                        continue
                    key, value = line.split(":", 1)
                    fields[key] = value.lstrip(" ")
                if "event" in fields:
                    yield fields["event"], json.loads(fields.get("data") or "{}"), \
                        int(fields["id"]) if "id" in fields else None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def follow_stream(session: Session, base: str, url: str, cursor: int,
                        ended: dict[str, dict], headers: dict[str, str] | None = None) -> None:
    """Follow one job's stream to its end, reconnecting after each 30 s stream as
    EventSource does (from the last batch received): the push channel as the page uses it."""
    job = url.split("/api/jobs/")[1].split("/")[0]
    while time.time() - session.started_wall < 3600:
        try:
            async for event, data, event_id in sse_events(base, url, cursor, headers):
                now = time.time() - session.started_wall
                if event == "batch":
                    cursor = event_id if event_id is not None else cursor
                    session.batches += 1
                    if session.first_point_s is None and any(
                            any(y is not None for y in series["feasible"][1])
                            for series in data["restarts"].values()):
                        session.first_point_s = now
                elif event == "end":
                    ended[job] = {**data, "at": now}
                    return
        except (OSError, RuntimeError, asyncio.IncompleteReadError) as exc:
            session.stream_errors.append(f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(1.0)


def rerun_request(query: str, page_name: str) -> bytes:
    """A BackMsg asking for a run of `page_name` with `query`, as the frontend sends it."""
    message = BackMsg()
    message.rerun_script.query_string = query
    message.rerun_script.page_name = page_name
    return message.SerializeToString()


def live_panel(message: ForwardMsg) -> dict[str, Any] | None:
    """The data of the live panel (the dualviz_live component) a ForwardMsg draws, else None."""
    if message.WhichOneof("type") != "delta" or \
            message.delta.WhichOneof("type") != "new_element":
        return None
    element = message.delta.new_element
    if element.WhichOneof("type") != "bidi_component" or \
            not element.bidi_component.component_name.endswith("dualviz_live"):
        return None
    return json.loads(element.bidi_component.json)


def panel_caption(data: dict[str, Any]) -> str:
    """The live panel's caption as the page shows it (parse_caption reads it)."""
    return " · ".join([f"{s['label']}: {s['status']}" for s in data["streams"]]
                      + [f"experiment {data['experiment']}"])


async def run_session_ws(session: Session, deadline: float) -> Session:
    """One session spoken over Streamlit's own websocket protocol, as its frontend does: a
    rerun request with the link's query, then, as the live panel does, one Server-Sent Events
    stream per job it shows, followed to the end; then one rerun for the final drawing. The
    panel's data is read from the deltas (its figures, streams, status line and numbers).

    This measures the server: on a 2-core machine, chromium pages spend the cores on drawing
    (software rendering) and starve the server and its jobs."""
    parts = urlsplit(session.url)
    base = f"{parts.scheme}://{parts.netloc}"
    page_name = parts.path.strip("/")
    query = parts.query
    session.started_wall = time.time()
    followers: dict[str, asyncio.Task] = {}
    ended: dict[str, dict] = {}

    def request() -> bytes:
        return rerun_request(query, page_name)

    try:
        async with websockets.connect(base.replace("http", "ws", 1) + "/_stcore/stream",
                                      subprotocols=["streamlit"], origin=base,
                                      max_size=2**27) as ws:
            await ws.send(request())
            asked_for = 0  # streams followed when the last final rerun was asked for
            retry_at = None
            while time.monotonic() < deadline and not session.finished:
                # Every stream ended: the panel asks for one rerun; again if that rerun gave
                # it another stream (a twin that had waited outside the full queue).
                if followers and len(ended) == len(followers) and asked_for != len(followers):
                    asked_for = len(followers)
                    session.ended_s = max(e["at"] for e in ended.values())
                    await ws.send(request())
                if retry_at is not None and time.monotonic() > retry_at:
                    retry_at = None  # the panel's retry while a job could not be had
                    await ws.send(request())
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                message = ForwardMsg()
                message.ParseFromString(raw)
                kind = message.WhichOneof("type")
                now = time.time() - session.started_wall
                if kind == "page_info_changed":
                    query = message.page_info_changed.query_string
                    session.queries.append([now * 1000, "?" + query])
                elif kind == "delta" and message.delta.WhichOneof("type") == "new_element":
                    element = message.delta.new_element
                    data = live_panel(message)
                    if element.WhichOneof("type") == "exception":
                        session.exceptions.append(element.exception.message[:300])
                    elif data is not None:
                        if session.first_figure_s is None and data["figures"]:
                            session.first_figure_s = now
                        if session.first_point_s is None and any(
                                any(y is not None for t in f["figure"]["data"]
                                    if (t.get("meta") or {}).get("series") == "feasible"
                                    for y in t.get("y") or [])
                                for f in data["figures"]):
                            session.first_point_s = now
                        session.caption = panel_caption(data)
                        caption = parse_caption(session.caption)
                        if caption is not None:
                            session.shown_hash = caption.hash
                            if caption.hash not in session.hashes:
                                session.hashes.append(caption.hash)
                            if "waiting:" in session.caption and not session.waiting_seen:
                                session.waiting_seen, session.waiting_at_s = True, now
                            if caption.status.startswith("failed") or \
                                    caption.other_status.startswith("failed"):
                                session.failed = f"a job failed: {session.caption}"
                                break
                        if data.get("retry_after"):
                            retry_at = time.monotonic() + data["retry_after"]
                        for stream in data["streams"]:
                            url = stream["url"]
                            # One follower per job (a rerun draws a job's URL again, with a
                            # later cursor): `ended` counts jobs, so must this.
                            job = url.split("/api/jobs/")[1].split("/")[0] if url else None
                            if job and job not in followers:
                                cursor = int(urlsplit(url).query.split("after=")[1]
                                             .split("&")[0])
                                followers[job] = asyncio.create_task(
                                    follow_stream(session, base, base + url, cursor, ended))
                        if caption and caption.done and caption.other_status.startswith(
                                "done") and not any(s["url"] for s in data["streams"]):
                            if caption.hash != session.expected_hash:
                                session.failed = (f"the page ended on experiment "
                                                  f"{caption.hash}, not the "
                                                  f"{session.expected_hash} its link asked for")
                                break
                            p = next(m["value"] for m in data["metrics"] if m["key"] == "P")
                            session.p_value = p
                            session.final_s = session.ended_s if session.ended_s is not None \
                                else now
    except Exception as exc:  # a refused or dropped connection is a result, not a crash
        session.failed = f"websocket: {type(exc).__name__}: {exc}".splitlines()[0][:300]
    finally:
        for task in followers.values():
            task.cancel()
    return session


async def run_sessions(urls: list[tuple[str, str]], timeout: float, client: str = "ws",
                       arrival: float = 0.0) -> tuple[list[Session], float]:
    """Open every (URL, expected hash) at once, each its own session (a websocket client, or
    a browser context); (sessions, wall time they took)."""
    sessions = [Session(i, url, expected) for i, (url, expected) in enumerate(urls, 1)]
    if client == "ws":
        started = time.monotonic()

        async def arrive(session: Session, delay: float) -> Session:
            await asyncio.sleep(delay)
            return await run_session_ws(session, started + timeout)

        await asyncio.gather(*(arrive(s, arrival * i / max(len(sessions), 1))
                               for i, s in enumerate(sessions)))
        return sessions, time.monotonic() - started
    contexts: list[Any] = []
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        try:
            started = time.monotonic()
            deadline = started + timeout
            await asyncio.gather(*(run_session(browser, s, deadline, contexts)
                                   for s in sessions))
            took = time.monotonic() - started
            for context in contexts:
                with contextlib.suppress(Exception):
                    await context.close()
        finally:
            await browser.close()
    return sessions, took


# -- the scenarios ------------------------------------------------------------------------------
def explorer_preset() -> tuple[str, dict[str, str]]:
    """(URL path, query) of the first deep-linear explorer preset."""
    preset = next(p for p in PRESETS if p.view is LINEAR)
    return "/" + preset.view.url_path, dict(preset.query)


def pair_of(featured: str, outcome: Outcome) -> list[str]:
    """The expected pair (experiment, twin) whose experiment is `featured`."""
    return [h for h in outcome.expected if h == featured] + [
        h for h in outcome.expected if h != featured][:1] if outcome.scenario == "same" \
        else [featured]


def pair_hashes(query: dict[str, str]) -> list[str]:
    """The hashes the explorer computes for this query: the experiment and its twin."""
    exp = Experiment.from_values(query)[0]
    twin = exp.replace(arch="parallel" if exp.arch == "standard" else "standard")[0]
    return [exp.hash, twin.hash]


@dataclass
class Outcome:
    scenario: str
    sessions: list[Session]
    took_s: float
    expected: set[str]  # hashes the server should compute
    starts: Counter[str]  # job starts per hash, from the server's log
    stored: dict[str, str]  # hash -> status, from the store
    peaks: Peaks
    trouble: list[str]
    failures: list[str] = field(default_factory=list)  # violated expectations
    durations: dict[str, tuple[float, float]] = field(default_factory=dict)  # hash: (start, end)

    @property
    def finished(self) -> list[Session]:
        return [s for s in self.sessions if s.finished]

    def last_done_s(self) -> float | None:
        """From the first session's goto to the last session's final result."""
        if not self.finished:
            return None
        t0 = min(s.started_wall for s in self.sessions)
        return max(s.started_wall + s.final_s for s in self.finished) - t0


def run_scenario(name: str, queries: list[dict[str, str]], path: str, env: dict[str, str],
                 timeout: float, keep: bool, client: str = "ws",
                 arrival: float = 0.0) -> Outcome:
    data_dir = Path(tempfile.mkdtemp(prefix=f"dualviz-load-{name}-"))
    log_path = data_dir / "streamlit.log"
    db_path = data_dir / "dualviz.sqlite3"
    expected = {h for q in queries for h in pair_hashes(q)}
    print(f"\n== scenario {name}: {len(queries)} sessions, {len(expected)} distinct jobs "
          f"expected, env {' '.join(f'{k}={v}' for k, v in env.items())}", flush=True)
    try:
        t = time.monotonic()
        with streamlit_server(data_dir, log_path=log_path, extra_env=env) as server:
            print(f"server up in {time.monotonic() - t:.1f} s at {server.url} "
                  f"(pid {server.process.pid}, data {data_dir}); its solvers warm "
                  f"{wait_until_warm(server.url):.1f} s later (the sessions arrive then)",
                  flush=True)
            urls = [(f"{server.url}{path}?{urlencode(q)}", pair_hashes(q)[0]) for q in queries]
            with Sampler(server.process.pid, db_path) as sampler:
                sessions, took = asyncio.run(run_sessions(urls, timeout, client, arrival))
                time.sleep(MEMORY_EVERY * 2)  # one more sample after the last session
        starts, trouble = log_findings(log_path)
        stored = stored_jobs(db_path)
        durations = job_times(db_path)
    finally:
        if keep:
            print(f"kept the server's data and log in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    return Outcome(name, sessions, took, expected, starts, stored, sampler.peaks, trouble,
                   durations=durations)


def check(outcome: Outcome, max_jobs: int, max_queued: int | None) -> None:
    fail = outcome.failures.append
    started = set(outcome.starts)
    twice = {h: n for h, n in outcome.starts.items() if n > 1}
    if twice:
        fail(f"{outcome.scenario}: computed more than once: {twice}")
    if outcome.scenario == "same":
        if started != outcome.expected:
            fail(f"same: the server started {sorted(started)}, expected exactly one "
                 f"computation of each of {sorted(outcome.expected)}")
        if set(outcome.stored) != outcome.expected:
            fail(f"same: the store holds jobs {sorted(outcome.stored)}, expected "
                 f"{sorted(outcome.expected)}")
        values = {s.p_value for s in outcome.finished}
        if len(values) > 1:
            fail(f"same: the sessions show different P values: {sorted(values)}")
    else:
        missing = outcome.expected - started
        if missing and len(outcome.finished) == len(outcome.sessions):
            fail(f"{outcome.scenario}: every session finished but {len(missing)} expected "
                 f"jobs never started")
        extra = started - outcome.expected
        if extra:
            fail(f"{outcome.scenario}: jobs started that no session asked for: {sorted(extra)}")
    if outcome.peaks.running > max_jobs:
        fail(f"{outcome.scenario}: {outcome.peaks.running} jobs running at once in the store "
             f"(DUALVIZ_MAX_JOBS={max_jobs})")
    if outcome.peaks.job_processes > max_jobs:
        fail(f"{outcome.scenario}: {outcome.peaks.job_processes} job processes alive at once "
             f"(DUALVIZ_MAX_JOBS={max_jobs})")
    if max_queued is not None and outcome.peaks.queued > max_queued:
        fail(f"{outcome.scenario}: {outcome.peaks.queued} jobs queued at once "
             f"(DUALVIZ_MAX_QUEUED={max_queued})")
    unfinished = [s for s in outcome.sessions if not s.finished]
    if unfinished:
        fail(f"{outcome.scenario}: {len(unfinished)} of {len(outcome.sessions)} sessions never "
             f"showed both nets done: " + "; ".join(
                 f"#{s.index} {s.failed or 'last caption: ' + str(s.caption)}"
                 for s in unfinished[:5]))
    for s in outcome.sessions:
        strays = [h for h in s.hashes if h != s.expected_hash]
        if strays:
            waited = f"at {s.waiting_at_s:.1f} s" if s.waiting_at_s is not None else "never"
            fail(f"{outcome.scenario}: session #{s.index} opened experiment {s.expected_hash} "
                 f"but its page moved to {strays} (ends on {s.shown_hash}); saw 'waiting:' "
                 f"{waited}; URL keys changed from the link's: "
                 + " -> ".join(f"{_since(s, t):.1f} s {_query_diff(s.url, q)}"
                               for t, q in s.queries))
        if s.exceptions:
            fail(f"{outcome.scenario}: session #{s.index} shows an exception: "
                 f"{s.exceptions[0][:200]!r}")


def _query_diff(url: str, query: str) -> str:
    """The keys of `query` (a location.search) whose values differ from those of `url`."""
    asked = dict(parse_qsl(urlsplit(url).query))
    shown = dict(parse_qsl(query.lstrip("?")))
    changed = {k: v for k, v in shown.items()
               if k in asked and not _same_value(asked[k], v)}
    return "{" + ", ".join(f"{k}={v}" for k, v in changed.items()) + "}"


def _same_value(a: str, b: str) -> bool:
    try:
        return a == b or float(a) == float(b)
    except ValueError:
        return False


# -- reporting ----------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q / 100 * len(ordered)) - 1, 0)]


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def spread(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "n/a"
    return (f"median {statistics.median(present):.1f} s, p95 {percentile(present, 95):.1f} s, "
            f"max {max(present):.1f} s (n={len(present)})")


def report(outcome: Outcome) -> None:
    s, p = outcome.sessions, outcome.peaks
    print(f"-- {outcome.scenario}: results")
    print(f"sessions:                       {len(s)}")
    per_hash = ", ".join(f"{h}: {n}" for h, n in sorted(outcome.starts.items())) or "none"
    print(f"computations started:           {sum(outcome.starts.values())} "
          f"({len(outcome.starts)} distinct; expected {len(outcome.expected)}, one each)")
    if len(outcome.starts) <= 8:
        print(f"  started per hash:             {per_hash}")
    statuses = Counter(outcome.stored.values())
    print(f"distinct jobs in the store:     {len(outcome.stored)} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(statuses.items())) or 'none'})")
    print(f"sessions with the final result: {len(outcome.finished)} of {len(s)}")
    if outcome.scenario == "same":
        values = Counter(x.p_value for x in outcome.finished)
        print(f"P (trained) shown:              "
              f"{', '.join(f'{v} x{n}' for v, n in values.items()) or 'n/a'}")
    print(f"time to first figure:           {spread([x.first_figure_s for x in s])}")
    print(f"time to first plotted point:    {spread([x.first_point_s for x in s])}")
    print(f"time to final result:           {spread([x.final_s for x in s])}")
    late = []
    for x in outcome.finished:  # the final result after the session's later job ended
        ends = [outcome.durations[h][1] for h in pair_of(x.expected_hash, outcome)
                if h in outcome.durations]
        if ends and x.final_s is not None:
            late.append(x.started_wall + x.final_s - max(ends))
    jobs = [b - a for a, b in outcome.durations.values()]
    print(f"job durations (store):          {spread(jobs)}")
    print(f"final result after its jobs:    {spread(late)}")
    print(f"stream batches received:        {sum(x.batches for x in s)} "
          f"({len([x for x in s if x.stream_errors])} sessions had stream errors)")
    print(f"all sessions done after:        {fmt(outcome.last_done_s())} s"
          + ("" if len(outcome.finished) == len(s) else
             f" (only {len(outcome.finished)} finished; gave up after {outcome.took_s:.0f} s)"))
    print(f"saw 'waiting:' (queue full):    {sum(x.waiting_seen for x in s)} sessions")
    print(f"stalled pages (reloaded):       {sum(x.stalls > 0 for x in s)} sessions, "
          f"{sum(x.stalls for x in s)} stalls")
    print(f"peak jobs running / queued:     {p.running} / {p.queued} (store, every "
          f"{STORE_EVERY:g} s; {p.store_samples} samples); peak job processes {p.job_processes}")
    print(f"web server CPU (streamlit process, jobs excluded): {p.server_cpu_s:.1f} s over "
          f"{p.wall_s:.1f} s, {1000 * p.server_cpu_s / max(len(s), 1):.0f} ms per session")
    print(f"peak memory of the server tree: {p.rss_mb:.0f} MB RSS summed, {p.pss_mb:.0f} MB PSS "
          f"(streamlit alone {p.streamlit_mb:.0f} MB RSS; up to {p.processes} processes; "
          f"{p.memory_samples} samples)")
    for err in p.store_errors:
        print(f"store sampling error: {err}")
    for x in [x for x in s if x.page_errors][:3]:
        print(f"session #{x.index} uncaught JS errors: {x.page_errors[:2]}")
    for x in [x for x in s if x.console_errors][:3]:
        print(f"session #{x.index} console errors ({len(x.console_errors)}): "
              f"{x.console_errors[:2]}")
    http = Counter(e for x in s for e in x.http_errors)
    for error, n in http.most_common(5):
        print(f"HTTP error in {n} session(s): {error}")
    if outcome.trouble:
        print(f"server log: {len(outcome.trouble)} troubling lines, first ones:")
        for line in outcome.trouble[:15]:
            print(f"  | {line[:200]}")
    else:
        print("server log: no tracebacks or errors")
    for failure in outcome.failures:
        print(f"EXPECTATION FAILED: {failure}")


def summary(outcomes: list[Outcome]) -> None:
    columns = ("scenario", "sessions", "done", "computed", "distinct", "1st fig med/p95 s",
               "final med/p95 s", "all done s", "run/queue peak", "waiting", "peak MB tree",
               "streamlit MB", "failed")
    rows = []
    for o in outcomes:
        figs = [x.first_figure_s for x in o.sessions if x.first_figure_s is not None]
        finals = [x.final_s for x in o.finished]
        rows.append((
            o.scenario, str(len(o.sessions)), str(len(o.finished)),
            str(sum(o.starts.values())), str(len(o.starts)),
            f"{fmt(statistics.median(figs) if figs else None)}/{fmt(percentile(figs, 95))}",
            f"{fmt(statistics.median(finals) if finals else None)}/"
            f"{fmt(percentile(finals, 95))}",
            fmt(o.last_done_s()), f"{o.peaks.running}/{o.peaks.queued}",
            str(sum(x.waiting_seen for x in o.sessions)), f"{o.peaks.rss_mb:.0f}",
            f"{o.peaks.streamlit_mb:.0f}", str(len(o.failures))))
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print("\n== summary")
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for r in rows:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))
    print("1st fig: from page.goto to a drawn Plotly figure; final: to both nets 'done in' "
          "with the final P; all done: from the first goto to the last final result; "
          "peak MB tree: summed RSS of streamlit, launcher and jobs; failed: expectations "
          "violated.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20, help="browser sessions (default 20)")
    parser.add_argument("--scenario", choices=("same", "different", "both"), default="both")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds per scenario before giving up on sessions (default 600)")
    parser.add_argument("--max-jobs", type=int, default=2, help="DUALVIZ_MAX_JOBS (default 2)")
    parser.add_argument("--max-queued", type=int, default=10,
                        help="DUALVIZ_MAX_QUEUED in the 'different' scenario (default 10)")
    parser.add_argument("--keep", action="store_true",
                        help="keep each scenario's data directory and server log")
    parser.add_argument("--arrival", type=float, default=0.0,
                        help="seconds over which the sessions arrive (default 0: all at once)")
    parser.add_argument("--client", choices=("ws", "browser"), default="ws",
                        help="ws: Streamlit's websocket protocol, no rendering (default: it "
                             "measures the server); browser: chromium contexts")
    args = parser.parse_args()
    if args.client == "browser" and not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: install Debian's chromium")

    path, query = explorer_preset()
    print(f"dualviz load benchmark: {platform.python_version()} on {platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    print(f"preset: {path}?{urlencode(query)}")
    outcomes = []
    if args.scenario in ("same", "both"):
        env = {"DUALVIZ_MAX_JOBS": str(args.max_jobs)}
        outcome = run_scenario("same", [query] * args.sessions, path, env, args.timeout,
                               args.keep, args.client, args.arrival)
        check(outcome, args.max_jobs, None)
        report(outcome)
        outcomes.append(outcome)
    if args.scenario in ("different", "both"):
        env = {"DUALVIZ_MAX_JOBS": str(args.max_jobs),
               "DUALVIZ_MAX_QUEUED": str(args.max_queued)}
        queries = [{**query, "seed": str(i), **DIFFERENT_RUN}
                   for i in range(1, args.sessions + 1)]
        outcome = run_scenario("different", queries, path, env, args.timeout, args.keep,
                               args.client, args.arrival)
        check(outcome, args.max_jobs, args.max_queued)
        report(outcome)
        outcomes.append(outcome)
    summary(outcomes)
    failures = [f for o in outcomes for f in o.failures]
    print(f"\n{len(failures)} expectation(s) failed" if failures else "\nall expectations met")


if __name__ == "__main__":
    main()
