"""Screenshots of every page for the README, from a real server and Debian's chromium.

Usage: ``.venv/bin/python docs/make_screenshots.py`` (writes docs/screenshots/*.png). It starts
``streamlit run app.py`` with a temporary store, opens each page on a preset in chromium, waits
until the page has drawn what it is for (finished runs, a few sweep points, the theory table)
and saves a full-page screenshot.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from dualviz.presets import PRESETS
from dualviz.testing import launch_chromium, streamlit_server
from dualviz.views import HOME, THEORY

ROOT = Path(__file__).resolve().parent.parent

OUT = ROOT / "docs" / "screenshots"
DONE_JS = ("() => Array.from(document.querySelectorAll('[data-testid=\"stCaptionContainer\"]'))"
           ".some(el => (el.innerText.match(/done in/g) || []).length == 2)")
FIGURE_JS = ("() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
             ".some(el => el.data && el.data.some(t => (t.x || []).length > 0))")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    preset = {p.title: p for p in PRESETS}
    shots = [
        ("home", HOME, {}, "() => document.body.innerText.includes('Presets for a lecture')"),
        ("deep_linear_explorer", preset["Depth opens a duality gap"].view,
         preset["Depth opens a duality gap"].query, DONE_JS),
        ("relu_networks", preset["Two-layer ReLU is a convex program"].view,
         preset["Two-layer ReLU is a convex program"].query, DONE_JS),
        ("gap_curves", preset["The gap against depth, curve by curve"].view,
         preset["The gap against depth, curve by curve"].query, None),
        ("theory", THEORY, {}, "() => !!document.querySelector('.katex')"),
    ]
    with tempfile.TemporaryDirectory() as store, streamlit_server(Path(store)) as server, \
            sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for name, view, query, ready in shots:
            tab = browser.new_page(viewport={"width": 1400, "height": 1000})
            tab.goto(view.url(server.url, query))
            if ready is None:  # the gap page: run the sweep until several points are drawn
                tab.get_by_role("button", name="Run").click(timeout=60_000)
                tab.wait_for_function(FIGURE_JS, timeout=180_000)
                tab.wait_for_function(
                    "() => /([1-9][0-9]|[6-9]) of/.test(document.body.innerText)",
                    timeout=300_000)
                tab.get_by_role("button", name="Stop").click(timeout=30_000)
            else:
                tab.wait_for_function(ready, timeout=180_000)
            time.sleep(1.5)  # let the last redraw settle
            target = OUT / f"{name}.png"
            tab.screenshot(path=str(target), full_page=True)
            print(f"{target.relative_to(ROOT)}: {target.stat().st_size // 1024} KB")
            tab.close()
        browser.close()


if __name__ == "__main__":
    main()
