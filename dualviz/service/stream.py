"""Live runs pushed to browsers: one reader per running job, its batches fanned out to every
session that watches it, each at its own pace.

A :class:`Feed` reads its job's new snapshots from the store (one reader, however many sessions
watch the job) and turns what it reads into Server-Sent Events messages, built and encoded once
(a message per snapshot when a read finds few, one for a larger read): the points of every
restart's series (dualviz.plots.restart_series), and in a read's last message the last
snapshot's vectors (learned spectrum, layer spectra, fitted function) and the readout (P, D,
gap, status).
Messages are kept in a bounded ring. A subscriber walks the ring from its own cursor (the last
snapshot its page has drawn), so a slow browser receives every batch later rather than lagging
the others, and a reloaded page resumes after what it drew, without duplicated points. When the
job ends the feed sends the final state and closes every stream.

Everything here is pure Python over the store: the ASGI routes (dualviz/ui/server.py) only move
the bytes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from .. import explain
from ..config import Experiment
from ..plots import (
    by_restart,
    objective_layout,
    restart_labels,
    restart_series,
    spectrum_points,
    thin,
)
from ..results import Snapshot
from .store import FINAL, JobRecord, Store, StoreError

POLL_SECONDS = 0.015  # how often a feed reads its job's news from the store
RING = 1200  # messages a feed keeps (30 s of a job writing 40 snapshots/s; older: catch-up)
STREAM_SECONDS = 30.0  # a stream ends by itself after this (the browser reconnects at once)
PING_SECONDS = 10.0
DISCONNECT_CHECK_SECONDS = 1.0
MAX_POINTS_PER_MESSAGE = 400  # per restart and series, thinned beyond
MAX_SNAPSHOTS_PER_READ = 4000
MESSAGE_PER_SNAPSHOT_UP_TO = 4  # a read of at most this many snapshots: a message each
IDLE_SECONDS = 60.0  # a feed nobody subscribed to for this long is dropped
TOUCH_SECONDS = 5.0  # a stream tells the job manager its session still watches this often


END_EVENT = b"event: end\n"  # how the last state of a stream starts (sse() of "end")


def sse(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One Server-Sent Events message (data is JSON without NaN: null instead)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    text = json.dumps(_finite(data), separators=(",", ":"))
    return f"{head}event: {event}\ndata: {text}\n\n".encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass
class StreamClock:
    """When a long-lived event stream pings (a proxy keeps an idle connection open) and ends
    (after STREAM_SECONDS: the browser reconnects at once, so no stream holds a server
    forever)."""

    started: float = field(default_factory=time.monotonic)
    pinged: float = field(default_factory=time.monotonic)
    asked: float = -math.inf  # when the connection was last asked whether it is gone

    async def over(self, is_disconnected: Callable[[], Any]) -> bool:
        now = time.monotonic()
        if now - self.started > STREAM_SECONDS:
            return True
        # Asked once a second, not once a batch: asking costs a receive on the connection
        # (a tenth of the server's time under 40 sessions), and a closed tab also fails the
        # next write.
        if now - self.asked < DISCONNECT_CHECK_SECONDS:
            return False
        self.asked = now
        return bool(await is_disconnected())

    async def next(self, changed: asyncio.Event, is_disconnected: Callable[[], Any]
                   ) -> bytes | None:
        """None when the stream is over; else, once `changed` is set or a second passed (a
        disconnect is noticed within it), what to send: a ping when one is due, or b""."""
        if await self.over(is_disconnected):
            return None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout=1.0)
        now = time.monotonic()
        if now - self.pinged <= PING_SECONDS:
            return b""
        self.pinged = now
        return b": ping\n\n"


@dataclass
class Feed:
    """One job's stream: read from the store by one reader, walked by many subscribers.

    messages: (first, last, bytes) per batch: the batch holds the snapshots first..last."""

    job_hash: str
    experiment: Experiment
    seq: int = -1  # the last snapshot read
    record: JobRecord | None = None
    messages: collections.deque = field(default_factory=lambda: collections.deque(maxlen=RING))
    last: dict[int, Snapshot] = field(default_factory=dict)  # the last snapshot per restart
    readout: explain.LiveReadout | None = None
    state: bytes = b""  # status, bounds and readout: what a page shows besides the curves
    version: int = 0  # increases when `state` changes other than in its readout
    _state_key: str = ""  # `state` without its readout (batches carry the readout)
    subscribers: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def final(self) -> bool:
        return self.record is not None and self.record.status in FINAL

    @property
    def interpolation(self) -> bool:
        return self.experiment.objective == "interpolation"

    def read(self, store: Store) -> bool:
        """Read what is new (a thread's work: the store blocks); True if anything changed."""
        record = store.job(self.job_hash)
        if record is not None and self.record is not None and \
                record.created != self.record.created:
            self.seq, self.last, self.readout = -1, {}, None  # the hash asked again: a new job
            self.messages.clear()
        news = store.snapshots(self.job_hash, after=self.seq)[:MAX_SNAPSHOTS_PER_READ]
        changed = bool(news) or record != self.record
        if self.readout is None:
            self.readout = explain.LiveReadout(self.experiment)
        self.readout.bounds(record.known_bounds if record else None,
                            record.run if record else None)
        if news:
            self.readout.add([s for _, s in news])
            built = []
            for group in _message_groups(news):
                first, last = group[0][0], group[-1][0]
                snapshots = [s for _, s in group]
                body = self._batch(snapshots, self.last, last, whole=last == news[-1][0])
                built.append((first, last, sse("batch", body, last)))
                for snapshot in snapshots:
                    self.last[snapshot.restart] = snapshot
            self.messages.extend(built)  # one step for the subscribers that walk the ring
            self.seq = news[-1][0]
        # Subscribers read this feed while it is written (they run on the event loop): the
        # batches first, then the state that follows them, the record (which says final) last.
        if changed:
            final = record is not None and record.status in FINAL
            state = self._state(record, final)
            self.state = sse("end" if final else "state", state)
            key = json.dumps(_finite({**state, "readout": None, "seq": None}), sort_keys=True)
            if key != self._state_key or final:
                # A subscriber sends the state again only now: a batch alone does not make
                # every page update its status and relayout its objective figure.
                self._state_key = key
                self.version += 1
        self.record = record
        return changed

    def _batch(self, snapshots: list[Snapshot], before: dict[int, Snapshot],
               seq: int, whole: bool = True) -> dict[str, Any]:
        """The points of `snapshots`; `whole`: also the last one's vectors and the readout
        (a read's earlier messages carry only points: the last one replaces them anyway)."""
        dual = self.readout.dual if self.readout else None
        thinned = [s for group in by_restart(snapshots).values()
                   for s in thin(group, MAX_POINTS_PER_MESSAGE)]
        batch = {"seq": seq,
                 "restarts": restart_series(thinned, dual, self.interpolation,
                                            explain.excess_floor(dual), before),
                 "labels": restart_labels(snapshots)}
        if whole:
            final = snapshots[-1]
            batch["vectors"] = {"learned": spectrum_points(final.singular_values),
                                "layers": final.layer_singular_values, "trained": final.probe}
            batch["readout"] = self.readout.shown() if self.readout else {}
        return batch

    def _state(self, record: JobRecord | None, final: bool) -> dict[str, Any]:
        levels = self.readout.levels() if self.readout else {}
        shapes, notes = objective_layout(levels.get("dual"), levels.get("closed"),
                                         str(levels.get("dual_label") or "D"))
        took = None
        if record is not None and record.started and record.finished:
            took = record.finished - record.started
        return {"job": self.job_hash, "seq": self.seq,
                "status": None if record is None else record.status,
                "error": None if record is None or not record.error
                else record.error.splitlines()[0][:300],
                "started": None if record is None else record.started, "took": took,
                "final": final,
                "readout": self.readout.shown() if self.readout else {},
                "layout": {"shapes": shapes, "annotations": notes}}

    def after(self, cursor: int) -> list[tuple[int, bytes]] | None:
        """The messages of the snapshots after `cursor` (a page drew those up to it), or None
        when the ring does not start exactly there (then the subscriber gets a catch-up)."""
        if cursor >= self.seq:
            return []
        # One copy, searched from its newest end (where a live page's cursor is): the reader
        # thread appends meanwhile, and a full ring drops its oldest message at each append.
        ring = list(self.messages)
        for index in range(len(ring) - 1, -1, -1):
            first = ring[index][0]
            if first == cursor + 1:
                return [(last, body) for _, last, body in ring[index:]]
            if first <= cursor:
                break
        return None

    def catch_up(self, store: Store, cursor: int) -> tuple[int, bytes] | None:
        """One message with everything after `cursor`, thinned, read from the store (a
        thread's work): for a subscriber the ring does not reach."""
        news = store.snapshots(self.job_hash, after=cursor)
        if not news:
            return None
        before = {}
        drawn = store.snapshot(self.job_hash, cursor) if cursor >= 0 else None
        if drawn is not None:
            before[drawn.restart] = drawn
        last = news[-1][0]
        return last, sse("batch", self._batch([s for _, s in news], before, last), last)


def _message_groups(news: list[tuple[int, Snapshot]]) -> list[list[tuple[int, Snapshot]]]:
    """A read's snapshots as messages: one each when the read found few (a page draws one
    message per frame, so a curve shows every step the job took even when two snapshots
    were written between two reads), else one message (a catch-up; thinned beyond
    MAX_POINTS_PER_MESSAGE)."""
    if len(news) <= MESSAGE_PER_SNAPSHOT_UP_TO:
        return [[item] for item in news]
    return [news]


class Broadcaster:
    """Every feed of this server; one task reads them all from the store.

    touch(watcher): called while a subscriber streams, so the job manager knows its session
    still watches (a closed tab stops touching, and its job is cancelled in time)."""

    def __init__(self, store: Store, touch: Callable[[str], None] | None = None):
        self.store = store
        self.touch = touch or (lambda watcher: None)
        self.feeds: dict[str, Feed] = {}
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.streams = 0  # open subscriber streams (for /api/stats and the tests)

    def stats(self) -> dict[str, Any]:
        return {"streams": self.streams, "feeds": len(self.feeds),
                "subscribers": {h: f.subscribers for h, f in self.feeds.items()
                                if f.subscribers}}

    async def feed(self, job_hash: str) -> Feed | None:
        """The feed of a job stored here, created on first use; None for an unknown job."""
        found = self.feeds.get(job_hash)
        if found is not None:
            return found
        record = await asyncio.to_thread(self.store.job, job_hash)
        if record is None:
            return None
        experiment, _ = Experiment.from_query(record.query)
        found = self.feeds.setdefault(job_hash, Feed(job_hash, experiment))
        await asyncio.to_thread(found.read, self.store)
        self._ensure_reader()
        return found

    def _ensure_reader(self) -> None:
        if self._task is None or self._task.done():
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._read_all())

    async def _read_all(self) -> None:
        while self.feeds:
            began = now = time.monotonic()
            for job_hash, feed in list(self.feeds.items()):
                if not feed.subscribers and now - feed.idle_since > IDLE_SECONDS:
                    del self.feeds[job_hash]
            live = [feed for feed in self.feeds.values()
                    if feed.subscribers or not feed.final]
            if live:
                await asyncio.to_thread(self._read_feeds, live)
            # A pass every POLL_SECONDS, however long the reads took (not a pause after them).
            await asyncio.sleep(max(0.0, POLL_SECONDS - (time.monotonic() - began)))

    def _read_feeds(self, feeds: list[Feed]) -> None:
        """One pass over the feeds in one thread hop (a thread's work: the store blocks)."""
        for feed in feeds:
            try:
                changed = feed.read(self.store)
            except StoreError:
                continue  # busy or full: the next pass reads again
            if changed:  # its subscribers send at once, while the next feed is read
                self._loop.call_soon_threadsafe(self._wake, feed)

    @staticmethod
    def _wake(feed: Feed) -> None:
        feed.changed.set()
        feed.changed = asyncio.Event()

    async def subscribe(self, feed: Feed, cursor: int, watcher: str | None,
                        is_disconnected: Callable[[], Any]) -> AsyncIterator[bytes]:
        """The bytes of one subscriber's stream: its feed's state, then every batch after
        `cursor` as they come (those waiting in one write), then the state if it changed;
        it ends with the job (an "end" event), after STREAM_SECONDS, or when the browser
        goes away."""
        feed.subscribers += 1
        self.streams += 1
        clock = StreamClock()
        last_touch = time.monotonic()
        sent_version = -1
        try:
            yield b"retry: 1000\n\n"
            while True:
                waiting = feed.changed
                # The state before the batches (the feed writes them in the other order):
                # every batch it follows is among them, and nothing comes after an "end".
                version, state = feed.version, feed.state
                messages = feed.after(cursor)
                if messages is None:
                    caught = await asyncio.to_thread(feed.catch_up, self.store, cursor)
                    messages = [caught] if caught else []
                if messages:  # one write, however many messages: a send costs the server
                    yield b"".join(body for _, body in messages)
                    cursor = messages[-1][0]
                if version != sent_version:
                    sent_version = version
                    yield state
                if state.startswith(END_EVENT):
                    return
                if watcher and time.monotonic() - last_touch > TOUCH_SECONDS:
                    self.touch(watcher)
                    last_touch = time.monotonic()
                if (ping := await clock.next(waiting, is_disconnected)) is None:
                    return
                if ping:
                    yield ping
        finally:
            feed.subscribers -= 1
            self.streams -= 1
            feed.idle_since = time.monotonic()
