"""The plain-HTTP pieces every service's sites use: a quiet site, health probes, listening.

Written once for the relay's admin site, Mutuelle ANS's sites and the indicators' sites.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from piano.config import ConfigError
from piano.reactors import IServiceReactor


class QuietSite(Site):
    """A Site that logs neither its start nor each request: services log what matters
    themselves (exchanges, refusals), and probes and scrapes would drown it."""

    noisy = False

    def log(self, request: Any) -> None:
        pass


class _Discard:
    """Where a refused request's body goes: nowhere."""

    def write(self, data: bytes) -> None:
        pass

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def read(self, size: int = -1) -> bytes:
        return b""

    def close(self) -> None:
        pass


class BoundedRequest(Request):
    """A request whose body may not exceed ``max_body_bytes``: a larger declared body, or a
    chunked one (its size unknown), is answered 413 and the connection closed before the body
    is read or the resource called (Twisted itself reads any body whole)."""

    max_body_bytes = 64 * 1024
    _refused = False

    def gotLength(self, length: int | None) -> None:
        chunked = self.requestHeaders.hasHeader(b"transfer-encoding")
        if not chunked and (length is None or length <= self.max_body_bytes):
            super().gotLength(length)  # type: ignore[no-untyped-call]
            return
        self._refused = True
        self.content = _Discard()
        transport = self.channel.transport
        assert transport is not None  # called while the headers arrive
        transport.write(
            b"HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n"
        )
        transport.loseConnection()

    def process(self) -> None:
        if not self._refused:
            super().process()  # type: ignore[no-untyped-call]


class HealthResource(Resource):
    """``/healthz`` (no *ready*: 200 while the process serves) or ``/readyz`` (503 ``not
    ready`` while *ready* says no): plain text, never cached, for load balancers and systemd."""

    isLeaf = True

    def __init__(self, ready: Callable[[], bool] | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._ready = ready

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        if self._ready is not None and not self._ready():
            request.setResponseCode(503)
            return b"not ready\n"
        return b"ok\n"


def listen(
    description: str, factory: Any, reactor: IServiceReactor, path: str, parent: MultiService
) -> None:
    """Serve *factory* on the endpoint *description* (configuration key *path*) under *parent*."""
    try:
        service = strports.service(description, factory, reactor=reactor)
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{path}: not a usable endpoint ({exc})") from None
    service.setServiceParent(parent)
