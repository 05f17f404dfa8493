"""The server: the pages (app.py and pages/) as Streamlit's ASGI app, with the routes they need.

- ``GET /api/jobs/{hash}/stream?after=SEQ&watcher=ID``: a job's live run as Server-Sent Events
  (dualviz.service.stream): every snapshot batch after SEQ, the status and readout, and an ``end``
  event when the job ends. Only jobs stored on this server (an unknown hash is a 404); payloads
  are bounded; no cross-origin access is granted (no CORS headers).
- ``GET /vendor/plotly.min.js``: Plotly.js from the installed plotly package (the app loads
  nothing from a CDN: it works on a lecture hall's Wi-Fi and offline).
- ``GET /api/stats``: how many streams are open (the tests check that a closed tab's ends)
  and whether the job launcher is warm (its solvers imported: benchmarks wait for it).
- ``GET /api/rooms/{name}/events``: a follower's stream of a presenter's room
  (dualviz.service.rooms): a ``view`` event at every change of the presenter's page or query.
  ``GET /api/rooms/{name}/presence?key=K``: the presenter's, with K the room's own key (never
  the operator's token); it keeps the room open and sends the follower count. Unknown rooms
  (or a wrong key) are a 404, a process at its cap of streams answers 503.

Every response carries ``Content-Security-Policy: frame-ancestors 'self'`` and
``X-Content-Type-Options: nosniff``: no other site can frame the pages. The job manager starts
with the server, so its solvers are warm before the first visitor.
"""

from __future__ import annotations

import contextlib
import importlib
import re
from pathlib import Path

import plotly
import streamlit as st
from starlette.middleware import Middleware
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .. import limits
from ..service.rooms import Refused, RoomHub
from ..service.stream import Broadcaster
from ..views import ROOM_NAME
from . import live
from .live_chart import PLOTLY_URL
from .serve import app_script

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
_HASH = re.compile(r"[0-9a-f]{16}")
_WATCHER = re.compile(r"[0-9a-f]{32}")
_HEADERS = ((b"content-security-policy", b"frame-ancestors 'self'"),
            (b"x-content-type-options", b"nosniff"))


class SecurityHeaders:
    """Adds _HEADERS to every HTTP response, Streamlit's own included (a pure ASGI middleware,
    so event streams stay streams)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []),
                                      *(h for h in _HEADERS if h[0] not in present)]
            await send(message)

        await self.app(scope, receive, with_headers)


_broadcaster: Broadcaster | None = None


def broadcaster() -> Broadcaster:
    global _broadcaster
    if _broadcaster is None:
        manager = live.manager()
        _broadcaster = Broadcaster(manager.store, manager.touch)
    return _broadcaster


# Imported once at start: sessions arriving together would otherwise import them in several
# script threads at once, and a module half imported by one thread fails in another (seen
# with pandas under 4 simultaneous sessions).
_WARM_IMPORTS = ("pandas", "pyarrow", "plotly.graph_objects", "numpy", "scipy.linalg")


def _navigation_from_app_py() -> None:
    """Every session runs app.py (st.navigation), from its first page load on.

    With a pages/ folder beside the script, Streamlit starts in its old multipage mode (the
    class flag PagesManager.uses_pages_directory) and runs a pages/ file directly, without
    app.py, until some session has run app.py's st.navigation: until then a link to a page
    showed the folder's file names and an "app" entry in the menu."""
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False


@contextlib.asynccontextmanager
async def _lifespan(app):
    _navigation_from_app_py()
    for name in _WARM_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    broadcaster()  # creates the job manager: its launcher warms up now, not on a first visit
    yield


async def _stream(request):
    job = request.path_params["job"]
    if not _HASH.fullmatch(job):
        return Response("no such job", status_code=404)
    if broadcaster().streams >= limits.max_streams():  # each open stream holds memory
        return Response("too many live streams on this server; try again shortly",
                        status_code=503, headers={"Retry-After": "3"})
    feed = await broadcaster().feed(job)
    if feed is None:
        return Response("no such job", status_code=404)
    after = -1
    # the page's cursor, or (an EventSource reconnecting) the last batch it received
    for text in (request.query_params.get("after", ""), request.headers.get("last-event-id", "")):
        with contextlib.suppress(ValueError):
            after = max(after, min(int(text), 2**62))
    watcher = request.query_params.get("watcher", "")
    watcher = watcher if _WATCHER.fullmatch(watcher) else None
    return _event_stream(broadcaster().subscribe(feed, after, watcher, request.is_disconnected))


_rooms: RoomHub | None = None
_KEY = re.compile(r"[A-Za-z0-9_-]{16,64}")


def rooms() -> RoomHub:
    global _rooms
    if _rooms is None:
        manager = live.manager()
        _rooms = RoomHub(manager.store, manager.replica, limits.max_followers())
    return _rooms


def _event_stream(body) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _room_events(request):
    name = request.path_params["name"]
    if not ROOM_NAME.fullmatch(name):
        return Response("no such room", status_code=404)
    try:
        return _event_stream(await rooms().follow(name, request.is_disconnected))
    except Refused as refused:
        return Response(str(refused), status_code=refused.status)


async def _room_presence(request):
    name, key = request.path_params["name"], request.query_params.get("key", "")
    if not ROOM_NAME.fullmatch(name) or not _KEY.fullmatch(key):
        return Response("no such room", status_code=404)
    try:
        return _event_stream(await rooms().presence(name, key, request.is_disconnected))
    except Refused as refused:
        return Response(str(refused), status_code=refused.status)


async def _plotly_js(request):
    return FileResponse(PLOTLY_JS, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})


async def _stats(request):
    return JSONResponse({**broadcaster().stats(), **rooms().stats(),
                         "warm": live.manager().ready.is_set()})


def build_app() -> st.App:
    return st.App(app_script(),
                  routes=[Route("/api/jobs/{job}/stream", _stream), Route("/api/stats", _stats),
                          Route(PLOTLY_URL, _plotly_js),
                          Route("/api/rooms/{name}/events", _room_events),
                          Route("/api/rooms/{name}/presence", _room_presence)],
                  middleware=[Middleware(SecurityHeaders)], lifespan=_lifespan)
