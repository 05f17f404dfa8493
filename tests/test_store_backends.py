"""The Store API on both backends: claims and leases of replicas, who watches what, rooms."""

import threading
import time

import pytest
from shared import snapshot

from dualviz.results import JobStatus
from dualviz.service.store import QueueFull, Store, StoreError

pytestmark = pytest.mark.usefixtures("store_backend")


@pytest.fixture
def store(tmp_path):
    opened = Store(tmp_path)
    yield opened
    opened.close()


def test_the_backend_is_the_one_the_environment_names(store, store_backend):
    assert store.backend == store_backend
    assert store.shared == (store_backend == "postgresql")


def test_a_non_postgresql_url_is_refused_in_one_line(tmp_path):
    with pytest.raises(StoreError, match="postgresql://"):
        Store(tmp_path, url="mysql://somewhere/db")


def test_racing_replicas_claim_each_job_once(tmp_path, store):
    for i in range(12):
        store.create_job(f"h{i:02d}", f"q{i}")
    claimed: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def replica(name: str) -> None:
        mine = Store(tmp_path)  # a store of its own, as each server has
        try:
            while records := mine.claim(name, 2, lease=30.0):
                claimed.setdefault(name, []).extend(r.hash for r in records)
        except BaseException as exc:
            errors.append(exc)
        finally:
            mine.close()

    threads = [threading.Thread(target=replica, args=(f"r{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    every = sorted(h for hashes in claimed.values() for h in hashes)
    assert every == [f"h{i:02d}" for i in range(12)]  # each once, none missing
    assert all(store.job(h).status == JobStatus.RUNNING for h in every)


def test_sessions_racing_for_the_last_queue_places_never_overfill_the_queue(tmp_path, store):
    """The cap on queued jobs is counted in the transaction that creates the job: 24 stores
    (as 24 sessions over the replicas) racing for 10 places create exactly 10 jobs."""
    cap, racers = 10, 24
    created, refused, errors = [], [], []
    start = threading.Barrier(racers)

    def session(i: int) -> None:
        mine = Store(tmp_path)
        try:
            start.wait(30)
            for attempt in range(50):  # a busy store is retried, as the next poll would
                try:
                    mine.create_job(f"h{i:02d}", f"q{i}", max_queued=cap)
                    created.append(i)
                    return
                except QueueFull as full:
                    refused.append(full.waiting)
                    return
                except StoreError:
                    time.sleep(0.05 * (attempt + 1))
            errors.append(f"session {i} never reached the store")
        except BaseException as exc:
            errors.append(exc)
        finally:
            mine.close()

    threads = [threading.Thread(target=session, args=(i,)) for i in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert len(created) == cap and len(refused) == racers - cap
    assert all(waiting == cap for waiting in refused)
    assert store.count_with_status(JobStatus.QUEUED) == cap


def test_an_expired_lease_moves_the_job_and_drops_its_partial_curve(store):
    store.create_job("h", "q")
    (first,) = store.claim("A", 1, lease=30.0)
    store.append_snapshots("h", [snapshot(i) for i in range(3)])
    assert store.claim("B", 1, lease=30.0) == []  # A holds it
    assert store.renew("A", ["h"], lease=-1.0) == {"h"}  # A's lease ends now (A died)
    assert store.claim("A", 1, lease=30.0) == []  # never reclaimed by its own owner
    (moved,) = store.claim("B", 1, lease=30.0)
    assert moved.hash == "h" and moved.status == JobStatus.RUNNING
    assert moved.created > first.created  # live streams start again
    assert store.snapshots("h") == []
    assert store.lease_of("h")[0] == "B"
    assert store.renew("A", ["h"], lease=30.0) == set()  # A learns it lost the job


def test_finished_jobs_are_never_claimed(store):
    store.create_job("h", "q")
    store.claim("A", 1, lease=-1.0)
    store.finish("h", JobStatus.DONE, result={"x": 1})
    assert store.claim("B", 1, lease=30.0) == []
    assert store.job("h").result == {"x": 1}


def test_only_watched_jobs_are_claimed_when_asked(store):
    store.create_job("seen", "q")
    store.create_job("unseen", "q")
    store.watch("A", ["seen"])
    claimed = store.claim("B", 5, lease=30.0, watched_within=5.0)
    assert [r.hash for r in claimed] == ["seen"]
    assert store.watched_elsewhere("seen", "B", 5.0)
    assert not store.watched_elsewhere("seen", "A", 5.0)
    store.unwatch("A", ["seen"])
    assert not store.watched_elsewhere("seen", "B", 5.0)


def test_a_room_is_its_presenters_and_bounded_in_number(store):
    assert store.open_room("lecture", "key-1", "explorer", "L=3", 30.0, max_rooms=2) is None
    assert "another presenter" in store.open_room("lecture", "key-2", "", "", 30.0, 2)
    assert store.open_room("second", "key-3", "", "", 30.0, max_rooms=2) is None
    assert "cap is 2" in store.open_room("third", "key-4", "", "", 30.0, max_rooms=2)
    before = store.room("lecture")
    assert not store.publish("lecture", "key-2", "explorer", "L=4")  # not its presenter
    assert store.publish("lecture", "key-1", "explorer", "L=4")
    assert not store.publish("lecture", "key-1", "explorer", "L=4")  # nothing changed
    after = store.room("lecture")
    assert (after.page, after.query) == ("explorer", "L=4") and after.seq == before.seq + 1
    store.close_room("lecture", "key-1")
    assert store.room("lecture") is None
    assert store.open_room("third", "key-4", "", "", 30.0, max_rooms=2) is None


def test_a_room_shares_its_presenters_live_panel_bounded_in_size(store):
    from dualviz.service.store import MAX_PANEL_BYTES

    store.open_room("lecture", "key-1", "explorer", "L=3", 30.0, 2, '{"v": 1}', "v1")
    first = store.room("lecture")
    assert first.panel_version == "v1" and store.room_panel("lecture") == '{"v": 1}'
    # the job ended: a new panel, the same view (followers redraw; they do not move)
    assert store.publish("lecture", "key-1", "explorer", "L=3", '{"v": 2}', "v2")
    assert not store.publish("lecture", "key-1", "explorer", "L=3", '{"v": 2}', "v2")
    second = store.room("lecture")
    assert (second.seq, second.panel_version) == (first.seq, "v2")
    assert store.room_panel("lecture") == '{"v": 2}'
    # a page without a panel, then one too large to share: the view moves, no panel
    assert store.publish("lecture", "key-1", "theory", "")
    assert store.room("lecture").panel_version is None and store.room_panel("lecture") is None
    huge = '"' + "x" * MAX_PANEL_BYTES + '"'
    assert store.publish("lecture", "key-1", "explorer", "L=4", huge, "v3")
    third = store.room("lecture")
    assert third.seq == second.seq + 2 and third.panel_version is None
    assert not store.publish("lecture", "key-2", "explorer", "L=5", '{"v": 4}', "v4")


def test_a_store_an_older_version_made_gains_the_rooms_panel_columns(tmp_path, store):
    store.open_room("lecture", "key-1", "explorer", "L=3", 30.0, 2)
    with store._transaction() as db:  # as the version before shared panels left it
        for column in ("panel", "panel_version"):
            db.execute(f"ALTER TABLE rooms DROP COLUMN {column}")
        if not store.shared:
            db.execute("PRAGMA user_version=3")
    store.close()
    again = Store(tmp_path)
    try:
        assert again.room("lecture").panel_version is None  # the room kept, the columns back
        assert again.publish("lecture", "key-1", "explorer", "L=3", '{"v": 1}', "v1")
        assert again.room_panel("lecture") == '{"v": 1}'
    finally:
        again.close()


def test_a_room_whose_presenter_stopped_renewing_is_gone(store):
    store.open_room("lecture", "k", "", "", alive_for=-1.0, max_rooms=5)
    assert store.room("lecture") is None
    assert not store.renew_room("lecture", "other", 30.0)
    assert store.renew_room("lecture", "k", 30.0)
    assert store.room("lecture") is not None


def test_followers_are_summed_over_replicas_that_report(store):
    store.set_followers("A", {"lecture": 120})
    store.set_followers("B", {"lecture": 180, "other": 2})
    assert store.followers("lecture", within=5.0) == 300
    time.sleep(0.05)
    store.set_followers("B", {"lecture": 181})
    assert store.followers("lecture", within=0.04) == 181  # A's report is too old
