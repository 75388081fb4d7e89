"""Helpers of the indicators integration tests: Prometheus, the indicators service, Chromium.

The binaries come from Debian packages installed by `make system-deps`; a missing one fails
the test (never skips it) with that instruction.
"""

from __future__ import annotations

import http.client
import http.server
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.harness import ROOT, Twistd, free_port, http_get, write_toml
from tools import devpki

#: etc/prometheus/rules/, in the order etc/prometheus/prometheus.yml lists them.
RULE_FILES = ("rpn-recording.yml", "rpn-alerts.yml", "rpn-watch.yml")
INSTALL_HINT = "run `make system-deps` (apt-get install prometheus chromium)"


def require(binary: str) -> str:
    """The path of *binary*, or a failed test naming the make step that installs it."""
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed: {INSTALL_HINT}", pytrace=False)
    return path


@dataclass
class Prometheus:
    """A real Prometheus server with its own data directory, scraping the given targets."""

    directory: Path
    targets: list[str]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> Prometheus:
        binary = require("prometheus")
        rules = ROOT / "etc" / "prometheus" / "rules"
        config = self.directory / "prometheus.yml"
        targets = ", ".join(f'"{t}"' for t in self.targets)
        # The project's rule files, as etc/prometheus/prometheus.yml lists them.
        files = ", ".join(f'"{rules / name}"' for name in RULE_FILES)
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
            f"rule_files: [{files}]\n"
            "scrape_configs:\n"
            f"  - {{job_name: rpn, static_configs: [{{targets: [{targets}]}}]}}\n"
        )
        log = (self.directory / "prometheus.log").open("wb")
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited early:\n{self.log_text()}")
            try:
                if http_get(f"{self.url}/-/ready")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"prometheus not ready in {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        return (self.directory / "prometheus.log").read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def write_agency_identity(pki: Path, directory: Path) -> Path:
    """An agency client certificate (no FINESS) signed by the test CA; returns its PEM path."""
    ca = devpki.load(pki, "ca")
    agency = devpki.issue(ca, "ANS supervision ROC", client=True, organisation="PiANO agency")
    devpki.write(directory, "agency", agency)
    return directory / "agency.pem"


@dataclass
class IndicatorsProcess:
    twistd: Twistd
    port: int
    admin_port: int

    def get(self, path: str, context: ssl.SSLContext) -> tuple[int, bytes]:
        return self.request("GET", path, context)

    def post_form(
        self, path: str, context: ssl.SSLContext, fields: dict[str, str]
    ) -> tuple[int, bytes]:
        body = urllib.parse.urlencode(fields).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return self.request("POST", path, context, body, headers)

    def request(
        self,
        method: str,
        path: str,
        context: ssl.SSLContext,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=30)
        try:
            conn.request(method, path, body, headers or {})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


def start_indicators(
    pki: Path,
    directory: Path,
    prometheus_url: str,
    agency_pem: Path,
    mutuelle_admin_url: str | None = None,
    relay_config: str | None = None,
) -> IndicatorsProcess:
    port, admin = free_port(), free_port()
    qualification: dict[str, dict[str, object]] = (
        {}
        if mutuelle_admin_url is None
        else {"qualification": {"mutuelle_admin_url": mutuelle_admin_url, "timeout": 3.0}}
    )
    if relay_config is not None:
        qualification.setdefault("qualification", {})["relay_config"] = relay_config
    config = write_toml(
        directory / "indicators.toml",
        {
            "listen": {"endpoint": f"tcp:{port}:interface=127.0.0.1"},
            "tls": {
                "certificate": pki / "rpn-server.pem",
                "private_key": pki / "rpn-server.key",
                "ca_certificates": [pki / "ca.pem"],
            },
            "access": {"agency_certificates": [agency_pem]},
            "prometheus": {"url": prometheus_url, "timeout": 5.0},
            "indicators": {"refresh_interval": 1.0},
            **qualification,
            "admin": {"endpoint": f"tcp:{admin}:interface=127.0.0.1"},
        },
    )
    twistd = Twistd(
        "indicators", config, directory / "indicators.log", f"http://127.0.0.1:{admin}/healthz"
    )
    return IndicatorsProcess(twistd.start(), port, admin)


class StaticHttpServer:
    """A loopback HTTP server answering GETs from *answer(path)* -> (status, type, body), in a
    thread: it stands in for a peer a test does not start (see its callers)."""

    def __init__(self, answer: Callable[[str], tuple[int, str, bytes]]) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, content_type, body = answer(self.path)
                server.requests.append(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.requests: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> StaticHttpServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class ClientCertificateForwarder:
    """A loopback plain-HTTP forwarder that presents a client certificate upstream.

    Chromium on Linux picks client certificates only from the user's NSS database with a
    system-wide policy under /etc/chromium, which a test must not write; this plays the part
    of stunnel in client mode instead, so the browser loads the very bytes the service sends
    to that establishment, and the service itself has no unauthenticated way in.
    """

    def __init__(self, upstream_port: int, context: ssl.SSLContext) -> None:
        forwarder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                conn = http.client.HTTPSConnection(
                    "127.0.0.1", upstream_port, context=context, timeout=30
                )
                try:
                    conn.request("GET", self.path)
                    response = conn.getresponse()
                    body = response.read()
                finally:
                    conn.close()
                forwarder.requests.append((self.path, response.status))
                self.send_response(response.status)
                for name in ("Content-Type", "Location"):
                    value = response.getheader(name)
                    if value:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.requests: list[tuple[str, int]] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ClientCertificateForwarder:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def chromium_dom(url: str, profile: Path, timeout: float = 90.0) -> str:
    """The DOM Debian's headless Chromium built from *url*, serialised."""
    binary = require("chromium")
    done = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    return done.stdout.decode()
