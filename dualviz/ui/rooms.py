"""Rooms on the pages: a presenter publishes the current view, followers follow it live.

- ``?room=NAME&present=1`` on any page: with the operator's presenter token
  ($DUALVIZ_PRESENTER_TOKEN, typed once in the sidebar, compared in constant time) the session
  opens room NAME and publishes its page and query after every run; the page shows the follow
  link as a large QR code and the number of followers. Without the variable presenting is off,
  and the page says so. The token never leaves the session: the follow link carries the room's
  name only, and the presenter's connection proves itself with a random key of the room.
- ``?follow=NAME`` on any page: the page shows the presenter's current view and follows each
  change pushed by the room's event stream (dualviz.service.rooms). Where the presenter's
  page has a live panel, the presenter shares it (share_panel) and the follower draws that
  panel only: its browser takes each new one from the stream, with no rerun here. Any other
  page the follower moves to (in-app, the session kept) and runs. "Explore on my own"
  detaches: the page runs, with its controls, at the last view.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import streamlit as st

from .. import limits
from ..service.rooms import ROOM_ALIVE
from ..service.store import StoreError
from ..views import ROOM_KEYS, VIEWS, room_name
from . import live, live_chart, state

TOKEN_ENV = "DUALVIZ_PRESENTER_TOKEN"
PUBLIC_URL_ENV = "DUALVIZ_PUBLIC_URL"
MAX_TOKEN_TRIES = 5  # per session: a wrong token this often locks presenting for the session
_AUTHORISED = "_dv_room_authorised"
_TRIES = "_dv_room_tries"
_KEYS = "_dv_room_keys"  # room name -> this session's key of it
_PRESENTING = "_dv_presenting"  # the room this session presents (kept across pages)
_FOLLOWED = "_dv_followed"  # (room, seq, moves) of the presenter's view this session moved to
MAX_MOVES = 3
_DETACHED = "_dv_detached"
_DETACH_TO = "_dv_detach_to"  # (page, query) a follower that pressed "Explore" moves to
_SHARED = "_dv_shared_panel"  # present while presenting: this run's panel for followers
_YES = ("1", "true", "yes", "on")

# The room component: the follower's stream on a page without a live panel (a change reruns
# the page, which moves there) and the presenter's, which shows the number of followers.
_JS = (Path(__file__).parent / "room_stream.js").read_text() + r"""
export default function ({ data, parentElement, setTriggerValue }) {
  const el = parentElement.querySelector(".dv-room");
  el.__seq = data.seq;                               // the presenter's view this page shows
  if (el.__stream && !el.__stream.closed && el.__url === data.url) return;  // keep it
  if (el.__stream) el.__stream.close();
  el.__url = data.url;
  const stream = el.__stream = openRoomStream(data.url, el, {
    view: (view) => {
      // the presenter changed its view: the script reruns and moves there (in-app, no reload)
      if (data.follow && view.seq !== el.__seq) {
        el.__seq = view.seq;
        setTriggerValue("moved", view.seq);
      }
    },
    followers: ({ count }) => {
      const text = count + (count === 1 ? " follower" : " followers");
      el.querySelector(".dv-count").textContent = text;
      el.dataset.followers = count;
    },
    closed: () => { stream.close(); el.__url = null; setTriggerValue("closed", true); },
  });
  return () => { stream.close(); el.__url = null; };
}
"""
_CSS = ".dv-room {font-size: 1.4rem; font-weight: 600;}"
_component = None


def _room_stream():
    global _component
    if _component is None:
        _component = st.components.v2.component(
            "dualviz_room", html='<div class="dv-room"><span class="dv-count"></span></div>',
            css=_CSS, js=_JS)
    return _component


@dataclass
class RoomContext:
    presenting: str | None = None  # the room this run publishes to
    top: object | None = None  # where the presenter's panel goes (above the page)
    followed: bool = False  # the page was replaced by the presenter's panel: do not run it


def sharing() -> bool:
    """This run presents a room: its live panel goes to the followers (share_panel)."""
    return _SHARED in st.session_state


def share_panel(data: dict) -> None:
    """The live panel (live_chart.panel_data, as followers draw it) the room's followers get."""
    if sharing():
        st.session_state[_SHARED] = data


def _yes(value: object) -> bool:
    return str(value or "").strip().lower() in _YES


def _page_path(page) -> str:
    return getattr(page, "url_path", "") or ""


def _view_query() -> str:
    """The current query without the room's keys and presenter mode: what followers get."""
    params = {k: v for k, v in st.query_params.to_dict().items()
              if k not in (*ROOM_KEYS, "present")}
    return urlencode(sorted(params.items()))


