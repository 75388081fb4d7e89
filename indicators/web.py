"""HTTP resources: pages by reader identity, and the admin endpoint. Thin: rendering is pure."""

from __future__ import annotations

import re
from collections.abc import Callable

from cryptography import x509
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from indicators import render
from indicators.access import Identity
from indicators.compute import Snapshot
from piano.web import HealthResource

_ESTABLISHMENT = re.compile(r"^(?P<finess>[0-9A-B]{9})(?P<ext>\.json|\.csv)?$")
_TYPES = {
    "": b"text/html; charset=utf-8",
    ".json": b"application/json",
    ".csv": b"text/csv; charset=utf-8",
}


def peer_certificate(request: Request) -> x509.Certificate | None:
    transport = getattr(getattr(request, "channel", None), "transport", None)
    peer = getattr(transport, "getPeerCertificate", lambda: None)()
    return None if peer is None else peer.to_cryptography()


class PagesResource(Resource):
    """``/``, ``/establishments/<FINESS>[.json|.csv]`` and ``/agency[.json|.csv]``."""

    isLeaf = True
    log = Logger()

    def __init__(
        self,
        snapshot: Callable[[], Snapshot | None],
        identify: Callable[[x509.Certificate | None], Identity],
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._snapshot = snapshot
        self._identify = identify

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(
            b"Content-Security-Policy", b"default-src 'none'; style-src 'unsafe-inline'"
        )
        identity = self._identify(peer_certificate(request))
        path = [p.decode("ascii", "replace") for p in request.postpath or () if p]
        if not identity.known:
            return self._refuse(
                request, 403, "Forbidden", "This certificate names no establishment."
            )
        if not path:
            target = (
                b"/agency" if identity.agency else f"/establishments/{identity.finess}".encode()
            )
            request.redirect(target)
            return b""
        snapshot = self._snapshot()
        if path[0] == "establishments" and len(path) == 2:
            match = _ESTABLISHMENT.match(path[1])
            if match is None:
                return self._refuse(request, 404, "Not found", "No such page.")
            finess, ext = match["finess"], match["ext"] or ""
            if not identity.may_read(finess):
                self.log.info(
                    "indicators refused: {reader} asked for {finess}",
                    reader=identity.finess,
                    finess=finess,
                )
                return self._refuse(
                    request, 403, "Forbidden", "An establishment may read its own indicators only."
                )
            if snapshot is None:
                return self._not_ready(request)
            report = snapshot.report(finess)
            request.setHeader(b"Content-Type", _TYPES[ext])
            if ext == ".json":
                return render.to_json(render.report_document(report, snapshot))
            if ext == ".csv":
                return render.to_csv([report])
            return render.report_html(report, snapshot)
        if len(path) == 1 and path[0] in ("agency", "agency.json", "agency.csv"):
            if not identity.agency:
                return self._refuse(
                    request, 403, "Forbidden", "The agency view needs an agency certificate."
                )
            if snapshot is None:
                return self._not_ready(request)
            ext = path[0][len("agency") :]
            request.setHeader(b"Content-Type", _TYPES[ext])
            if ext == ".json":
                return render.to_json(render.agency_document(snapshot))
            if ext == ".csv":
                return render.to_csv(snapshot.reports())
            return render.agency_html(snapshot)
        return self._refuse(request, 404, "Not found", "No such page.")

    def _refuse(self, request: Request, status: int, title: str, message: str) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", _TYPES[""])
        return render.message_html(title, message)

    def _not_ready(self, request: Request) -> bytes:
        request.setHeader(b"Retry-After", b"10")
        return self._refuse(
            request, 503, "Not ready", "Indicators have not been read from Prometheus yet."
        )


class _Metrics(Resource):
    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self._registry)


def admin_resource(registry: CollectorRegistry, ready: Callable[[], bool]) -> Resource:
    """/healthz (the process answers), /readyz (a snapshot is there), /metrics."""
    root = Resource()
    root.putChild(b"healthz", HealthResource())
    root.putChild(b"readyz", HealthResource(ready))
    root.putChild(b"metrics", _Metrics(registry))
    return root
