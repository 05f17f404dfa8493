"""A link to a page, opened on a server nobody has visited yet, runs app.py's navigation:
the menu lists the pages by their titles, Home first, and no "app" entry from the pages/
folder's file names (Streamlit's old multipage mode, which it starts in when a pages/ folder
is present). Its own server: the first page load is what is tested."""

from __future__ import annotations

import pytest
from playwright.sync_api import sync_playwright

from dualviz.testing import CHROMIUM, VIEWPORT, launch_chromium, streamlit_server
from dualviz.views import VIEWS

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not CHROMIUM.exists(),
                                 reason=f"{CHROMIUM} is missing (CI installs Debian's chromium)")]


def test_a_page_link_opened_first_shows_the_apps_own_menu(tmp_path):
    with streamlit_server(tmp_path) as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        for path in ("/Theory?present=1", "/Deep_linear_explorer?depth=4"):
            page.goto(server.url + path)
            nav = page.get_by_test_id("stSidebarNav")
            nav.get_by_text("Home", exact=True).wait_for(timeout=60_000)
            titles = [t.strip() for t in nav.locator("a span").all_inner_texts()
                      if t.strip() in {v.title for v in VIEWS} or t.strip() == "app"]
            assert titles == [v.title for v in VIEWS], (path, titles)
        browser.close()
