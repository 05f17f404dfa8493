"""A department server on one machine, on loopback: `make deploy` (or deploy/run.sh).

It starts, all under one folder it deletes at the end:
- a throwaway PostgreSQL cluster (dualviz.service.pgcluster: Debian's binaries, no service),
- REPLICAS `dualviz serve` processes on it (each on its own port and data folder: one store,
  each experiment computed once across them, a room followed from any of them),
- haproxy in front (Debian's haproxy 2.6): sticky sessions by a cookie it sets, so a browser's
  websocket, its live streams and its uploads reach one replica; websockets and Server-Sent
  Events pass unbuffered (`timeout tunnel` for the upgraded connections, no compression),
and prints the URL. Ctrl-C stops everything. The environment is passed on to the replicas
(e.g. DUALVIZ_PRESENTER_TOKEN to allow presenting; see the README, "A department server").
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dualviz.__main__ import ranged_int
from dualviz.service import pgcluster
from dualviz.service.store import DATABASE_URL_ENV
from dualviz.testing import Server, streamlit_server

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
COOKIE = "dualviz_replica"
MAX_REPLICAS = 16  # each is a Streamlit server and a job launcher: a machine's worth

HAPROXY_CFG = """\
global
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 75s
    timeout server 75s
    timeout http-keep-alive 10s
    # a websocket (Streamlit's) or an event stream, once established, is a tunnel
    timeout tunnel 2h
    timeout client-fin 5s
    # A replica busy with a hall's page runs answers its health check late, not never: with
    # the defaults (the check's timeout = its 2 s interval, down after 3) haproxy took busy
    # replicas out and answered their visitors 503 (bench_rooms, 300 followers). Patient
    # checks, and a request for a replica that is down goes to another one.
    timeout check 10s
    default-server inter 3s fall 5 rise 2
    option redispatch
    retries 2
    option forwardfor
frontend dualviz
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    # sticky: the first answer sets the cookie naming the replica; later requests keep to it
    cookie {cookie} insert indirect nocache httponly
    option httpchk GET /_stcore/health
{servers}
"""


@dataclass
class Deployment:
    url: str
    database_url: str
    replicas: list[Server]
    folder: Path


def haproxy_config(port: int, replicas: list[str]) -> str:
    servers = "\n".join(f"    server r{i} {url.split('//', 1)[1]} cookie r{i} check"
                        for i, url in enumerate(replicas, 1))
    return HAPROXY_CFG.format(port=port, cookie=COOKIE, servers=servers)


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"haproxy exited with code {process.returncode} (its log: "
                               "haproxy.log in the deployment folder)")
        with contextlib.suppress(OSError), \
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:g} s")


@contextlib.contextmanager
def deployment(port: int = 8500, replicas: int = 2, folder: Path | None = None,
               env: dict[str, str] | None = None) -> Iterator[Deployment]:
    """PostgreSQL, `replicas` servers and haproxy on 127.0.0.1:`port`; all stopped after."""
    own = folder is None
    folder = Path(folder or tempfile.mkdtemp(prefix="dualviz-deploy-"))
    folder.mkdir(parents=True, exist_ok=True)
    database_url = pgcluster.start(folder / "pg")
    try:
        extra = {**(env or {}), DATABASE_URL_ENV: database_url}
        with contextlib.ExitStack() as stack:
            servers = []
            for i in range(1, replicas + 1):
                data = folder / f"replica{i}"
                data.mkdir(exist_ok=True)
                servers.append(stack.enter_context(streamlit_server(
                    data, log_path=folder / f"replica{i}.log", extra_env=extra)))
            cfg = folder / "haproxy.cfg"
            cfg.write_text(haproxy_config(port, [s.url for s in servers]))
            with open(folder / "haproxy.log", "wb") as log:
                proxy = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                url = f"http://127.0.0.1:{port}"
                _wait_for(url, proxy)
                yield Deployment(url, database_url, servers, folder)
            finally:
                proxy.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proxy.wait(timeout=5)
                if proxy.poll() is None:
                    proxy.kill()
    finally:
        pgcluster.stop(folder / "pg")
        if own:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=ranged_int(1, 65535, "a port number"), default=8500,
                        help="the proxy's port (8500)")
    parser.add_argument("--replicas", type=ranged_int(1, MAX_REPLICAS), default=2,
                        help=f"dualviz servers (2; at most {MAX_REPLICAS})")
    args = parser.parse_args(argv)
    reason = pgcluster.missing_reason()
    if reason or not Path(HAPROXY).exists():
        print(f"deploy: {reason or 'haproxy is not installed (apt-get install haproxy)'}",
              file=sys.stderr)
        return 2
    def interrupted(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)  # `kill` stops it as Ctrl-C does: all of it
    with deployment(args.port, args.replicas, env=dict(os.environ)) as running:
        print(f"dualviz: {running.url}  ({args.replicas} replicas on one PostgreSQL store "
              f"behind haproxy; logs in {running.folder}; Ctrl-C stops all)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while all(s.process.poll() is None for s in running.replicas):
                time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
