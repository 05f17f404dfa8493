"""A job's feed (dualviz/service/stream.py) over a real SQLite store: what it sends when."""

import asyncio
import dataclasses
import json

from shared import snapshot

from dualviz.config import Experiment
from dualviz.results import JobStatus
from dualviz.service import stream
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
    # A message per snapshot (a read of three), the readout in each read's last, and no new
    # state: pages neither re-render their status nor relayout the objective figure per batch.
    assert feed.version == version
    assert [(first, last) for first, last, _ in feed.messages] == [(i, i) for i in range(9)]
    assert ["readout" in events(body)[0][1] for _, _, body in feed.messages] == \
        [False, False, True] * 3
    assert [event for event, _ in events(feed.state)] == ["state"]

    store.finish(feed.job_hash, JobStatus.FAILED, error="stopped")
    assert feed.read(store)
    assert feed.version == version + 1
    (event, state), = events(feed.state)
    assert event == "end" and state["status"] == "failed" and state["seq"] == 8


def six_then_two(tmp_path) -> tuple[Store, Feed]:
    """A feed that read six snapshots (one message), then two (a message each)."""
    store, feed = job(tmp_path)
    for batch in (range(6), range(6, 8)):
        store.append_snapshots(feed.job_hash, [snapshot(i) for i in batch])
        feed.read(store)
    return store, feed


def test_a_read_of_few_snapshots_is_a_message_each_and_a_larger_one_is_one(tmp_path):
    _, feed = six_then_two(tmp_path)
    assert [(first, last) for first, last, _ in feed.messages] == [(0, 5), (6, 6), (7, 7)]
    # Each message carries exactly its snapshots' points, continued from the one before
    # (the feasible series has no joining point), and the last one the vectors.
    bodies = [events(body)[0][1] for _, _, body in feed.messages]
    assert [b["restarts"]["0"]["feasible"][0] for b in bodies] == [list(range(6)), [6], [7]]
    assert [("vectors" in b, "readout" in b) for b in bodies] == \
        [(True, True), (False, False), (True, True)]
    assert bodies[-1]["vectors"]["learned"] is not None


def test_messages_of_one_snapshot_add_up_to_the_curves_of_one_message(tmp_path, monkeypatch):
    """Across a run that leaves and re-enters the interpolation tolerance, the per-snapshot
    messages carry together exactly the points one message of the read would (the faded
    stretch's joining points included)."""
    residuals = [0.5, 1e-8, 0.5, 0.5, 1e-8]
    snaps = [dataclasses.replace(snapshot(i), residual=r) for i, r in enumerate(residuals)]

    def series(feed: Feed, store: Store) -> dict[str, tuple[list, list]]:
        store.append_snapshots(feed.job_hash, snaps[:1])
        feed.read(store)
        store.append_snapshots(feed.job_hash, snaps[1:])
        feed.read(store)
        joined: dict[str, tuple[list, list]] = {}
        for _, _, body in feed.messages:
            for name, (x, y) in events(body)[0][1]["restarts"]["0"].items():
                joined.setdefault(name, ([], []))[0].extend(x)
                joined[name][1].extend(y)
        return joined

    split_store, split = job(tmp_path / "split")
    split_series = series(split, split_store)
    assert len(split.messages) == 5
    monkeypatch.setattr(stream, "MESSAGE_PER_SNAPSHOT_UP_TO", 0)
    whole_store, whole = job(tmp_path / "whole")
    whole_series = series(whole, whole_store)
    assert len(whole.messages) == 2
    assert split_series == whole_series
    # Faded: 0, up to where 1 is feasible (then a break), from 1 through 2 and 3 to 4 (a break).
    assert split_series["infeasible"][0] == [0, 1, 1, 1, 2, 3, 4, 4]
    assert [y is None for y in split_series["infeasible"][1]] == [False, False, True, False,
                                                                  False, False, False, True]


def test_a_full_ring_serves_a_cursor_it_holds_and_sends_older_ones_to_the_store(
        tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "RING", 4)
    store, feed = job(tmp_path)
    for batch in (range(6), range(6, 8), range(8, 10), range(10, 11)):
        store.append_snapshots(feed.job_hash, [snapshot(i) for i in batch])
        feed.read(store)
    # Six messages, (0, 5) then one per snapshot 6..10: the ring kept the last four.
    assert [(first, last) for first, last, _ in feed.messages] == [(7, 7), (8, 8), (9, 9),
                                                                   (10, 10)]
    assert [seq for seq, _ in feed.after(7)] == [8, 9, 10]
    assert [seq for seq, _ in feed.after(6)] == [7, 8, 9, 10]
    assert feed.after(10) == []
    assert feed.after(5) is None  # dropped: a catch-up from the store
    assert feed.after(-1) is None


def test_a_subscriber_gets_the_state_then_each_batch_after_its_cursor_once(tmp_path):
    store, feed = six_then_two(tmp_path)
    store.finish(feed.job_hash, JobStatus.FAILED, error="stopped")
    feed.read(store)
    feed.subscribers = 1  # the reader task is not started: these reads are the test's

    async def stream(cursor: int) -> tuple[list[bytes], list[tuple[str, dict]]]:
        async def connected() -> bool:
            return False
        hub = Broadcaster(store)
        chunks = [chunk async for chunk in hub.subscribe(feed, cursor, None, connected)]
        return chunks, events(b"".join(chunks))

    chunks, whole = asyncio.run(stream(-1))
    assert [event for event, _ in whole] == ["batch", "batch", "batch", "end"]
    assert [len(data["restarts"]["0"]["feasible"][0]) for _, data in whole[:3]] == [6, 1, 1]
    # The three batches waiting for this subscriber went out in one write.
    assert sum(chunk.count(b"event: batch") for chunk in chunks) == 3
    assert max(chunk.count(b"event: batch") for chunk in chunks) == 3
    _, resumed = asyncio.run(stream(6))  # a page that drew snapshots 0..6 reloads
    assert [event for event, _ in resumed] == ["batch", "end"]
    assert resumed[0][1]["restarts"]["0"]["feasible"][0] == [7]
    _, caught_up = asyncio.run(stream(3))  # no message starts at 4: read from the store
    assert [event for event, _ in caught_up] == ["batch", "end"]
    assert caught_up[0][1]["restarts"]["0"]["feasible"][0] == [4, 5, 6, 7]
