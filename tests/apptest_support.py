"""Helpers for AppTest tests of the explorer pages: open from a link, wait for the jobs."""

import re
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).parents[1]


def open_page(page: str, query: str = "") -> AppTest:
    """Run a page (a file under pages/) as if opened from a link with this query string."""
    at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=60)
    if query:
        at.query_params = dict(p.split("=", 1) for p in query.split("&"))
    at.run()
    assert not at.exception, at.exception
    return at


def status_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if "experiment" in c.value)


def run_until_done(at: AppTest, timeout: float = 180.0) -> AppTest:
    """Rerun the page until both of its jobs (the net and its twin) are done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = status_caption(at)
        if status.count("done in") == 2:
            return at
        assert "failed" not in status, status
        time.sleep(0.3)
        at.run()
        assert not at.exception, at.exception
    raise AssertionError(f"jobs did not finish: {status_caption(at)}")


def metric(at: AppTest, prefix: str) -> float:
    return float(next(m for m in at.metric if m.label.startswith(prefix)).value)


def shown(markdown: str) -> str:
    """The text a markdown element displays, for elements quoting text verbatim (code spans)."""
    return re.sub(r"(`+) (.*?) \1", r"\2", markdown)
