"""The room hub's followers across a presenter's late renewal (no server: a fake store).

Under load (benchmarks/bench_rooms.py, 300 followers on 2 cores) a live presenter's lease
lapsed for a moment and one replica's reader told its 147 followers the room had closed: they
stopped following for good. A lapse shorter than CLOSE_GRACE must not close a room's streams;
a room gone for longer still does.
"""

from __future__ import annotations

import asyncio
import contextlib

from dualviz.service import rooms
from dualviz.service.store import RoomRecord


class FakeStore:
    def __init__(self):
        self.open: dict[str, RoomRecord] = {}

    def rooms(self, names):
        return {n: self.open[n] for n in names if n in self.open}

    def room(self, name):
        return self.open.get(name)

    def room_panel(self, name):
        return None

    def set_followers(self, replica, counts):
        pass


async def _events(hub, name, seconds):
    """The events one follower receives in `seconds`."""
    seen = []

    async def connected():
        return False

    async def read():
        async for chunk in await hub.follow(name, connected):
            text = chunk.decode()
            if text.startswith("event: "):
                seen.append(text.split("\n", 1)[0][len("event: "):])
                if seen[-1] == "closed":
                    return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(read(), seconds)
    return seen


def test_a_lapse_shorter_than_the_grace_does_not_close_the_room(monkeypatch):
    monkeypatch.setattr(rooms, "POLL_SECONDS", 0.02)
    monkeypatch.setattr(rooms, "CLOSE_GRACE", 0.5)
    store = FakeStore()
    store.open["hall"] = RoomRecord("hall", "explorer", "depth=3", 1, 0.0)
    hub = rooms.RoomHub(store, "r1", 10)

    async def scenario():
        follower = asyncio.create_task(_events(hub, "hall", 1.2))
        await asyncio.sleep(0.2)
        record = store.open.pop("hall")  # the lease lapsed: the store does not list it
        await asyncio.sleep(0.2)
        store.open["hall"] = RoomRecord("hall", "explorer", "depth=4", 2, record.alive)
        return await follower

    assert asyncio.run(scenario()) == ["view", "view"]  # the change after it, no close


def test_a_room_gone_longer_than_the_grace_is_closed(monkeypatch):
    monkeypatch.setattr(rooms, "POLL_SECONDS", 0.02)
    monkeypatch.setattr(rooms, "CLOSE_GRACE", 0.3)
    store = FakeStore()
    store.open["hall"] = RoomRecord("hall", "explorer", "depth=3", 1, 0.0)
    hub = rooms.RoomHub(store, "r1", 10)

    async def scenario():
        follower = asyncio.create_task(_events(hub, "hall", 3.0))
        await asyncio.sleep(0.2)
        del store.open["hall"]
        return await follower

    assert asyncio.run(scenario()) == ["view", "closed"]