def follow_link(room: str) -> str:
    """The address followers open: this server (as the presenter reached it, or the
    operator's $DUALVIZ_PUBLIC_URL), the home page, the room's name only."""
    base = os.environ.get(PUBLIC_URL_ENV, "").rstrip("/")
    if not base:
        parts = urlsplit(st.context.url or "")
        base = f"{parts.scheme or 'http'}://{parts.netloc}" if parts.netloc else ""
    return f"{base}/?{urlencode({'follow': room})}"


def qr_png(text: str) -> bytes:
    """The QR code of `text` as a PNG (segno, pure Python: made here, no external service)."""
    import io

    import segno

    buffer = io.BytesIO()
    segno.make(text, error="m").save(buffer, kind="png", scale=10, border=4)
    return buffer.getvalue()


def _check_token(typed: str) -> None:
    token = os.environ.get(TOKEN_ENV, "")
    st.session_state[_TRIES] = st.session_state.get(_TRIES, 0) + 1
    if token and hmac.compare_digest(typed.encode()[:512], token.encode()):
        st.session_state[_AUTHORISED] = True


def _authorise(room: str) -> bool:
    """The session may present: the operator's token was typed (once) in the sidebar."""
    if not os.environ.get(TOKEN_ENV):
        st.warning("Presenting to a room is off on this server: its operator has not set "
                   f"${TOKEN_ENV}. The page is shown in presenter mode without a room.")
        return False
    if st.session_state.get(_AUTHORISED):
        return True
    if st.session_state.get(_TRIES, 0) >= MAX_TOKEN_TRIES:
        st.sidebar.error("Too many wrong presenter tokens in this session: open a new tab.")
        return False
    with st.sidebar.form("dv_presenter_token", clear_on_submit=True):
        typed = st.text_input("Presenter token", type="password", max_chars=200,
                              help=f"The operator's ${TOKEN_ENV}: opens room '{room}'.")
        if st.form_submit_button("Present"):
            _check_token(typed)
    if st.session_state.get(_AUTHORISED):
        return True
    if st.session_state.get(_TRIES):
        st.sidebar.error("That is not the presenter token.")
    st.info(f"Type the presenter token in the sidebar to open room '{room}'.")
    return False


def _stop_presenting() -> None:
    room = st.session_state.pop(_PRESENTING, None)
    key = st.session_state.get(_KEYS, {}).pop(room, None)
    if room and key:
        with contextlib.suppress(StoreError):
            live.manager().store.close_room(room, key)
    for name in (*ROOM_KEYS, "present"):
        st.query_params.pop(name, None)


def _detach(room: str, shown: tuple[str, str] | None = None) -> None:
    """Stop following; a follower drawing the presenter's panel moves to that view (the
    room's latest, or the one it was drawn with if the room has closed)."""
    st.session_state[_DETACHED] = room
    state.url_first()
    st.query_params.pop("follow", None)
    if shown is not None:
        with contextlib.suppress(StoreError):
            record = live.manager().store.room(room)
            shown = (record.page, record.query) if record is not None else shown
        st.session_state[_DETACH_TO] = shown


def before_page(page) -> RoomContext:
    """Before the page runs: a follower moves to the presenter's view; a presenter is
    authorised. Notes on invalid room names are shown."""
    ctx = RoomContext()
    st.session_state.pop(_SHARED, None)
    if (to := st.session_state.pop(_DETACH_TO, None)) is not None:
        target = next((v for v in VIEWS if v.url_path == to[0]), None)
        if target is not None:
            st.switch_page(target.script, query_params=parse_qsl(to[1]))
    params = st.query_params.to_dict()
    room, notes = room_name("room", params.get("room"))
    follow, follow_notes = room_name("follow", params.get("follow"))
    for note in notes + follow_notes:
        st.caption(f"Link: {note}")
    presenting = st.session_state.get(_PRESENTING)
    if room is None and presenting:  # the presenter moved to another page: stay in the room
        st.query_params["room"], st.query_params["present"] = presenting, "1"
        room, params["present"] = presenting, "1"
    if room and _yes(params.get("present")) and _authorise(room):
        ctx.presenting = room
        ctx.top = st.container()
        st.session_state[_SHARED] = None
        return ctx
    if follow and st.session_state.get(_DETACHED) != follow:
        ctx.followed = _follow(page, follow)
    return ctx


