"""What one server allows: every limit an operator sets through the environment, in one table.

A lecture hall is a crowd of strangers on one server, so every resource a visitor can make the
server spend has a bound here: jobs running and waiting, a job's wall time and memory, a sweep's
size, an upload's size, the store's size. The README's table of environment variables lists
the same names (a test checks it).

A value that is not a positive number is ignored (the default applies) and reported once on
stderr: a typo in a deployment must not stop a server, nor pass unnoticed.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    variable: str  # the environment variable
    default: float | None  # None: computed (see `value`)
    meaning: str
    integer: bool = True


LIMITS: tuple[Limit, ...] = (
    Limit("DUALVIZ_MAX_JOBS", None, "jobs running at once on this server (default: the number "
          "of cores); sweep points count too, and leave one place free for pages"),
    Limit("DUALVIZ_MAX_QUEUED", 100, "jobs waiting per server; a session beyond it waits "
          "outside the queue and asks again every 2 s"),
    Limit("DUALVIZ_JOB_TIME_LIMIT", 600, "seconds of wall time per job (sweep points "
          "included) before it is stopped and marked failed", integer=False),
    Limit("DUALVIZ_JOB_MEMORY_MB", 2048, "memory a job may allocate beyond the warm solver "
          "process it is forked from (an address-space limit); a link whose network would "
          "need more is clamped with a note"),
    Limit("DUALVIZ_WATCHER_TIMEOUT", 120, "seconds a job keeps running after the last tab "
          "watching it went quiet (closed, or its stream gone): a reload reattaches within "
          "it; a sweep nobody looked at for as long pauses. Keep it above 10: a live "
          "stream says its tab still watches every 5 s", integer=False),
    Limit("DUALVIZ_MAX_SWEEPS", 4, "sweeps started from the Gap curves page running at once "
          "(they share the job places in turn; one per session)"),
    Limit("DUALVIZ_MAX_SWEEP_POINTS", 200, "distinct experiments in one sweep started from a "
          "page"),
    Limit("DUALVIZ_MAX_UPLOAD_MB", 20, "size of an uploaded data file (Streamlit's own upload "
          "limit is set to the same value)", integer=False),
    Limit("DUALVIZ_MAX_STREAMS", 2000, "live streams (one per job a page shows) open at once "
          "on this server; beyond it a stream is refused with 503 and the page asks again "
          "2-4 s later"),
    Limit("DUALVIZ_STORE_MB", 2048, "size of the result store above which the oldest "
          "finished jobs' snapshots, then the least recently used uploads, are deleted "
          "(results are kept)", integer=False),
    Limit("DUALVIZ_MAX_ROOMS", 20, "presenters' rooms open at once (across the replicas of "
          "one store); a presenter beyond it is told to wait"),
    Limit("DUALVIZ_MAX_FOLLOWERS", 1000, "followers' live connections per server (each "
          "ends after 30 s and reconnects); beyond it a follower is refused with 503 and "
          "its page retries"),
)
LIMITS_BY_VARIABLE = {limit.variable: limit for limit in LIMITS}
_reported: set[str] = set()


def env_number(name: str, default: float) -> float:
    """A positive, finite number from the environment, else `default` (reported once)."""
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value > 0 and math.isfinite(value):
        return value
    if name not in _reported:
        _reported.add(name)
        print(f"dualviz: ignoring ${name}={text[:40]!r}: not a positive number; using "
              f"{default:g}", file=sys.stderr, flush=True)
    return default


def value(variable: str) -> float:
    """The current value of one limit of the table (read at each call: tests and servers
    may set the environment after import)."""
    limit = LIMITS_BY_VARIABLE[variable]
    default = limit.default if limit.default is not None else float(os.cpu_count() or 1)
    number = env_number(variable, default)
    return float(max(1, int(number))) if limit.integer else number


def max_jobs() -> int:
    return int(value("DUALVIZ_MAX_JOBS"))


def max_queued() -> int:
    return int(value("DUALVIZ_MAX_QUEUED"))


def job_time_limit() -> float:
    return value("DUALVIZ_JOB_TIME_LIMIT")


def watcher_timeout() -> float:
    return value("DUALVIZ_WATCHER_TIMEOUT")


def job_memory_bytes() -> int:
    return int(value("DUALVIZ_JOB_MEMORY_MB") * 2**20)


def max_sweeps() -> int:
    return int(value("DUALVIZ_MAX_SWEEPS"))


def max_sweep_points() -> int:
    return int(value("DUALVIZ_MAX_SWEEP_POINTS"))


def max_streams() -> int:
    return int(value("DUALVIZ_MAX_STREAMS"))


def upload_bytes() -> int:
    return int(value("DUALVIZ_MAX_UPLOAD_MB") * 2**20)


def store_bytes() -> int:
    return int(value("DUALVIZ_STORE_MB") * 2**20)


def sweep_slots(max_running: int) -> int:
    """Job places sweeps may take: all but one, so a page's run never waits behind a sweep
    (one place when there is only one)."""
    return max(1, max_running - 1)


def max_rooms() -> int:
    return int(value("DUALVIZ_MAX_ROOMS"))


def max_followers() -> int:
    return int(value("DUALVIZ_MAX_FOLLOWERS"))
