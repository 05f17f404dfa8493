"""Presets, copied links and exports in a real browser (issue 6).

One Streamlit server and Debian's chromium for the module; every preset opens in a fresh
browser context.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from dualviz.presets import PRESETS
from dualviz.testing import CHROMIUM, page_state, wait_for_state
from dualviz.views import GAP_CURVES, HOME, THEORY, VIEWS

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(),
                                reason=f"{CHROMIUM} is missing (CI installs Debian's chromium)")]
FIGURE_JS = ("() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
             ".some(el => el.data && el.data.some(t => (t.x || []).length > 0))")


def wait_for_figure(tab, timeout: float) -> None:
    tab.wait_for_function(FIGURE_JS, timeout=timeout * 1000)


@pytest.mark.parametrize("preset", PRESETS, ids=[p.title for p in PRESETS])
def test_every_preset_opens_with_its_controls_set_and_a_figure_drawn(server, page, preset):
    tab, dialogs = page
    tab.goto(preset.view.url(server.url, preset.query))
    if preset.view is GAP_CURVES:  # a sweep draws its first points as they arrive
        tab.get_by_role("button", name=re.compile("^(Run|Resume)$")).click(timeout=30_000)
    wait_for_figure(tab, timeout=120)
    # The page rewrote the URL from its widgets: every preset value is still there.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        shown = dict(parse_qsl(urlsplit(tab.url).query))
        if all(shown.get(k) == v or _same_number(shown.get(k), v)
               for k, v in preset.query.items()):
            break
        time.sleep(0.2)
    missing = {k: (v, shown.get(k)) for k, v in preset.query.items()
               if not (shown.get(k) == v or _same_number(shown.get(k), v))}
    assert not missing, missing
    assert not tab.locator('[data-testid="stException"]').count()
    assert not dialogs
    if preset.view is GAP_CURVES:
        tab.get_by_role("button", name="Stop").click(timeout=10_000)


def _same_number(a: str | None, b: str) -> bool:
    try:
        return a is not None and float(a) == float(b)
    except ValueError:
        return False


def test_the_copied_link_reproduces_the_numbers_and_every_export_downloads(server, browser):
    preset = PRESETS[0]
    first = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    tab = first.new_page()
    tab.goto(preset.view.url(server.url, preset.query))
    state = wait_for_state(tab, lambda s: s.caption is not None and s.caption.done
                           and s.caption.other_status.startswith("done")
                           and "P (trained)" in s.metrics, timeout=180, what="both runs done")
    tab.get_by_text("Share and export").click()
    link = tab.locator('[data-testid="stCode"]').first.inner_text().strip()
    assert link.startswith(server.url) and f"depth={preset.query['depth']}" in link

    downloads = {}
    for label in ("Result as JSON", "Result as CSV", "PNG", "SVG"):
        try:
            with tab.expect_download(timeout=60_000) as info:
                tab.get_by_role("button", name=re.compile(label)).first.click()
        except PlaywrightTimeout:
            pytest.fail(f"no {label} download in 60 s; the server's log:\n{server.log_tail()}")
        downloads[label] = Path(info.value.path()).read_bytes()
    result = json.loads(downloads["Result as JSON"])
    assert result["experiment"]["hash"] == state.caption.hash
    assert downloads["Result as CSV"].decode().startswith("hash,P,D,gap")
    assert downloads["PNG"].startswith(b"\x89PNG") and len(downloads["PNG"]) > 10_000
    assert b"<svg" in downloads["SVG"][:200]

    second = browser.new_context(viewport={"width": 1400, "height": 1000})  # a collaborator
    other = second.new_page()
    other.goto(link)
    again = wait_for_state(other, lambda s: s.caption is not None and s.caption.done
                           and "P (trained)" in s.metrics, timeout=60, what="the stored run")
    assert again.caption.hash == state.caption.hash
    for name in ("P (trained)", "Gap P - D", "Relative gap"):
        assert again.metrics[name] == page_state(tab).metrics[name], name
    first.close()
    second.close()


def test_the_home_preview_lives_in_the_url(server, page):
    tab, _ = page
    tab.goto(f"{server.url}/?preview-depth=4&preview-rank=3")
    value = tab.locator('[data-testid="stSliderThumbValue"]').first
    value.wait_for(timeout=30_000)
    assert value.inner_text() == "4"
    tab.get_by_role("slider").first.focus()
    tab.keyboard.press("ArrowRight")
    tab.wait_for_url(re.compile(r"preview-depth=5"), timeout=15_000)
    assert "preview-rank=3" in tab.url  # (a value equal to its default leaves the URL)


EVIL = "http://127.0.0.1:9/x.png"
HOSTILE_QUERY = {"depth": "99", "beta": "nan", "width": "99999999999", "seed": f"![x]({EVIL})",
                 "x": "<script>alert(1)</script>", "preview-depth": "1e308",
                 "preview-spectrum": "<img src=x onerror=alert(1)>", "hide": "<script>",
                 "x-values": "1e308,nan", "seeds": "99",
                 "t": "http://127.0.0.1:9/a www.127.0.0.1:9"}  # autolinks, not just links
INJECTED_JS = """() => ({
  scripts: Array.from(document.scripts).some(s => (s.textContent || '').includes('alert(1)')),
  images: Array.from(document.images).map(i => i.getAttribute('src') || '')
            .filter(src => src === 'x' || src.includes('127.0.0.1:9')),
  links: Array.from(document.links).map(a => a.href).filter(h => h.includes('127.0.0.1:9')),
})"""


@pytest.mark.parametrize("view", VIEWS, ids=[v.title for v in VIEWS])
def test_a_hostile_link_renders_every_page_safely(server, page, view):
    tab, dialogs = page
    tab.goto(view.url(server.url, HOSTILE_QUERY))
    tab.locator("h1").first.wait_for(timeout=30_000)
    if view is not THEORY:  # the theory page reads no link keys
        alerts = tab.locator('[data-testid="stAlert"]').filter(has_text="Adjusted:")
        alerts.first.wait_for(timeout=30_000)
        time.sleep(1.0)  # every note of this run drawn
        text = " ".join(alerts.all_inner_texts())
        if view is HOME:
            assert "preview-depth: 1e308 is outside [2, 10]; using 10" in text, text
            assert "<img src=x onerror=alert(1)>" in text, text  # shown as typed
        else:
            assert "depth: 99 is outside [2, " in text and "beta: 'nan'" in text, text
            assert f"![x]({EVIL})" in text, text  # the markdown image shown as typed
    injected = tab.evaluate(INJECTED_JS)
    assert injected == {"scripts": False, "images": [], "links": []}, injected
    assert not tab.locator('[data-testid="stException"]').count()
    assert not dialogs, dialogs


def test_every_link_on_the_home_page_is_a_real_href_with_the_full_query(server, page):
    """A teacher copies a preset's link or opens it in a new tab: the DOM must carry it."""
    tab, dialogs = page
    tab.goto(HOME.url(server.url))
    tab.get_by_role("link", name=PRESETS[-1].title).wait_for(timeout=30_000)
    anchors = tab.evaluate("() => Array.from(document.querySelectorAll('a[href]')).map("
                           "a => [a.innerText.trim(), a.getAttribute('href')])")
    by_text = {text: href for text, href in anchors}
    for preset in PRESETS:
        href = next(h for t, h in by_text.items() if preset.title in t)
        path, _, query = href.partition("?")
        assert path.rstrip("/").endswith(preset.view.url_path), href
        assert dict(parse_qsl(query)) == preset.params  # every knob, the seed included
    for view in VIEWS[1:]:
        href = next(h for t, h in by_text.items() if t.endswith(view.title))
        assert href.partition("?")[0].rstrip("/").endswith(view.url_path), href
    # the link opens the same run in a new tab: its URL keeps the full state
    preset = PRESETS[0]
    fresh = tab.context.new_page()
    fresh.goto(server.url + "/" + next(h for t, h in by_text.items()
                                       if preset.title in t).lstrip("./"))
    fresh.locator('[data-testid="stSidebar"]').wait_for(timeout=30_000)
    deadline = time.monotonic() + 15
    while dict(parse_qsl(urlsplit(fresh.url).query)) != preset.params and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert dict(parse_qsl(urlsplit(fresh.url).query)) == preset.params
    assert not dialogs
