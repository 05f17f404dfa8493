"""`python -m dualviz serve`: the app on the embedded store, with the server's limits set.

Streamlit's own settings that the limits depend on are passed here, not left to a config file
in the working directory: the upload limit equals the app's ($DUALVIZ_MAX_UPLOAD_MB), and the
server listens on 127.0.0.1 unless the operator names another address. The app is Streamlit's
ASGI app with the push channel's routes (dualviz/ui/server.py). Streamlit is imported only
when the app starts, so the command line stays light.
"""

from __future__ import annotations

import math
import sys
import sysconfig
from pathlib import Path

from .. import limits
from ..service.store import Store, StoreError


def app_script() -> Path:
    """app.py (with pages/ beside it): the checkout's, or an installed copy's
    (share/dualviz, see pyproject.toml)."""
    checkout = Path(__file__).resolve().parents[2] / "app.py"
    if checkout.exists():
        return checkout
    return Path(sysconfig.get_path("data")) / "share" / "dualviz" / "app.py"


def streamlit_config(port: int, address: str) -> dict[str, object]:
    """Streamlit's options for this server (App.run's config: flags of `streamlit run`)."""
    upload_mb = max(1, math.ceil(limits.upload_bytes() / 2**20))
    return {"server.address": address, "server.port": port,
            "server.maxUploadSize": upload_mb, "server.headless": True,
            "server.fileWatcherType": "none", "browser.gatherUsageStats": False,
            "client.toolbarMode": "viewer",  # no Deploy button for a hall of visitors
            # Streamlit runs a full gc.collect() after every script run; with torch, CVXPY and
            # SciPy in the heap that took ~80% of the server's GIL time under 40 sessions.
            # Python's own generational collector still runs.
            "runner.postScriptGC": False}


def serve(port: int, address: str) -> int:
    """Check that the store is free for this server, then serve the app (blocks)."""
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
    from .server import build_app  # Streamlit only where it serves

    # Streamlit puts the launcher's folder on sys.path and takes sys.argv as the script's
    # arguments: the launcher is app.py (as for `streamlit run app.py`), with none.
    sys.argv = [str(app_script())]
    build_app().run(config=streamlit_config(port, address))
    return 0
