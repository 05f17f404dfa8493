"""Shared by the browser tests and the page benchmark: a real Streamlit server and chromium.

* :func:`streamlit_server` starts ``python -m dualviz serve`` on a free port in its own process
  group (with ``DUALVIZ_DATA_DIR`` pointing at a directory of the caller's), waits for
  ``/_stcore/health`` and ends the whole group (server, fork server, job processes) afterwards.
* :func:`launch_chromium` starts Debian's ``/usr/bin/chromium`` through Playwright (never a
  browser downloaded by ``playwright install``).
* :func:`page_state` reads what the explorer page shows: the job status caption, the metrics and
  a signature of the objective figure's data.
* :func:`start_recording` / :func:`recorded` keep, inside the page, a log of every change of
  the objective figure's data, of the status line and of the URL, polled every 50 ms by the page
  itself (so the log does not depend on Playwright round trips).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
EXPLORER_PATH = "/Deep_linear_explorer"
HEALTH_TIMEOUT = 60.0

# The caption of the live view: "<arch> net: <status> · <arch> net: <status> · experiment <hash>"
_CAPTION = re.compile(r"(?P<arch>\w+) net: (?P<status>.*?) · (?P<other_arch>\w+) net: "
                      r"(?P<other_status>.*?) · experiment (?P<hash>[0-9a-f]{16})")

# JS: a compact, comparable summary of the objective figure's traces (null if not drawn yet).
_JS_HELPERS = r"""
const dvFigure = () => {
  const el = document.querySelector('.dv-fig-objective_figure');
  return el && el.data ? el : null;
};
const dvSignature = () => {
  const el = dvFigure();
  if (!el) return null;
  return JSON.stringify(el.data.map(t => [t.name, (t.x || []).length, (t.x || []).at(-1),
                                          (t.y || []).at(-1)]));
};
const dvPoints = () => {
  const el = dvFigure();
  if (!el) return 0;
  // The solid objective traces only (a restart's other series repeat its iterations).
  return el.data.filter(t => t.meta && t.meta.series === 'feasible')
                .reduce((n, t) => n + (t.y || []).filter(y => y !== null).length, 0);
};
const dvCaption = () => {
  for (const el of document.querySelectorAll('[data-testid="stCaptionContainer"]')) {
    const text = el.innerText || '';
    if (text.includes(' · experiment ')) return text.trim();
  }
  return null;
};
"""

_STATE_JS = "() => {" + _JS_HELPERS + r"""
  const metrics = {};
  for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
    const label = m.querySelector('[data-testid="stMetricLabel"]');
    const value = m.querySelector('[data-testid="stMetricValue"]');
    if (label && value) metrics[label.innerText.trim()] = value.innerText.trim();
  }
  return {caption: dvCaption(), metrics: metrics, signature: dvSignature(),
          points: dvPoints(), url: location.href};
}"""

_RECORD_JS = "() => {" + _JS_HELPERS + r"""
  if (window.__dvRecorder) clearInterval(window.__dvRecorder.timer);
  const rec = {log: [], lastSig: undefined, lastCaption: undefined, lastUrl: undefined,
               polls: 0};
  rec.timer = setInterval(() => {
    rec.polls += 1;
    const sig = dvSignature(), caption = dvCaption(), url = location.href;
    if (sig !== rec.lastSig || caption !== rec.lastCaption || url !== rec.lastUrl) {
      rec.log.push({t: Date.now(), signature: sig, points: dvPoints(), caption: caption,
                    url: url, figureChanged: sig !== rec.lastSig});
      rec.lastSig = sig;
      rec.lastCaption = caption;
      rec.lastUrl = url;
    }
  }, 50);
  window.__dvRecorder = rec;
  return Date.now();
}"""

_RECORDED_JS = """() => {
  const rec = window.__dvRecorder;
  return rec ? {log: rec.log, polls: rec.polls, now: Date.now()} : null;
}"""


# -- the server ---------------------------------------------------------------------------------
def deploy_module() -> Any:
    """deploy/run.py (`make deploy`: PostgreSQL, replicas, haproxy), loaded from its file: it
    is a script of the checkout, not part of the package."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("deploy_run", ROOT / "deploy" / "run.py")
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str  # http://localhost:<port>
    process: subprocess.Popen
    log_path: Path

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_until_warm(server_url: str, timeout: float = 120.0) -> float:
    """Seconds until the server's job launcher is warm (/api/stats says so): a lecture's
    server is up before its hall arrives, so benchmarks measure a warm one."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(OSError, ValueError), \
                urllib.request.urlopen(f"{server_url}/api/stats", timeout=5) as answer:
            if json.loads(answer.read()).get("warm"):
                return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"the job launcher of {server_url} was not warm after {timeout:g} s")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:
        return False


def _end_group(process: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left of it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    # The fork server and job processes share the group; make sure none outlives the server.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


@contextlib.contextmanager
def streamlit_server(data_dir: Path, log_path: Path | None = None,
                     extra_env: dict[str, str] | None = None) -> Iterator[Server]:
    """``python -m dualviz serve`` (the README's ``make run``) on a free port with
    ``DUALVIZ_DATA_DIR=data_dir``; it listens on 127.0.0.1."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = log_path or Path(data_dir) / "streamlit.log"
    env = {**os.environ, "DUALVIZ_DATA_DIR": str(data_dir), **(extra_env or {})}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dualviz", "serve", "--port", str(port)],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
    server = Server(url, process, log_path)
    try:
        deadline = time.monotonic() + HEALTH_TIMEOUT
        while not _healthy(url):
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {process.returncode}:\n"
                                   f"{server.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"streamlit did not answer {url}/_stcore/health within "
                                   f"{HEALTH_TIMEOUT:g} s:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        _end_group(process)


# -- the browser --------------------------------------------------------------------------------
def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


VIEWPORT = {"width": 1400, "height": 1000}


def explorer_url(server_url: str, query: str) -> str:
    return f"{server_url}{EXPLORER_PATH}?{query}"


# -- reading the explorer page ------------------------------------------------------------------
@dataclass(frozen=True)
class Caption:
    arch: str
    status: str
    other_arch: str
    other_status: str
    hash: str

    @property
    def done(self) -> bool:
        return self.status.startswith("done")

    @property
    def failed(self) -> bool:
        return self.status.startswith(("failed", "cancelled", "interrupted"))


def parse_caption(text: str | None) -> Caption | None:
    match = _CAPTION.search(text or "")
    return Caption(**match.groupdict()) if match else None


@dataclass(frozen=True)
class PageState:
    caption: Caption | None
    caption_text: str | None
    metrics: dict[str, str]
    signature: str | None
    points: int
    url: str

    @property
    def featured(self) -> tuple[Any, ...]:
        """What the page shows of its featured job: status line, metrics, objective figure."""
        shown = (self.caption.arch, self.caption.status, self.caption.hash) if self.caption \
            else self.caption_text
        return shown, tuple(sorted(self.metrics.items())), self.signature

    def metric(self, prefix: str) -> float | None:
        """The value of the first metric whose label starts with `prefix` (None: n/a): a
        zero gap '0 (|P - D| < ...)' is 0, '41.42 % of D' is 0.4142."""
        for label, value in self.metrics.items():
            if label.startswith(prefix):
                match = re.match(r"\s*([-+]?[0-9.]+(?:[eE][-+]?[0-9]+)?)", value)
                if match is None:
                    return None
                number = float(match.group(1))
                return number / 100 if "%" in value else number
        return None


def page_state(page: Any) -> PageState:
    raw = page.evaluate(_STATE_JS)
    return PageState(parse_caption(raw["caption"]), raw["caption"], raw["metrics"],
                     raw["signature"], raw["points"], raw["url"])


def wait_for_state(page: Any, predicate: Callable[[PageState], bool], timeout: float,
                   what: str, interval: float = 0.1) -> PageState:
    """Poll :func:`page_state` until `predicate` holds; fail clearly (with the last state) if
    it does not within `timeout` seconds, or if the featured job failed."""
    deadline = time.monotonic() + timeout
    state = None
    while True:
        try:
            state = page_state(page)
        except Exception:  # a navigation can interrupt evaluate(): try again
            pass
        else:
            if predicate(state):
                return state
            if state.caption and state.caption.failed:
                raise AssertionError(f"while waiting for {what}: the job ended badly: "
                                     f"{state.caption_text}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last "
                                 f"state: {state}")
        time.sleep(interval)


def wait_for_settled(page: Any, predicate: Callable[[PageState], bool], timeout: float,
                     what: str, settle: float = 0.6) -> PageState:
    """Like :func:`wait_for_state`, but the caption and metrics must also have stayed the same
    for `settle` seconds: Streamlit sends a rerun's elements one by one, so for a moment the
    new caption can sit next to the previous rerun's metrics. (The other job's status is not
    compared: it keeps changing while that job runs.)"""
    deadline = time.monotonic() + timeout
    first = wait_for_state(page, predicate, timeout, what)
    since = time.monotonic()
    while True:
        time.sleep(0.1)
        state = wait_for_state(page, predicate, max(deadline - time.monotonic(), 0.1), what)
        if state.featured != first.featured:
            first, since = state, time.monotonic()
        elif time.monotonic() - since >= settle:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} to settle; "
                                 f"last state: {state}")


def start_recording(page: Any) -> int:
    """Start the in-page recorder; returns the page's clock (ms) at the start."""
    return page.evaluate(_RECORD_JS)


def recorded(page: Any) -> dict[str, Any]:
    """The recorder's log so far: {log: [{t, signature, points, caption, url, figureChanged}],
    polls, now}; t and now are the page's clock in ms."""
    return page.evaluate(_RECORDED_JS)


def page_clock(page: Any) -> int:
    return page.evaluate("() => Date.now()")
