"""A job's feed (dualviz/service/stream.py) over a real SQLite store: what it sends when."""

import asyncio
import json

from shared import snapshot

from dualviz.config import Experiment
from dualviz.results import JobStatus
from dualviz.service.store import Store
from dualviz.service.stream import Broadcaster, Feed


def events(body: bytes) -> list[tuple[str, dict]]:
    out = []
    for message in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in message.splitlines() if ": " in line)
        if "event" in fields:
            out.append((fields["event"], json.loads(fields["data"])))
    return out


def job(tmp_path) -> tuple[Store, Feed]:
    exp = Experiment(seed=41)
    store = Store(tmp_path)
    store.create_job(exp.hash, exp.to_query())
    store.mark_running(exp.hash, 12345)
    return store, Feed(exp.hash, exp)


def test_batches_alone_do_not_resend_the_state_but_a_new_status_does(tmp_path):
    store, feed = job(tmp_path)
    assert feed.read(store)
    version = feed.version
    for start in (0, 3, 6):
        store.append_snapshots(feed.job_hash, [snapshot(i) for i in range(start, start + 3)])
        assert feed.read(store)
    # Three batches, each with its readout, and no new state: pages neither re-render their
    # status nor relayout the objective figure once per batch.
    assert feed.version == version
    assert len(feed.messages) == 3
    assert all("readout" in events(body)[0][1] for _, _, body in feed.messages)
    assert [event for event, _ in events(feed.state)] == ["state"]

    store.finish(feed.job_hash, JobStatus.FAILED, error="stopped")
    assert feed.read(store)
    assert feed.version == version + 1
    (event, state), = events(feed.state)
    assert event == "end" and state["status"] == "failed" and state["seq"] == 8


def test_a_subscriber_gets_the_state_then_each_batch_after_its_cursor_once(tmp_path):
    store, feed = job(tmp_path)
    store.append_snapshots(feed.job_hash, [snapshot(i) for i in range(4)])
    feed.read(store)
    store.append_snapshots(feed.job_hash, [snapshot(i) for i in range(4, 6)])
    feed.read(store)
    store.finish(feed.job_hash, JobStatus.FAILED, error="stopped")
    feed.read(store)
    feed.subscribers = 1  # the reader task is not started: these reads are the test's

    async def stream(cursor: int) -> list[tuple[str, dict]]:
        async def connected() -> bool:
            return False
        hub = Broadcaster(store)
        chunks = [chunk async for chunk in hub.subscribe(feed, cursor, None, connected)]
        return events(b"".join(chunks))

    whole = asyncio.run(stream(-1))
    assert [event for event, _ in whole] == ["batch", "batch", "end"]
    assert [len(data["restarts"]["0"]["feasible"][0]) for _, data in whole[:2]] == [4, 2]
    resumed = asyncio.run(stream(3))  # a page that drew snapshots 0..3 reloads
    assert [event for event, _ in resumed] == ["batch", "end"]
    assert resumed[0][1]["restarts"]["0"]["feasible"][0] == [4, 5]