def _follow(page, room: str) -> bool:
    """Show the presenter's view: its live panel, drawn and kept up to date in the browser
    (True: the page is not run), or, for a page without one, the page itself (moved to)."""
    store = live.manager().store
    try:
        record = store.room(room)
        panel = store.room_panel(room) if record is not None and record.panel_version else None
    except StoreError as exc:
        st.info(f"Room '{room}' cannot be read now ({exc}); this page is shown on its own.")
        return False
    if record is None:
        st.info(f"Room '{room}' is not open (its presenter is not connected): this page is "
                "shown on its own.")
        return False
    try:
        shared = json.loads(panel) if panel is not None else None
    except ValueError:
        shared = None  # not a panel this server wrote: follow the page instead
    if shared is not None and _page_path(page) == record.page:
        _follow_panel(room, record, shared)
        return True
    # The presenter's view is the truth while following: a run that shows another (a rerun
    # request the browser sent before it drew the last move) moves again, MAX_MOVES times
    # per change at most (a view this server would not reproduce cannot loop). A follower of
    # a live panel moves to its page only (the menu then names it); the panel brings the rest.
    state.url_first()
    moves = st.session_state.get(_FOLLOWED)
    moves = moves[2] if moves and moves[:2] == (room, record.seq) else 0
    if moves < MAX_MOVES:
        target = next((v for v in VIEWS if v.url_path == record.page), None)
        if target is not None and (_page_path(page), _view_query()) != (record.page,
                                                                          record.query):
            st.session_state[_FOLLOWED] = (room, record.seq, moves + 1)
            # In-app, the session and the room's stream kept: the script reruns as the
            # presenter's page with its query (a path of the table, a query this server's
            # pages wrote; the page's controls validate it as any link's) and the browser's
            # address becomes that page's.
            st.switch_page(target.script,
                           query_params=[*parse_qsl(record.query), ("follow", room)])
    left, right = st.columns([4, 1])
    with left:
        st.caption(f"Following room **{room}**: this page moves with the presenter's.")
        result = _room_stream()(key="dv_follow", data={
            "url": f"/api/rooms/{room}/events", "seq": record.seq, "follow": True},
            on_moved_change=lambda: None, on_closed_change=lambda: None, height="content")
        if getattr(result, "closed", None):
            st.info(f"Room '{room}' closed: its presenter left.")
    right.button("Explore on my own", on_click=_detach, args=(room,), key="dv_detach")


def _follow_panel(room: str, record, panel: dict) -> None:
    """The presenter's live panel, followed in the browser: each new one the room's stream
    brings for this page is drawn there (and the address takes the presenter's query) without
    a rerun of this script; a view on another page, or without a panel, makes it rerun
    (`moved`): the page moves there."""
    row = st.container(horizontal=True, vertical_alignment="center")
    row.caption(f"Following room **{room}**: this page shows the presenter's, live. "
                "Explore on my own for its controls and notes.")
    row.button("Explore on my own", on_click=_detach, key="dv_detach",
               args=(room, (record.page, record.query)), width="content")
    result = live_chart.live_panel("live", panel, room={
        "name": room, "url": f"/api/rooms/{room}/events", "seq": record.seq,
        "page": record.page})
    if getattr(result, "closed", None):
        st.info(f"Room '{room}' closed: its presenter left.")


def after_page(ctx: RoomContext, page) -> None:
    """After the page ran (its controls wrote the URL): the presenter publishes the view and
    sees the follow link, its QR code and the followers."""
    room = ctx.presenting
    if room is None:
        return
    keys = st.session_state.setdefault(_KEYS, {})
    key = keys.setdefault(room, secrets.token_urlsafe(24))
    page_path, query = _page_path(page), _view_query()
    shared = st.session_state.pop(_SHARED, None)
    panel = json.dumps(shared, separators=(",", ":")) if shared else None
    version = shared["version"] if shared else None
    store = live.manager().store
    try:
        if st.session_state.get(_PRESENTING) == room:
            if not store.publish(room, key, page_path, query, panel, version) \
                    and store.room(room) is None:
                refused = store.open_room(room, key, page_path, query, ROOM_ALIVE,
                                          limits.max_rooms(), panel, version)
            else:
                refused = None
        else:
            refused = store.open_room(room, key, page_path, query, ROOM_ALIVE,
                                      limits.max_rooms(), panel, version)
    except StoreError as exc:
        refused = str(exc)
    with ctx.top:
        if refused:
            st.error(f"Room '{room}': {refused}")
            return
        st.session_state[_PRESENTING] = room
        link = follow_link(room)
        qr, words = st.columns([2, 3])
        with words:
            st.markdown(f"### Room `{room}`")
            st.caption("Open this link, or scan the code, to follow this screen:")
            st.code(link, language=None)
            _room_stream()(key="dv_presence", data={
                "url": f"/api/rooms/{room}/presence?key={key}", "seq": 0, "follow": False},
                on_moved_change=lambda: None, on_closed_change=lambda: None)
            st.button("Stop presenting", on_click=_stop_presenting, key="dv_stop_presenting")
        with qr.container(key="dv_qr"):
            st.image(qr_png(link), width=360)
