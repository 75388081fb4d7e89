"""HTTP resources: pages by reader identity, and the admin endpoint. Thin: rendering is pure."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request

from indicators import agency_page, documents, establishment_page, html, promotion
from indicators.access import Identity
from indicators.compute import Snapshot
from indicators.raccordement import entities
from indicators.raccordement_page import change_html, refusal_html
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


_NO_PAGE = "Cette page n'existe pas."


def _extension(path: list[str]) -> str:
    """The format a URL asks for, read from its last segment whatever else is wrong with it."""
    last = path[-1] if path else ""
    for ext in (".json", ".csv"):
        if last.endswith(ext):
            return ext
    return ""


@dataclass(frozen=True, slots=True)
class PromotionSettings:
    """What the promotion page prints: the relays' configuration path and their reload."""

    relay_config: str = "/etc/piano/rpn.toml"
    reload_command: str = "systemctl reload piano-rpn"


def _security_headers(request: Request) -> None:
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(
        b"Content-Security-Policy",
        b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        b"frame-ancestors 'none'",
    )


class PagesResource(Resource):
    """``/``, ``/establishments/<FINESS>[.json|.csv]``, ``/agency[.json|.csv]``, and the
    agency's ``POST /agency/promotion`` (which prints a change and makes none)."""

    isLeaf = True
    log = Logger()

    def __init__(
        self,
        snapshot: Callable[[], Snapshot | None],
        failing_since: Callable[[], float | None],
        identify: Callable[[x509.Certificate | None], Identity],
        promotion: PromotionSettings | None = None,
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._snapshot = snapshot
        self._failing_since = failing_since
        self._identify = identify
        self._promotion = promotion or PromotionSettings()
        #: Checks "now" (the watch's end); without a clock, the snapshot's reading time.
        self._clock = clock

    def render_POST(self, request: Request) -> bytes:
        _security_headers(request)
        identity = self._identify(peer_certificate(request))
        path = [p.decode("ascii", "replace") for p in request.postpath or () if p]
        if path != ["agency", "promotion"]:
            return self._refuse(request, "", 405, "Méthode non permise", _NO_PAGE)
        if not identity.agency:
            return self._refuse(
                request, "", 403, "Accès refusé", "Seule l'agence prépare un changement d'état."
            )
        snapshot = self._snapshot()
        if snapshot is None:
            return self._not_ready(request, "")
        form = request.args or {}

        def field(name: bytes) -> str | None:
            values = form.get(name) or []
            if len(values) != 1:
                return None
            try:
                return str(values[0].decode("utf-8"))
            except UnicodeDecodeError:
                return None

        finess, state, reason = field(b"finess"), field(b"state"), field(b"reason")
        agent = identity.name or ""
        problem = None
        if finess is None or state is None or reason is None:
            problem = "formulaire incomplet : entité juridique, nouvel état et raison sont requis"
        else:
            problem = promotion.text_problem(
                reason, "la raison", promotion.MAX_REASON
            ) or promotion.text_problem(
                agent, "le nom de l'agent (certificat)", promotion.MAX_AGENT
            )
        request.setHeader(b"Content-Type", _TYPES[""])
        if problem is not None:
            request.setResponseCode(400)
            return refusal_html(problem)
        assert finess is not None and state is not None and reason is not None
        entity = entities(snapshot).get(finess)
        now = snapshot.generated_at if self._clock is None else self._clock.seconds()
        if entity is None:
            problem = (
                f"le FINESS {finess} n'est pas une entité juridique inscrite auprès des relais"
            )
        else:
            problem = promotion.move_problem(entity, state, now, snapshot.observations.watch_days)
        if problem is not None or entity is None:
            request.setResponseCode(409)
            return refusal_html(problem or "")
        settings = self._promotion
        self.log.info(
            "promotion prepared: {finess} {before} -> {after}",
            finess=finess,
            before=entity.lifecycle.state,
            after=state,
        )
        change = promotion.change(
            entity, state, agent, reason, now, settings.relay_config, settings.reload_command
        )
        return change_html(entity, state, change, agent)

    def render_GET(self, request: Request) -> bytes:
        _security_headers(request)
        identity = self._identify(peer_certificate(request))
        path = [p.decode("ascii", "replace") for p in request.postpath or () if p]
        ext = _extension(path)
        if not identity.known:
            return self._refuse(
                request, ext, 403, "Accès refusé", "Ce certificat ne désigne aucun établissement."
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
                return self._refuse(request, ext, 404, "Page introuvable", _NO_PAGE)
            finess = match["finess"]
            if not identity.may_read(finess):
                self.log.info(
                    "indicators refused: {reader} asked for {finess}",
                    reader=identity.finess,
                    finess=finess,
                )
                return self._refuse(
                    request,
                    ext,
                    403,
                    "Accès refusé",
                    "Un établissement ne lit que ses propres indicateurs.",
                )
            if snapshot is None:
                return self._not_ready(request, ext)
            report = snapshot.report(finess)
            if not report.known:
                message = (
                    f"Le FINESS {finess} n'est pas inscrit auprès des relais ROC, et aucun "
                    "échange ni certificat n'a été vu dans la période."
                )
                if ext != "":
                    return self._refuse(request, ext, 404, "FINESS inconnu", message)
                request.setResponseCode(404)
                request.setHeader(b"Content-Type", _TYPES[""])
                return establishment_page.unknown_html(finess)
            request.setHeader(b"Content-Type", _TYPES[ext])
            if ext == ".json":
                return documents.to_json(documents.report_document(report, snapshot))
            if ext == ".csv":
                return documents.to_csv([report])
            return establishment_page.report_html(report, snapshot, self._failing_since())
        if len(path) == 1 and path[0] in ("agency", "agency.json", "agency.csv"):
            if not identity.agency:
                return self._refuse(
                    request,
                    ext,
                    403,
                    "Accès refusé",
                    "La vue de l'agence demande un certificat de l'agence.",
                )
            if snapshot is None:
                return self._not_ready(request, ext)
            request.setHeader(b"Content-Type", _TYPES[ext])
            if ext == ".json":
                return documents.to_json(documents.agency_document(snapshot))
            if ext == ".csv":
                return documents.to_csv(snapshot.reports())
            return agency_page.agency_html(snapshot, self._failing_since())
        return self._refuse(request, ext, 404, "Page introuvable", _NO_PAGE)

    def _refuse(self, request: Request, ext: str, status: int, title: str, message: str) -> bytes:
        """A refusal in the format asked for: JSON for a .json URL, else an HTML page (CSV
        readers are people with a spreadsheet: they get the page too)."""
        request.setResponseCode(status)
        if ext == ".json":
            request.setHeader(b"Content-Type", _TYPES[".json"])
            return documents.to_json(documents.error_document(status, message))
        request.setHeader(b"Content-Type", _TYPES[""])
        return html.message_html(title, message)

    def _not_ready(self, request: Request, ext: str) -> bytes:
        request.setHeader(b"Retry-After", b"10")
        return self._refuse(
            request,
            ext,
            503,
            "Indicateurs pas encore prêts",
            "Les indicateurs n'ont pas encore pu être lus dans la base des mesures "
            "(Prometheus) ; réessayer dans quelques instants.",
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
