"""Session-wide test settings, and the fixtures of the browser tests."""

import os
from collections.abc import Iterator
from typing import Any

import pytest

from dualviz.testing import VIEWPORT, Server, launch_chromium, streamlit_server

BROWSER_FIXTURES = {"browser", "page", "server"}


def pytest_collection_modifyitems(items):
    """A test that takes a browser fixture is a browser test, wherever it lives."""
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session", autouse=True)
def isolated_store(tmp_path_factory):
    """Pages under AppTest create the server's job manager (once per process) from
    DUALVIZ_DATA_DIR: point it at a temporary store, never the user's cache."""
    old = os.environ.get("DUALVIZ_DATA_DIR")
    os.environ["DUALVIZ_DATA_DIR"] = str(tmp_path_factory.mktemp("store"))
    yield
    if old is None:
        del os.environ["DUALVIZ_DATA_DIR"]
    else:
        os.environ["DUALVIZ_DATA_DIR"] = old


@pytest.fixture(autouse=True)
def main_module_restored():
    """AppTest leaves the last page script as sys.modules["__main__"]; multiprocessing's
    spawn and forkserver children (a local sweep pool, Dask's workers) import __main__ again,
    which would run that page in every child. Each test gets the interpreter's own back."""
    import sys

    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


# -- the store's two backends: the embedded SQLite file and PostgreSQL (a throwaway cluster) --

@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory) -> Iterator[str]:
    """A PostgreSQL cluster of Debian's binaries for this test session (its URL); skipped,
    saying why, only where the binaries are not installed (.ci/run installs them)."""
    from dualviz.service import pgcluster

    reason = pgcluster.missing_reason()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("pg") / "cluster"
    url = pgcluster.start(folder)
    yield url
    pgcluster.stop(folder)


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """A fresh, empty database on the session's cluster."""
    import uuid

    from dualviz.service.pgcluster import create_database

    return create_database(pg_cluster, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request, monkeypatch) -> str:
    """Runs a test on each store backend: DUALVIZ_DATABASE_URL is set (for this process and
    the job processes it starts) to a fresh PostgreSQL database, or unset (SQLite)."""
    from dualviz.service.store import DATABASE_URL_ENV

    if request.param == "postgresql":
        monkeypatch.setenv(DATABASE_URL_ENV, request.getfixturevalue("pg_url"))
    else:
        monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    return request.param


# -- the browser tests' fixtures: one server and one chromium per module, a fresh page per test --

@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    """One Streamlit server per test module, its store in a temporary directory. A closed
    tab's jobs are cancelled 20 s after its last stream touched them (not the default 120 s),
    so that the runs of finished tests do not hold the job places the next tests queue for."""
    data_dir = tmp_path_factory.mktemp("dualviz-store")
    with streamlit_server(data_dir, extra_env={"DUALVIZ_WATCHER_TIMEOUT": "20"}) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser) -> Iterator[tuple[Any, list[str]]]:
    """A fresh page (its own browser context and Streamlit session) and the messages of any
    dialog it opened (a dialog means a script ran)."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    tab = context.new_page()
    dialogs: list[str] = []

    def on_dialog(dialog) -> None:
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    yield tab, dialogs
    context.close()
