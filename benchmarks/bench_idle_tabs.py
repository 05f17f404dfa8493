"""What an open but idle tab costs the server, measured with a real server and chromium.

A plain script (not a test; it prints figures and asserts nothing). It starts a server on a
temporary store, opens Debian's chromium on one page, waits for it to settle, then reads the
CPU time (user + system, from /proc) of the server's whole process tree over a window and
prints it as milliseconds of CPU per second of wall time. Cases:

- gap-1440: the Gap curves page with a 12 x 12 x 5 seeds grid in its URL (the largest a link
  can ask for), nothing running;
- gap-24: the Gap curves page with a 24-point grid, nothing running;
- explorer-done: the explorer on an experiment whose jobs have finished.

Usage: ``.venv/bin/python benchmarks/bench_idle_tabs.py [--window 20] [--cases gap-1440,...]``
Run it from any checkout (e.g. a worktree of an older commit) to compare.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from playwright.sync_api import sync_playwright  # noqa: E402

from dualviz.testing import explorer_url, launch_chromium, streamlit_server, wait_for_state  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
GAP = "/Gap_curves"
CASES = {
    "gap-1440": GAP + "?x=depth&x-values=2,3,4,5,6,7,8,9,10,2,3,4&series=beta&series-values="
                "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1,2,3&seeds=5",
    "gap-24": GAP + "?x=depth&x-values=2,3,4&series=target-rank&series-values=1,2&seeds=2",
    "explorer-done": None,
}


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU of `root` and all its descendants, in seconds."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        cpu[pid] = (int(fields[11]) + int(fields[12])) / TICKS
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += children.get(pid, [])
    return total


def measure(server, browser, case: str, window: float) -> float:
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    if CASES[case] is None:
        tab.goto(explorer_url(server.url, "iterations=100&restarts=1"))
        wait_for_state(tab, lambda s: s.caption is not None and s.caption.done
                       and s.caption.other_status.startswith("done"), 180, what="both done")
    else:
        tab.goto(server.url + CASES[case])
        tab.wait_for_timeout(8000)  # the page drawn, whatever it shows
    time.sleep(3)
    before = tree_cpu_seconds(server.process.pid)
    started = time.monotonic()
    time.sleep(window)
    used = tree_cpu_seconds(server.process.pid) - before
    tab.close()
    return 1000 * used / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir, streamlit_server(Path(data_dir)) as server, \
            sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        time.sleep(5)  # the server's own start-up settles
        for case in args.cases.split(","):
            print(f"{case:15s} {measure(server, browser, case, args.window):8.1f} ms CPU/s "
                  f"(server process tree, {args.window:g} s window)", flush=True)
        browser.close()


if __name__ == "__main__":
    main()
