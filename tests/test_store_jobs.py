"""The store and the job manager with real worker processes, on each backend: a real SQLite
file and a real PostgreSQL server (the `store_backend` fixture)."""

import multiprocessing as mp
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from shared import LONG, QUICK, snapshot, wait_for

from dualviz.results import JobStatus
from dualviz.service.jobs import JobManager
from dualviz.service.store import Store

pytestmark = [pytest.mark.server, pytest.mark.usefixtures("store_backend")]

def running_with_pid(jobs: JobManager, exp):
    """The job's view once it runs in a process (a claimed job gets its pid a moment later)."""
    return wait_for(lambda: (v := jobs.view(exp.hash)).status == "running" and v.record.pid
                    and v)


def process_exists(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}")


@pytest.fixture
def manager(tmp_path):
    jobs = JobManager(tmp_path, max_running=2)
    assert jobs.ready.wait(120), "the fork server did not start"
    yield jobs
    jobs.shutdown()


def write_snapshots(data_dir: str, count: int, batch: int) -> None:
    store = Store(data_dir)
    for start in range(0, count, batch):
        store.append_snapshots("h", [snapshot(i) for i in range(start, start + batch)])
    store.close()


def test_one_writer_process_and_concurrent_readers_see_everything_in_order(tmp_path):
    Store(tmp_path).create_job("h", "q")
    writer = mp.get_context("spawn").Process(target=write_snapshots, args=(str(tmp_path), 600, 3))
    seen: dict[int, list[int]] = {}
    errors: list[BaseException] = []

    def read(reader: int) -> None:
        store = Store(tmp_path)  # a connection of its own, like each server process
        last, iterations = -1, []
        try:
            while len(iterations) < 600:
                for seq, snap in store.snapshots("h", after=last):
                    assert seq == last + 1  # no gaps, no repeats
                    last = seq
                    iterations.append(snap.iteration)
        except BaseException as exc:
            errors.append(exc)
        seen[reader] = iterations

    readers = [threading.Thread(target=read, args=(i,)) for i in range(3)]
    for r in readers:
        r.start()
    writer.start()
    writer.join(60)
    for r in readers:
        r.join(60)
    assert writer.exitcode == 0
    assert not errors
    assert all(seen[i] == list(range(600)) for i in range(3))


def test_datasets_round_trip_by_digest(tmp_path):
    from dualviz.data import synthetic

    data = synthetic(6, 4, 2, 3, 2, "linear", 0.0, False, 1, interpolation=True)
    store = Store(tmp_path)
    assert store.save_dataset(data) == data.digest
    loaded = store.load_dataset(data.digest)
    # the numbers come back; the uploader's file name does not (another visitor's link
    # would show it): an upload goes by its digest
    assert loaded.digest == data.digest and loaded.name == f"uploaded data {data.digest}"
    assert np.array_equal(loaded.X, data.X) and np.array_equal(loaded.Y, data.Y)
    assert store.load_dataset("0" * 16) is None


def test_same_experiment_from_two_sessions_is_computed_once(manager):
    first = manager.focus("session-a", [QUICK])[0]
    second = manager.focus("session-b", [QUICK])[0]
    assert first.record.created == second.record.created
    done = wait_for(lambda: (v := manager.view(QUICK.hash)).status == "done" and v)
    pid = done.record.pid
    # A third session, after the fact, reads the stored result: no new process, no new job.
    third = manager.focus("session-c", [QUICK])[0]
    assert third.status == "done"
    assert third.record.pid == pid and third.record.created == first.record.created
    wait_for(lambda: manager.running() == [])  # the finished process is reaped
    assert done.record.result["experiment"]["hash"] == QUICK.hash
    assert done.record.status == JobStatus.DONE and done.record.run.primal.value is not None
    assert done.record.known_bounds.dual.value == done.record.run.dual.value
    snaps = manager.store.snapshots(QUICK.hash)
    assert [seq for seq, _ in snaps] == list(range(len(snaps)))
    assert snaps[-1][1].done


def test_reload_reattaches_to_the_running_job(manager):
    manager.focus("tab-before-reload", [LONG])
    running = running_with_pid(manager, LONG)
    wait_for(lambda: manager.store.snapshots(LONG.hash))
    # The old tab vanished without a word; the reloaded tab is a new session.
    again = manager.focus("tab-after-reload", [LONG])[0]
    assert again.status == "running"
    assert again.record.pid == running.record.pid
    count = len(manager.store.snapshots(LONG.hash))
    wait_for(lambda: len(manager.store.snapshots(LONG.hash)) > count)  # still streaming


def test_changing_a_control_cancels_the_old_job_and_leaves_no_process(manager):
    manager.focus("session", [LONG])
    running = running_with_pid(manager, LONG)
    pid = running.record.pid
    assert process_exists(pid)
    changed, _ = LONG.replace(depth=4)
    manager.focus("session", [changed])
    cancelled = manager.view(LONG.hash)
    assert cancelled.status == "cancelled"
    assert not process_exists(pid)
    assert LONG.hash not in manager.running()
    # The new job is claimed (status running) a moment before its process is registered.
    running_with_pid(manager, changed)
    assert manager.running() == [changed.hash]
    manager.release("session")
    wait_for(lambda: manager.running() == [])


def test_a_job_another_session_watches_is_not_cancelled(manager):
    manager.focus("a", [LONG])
    manager.focus("b", [LONG])
    wait_for(lambda: manager.view(LONG.hash).status == "running")
    manager.focus("a", [QUICK])
    assert manager.view(LONG.hash).status == "running"
    manager.release("b")
    # Cancelled once no session on any replica watches it (the watch reports have a grace).
    wait_for(lambda: manager.view(LONG.hash).status == "cancelled", 30)


