"""What a session watching a running job costs the web server, measured on a real server.

A plain script (not a test; it prints figures and asserts nothing). It starts a server on a
temporary store, opens Debian's chromium on an explorer link whose two jobs (the net and its
other-architecture twin) train for a minute or more, and once both run, measures the CPU time
(user + system, /proc) of the web server's process alone (the job processes excluded) over a
window of WINDOW seconds, first with only that page watching, then with K more watchers. A
watcher is what a page's live panel holds while its jobs run: one Server-Sent Events stream
per job (here a Python thread reading each stream, in this process, not the server's), and a
Streamlit session that is idle meanwhile (the panel draws from the streams, no reruns), so the
streams are what it costs. Printed: CPU ms per second of wall time, and per watcher.

Usage: ``.venv/bin/python benchmarks/bench_watchers.py [--watchers 50,150] [--window 8]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from dualviz.config import Experiment
from dualviz.testing import (
    CHROMIUM,
    explorer_url,
    launch_chromium,
    streamlit_server,
    wait_for_state,
)

# Both jobs train for a minute or more on a quiet 2-core machine (eight restarts).
RUN = Experiment(n=200, d=40, k=10, x_rank=40, target_rank=5, width=16, iterations=20000,
                 restarts=8, depth=3, seed=11)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Watcher(threading.Thread):
    """One stream read to its end (or until stopped), counting the bytes it got."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.bytes = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with urllib.request.urlopen(self.url, timeout=60) as response:
            while not self.stop.is_set():
                chunk = response.read1(65536)
                if not chunk:
                    return
                self.bytes += len(chunk)


def window(pid: int, seconds: float) -> float:
    """The server's CPU ms per second over `seconds`."""
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 1000 * (cpu_seconds(pid) - start_cpu) / (time.monotonic() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watchers", default="50,150", help="extra watchers per step")
    parser.add_argument("--window", type=float, default=8.0, help="seconds per measurement")
    args = parser.parse_args()
    steps = [int(k) for k in args.watchers.split(",")]
    if not CHROMIUM.exists():
        sys.exit(f"{CHROMIUM} is missing: install Debian's chromium")
    twin = RUN.replace(arch="parallel")[0]
    print(f"dualviz watcher benchmark: {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f} at start; run {RUN.hash} and twin {twin.hash}")
    with tempfile.TemporaryDirectory(prefix="dualviz-watchers-") as tmp, \
            streamlit_server(Path(tmp)) as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page()
        page.goto(explorer_url(server.url, RUN.to_query()))
        wait_for_state(page, lambda s: s.caption is not None and s.caption.hash == RUN.hash
                       and s.caption.status.startswith("running")
                       and s.caption.other_status.startswith("running"), 180,
                       "both jobs running")
        pid = server.process.pid
        base = window(pid, args.window)
        print(f"{'watchers':>9} {'server CPU ms/s':>16} {'per watcher ms/s':>17} "
              f"{'MB/s streamed':>14}")
        print(f"{0:>9} {base:>16.1f} {'':>17} {'':>14}")
        watchers: list[Watcher] = []
        for k in steps:
            while len(watchers) < 2 * k:
                for job in (RUN.hash, twin.hash):
                    w = Watcher(f"{server.url}/api/jobs/{job}/stream")
                    w.start()
                    watchers.append(w)
            time.sleep(1.0)  # let them connect and catch up
            before = sum(w.bytes for w in watchers)
            cpu = window(pid, args.window)
            rate = (sum(w.bytes for w in watchers) - before) / args.window / 1e6
            sessions = len(watchers) // 2
            print(f"{sessions:>9} {cpu:>16.1f} {(cpu - base) / sessions:>17.2f} {rate:>14.2f}")
        alive = sum(w.is_alive() for w in watchers)
        print(f"\nstreams still open at the end: {alive} of {len(watchers)} (a stream ends "
              "after 30 s or with its job; a window longer than that measures reconnects)")
        for w in watchers:
            w.stop.set()
        browser.close()
    print("a watcher: a session watching both jobs of a page (two event streams); per "
          "watcher = (server CPU with them - without) / watchers.")


if __name__ == "__main__":
    main()
