"""Rooms in real browsers: a presenter and two followers, on two replicas of one PostgreSQL store
(and on one server of the embedded SQLite store).

The presenter types the operator's token once; the page shows the follow link as a QR code that
decodes to that link, and the number of followers; each follower opened on the home page moves to
the presenter's page and query and follows the presenter's control changes; "Explore on my own"
detaches a follower, whose URL keeps the last view. A follower of a page with a live panel
draws the presenter's panel, pushed through the room's stream, and runs no page of its own
until it detaches. Timings are measured by
benchmarks/bench_rooms.py; here only what happens is asserted.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from shared import wait_for

from dualviz.config import Experiment
from dualviz.service.store import DATABASE_URL_ENV
from dualviz.testing import CHROMIUM, EXPLORER_PATH, page_state, streamlit_server

pytestmark = [pytest.mark.browser, pytest.mark.server,
              pytest.mark.skipif(not CHROMIUM.exists(),
                                 reason=f"{CHROMIUM} is missing (CI installs Debian's chromium)")]

TOKEN = "operator-token-for-tests"
START = Experiment(iterations=150, restarts=1)
ROOM = "lecture-1"


@contextlib.contextmanager
def two_servers(tmp_path: Path, backend: str, request):
    """Two replicas of one PostgreSQL store, or one SQLite server twice."""
    env = {"DUALVIZ_PRESENTER_TOKEN": TOKEN, "DUALVIZ_MAX_JOBS": "2"}
    if backend == "postgresql":
        env[DATABASE_URL_ENV] = request.getfixturevalue("pg_url")
        with streamlit_server(tmp_path / "a", extra_env=env) as a, \
                streamlit_server(tmp_path / "b", extra_env=env) as b:
            yield a, b
    else:
        with streamlit_server(tmp_path / "a", extra_env=env) as a:
            yield a, a


def address(tab) -> str:
    """The tab's address as its document has it now. (Page.url is updated by Playwright's
    events, which a test waiting in time.sleep does not process: it kept the first address
    after an in-app move.)"""
    return tab.evaluate("location.href")


def view_of(tab, drop=("follow", "room", "present")) -> tuple[str, dict[str, str]]:
    parts = urlsplit(address(tab))
    return parts.path.rstrip("/"), {k: v for k, v in parse_qsl(parts.query) if k not in drop}


def decode_qr(tab) -> str:
    import zxingcpp
    from PIL import Image

    shot = tab.locator(".st-key-dv_qr img").screenshot()
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(shot)).convert("L"))
    assert found, "no QR code in the screenshot"
    return found[0].text


def followers(tab) -> int:
    value = tab.locator(".dv-room").first.get_attribute("data-followers")
    return int(value) if value else -1


# The store's room rows are tested on both backends (tests/test_store_backends.py); in a browser
# the QR code runs on the embedded store and following on PostgreSQL, where replicas share rooms
# (each browser test costs 20-35 s, and `make test` has 15 minutes).
@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_presenter_opens_a_room_shown_as_a_qr_code_of_the_follow_link(tmp_path, backend,
                                                                          request, browser):
    from playwright.sync_api import expect

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with two_servers(tmp_path, backend, request) as (a, _):
        presenter = browser.new_page(viewport={"width": 1400, "height": 1100})
        presenter.goto(f"{a.url}{EXPLORER_PATH}?room={ROOM}&present=1&{START.to_query()}")
        presenter.get_by_label("Presenter token", exact=True).fill(TOKEN)
        presenter.get_by_role("button", name="Present", exact=True).click()
        expect(presenter.get_by_text(f"Room {ROOM}")).to_be_visible(timeout=60_000)
        assert decode_qr(presenter) == f"{a.url}/?follow={ROOM}"
        assert TOKEN not in presenter.content()  # the token never reaches the page


def shown_experiment(tab) -> str | None:
    caption = page_state(tab).caption
    return caption.hash if caption else None


def both_done(tab) -> bool:
    caption = page_state(tab).caption
    return bool(caption and caption.done and caption.other_status.startswith("done"))


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_presenter_and_two_followers_on_two_replicas(tmp_path, backend, request, browser):
    from playwright.sync_api import expect

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with two_servers(tmp_path, backend, request) as (a, b):
        presenter = browser.new_page(viewport={"width": 1400, "height": 1100})
        presenter.goto(f"{a.url}{EXPLORER_PATH}?room={ROOM}&present=1&{START.to_query()}")
        presenter.get_by_label("Presenter token", exact=True).fill(TOKEN)
        presenter.get_by_role("button", name="Present", exact=True).click()
        expect(presenter.get_by_text(f"Room {ROOM}")).to_be_visible(timeout=60_000)
        link = f"{a.url}/?follow={ROOM}"
        assert decode_qr(presenter) == link  # the QR code is the follow link, nothing else
        assert TOKEN not in presenter.content()  # the token never reaches the page

        first, second = browser.new_page(), browser.new_page()
        first.goto(link)
        second.goto(f"{b.url}/?follow={ROOM}")  # the other replica
        for tab in (first, second):  # each moves to the presenter's page and query
            wait_for(lambda tab=tab: view_of(tab) == view_of(presenter), 60,
                     what="a follower shows the presenter's view")
            assert "follow=" + ROOM in address(tab)
            # ... drawing the presenter's live panel, not running the page (no controls)
            wait_for(lambda tab=tab: shown_experiment(tab) == shown_experiment(presenter), 30,
                     what="a follower draws the presenter's experiment")
            assert tab.get_by_role("slider", name="Depth L").count() == 0
        for tab in (presenter, first, second):  # the end of a run reaches the followers too
            wait_for(lambda tab=tab: both_done(tab), 120, what="both runs shown done")
        wait_for(lambda: followers(presenter) == 2, 30, what="the presenter sees 2 followers")

        def change_depth() -> str:
            """One step of the presenter's depth; returns it once the presenter's URL has it."""
            thumb = presenter.get_by_role("slider", name="Depth L")
            depth = str(int(view_of(presenter)[1]["depth"]) + 1)
            thumb.focus()
            thumb.press("ArrowRight")
            wait_for(lambda: view_of(presenter)[1]["depth"] == depth, 15,
                     what="the presenter's URL has the new depth")
            return depth

        try:
            wait_for(lambda: view_of(presenter)[1].get("depth") == str(START.depth), 30,
                     what="the presenter's page shows its link's depth")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the presenter is at {address(presenter)}") from None
        depth = change_depth()
        for tab in (first, second):
            wait_for(lambda tab=tab: view_of(tab) == view_of(presenter), 30,
                     what="a follower follows the presenter's change")
            wait_for(lambda tab=tab: shown_experiment(tab) == shown_experiment(presenter), 30,
                     what="a follower draws the presenter's new experiment")
        assert (view_of(first)[1]["depth"], depth) == (str(START.depth + 1),) * 2, \
            (address(first), address(presenter))

        # the second follower explores on its own: it keeps its view and stops following
        second.get_by_role("button", name="Explore on my own").click()
        try:
            wait_for(lambda: "follow=" not in address(second)
                     and view_of(second) == view_of(first), 30,
                     what="the follower detached, at the view it showed")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: at {address(second)}, the other follower at "
                                 f"{address(first)}") from None
        kept = view_of(second)
        # exploring on its own: the page itself runs, with its controls
        second.get_by_role("slider", name="Depth L").wait_for(timeout=30_000)
        depth = change_depth()
        wait_for(lambda: view_of(first)[1]["depth"] == depth, 30,
                 what="the first follower follows")
        assert view_of(first) == view_of(presenter)
        assert view_of(second) == kept
        wait_for(lambda: followers(presenter) == 1, 30, what="the presenter sees 1 follower")
        # another page with a live panel: the follower moves there and draws its panel
        presenter.get_by_role("link", name="ReLU networks").click()
        # 60 s: the page's first run on either replica (its solves) on a loaded 2-core
        # machine; 30 s ran out once while the other test worker trained.
        wait_for(lambda: view_of(first)[0] == view_of(presenter)[0] == "/ReLU_networks", 60,
                 what="the follower moves to the presenter's ReLU page")
        wait_for(lambda: shown_experiment(first) == shown_experiment(presenter), 60,
                 what="the follower draws the presenter's ReLU experiment")
        # a page without a live panel: the follower's page moves there and runs
        presenter.get_by_role("link", name="Theory").click()
        wait_for(lambda: view_of(first)[0] == view_of(presenter)[0] == "/Theory", 30,
                 what="the follower moves to the presenter's Theory page")
        assert view_of(second) == kept


def test_presenting_without_the_operators_token_is_off_with_a_message(tmp_path, browser):
    from playwright.sync_api import expect

    with streamlit_server(tmp_path) as server:
        tab = browser.new_page()
        tab.goto(f"{server.url}/?room={ROOM}&present=1")
        expect(tab.get_by_text("Presenting to a room is off on this server")).to_be_visible(
            timeout=60_000)
        tab.goto(f"{server.url}/?follow=Not%20a%20room!")
        expect(tab.get_by_text("is not a room name")).to_be_visible(timeout=60_000)
