"""A throwaway PostgreSQL cluster from Debian's binaries: for the tests and `deploy/`.

``python -m dualviz.service.pgcluster start DIR`` initialises a cluster in DIR (trust
authentication, listening on 127.0.0.1 only, on a free port, its socket in DIR), starts it and
prints its URL; ``stop DIR`` stops it and deletes DIR. Nothing is installed as a system service
and nothing outside DIR is written. As root (CI, the developers' machines) the server runs as
the `postgres` user that Debian's package creates (PostgreSQL refuses to run as root).

The binaries are looked for in $DUALVIZ_PG_BIN, then /usr/lib/postgresql/<newest>/bin.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

PG_BIN_ENV = "DUALVIZ_PG_BIN"


def pg_bin() -> Path | None:
    """The folder of initdb and pg_ctl, or None when PostgreSQL is not installed."""
    candidates = [os.environ.get(PG_BIN_ENV, "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True)
    for folder in candidates:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def missing_reason() -> str | None:
    """Why a cluster cannot be started here, or None."""
    if pg_bin() is None:
        return ("PostgreSQL's binaries are not installed (apt-get install postgresql; or set "
                f"${PG_BIN_ENV})")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a 'postgres' user to run the server as"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _run(command: list[str]) -> None:
    done = subprocess.run(_as_server_user(command), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise RuntimeError(f"{Path(command[0]).name} failed (exit code {done.returncode}): "
                           f"{done.stderr.strip()[-600:]}")


def start(folder: Path | str, port: int | None = None) -> str:
    """Initialise and start a cluster in `folder` (created); returns its URL."""
    binaries = pg_bin()
    if binaries is None:
        raise RuntimeError(missing_reason())
    folder = Path(folder).resolve()
    (folder / "sock").mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        for path in (folder, folder / "sock"):
            os.chown(path, user.pw_uid, user.pw_gid)
        # the server user must be able to reach the folder
        parent = folder.parent
        while parent != parent.parent:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
            parent = parent.parent
    os.chmod(folder, 0o700)
    port = port or _free_port()
    _run([str(binaries / "initdb"), "-D", str(folder / "data"), "-U", "postgres", "-A",
          "trust", "-E", "UTF8", "--no-locale"])
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {folder / 'sock'} -c fsync=off "
               "-c max_connections=300 -c shared_buffers=64MB")
    _run([str(binaries / "pg_ctl"), "-D", str(folder / "data"), "-l",
          str(folder / "server.log"), "-w", "-o", options, "start"])
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    (folder / "url").write_text(url)
    return url


def stop(folder: Path | str) -> None:
    """Stop the cluster in `folder` and delete the folder."""
    folder = Path(folder).resolve()
    binaries = pg_bin()
    if binaries is not None and (folder / "data" / "postmaster.pid").exists():
        with contextlib.suppress(subprocess.CalledProcessError):
            subprocess.run(_as_server_user([str(binaries / "pg_ctl"), "-D",
                                            str(folder / "data"), "-m", "fast", "-w", "stop"]),
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shutil.rmtree(folder, ignore_errors=True)


def create_database(url: str, name: str) -> str:
    """A fresh database `name` on the cluster of `url`; returns its URL."""
    import psycopg

    assert name.replace("_", "").isalnum()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + "/" + name


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python -m dualviz.service.pgcluster start|stop DIR", file=sys.stderr)
        return 2
    if argv[0] == "start":
        print(start(argv[1]))
    else:
        stop(argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
