"""`python -m dualviz serve`: the app on the embedded store, with the server's limits set.

Streamlit's own settings that the limits depend on are passed here, not left to a config file
in the working directory: the upload limit equals the app's ($DUALVIZ_MAX_UPLOAD_MB), and the
server listens on 127.0.0.1 unless the operator names another address.
"""

from __future__ import annotations

import math
import os
import sys
import sysconfig
from pathlib import Path

from . import limits
from .store import Store, StoreError


def app_script() -> Path:
    """app.py (with pages/ beside it): the checkout's, or an installed copy's
    (share/dualviz, see pyproject.toml)."""
    checkout = Path(__file__).resolve().parents[1] / "app.py"
    if checkout.exists():
        return checkout
    return Path(sysconfig.get_path("data")) / "share" / "dualviz" / "app.py"


def streamlit_options(port: int, address: str) -> list[str]:
    """The command-line options of `streamlit run` for this server."""
    upload_mb = max(1, math.ceil(limits.upload_bytes() / 2**20))
    options = {"server.address": address, "server.port": port,
               "server.maxUploadSize": upload_mb, "server.headless": "true",
               "server.fileWatcherType": "none", "browser.gatherUsageStats": "false"}
    return [f"--{name}={value}" for name, value in options.items()]


def serve(port: int, address: str) -> int:
    """Check that the store is free for this server, then become the Streamlit server."""
    try:
        store = Store()
        store.claim_server().close()  # checked now; the job manager holds it from its start
        store.close()
    except StoreError as exc:
        print(f"dualviz: error: {exc}", file=sys.stderr)
        return 2
    if address not in ("127.0.0.1", "localhost", "::1"):
        print(f"dualviz: serving on {address}: anyone who can reach this address can use the "
              "app (see the README on serving a network)", file=sys.stderr)
    argv = [sys.executable, "-m", "streamlit", "run", str(app_script()),
            *streamlit_options(port, address)]
    sys.stdout.flush()
    os.execv(sys.executable, argv)
    return 0  # not reached
