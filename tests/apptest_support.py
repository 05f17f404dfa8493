"""Helpers for AppTest tests of the explorer pages: open from a link, wait for the jobs."""

import json
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


def panel(at: AppTest) -> dict:
    """The data the live panel (dualviz/ui/live_chart.py) was drawn with."""
    element = next(e for e in at.get("bidi_component")
                   if e.proto.component_name.endswith("dualviz_live"))
    return json.loads(element.proto.json)


def status_caption(at: AppTest) -> str:
    """The panel's status line as the page drew it: "<arch> net: <status> · ... · experiment
    <hash>"."""
    data = panel(at)
    parts = [f"{s['label']}: {s['status']}" for s in data["streams"]]
    return " · ".join([*parts, f"experiment {data['experiment']}"])


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


def metric_text(at: AppTest, prefix: str) -> str:
    return next(m["value"] for m in panel(at)["metrics"] if m["label"].startswith(prefix))


def number(text: str) -> float:
    """The number a metric shows: '0 (|P - D| < ...)' is 0, '41.42 % of D' is 0.4142."""
    value = float(re.match(r"\s*([-+0-9.eE]+)", text).group(1))
    return value / 100 if "%" in text else value


def metric(at: AppTest, prefix: str) -> float:
    return number(metric_text(at, prefix))


def shown(markdown: str) -> str:
    """The text a markdown element displays, for elements quoting text verbatim (code spans)."""
    return re.sub(r"(`+) (.*?) \1", r"\2", markdown)
