"""A real PostgreSQL server for tests: Debian's ``postgresql`` binaries (``initdb``, ``pg_ctl``),
started as an unprivileged user on a free loopback port with its data in a temporary folder, and
stopped (and its folder removed) at the end of the session.

PostgreSQL refuses to run as root: when the tests run as root (CI containers), the server runs as
the ``postgres`` system user (Debian's package creates it), else ``nobody``, through ``runuser``.
Tests that need the server skip with a message saying how to get it where no binaries exist.
Authentication is scram-sha-256 with a password, as a real deployment would have, so the URL the
tests use carries one (and the tests can check it never reaches any output).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

USER, PASSWORD = "video_assets", "s3cret-pg-pass"  # a throwaway password for a throwaway server
UNPRIVILEGED = ("postgres", "nobody")


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: the newest /usr/lib/postgresql/*/bin, else
    wherever PATH has them; None when PostgreSQL is not installed."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for folder in reversed(versions):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    return None


def run_as() -> tuple[list[str], int | None]:
    """The command prefix to run the server's programs with, and the uid that owns its files
    (None: the current user). Skips when running as root with no way to drop privileges."""
    if os.getuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("PostgreSQL refuses to run as root and runuser is missing; fix: run the tests "
                    "as an ordinary user, or install util-linux")
    for name in UNPRIVILEGED:
        with contextlib.suppress(KeyError):
            return [runuser, "-u", name, "--"], pwd.getpwnam(name).pw_uid
    pytest.skip("PostgreSQL refuses to run as root and there is no 'postgres' or 'nobody' user "
                "to run it as; fix: run the tests as an ordinary user")


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database (one per test keeps instances apart); returns its URL."""
        import psycopg2

        conn = psycopg2.connect(self.url())
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a server in a temporary folder (see the module docstring); stop it at the end."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl under /usr/lib/postgresql/*/bin "
                    "or on PATH); fix: apt-get install postgresql (.ci/run does)")
    prefix, uid = run_as()
    root = Path(tempfile.mkdtemp(prefix="video_assets-pg-"))  # in /tmp: reachable by that user
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    pwfile = root / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if uid is not None:
        for path in (root, sockets, pwfile):
            os.chown(path, uid, -1)
    port = free_port()
    log = root / "server.log"

    def run(*args: str, timeout_s: float = 60) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=timeout_s,
                              cwd=root)
        if done.returncode != 0:
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stderr[-2000:]}"
                               f"\n{tail}")

    run(str(bin_dir / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
        "-A", "scram-sha-256", "-E", "UTF8", "--no-sync")
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o",
        f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c max_connections=200", "start", timeout_s=90)
    try:
        server = PostgresServer("127.0.0.1", port, USER, PASSWORD)
        _wait_ready(server)
        yield server
    finally:
        with contextlib.suppress(Exception):
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: PostgresServer, timeout_s: float = 30) -> None:
    import psycopg2

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg2.connect(server.url(), connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (skips where PostgreSQL is not installed)."""
    with postgres_server() as server:
        yield server
