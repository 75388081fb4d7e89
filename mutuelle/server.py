"""The simulator's web resources: ``/roc/<SERVICE>`` over TLS, ``/healthz`` on the admin port.

Thin glue: the resource reads the request, hands the bytes to ``Simulator.handle`` and writes
the reply; one structured log line per exchange (no personal data).
"""

from __future__ import annotations

import traceback

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from mutuelle.simulator import DEFAULT_MAX_BODY_BYTES, Reply, Simulator


class RocResource(Resource):
    """The whole public site: ``/roc/<SERVICE>``, and a SOAP 404 fault for any other path."""

    isLeaf = True
    log = Logger()

    def __init__(self, simulator: Simulator) -> None:
        super().__init__()
        self.simulator = simulator

    def render(self, request: Request) -> bytes:
        segments = request.postpath or []
        on_roc_path = len(segments) == 2 and segments[0] == b"roc"
        service = segments[1].decode("ascii", "replace") if on_roc_path else ""
        method = (request.method or b"").decode("ascii", "replace")
        content_type = _header(request, b"content-type")
        soap_action = _header(request, b"soapaction")
        body = request.content.read() if request.content is not None else b""
        try:
            reply = self.simulator.handle(service, method, content_type, soap_action, body)
        except Exception as exc:  # noqa: BLE001 - a defect: answer a fault, log where it was
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            self.log.error(
                "Simulator defect on {service}: {error_type} at {location}",
                service=service or "-",
                error_type=type(exc).__name__,
                location=f"{frame.filename}:{frame.lineno}",
            )
            reply = self.simulator.internal_error(service, content_type)
        self._log(reply)
        request.setResponseCode(reply.status)
        request.setHeader(b"content-type", reply.content_type.encode("ascii"))
        for name, value in reply.headers:
            request.setHeader(name.encode("ascii"), value.encode("ascii"))
        return reply.body

    def _log(self, reply: Reply) -> None:
        r = reply.record
        self.log.info(
            "{service} exchange {exchange_id} for AMC {amc}: {outcome}",
            service=r.service,
            exchange_id=r.exchange_id or "-",
            amc=r.amc or "-",
            outcome=r.outcome,
            case=r.case or "-",
            roc_version=r.roc_version or "-",
            soap_version=r.soap_version,
            finess=r.sender_finess or "-",
            http_status=r.http_status,
            detail=r.detail,
        )


def _header(request: Request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return None if value is None else value.decode("latin-1")


class HealthResource(Resource):
    """``/healthz``: 200 while the process serves (for load balancers and systemd checks)."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"ok\n"


class QuietSite(Site):
    """A Site without the combined access log: ``RocResource`` logs each exchange itself."""

    noisy = False

    def log(self, request: http.Request) -> None:
        pass


class BoundedRequest(Request):
    """Keeps at most ``max_body_bytes + 1`` bytes of a body; the rest is read and dropped.

    The simulator then sees a body over the limit and answers ``MUT-413-TAILLE``, without a
    large upload ever filling memory or a temporary file.
    """

    _kept = 0

    def handleContentChunk(self, data: bytes) -> None:
        site = getattr(self.channel, "site", None)  # set by Site.buildProtocol
        limit: int = getattr(site, "max_body_bytes", DEFAULT_MAX_BODY_BYTES)
        room = limit + 1 - self._kept
        if room > 0:
            chunk = data[:room]
            self._kept += len(chunk)
            super().handleContentChunk(chunk)


class RocSite(QuietSite):
    """The public site, bounding request bodies to the simulator's limit."""

    requestFactory = BoundedRequest

    def __init__(self, simulator: Simulator, reactor: IReactorTime | None = None) -> None:
        super().__init__(RocResource(simulator), reactor=reactor)
        self.max_body_bytes = simulator.max_body_bytes
        self.displayTracebacks = False


def roc_site(simulator: Simulator, reactor: IReactorTime | None = None) -> Site:
    """The public site: ``/roc/<SERVICE>``; *reactor* runs its connection timeouts."""
    return RocSite(simulator, reactor)


def admin_site(reactor: IReactorTime | None = None) -> Site:
    """The admin site (loopback): ``/healthz`` for now."""
    root = Resource()
    root.putChild(b"healthz", HealthResource())
    site = QuietSite(root, reactor=reactor)
    site.displayTracebacks = False
    return site
