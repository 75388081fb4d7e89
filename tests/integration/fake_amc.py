"""A controllable AMC for integration tests: real mutual TLS, counts what it receives.

It runs in a thread of the test process, records every request byte for byte, and answers
with whatever the test sets (status, body, delay, or a reset / garbage reply).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Behaviour:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/xml; charset=utf-8"
    delay: float = 0.0
    mode: str = "answer"  # answer | reset | garbage


@dataclass
class FakeAmc:
    pki: Path
    behaviour: Behaviour = field(default_factory=Behaviour)
    received: list[Received] = field(default_factory=list)
    port: int = 0

    def start(self) -> FakeAmc:
        amc = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                amc.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                b = amc.behaviour
                if b.delay:
                    time.sleep(b.delay)
                if b.mode == "reset":
                    self.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                    )
                    self.connection.close()
                    self.close_connection = True
                    return
                if b.mode == "garbage":
                    self.wfile.write(b"this is not HTTP at all\r\n\r\n")
                    self.close_connection = True
                    return
                self.send_response(b.status)
                self.send_header("Content-Type", b.content_type)
                self.send_header("Content-Length", str(len(b.body)))
                self.end_headers()
                self.wfile.write(b.body)

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.pki / "ca.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_cert_chain(
            str(self.pki / "mutuelle-server.pem"), str(self.pki / "mutuelle-server.key")
        )
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def url(self, service: str) -> str:
        return f"https://127.0.0.1:{self.port}/roc/{service}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
