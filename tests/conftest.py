"""Session-wide test settings."""

import os

import pytest


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