def test_jobs_over_the_cap_wait_in_a_visible_queue(tmp_path):
    jobs = JobManager(tmp_path, max_running=1)
    try:
        other, _ = QUICK.replace(seed=1)
        views = jobs.focus("s", [LONG, other])
        wait_for(lambda: jobs.view(LONG.hash).status == "running")
        assert jobs.view(other.hash).status == "queued"
        assert jobs.view(other.hash).queue_position == 1
        wait_for(lambda: len(jobs.running()) == 1)  # its process registered after the claim
        jobs.focus("s", [other])  # LONG cancelled: the queued one starts
        wait_for(lambda: jobs.view(other.hash).status == "done")
        assert views[0].record.hash == LONG.hash
    finally:
        jobs.shutdown()


def test_a_failing_job_is_stored_as_failed_with_its_message(manager):
    missing_data, _ = QUICK.replace(data="0123456789abcdef")
    manager.focus("s", [missing_data])
    failed = wait_for(lambda: (v := manager.view(missing_data.hash)).status == "failed" and v)
    assert "uploaded data set 0123456789abcdef" in failed.record.error
    manager.focus("s", [QUICK])  # the manager goes on working
    wait_for(lambda: manager.view(QUICK.hash).status == "done")


def test_a_job_over_its_time_limit_fails_and_its_process_ends(tmp_path):
    jobs = JobManager(tmp_path, max_running=1, time_limit=1.0)
    try:
        jobs.focus("s", [LONG])
        running = running_with_pid(jobs, LONG)
        failed = wait_for(lambda: (v := jobs.view(LONG.hash)).status == "failed" and v)
        assert "time limit" in failed.record.error
        assert not process_exists(running.record.pid)
    finally:
        jobs.shutdown()


def test_a_restart_marks_unfinished_jobs_interrupted_and_they_can_run_again(
        tmp_path, store_backend, monkeypatch):
    """SQLite: the one server restarted marks them interrupted. PostgreSQL (replicas): the
    dead server's job is left running until its lease expires, then the other claims it."""
    monkeypatch.setenv("DUALVIZ_JOB_LEASE", "2")
    first = JobManager(tmp_path, max_running=1)
    first.ready.wait(120)
    first.focus("s", [LONG])
    running = running_with_pid(first, LONG)
    # Simulate a server that died: its scheduler stops and its job processes are gone, but
    # nothing was written to the store.
    first._stop.set()
    first._thread.join()
    os.kill(running.record.pid, 9)
    wait_for(lambda: running.record.pid in first._exit_codes)
    first._server_lock.close()  # the kernel releases a dead server's lock on the store
    second = JobManager(tmp_path, max_running=1)
    try:
        if store_backend == "postgresql":
            assert second.interrupted_at_start == 0
            second.focus("s", [LONG])
            again = wait_for(lambda: (v := second.view(LONG.hash)).status == "running"
                             and v.record.created > running.record.created and v, timeout=30)
            assert second.store.lease_of(LONG.hash)[0] == second.replica
            assert again.record.pid != running.record.pid
            return
        assert second.interrupted_at_start == 1
        assert second.view(LONG.hash).status == "interrupted"
        again = second.focus("s", [LONG])[0]  # asking again queues a fresh run
        assert again.status in ("queued", "running")
        assert again.record.created > running.record.created
    finally:
        second.shutdown()
        first._processes.clear()
        first.shutdown()


def test_a_job_whose_tabs_went_quiet_is_cancelled_but_a_polling_tab_keeps_it(tmp_path,
                                                                           monkeypatch):
    monkeypatch.setenv("DUALVIZ_WATCHER_TIMEOUT", "1")  # the operator's limit, as serve reads it
    jobs = JobManager(tmp_path, max_running=2)
    try:
        assert jobs.ready.wait(120)
        kept, _ = LONG.replace(seed=5)
        jobs.focus("closed-tab", [LONG])
        jobs.focus("open-tab", [kept])
        started = jobs.view(LONG.hash)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # the open tab polls; the closed one does not
            jobs.touch("open-tab")
            started = jobs.view(LONG.hash) if started.record.pid is None else started
            time.sleep(0.1)
        assert started.record.pid is not None
        assert jobs.view(LONG.hash).status == "cancelled"
        assert not process_exists(started.record.pid)
        assert jobs.view(kept.hash).status == "running"
    finally:
        jobs.shutdown()


def test_a_job_left_running_by_a_dead_process_is_computed_again(manager):
    """A killed sweep leaves its points 'running' with its pid: a page asking for one of them
    must not wait forever."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: this pid is no process now
    manager.store.create_job(QUICK.hash, QUICK.to_query(), running_in=gone.pid)
    view = manager.focus("session-a", [QUICK])[0]
    assert view.record.pid != gone.pid
    done = wait_for(lambda: (v := manager.view(QUICK.hash)).status == "done" and v)
    assert done.record.result["experiment"]["hash"] == QUICK.hash


def test_a_job_running_in_a_live_foreign_process_is_left_to_it(manager):
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        manager.store.create_job(QUICK.hash, QUICK.to_query(), running_in=alive.pid)
        view = manager.focus("session-a", [QUICK])[0]
        assert view.status == "running" and view.record.pid == alive.pid
    finally:
        alive.kill()
        alive.wait()
