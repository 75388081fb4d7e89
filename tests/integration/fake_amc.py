"""A controllable AMC for integration tests: real mutual TLS, counts what it receives.

It runs in threads of the test process, records every request byte for byte (and the connection
it came on), and answers with whatever the test sets: a status and body after a delay, or one of
the faults an AMC shows in production (see ``Behaviour.mode``). ``choose`` picks the behaviour per
request, so one fake can serve a whole scenario (the soak uses it for random faults). Its server
certificate is the development PKI's ``mutuelle-server`` unless the test gives another one (an
untrusted, expired or misnamed certificate for the upstream-TLS cases).
"""

from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: What ``Behaviour.mode`` may be.
MODES = (
    "answer",  # the status and body, keep-alive
    "close",  # the answer, then the connection closed without a "Connection: close" header
    "reset",  # the request read, then a TCP reset before any answer byte
    "reset_mid_answer",  # status line, headers and half the body, then a TCP reset
    "truncated",  # a Content-Length larger than the body sent, then a clean close
    "garbage",  # bytes that are not HTTP, then a clean close
    "bad_status",  # an HTTP/1.1 status line with a non-numeric status
    "hang",  # the request read, then nothing at all until the AMC stops
)
_RESET = struct.pack("ii", 1, 0)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    #: Which TLS connection (numbered from 1 in accept order) carried the request.
    connection: int = 0
    at: float = 0.0


@dataclass
class Behaviour:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/xml; charset=utf-8"
    delay: float = 0.0
    mode: str = "answer"


@dataclass
class FakeAmc:
    pki: Path
    behaviour: Behaviour = field(default_factory=Behaviour)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    #: The server certificate: a stem in *pki*, or explicit PEM files (both or neither).
    certificate: str = "mutuelle-server"
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Seconds an idle keep-alive connection is kept before the AMC closes it (None: forever).
    keep_alive_timeout: float | None = None
    #: Whether answers say so (``Keep-Alive: timeout=N``, as Apache and nginx do).
    announce_keep_alive: bool = True
    #: The behaviour for one request (default: ``behaviour``, shared by every request).
    choose: Callable[[Received], Behaviour] | None = None
    #: TLS connections accepted (handshake done) since start.
    connections: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> FakeAmc:
        amc = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = amc.keep_alive_timeout

            def log_message(self, format: str, *args: object) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                self.connection.do_handshake()
                self.number = amc._connected(self.connection)

            def finish(self) -> None:
                amc._closed(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                received = Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    self.number,
                    time.monotonic(),
                )
                amc.received.append(received)
                b = amc.choose(received) if amc.choose is not None else amc.behaviour
                if b.mode == "hang":
                    amc._stopping.wait()
                    self.close_connection = True
                    return
                if b.delay:
                    time.sleep(b.delay)
                amc._answer(self, b)

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.pki / "ca.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        cert = self.cert_file or self.pki / f"{self.certificate}.pem"
        key = self.key_file or self.pki / f"{self.certificate}.key"
        ctx.load_cert_chain(str(cert), str(key))
        server = _QuietServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        # The handshake runs in each connection's thread (on first read), not in accept().
        server.socket = ctx.wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def url(self, service: str) -> str:
        return f"https://127.0.0.1:{self.port}/roc/{service}"

    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop listening and cut every open connection (an AMC going down)."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._server = None
        with self._lock:
            still_open = list(self._open)
        for sock in still_open:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def count(self, exchange_id: str) -> int:
        """How many times the exchange *exchange_id* reached this AMC."""
        return sum(1 for r in self.received if r.headers.get("x-roc-echange") == exchange_id)

    def counts(self) -> Counter[str]:
        """Requests received per exchange id (the relay's X-ROC-Echange header)."""
        return Counter(r.headers.get("x-roc-echange", "") for r in list(self.received))

    # -- threads' helpers ------------------------------------------------------------------

    def _connected(self, sock: socket.socket) -> int:
        with self._lock:
            self.connections += 1
            self._open.add(sock)
            return self.connections

    def _closed(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _answer(self, handler: BaseHTTPRequestHandler, b: Behaviour) -> None:
        if b.mode == "reset":
            _reset(handler)
            return
        if b.mode == "garbage":
            handler.wfile.write(b"this is not HTTP at all\r\n\r\n")
            handler.close_connection = True
            return
        if b.mode == "bad_status":
            handler.wfile.write(b"HTTP/1.1 OK! 200\r\nContent-Length: 0\r\n\r\n")
            handler.close_connection = True
            return
        handler.send_response(b.status)
        handler.send_header("Content-Type", b.content_type)
        declared = len(b.body)
        if b.mode in ("reset_mid_answer", "truncated"):
            declared += 1000
        handler.send_header("Content-Length", str(declared))
        if self.keep_alive_timeout is not None and self.announce_keep_alive:
            handler.send_header("Keep-Alive", f"timeout={self.keep_alive_timeout:g}")
        handler.end_headers()
        if b.mode == "reset_mid_answer":
            handler.wfile.write(b.body[: len(b.body) // 2])
            handler.wfile.flush()
            time.sleep(0.05)
            _reset(handler)
            return
        handler.wfile.write(b.body)
        if b.mode in ("close", "truncated"):
            handler.wfile.flush()
            handler.close_connection = True


def _reset(handler: BaseHTTPRequestHandler) -> None:
    """Close with a TCP reset (SO_LINGER 0): the peer sees ECONNRESET, not a clean end."""
    handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    handler.connection.close()
    handler.close_connection = True


class _QuietServer(ThreadingHTTPServer):
    """No traceback on stderr for failed handshakes and connections cut by the peer."""

    #: Room for bursts of new connections (socketserver's default backlog is 5).
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass
