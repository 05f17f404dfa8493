"""Rooms pushed to followers: one reader per process for every room it has followers of.

A presenter's room is a row of the store (its current page and query, a sequence number that
grows with each change, and a lease its presenter's connection renews: Store.open_room). A
:class:`RoomHub` serves the two event streams of a room:

- a follower's (``follow``): a ``view`` event with the room's sequence number, page and query
  and the presenter's live panel (or null) at once and at every change, ``closed`` when the
  presenter is gone. A follower's page draws a panel it is sent without asking its server for
  anything (dualviz/ui/live_chart.js); only a view without one (a page without a live panel)
  makes it rerun and move there. The event is encoded once per change, for every follower.
  However many followers a process has, ONE task reads the rooms they follow from the store
  (every POLL_SECONDS, one query for all rooms, and a room's panel when its version changed)
  and wakes their streams: a follower costs an idle coroutine, never a query. Followers per
  room are reported to the store (Store.set_followers) so the presenter sees the count over
  every replica.
- the presenter's (``presence``): while it is open the room's lease is renewed; it sends the
  number of followers. A room whose presenter's connection stopped lives ROOM_ALIVE seconds.

Streams are bounded: each ends after stream.STREAM_SECONDS (EventSource reconnects), a process
serves at most `max_streams` of them, and a room is only ever created by a presenter (the store caps
their number), so nothing a follower sends allocates per name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from .store import Store, StoreError
from .stream import StreamClock

ROOM_ALIVE = 10.0  # seconds a room outlives its presenter's last renewal
# seconds a followed room may look closed (its lease lapsed) before its followers are told:
# under load a presenter's renewal can be late (300 followers on 2 cores: a replica's reader
# saw a live presenter's room lapse, and its 147 followers were closed for good)
CLOSE_GRACE = 10.0
RENEW_SECONDS = 3.0
POLL_SECONDS = 0.2  # how often the one reader looks at the followed rooms
REPORT_SECONDS = 2.0  # how often followers' numbers are written to the store


def event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Refused(Exception):
    """A stream not served: `status` is the HTTP status (404 no such room, 503 full)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class _Room:
    name: str
    seq: int | None  # None once closed
    panel_version: str | None = None
    view: bytes = b""  # the `view` event of (seq, panel_version), encoded once
    followers: int = 0
    missing_since: float | None = None  # the store stopped listing it (monotonic time)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    @property
    def shown(self) -> tuple[int | None, str | None]:
        return self.seq, self.panel_version

    def update(self, record, panel: str | None) -> None:
        """Take the store's record (and its panel, read when its version changed)."""
        self.seq, self.panel_version = record.seq, record.panel_version
        try:
            shared = json.loads(panel) if panel and record.panel_version else None
        except ValueError:
            shared = None
        self.view = event("view", {"seq": record.seq, "page": record.page,
                                   "query": record.query, "panel": shared})


class RoomHub:
    """The rooms followed through this process, read by one task."""

    def __init__(self, store: Store, replica: str, max_streams: int):
        self.store = store
        self.replica = replica
        self.max_streams = max_streams
        self.rooms: dict[str, _Room] = {}
        self.streams = 0
        self._task: asyncio.Task | None = None
        self._reported: dict[str, int] = {}

    def stats(self) -> dict:
        return {"room_streams": self.streams,
                "rooms": {n: r.followers for n, r in self.rooms.items()}}

    def _admit(self) -> None:
        if self.streams >= self.max_streams:
            raise Refused(503, "this server follows as many rooms as it may "
                               "($DUALVIZ_MAX_FOLLOWERS); retrying")

    async def follow(self, name: str, is_disconnected: Callable[[], Awaitable[bool]]
                     ) -> AsyncIterator[bytes]:
        """A follower's stream of room `name`; raises Refused before the first byte. It ends
        within a second of its follower leaving (a detached follower stops being counted)."""
        self._admit()
        room = self.rooms.get(name)
        if room is None or room.seq is None:
            record = await asyncio.to_thread(self.store.room, name)
            if record is None:
                raise Refused(404, "no such room")
            try:
                panel = await self._panel(record)
            except StoreError:
                panel = None  # busy: this follower reruns its page for this view
            room = self.rooms.setdefault(name, _Room(name, record.seq))
            if room.seq is None or not room.view:
                room.update(record, panel)
        self._ensure_reader()
        return self._follow(room, is_disconnected)

    async def _follow(self, room: _Room, is_disconnected: Callable[[], Awaitable[bool]]
                      ) -> AsyncIterator[bytes]:
        room.followers += 1
        self.streams += 1
        clock = StreamClock()
        sent = None
        try:
            yield b"retry: 1000\n\n"
            while True:
                waiting = room.changed
                if room.seq is None:
                    yield event("closed", {})
                    return
                if room.shown != sent:
                    sent = room.shown
                    yield room.view
                if (ping := await clock.next(waiting, is_disconnected)) is None:
                    return
                if ping:
                    yield ping
        finally:
            room.followers -= 1
            self.streams -= 1

    async def _panel(self, record) -> str | None:
        """The room's shared panel (raises StoreError)."""
        if not record.panel_version:
            return None
        return await asyncio.to_thread(self.store.room_panel, record.name)

    def _ensure_reader(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._read_all())

    async def _read_all(self) -> None:
        last_report = 0.0
        while self.rooms:
            names = [n for n, r in self.rooms.items() if r.followers or r.seq is not None]
            try:
                records = await asyncio.to_thread(self.store.rooms, names)
            except StoreError:
                records = None  # busy: the next pass reads again
            if records is not None:
                now = time.monotonic()
                for name in names:
                    room = self.rooms[name]
                    record = records.get(name)
                    if record is None and room.seq is not None:
                        # lapsed: closed only if its presenter does not renew it in time
                        room.missing_since = room.missing_since or now
                        if now - room.missing_since < CLOSE_GRACE:
                            continue
                    room.missing_since = None
                    if record is None:
                        if room.seq is not None:
                            room.seq = None
                            room.wake()
                    elif (record.seq, record.panel_version) != room.shown:
                        try:
                            panel = await self._panel(record)
                        except StoreError:
                            continue  # busy: the next pass reads it again
                        room.update(record, panel)
                        room.wake()
                    if room.seq is None and not room.followers:
                        del self.rooms[name]
            now = time.monotonic()
            if now - last_report > REPORT_SECONDS:
                last_report = now
                counts = {n: r.followers for n, r in self.rooms.items()}
                counts.update({n: 0 for n in self._reported if n not in counts})
                with contextlib.suppress(StoreError):
                    await asyncio.to_thread(self.store.set_followers, self.replica, counts)
                self._reported = {n: c for n, c in counts.items() if c}
            await asyncio.sleep(POLL_SECONDS)
        if self._reported:  # the last followers left: say so
            with contextlib.suppress(StoreError):
                await asyncio.to_thread(self.store.set_followers, self.replica,
                                        dict.fromkeys(self._reported, 0))
            self._reported = {}

    async def presence(self, name: str, key: str,
                       is_disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
        """The presenter's stream: renews the room while open, sends the follower count;
        raises Refused (404) unless `key` is the room's."""
        self._admit()
        if not await asyncio.to_thread(self.store.renew_room, name, key, ROOM_ALIVE):
            raise Refused(404, "no such room")
        return self._presence(name, key, is_disconnected)

    async def _presence(self, name: str, key: str,
                        is_disconnected: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
        self.streams += 1
        clock = StreamClock()
        last_renew = time.monotonic()
        sent = None
        try:
            yield b"retry: 1000\n\n"
            while True:
                now = time.monotonic()
                if now - last_renew > RENEW_SECONDS:
                    last_renew = now
                    try:
                        mine = await asyncio.to_thread(self.store.renew_room, name, key,
                                                       ROOM_ALIVE)
                    except StoreError:
                        mine = True  # busy: the lease outlasts a few failed renewals
                    if not mine:
                        yield event("closed", {})
                        return
                with contextlib.suppress(StoreError):
                    count = await asyncio.to_thread(self.store.followers, name,
                                                    3 * REPORT_SECONDS)
                    if count != sent:
                        sent = count
                        yield event("followers", {"count": count})
                if await clock.over(is_disconnected):
                    return
                await asyncio.sleep(1.0)
        finally:
            self.streams -= 1
