"""Jobs as a page sees them: the server's job manager, live snapshots, status lines.

A store that fails (another process holds its lock, the disk is full) is a one-line message
on the page and the page keeps working; it never shows a traceback.
"""

from __future__ import annotations

import threading
import time
import uuid

import streamlit as st

from ..results import COMPLETED, RERUNNABLE, JobStatus, Snapshot
from ..service.jobs import JobManager, JobView, busy_record
from ..service.store import StoreError

BUSY_RETRY_SECONDS = 2.0  # a session refused for now asks again this often
_SNAPSHOTS = "_dualviz_snapshots"


_manager: JobManager | None = None
_manager_lock = threading.Lock()


def manager() -> JobManager:
    """One job manager per server process, shared by every session (and by the push
    channel's routes, which start it with the server)."""
    global _manager
    with _manager_lock:
        if _manager is None:
            _manager = JobManager()
        return _manager


def store_guard() -> None:
    """Stop the page with one clear line when this server cannot open its store (another
    server uses it, or it is unreadable)."""
    try:
        manager()
    except StoreError as exc:
        st.error(f"This server cannot use its result store: {exc}")
        st.stop()


def watcher_id() -> str:
    """This browser session's identity for the job manager."""
    if "_dualviz_watcher" not in st.session_state:
        st.session_state["_dualviz_watcher"] = uuid.uuid4().hex
    return st.session_state["_dualviz_watcher"]


def drawn(view: JobView) -> tuple[int, list[Snapshot]]:
    """(the last seq, every snapshot) of a job, reading only the new ones from the store on
    each call (what was read stays when the store is busy): what the page draws, and where its
    stream resumes."""
    cache = st.session_state.setdefault(_SNAPSHOTS, {})
    key = (view.record.hash, view.record.created)  # a rerun of the same hash starts afresh
    last_seq, seen = cache.get(key, (-1, []))
    if view.status == JobStatus.BUSY:
        return last_seq, seen
    try:
        news = manager().store.snapshots(view.record.hash, after=last_seq)
    except StoreError:
        return last_seq, seen
    if news:
        seen = seen + [s for _, s in news]
        last_seq = news[-1][0]
        cache[key] = (last_seq, seen)
    return last_seq, seen


def snapshots(view: JobView) -> list[Snapshot]:
    return drawn(view)[1]


class Jobs:
    """The jobs of the experiments a page shows, as this session watches them.

    A job this tab lost (cancelled after the tab went quiet, interrupted by a restart) or that
    could not be had now (a full queue, a busy store) is asked for again from the polling
    fragment itself, at most every BUSY_RETRY_SECONDS: a full rerun requested from a fragment
    can reset the sidebar's widgets in the browser (seen under load), moving the page to
    another experiment.
    """

    def __init__(self, experiments: list):
        self.experiments = experiments
        self.views = manager().focus(watcher_id(), experiments)
        self.asked = time.monotonic()

    @property
    def polling(self) -> bool:
        return any(v.active for v in self.views)

    def current(self) -> list[JobView]:
        jobs = manager()
        jobs.touch(watcher_id())
        self.views = [v if v.status == JobStatus.BUSY else self._view(v) for v in self.views]
        lost = any(v.status in (JobStatus.BUSY, *RERUNNABLE) for v in self.views)
        if lost and time.monotonic() - self.asked >= BUSY_RETRY_SECONDS:
            self.views = jobs.focus(watcher_id(), self.experiments)
            self.asked = time.monotonic()
        return self.views

    @staticmethod
    def _view(view: JobView) -> JobView:
        try:
            return manager().view(view.record.hash)
        except StoreError as exc:  # keep what we had, say why it does not move
            record = view.record
            if record.status in COMPLETED:
                return view
            return JobView(busy_record(record.hash, record.query, str(exc)), None)
        except KeyError:  # dropped meanwhile (a rerun from another tab): ask again
            record = view.record
            return JobView(busy_record(record.hash, record.query, "asking for it again"),
                           None)


def status_line(view: JobView) -> str:
    """A short status for a job."""
    record = view.record
    if record.status == JobStatus.BUSY:
        return f"waiting: {record.error}"
    if record.status == JobStatus.QUEUED:
        jobs = manager()
        if jobs.launcher_error:
            return f"queued, but {jobs.launcher_error}"
        if not jobs.ready.is_set():
            return "queued: the solvers are warming up (first run after the server started)"
        return f"queued (position {view.queue_position}): waiting for a free worker"
    if record.status == JobStatus.RUNNING:
        elapsed = time.time() - (record.started or time.time())
        return f"running for {elapsed:.1f} s"
    if record.status == JobStatus.DONE:
        took = (record.finished or 0) - (record.started or record.finished or 0)
        return f"done in {took:.1f} s"
    return f"{record.status}: {(record.error or '').splitlines()[0] if record.error else ''}"
