"""The job launcher: a clean, warm process that forks one child per job.

Started by the JobManager as ``python -m dualviz.service.launcher`` (a fresh interpreter, so
nothing of the server, such as Streamlit's script module, is imported into jobs). It imports
torch, CVXPY and dualviz and runs one tiny experiment once; after that each job is an
``os.fork()`` of this warm, single-threaded process, which starts in milliseconds.

Protocol: one JSON object per line. In on stdin: {"op": "start", "hash", "query",
"data_dir", "memory"} (memory: bytes of address space the job may add to what it is forked
with). Out on stdout: {"event": "ready"}, {"event": "started", "hash", "pid"},
{"event": "exited", "pid", "code", "max_rss"} (max_rss: the job's peak resident memory in
bytes). When stdin closes (the server went away), every child is
ended and the launcher exits, so no job outlives its server.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import sys

from .worker import execute, limit_memory, warm_up

JOB_NICENESS = 10


def _send(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _start_child(command: dict) -> int:
    pid = os.fork()
    if pid:
        return pid
    # In the child: the protocol pipe belongs to the launcher; prints go to stderr.
    code = 1
    try:
        os.dup2(2, 1)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # Jobs yield the CPU to the server, so pages stay responsive while every core trains.
        os.nice(JOB_NICENESS)
        limit_memory(command["memory"])
        execute(command["hash"], command["query"], command["data_dir"], command["memory"])
        code = 0
    finally:
        os._exit(code)


def _reap(children: set[int]) -> None:
    while children:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        children.discard(pid)
        _send({"event": "exited", "pid": pid, "code": os.waitstatus_to_exitcode(status),
               "max_rss": usage.ru_maxrss * 1024})


def main() -> None:
    warm_up()
    _send({"event": "ready"})
    children: set[int] = set()
    stdin = sys.stdin.fileno()
    selector = selectors.DefaultSelector()
    selector.register(stdin, selectors.EVENT_READ)
    pending = b""
    try:
        while True:
            if selector.select(timeout=0.02):
                chunk = os.read(stdin, 65536)
                if not chunk:
                    break  # the server is gone
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    command = json.loads(line)
                    if command.get("op") == "start":
                        pid = _start_child(command)
                        children.add(pid)
                        _send({"event": "started", "hash": command["hash"], "pid": pid})
            _reap(children)
    finally:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
