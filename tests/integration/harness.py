"""Real processes and real TLS for the integration suite: twistd plugins on 127.0.0.1."""

from __future__ import annotations

import http.client
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TWISTD = Path(sys.executable).parent / "twistd"


_used_ports: set[int] = set()


def reserve_ports(ports: range) -> None:
    """Never hand out *ports* (e.g. the admin ports of extra workers)."""
    _used_ports.update(ports)


def free_port() -> int:
    """A TCP port free right now, below the kernel's ephemeral range so that no outgoing
    connection takes it before the process under test binds it."""
    low, _high = (
        int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    )
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        if port in _used_ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _used_ports.add(port)
        return port
    raise RuntimeError("no free TCP port found")


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def write_toml(path: Path, tables: Mapping[str, Mapping[str, object]]) -> Path:
    """A TOML file from {table: {key: value}} (dotted table names for nesting)."""
    lines: list[str] = []
    for table, values in tables.items():
        if table:
            lines.append(f"[{table}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in values.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@dataclass
class Twistd:
    """One ``twistd -n PLUGIN --config FILE`` process, its log kept for failure reports."""

    plugin: str
    config: Path
    log: Path
    health_url: str
    env: dict[str, str] = field(default_factory=dict)
    logger: str | None = None
    #: Command run before twistd (systemd-socket-activate...).
    prefix: list[str] = field(default_factory=list)
    #: With socket activation, the first connection to this port is what starts twistd.
    activation_port: int | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self, timeout: float = 30.0) -> Twistd:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **self.env)
        logging = ["--logger", self.logger] if self.logger else ["--logfile", str(self.log)]
        self.process = subprocess.Popen(
            [
                *self.prefix,
                str(TWISTD),
                "-n",
                "--pidfile=",
                *logging,
                self.plugin,
                "--config",
                str(self.config),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        if self.activation_port is not None:
            self._knock(self.activation_port, deadline)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.plugin} exited early:\n{self.log_text()}")
            try:
                status, _ = http_get(self.health_url)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.plugin} not ready in {timeout}s:\n{self.log_text()}")

    def _knock(self, port: int, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)

    def log_text(self) -> str:
        """The log's tail, for failure reports."""
        try:
            return self.log.read_text(errors="replace")[-6000:]
        except OSError:
            return "(no log)"

    def log_count(self, text: str) -> int:
        """How many times *text* was logged, in the whole log and the files it rotated to.

        A tail (``log_text``) is no way to count: under load, the lines logged after the one
        awaited push it out of the tail between two polls.
        """
        files = [self.log, *self.log.parent.glob(self.log.name + ".*")]
        total = 0
        for path in files:
            try:
                total += path.read_text(errors="replace").count(text)
            except OSError:
                continue
        return total

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after *timeout*; only the process this object started."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(5)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """Plain-HTTP GET on a loopback admin endpoint."""
    host_port = url.split("://", 1)[1].split("/", 1)
    host, port = host_port[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", "/" + (host_port[1] if len(host_port) > 1 else ""))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def client_context(pki: Path, identity: str | None, ca: str = "ca.pem") -> ssl.SSLContext:
    """A TLS client context trusting the dev CA and presenting *identity*'s certificate."""
    ctx = ssl.create_default_context(cafile=str(pki / ca))
    if identity is not None:
        ctx.load_cert_chain(str(pki / f"{identity}.pem"), str(pki / f"{identity}.key"))
    return ctx


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


class SoapClient:
    """An HTTPS client with a client certificate, speaking HTTP/1.1 keep-alive."""

    def __init__(self, port: int, context: ssl.SSLContext, host: str = "127.0.0.1") -> None:
        self.conn = http.client.HTTPSConnection(host, port, context=context, timeout=30)

    def post(
        self,
        body: bytes,
        path: str = "/roc",
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
    ) -> Answer:
        all_headers = {"Content-Type": "text/xml; charset=utf-8"}
        all_headers.update(headers or {})
        self.conn.request(method, path, body=body, headers=all_headers)
        response = self.conn.getresponse()
        data = response.read()
        return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)

    def close(self) -> None:
        self.conn.close()
