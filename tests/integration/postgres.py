"""A real PostgreSQL server for the tests: ``initdb`` in a temporary directory, ``pg_ctl``
on a free loopback port, stopped by PID (Debian's ``postgresql`` package, ``make system-deps``).

As root (CI containers), the server runs as the ``postgres`` user the package creates:
PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.harness import free_port

BIN = Path("/usr/lib/postgresql/15/bin")


def available() -> bool:
    return (BIN / "initdb").exists()


def _as_server_user() -> list[str]:
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@dataclass
class PostgresServer:
    """A server in its own temporary directory (outside pytest's, which the server user
    cannot enter), removed by ``remove``."""

    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="piano-pg-")))
    port: int = field(default_factory=free_port)
    #: Pin the server's processes to these CPUs (taskset), e.g. "0" for a benchmark.
    cpu: str | None = None
    #: Server settings (-c name=value); the tests' defaults trade durability for speed.
    settings: dict[str, str] = field(default_factory=lambda: {"fsync": "off"})
    pid: int | None = None

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def init(self) -> PostgresServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        subprocess.run(
            [*_as_server_user(), str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        return self

    def start(self, timeout: float = 60.0) -> PostgresServer:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
        options += " ".join(
            f"-c {k}={v}" for k, v in {"max_connections": "50", **self.settings}.items()
        )
        pin = [] if self.cpu is None else ["taskset", "-c", self.cpu]
        subprocess.run(
            [*pin, *_as_server_user(), str(BIN / "pg_ctl"), "-D", str(self.data), "-o", options,
             "-l", str(self.directory / "server.log"), "-w", "-t", str(int(timeout)), "start"],
            check=True, capture_output=True, timeout=timeout + 10,
        )  # fmt: skip
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT) of the server this object started, by its PID."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def log_text(self) -> str:
        try:
            return (self.directory / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""
