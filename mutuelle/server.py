"""The simulator's web resources: ``/roc/<SERVICE>`` over TLS, health and admin API on the
admin port.

Thin glue: the resource reads the request and the establishment (client certificate, or the
relay's ``X-ROC-Emetteur-Finess`` header), hands the bytes to ``Simulator.handle`` and writes
the reply, playing the technical faults that need time or the connection (late answer,
timeout, reset); one structured log line per exchange (no personal data).
"""

from __future__ import annotations

import json
import traceback
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from mutuelle.admin import AdminApi
from mutuelle.sandbox import MemoryStore
from mutuelle.simulator import DEFAULT_MAX_BODY_BYTES, Reply, Simulator, sandbox_name
from mutuelle.storage import ISandbox, ISandboxStore, StorageUnavailable
from mutuelle.trainees import BadTrainee, trainee_of_body, trainee_sandbox
from mutuelle.training import PREFIX as TRAINING_PREFIX
from mutuelle.training import TrainingView
from piano.web import HealthResource, QuietSite
from roc.certificates import finess_from_certificate
from roc.identifiers import finess_error

#: Header the relay adds upstream: the FINESS of the establishment that sent the exchange.
SENDER_HEADER = b"x-roc-emetteur-finess"
#: ``/bac/<FINESS>/roc/<SERVICE>`` names a sandbox in the path (``bac à sable``).
SANDBOX_PREFIX = b"bac"


class RocResource(Resource):
    """The whole public site: ``/roc/<SERVICE>``, and a SOAP 404 fault for any other path."""

    isLeaf = True
    log = Logger()

    def __init__(
        self, simulator: Simulator, clock: IReactorTime, store: ISandboxStore | None = None
    ) -> None:
        super().__init__()
        self.simulator = simulator
        self.clock = clock
        self.store: ISandboxStore = store if store is not None else MemoryStore(simulator.sandboxes)
        self.training = TrainingView(self.store, simulator.catalogue)

    def render(self, request: Request) -> bytes | int:
        segments = request.postpath or []
        if segments and segments[0] == TRAINING_PREFIX:
            # /formation/<FINESS>: the trainers' view, by the client certificate only
            view: bytes | int = self.training.render(
                request, segments[1:], certificate_finess(request)
            )
            return view
        prefix: str | None = None
        trainee: str | None = None
        if len(segments) in (4, 5) and segments[0] == SANDBOX_PREFIX:
            # /bac/<FINESS>[/<trainee>]/roc/<SERVICE>: the sandbox named in the path (see
            # establishment_of), and a trainee's within it (mutuelle.trainees)
            prefix = segments[1].decode("ascii", "replace")
            if len(segments) == 5:
                trainee = segments[2].decode("ascii", "replace")
            segments = segments[len(segments) - 2 :]
        on_roc_path = len(segments) == 2 and segments[0] == b"roc"
        service = segments[1].decode("ascii", "replace") if on_roc_path else ""
        method = (request.method or b"").decode("ascii", "replace")
        content_type = _header(request, b"content-type")
        soap_action = _header(request, b"soapaction")
        body = request.content.read() if request.content is not None else b""
        establishment = establishment_of(request, prefix)
        via_relay = came_through_relay(request, prefix)

        def play(sandbox: ISandbox) -> Reply:
            return self.simulator.handle_in(
                sandbox, service, method, content_type, soap_action, body, via_relay
            )

        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        try:
            trainee = trainee_of_body(body) or trainee
            name = trainee_sandbox(sandbox_name(establishment), trainee)
        except BadTrainee as bad:
            self._respond(request, self.simulator.bad_trainee(service, content_type, str(bad)))
            return NOT_DONE_YET
        answered = self.store.transact(name, play)
        answered.addErrback(self._failed, service, content_type)
        answered.addCallback(lambda reply: None if gone else self._respond(request, reply))
        answered.addErrback(lambda failure: self.log.failure("Writing a reply failed", failure))
        return NOT_DONE_YET

    def _failed(self, failure: Failure, service: str, content_type: str | None) -> Reply:
        """The fault answering an exchange the storage or the simulator failed on."""
        if failure.check(StorageUnavailable):
            self.log.warn(
                "Sandbox storage unavailable on {service}: {reason}",
                service=service or "-",
                reason=failure.getErrorMessage(),
            )
            return self.simulator.storage_unavailable(service, content_type)
        tb = failure.getTracebackObject()
        frame = traceback.extract_tb(tb)[-1] if tb is not None else None
        self.log.error(
            "Simulator defect on {service}: {error_type} at {location}",
            service=service or "-",
            error_type=failure.type.__name__ if failure.type else "-",
            location="-" if frame is None else f"{frame.filename}:{frame.lineno}",
        )
        return self.simulator.internal_error(service, content_type)

    def _respond(self, request: Request, reply: Reply) -> None:
        self._log(reply)
        if reply.delay > 0:
            call = self.clock.callLater(reply.delay, self._deliver, request, reply)
            request.notifyFinish().addErrback(_cancel, call)
            return
        self._deliver(request, reply)

    def _start(self, request: Request, reply: Reply) -> None:
        request.setResponseCode(reply.status)
        request.setHeader(b"content-type", reply.content_type.encode("ascii"))
        for name, value in reply.headers:
            request.setHeader(name.encode("ascii"), value.encode("ascii"))

    def _deliver(self, request: Request, reply: Reply) -> None:
        """Write *reply*: as is, or dropped, or cut short (technical faults)."""
        transport: Any = request.channel.transport if request.channel else None
        if reply.drop:
            if transport is not None:
                transport.loseConnection()
            return
        self._start(request, reply)
        if reply.abort_after is not None:
            request.setHeader(b"content-length", str(len(reply.body)).encode("ascii"))
            request.write(reply.body[: reply.abort_after])
            if transport is not None:
                self.clock.callLater(0.05, transport.abortConnection)
            return
        request.setHeader(b"content-length", str(len(reply.body)).encode("ascii"))
        request.write(reply.body)
        request.finish()

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


def _cancel(failure: Failure, call: IDelayedCall) -> None:
    """The client went away before a delayed reply: forget it."""
    if call.active():
        call.cancel()


def establishment_of(request: Request, path_prefix: str | None = None) -> str | None:
    """The FINESS whose sandbox this exchange belongs to, or None (anonymous).

    The client certificate's FINESS when it names one (an establishment calling directly);
    otherwise the relay's ``X-ROC-Emetteur-Finess`` header, then a ``/bac/<FINESS>`` path
    prefix (an annuaire entry per establishment, or a tool without either). A certificate
    that names an establishment can never reach another one's sandbox.
    """
    cached = certificate_finess(request)
    if cached is not None:
        return cached
    header = _header(request, SENDER_HEADER)
    if header is not None and finess_error(header.strip()) is None:
        return header.strip()
    if path_prefix is not None and finess_error(path_prefix) is None:
        return path_prefix
    return None


def came_through_relay(request: Request, path_prefix: str | None = None) -> bool:
    """Whether the sandbox was named by the relay's ``X-ROC-Emetteur-Finess`` header: a
    client certificate naming no establishment (the relay's) and the header present."""
    if certificate_finess(request) is not None or path_prefix is not None:
        return False
    header = _header(request, SENDER_HEADER)
    return header is not None and finess_error(header.strip()) is None


def certificate_finess(request: Request) -> str | None:
    """The FINESS the client certificate names (kept on the connection), or None."""
    channel: Any = request.channel
    cached = getattr(channel, "_mutuelle_finess", False)
    if cached is False:
        transport = getattr(channel, "transport", None)
        peer = getattr(transport, "getPeerCertificate", lambda: None)()
        cached = None if peer is None else finess_from_certificate(peer.to_cryptography())
        channel._mutuelle_finess = cached
    return None if cached is None else str(cached)


def _header(request: Request, name: bytes) -> str | None:
    value = request.getHeader(name)
    return None if value is None else value.decode("latin-1")


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

    def __init__(
        self,
        simulator: Simulator,
        reactor: IReactorTime,
        store: ISandboxStore | None = None,
    ) -> None:
        # SOAP bodies are never HTML form posts: skip the costly form parsing of POSTs.
        super().__init__(
            RocResource(simulator, reactor, store), reactor=reactor, parsePOSTFormSubmission=False
        )
        self.max_body_bytes = simulator.max_body_bytes
        self.displayTracebacks = False


def roc_site(
    simulator: Simulator, reactor: IReactorTime, store: ISandboxStore | None = None
) -> Site:
    """The public site: ``/roc/<SERVICE>``; *reactor* runs its connection timeouts.

    Exchanges play in *store*'s sandboxes (default: the simulator's own, in memory).
    """
    return RocSite(simulator, reactor, store)


class AdminResource(Resource):
    """``/__admin/...``: the JSON admin API (``mutuelle.admin``)."""

    isLeaf = True
    log = Logger()

    def __init__(self, api: AdminApi) -> None:
        super().__init__()
        self.api = api

    def render(self, request: Request) -> bytes | int:
        method = (request.method or b"").decode("ascii", "replace")
        segments = [s.decode("utf-8", "replace") for s in request.postpath or [] if s]
        query = {
            k.decode("utf-8", "replace"): v[0].decode("utf-8", "replace")
            for k, v in (request.args or {}).items()
            if v
        }
        raw = request.content.read() if request.content is not None else b""
        body: Any = None
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                return self._json(request, 400, {"error": "body: not JSON"})
        answered = self.api.handle(method, segments, query, body)

        def write(answer: tuple[int, Any]) -> None:
            self._finish(request, self._json(request, *answer))

        answered.addCallback(write)
        answered.addErrback(self._defect, request)
        return NOT_DONE_YET

    def _defect(self, failure: Failure, request: Request) -> None:
        self.log.failure("Admin API defect", failure)
        self._finish(request, self._json(request, 500, {"error": "internal error"}))

    @staticmethod
    def _finish(request: Request, body: bytes) -> None:
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        request.write(body)
        request.finish()

    @staticmethod
    def _json(request: Request, status: int, document: Any) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8") + b"\n"


class ReadyResource(Resource):
    """``/readyz``: 200 while the sandboxes' storage answers, 503 otherwise (load balancers)."""

    isLeaf = True
    log = Logger()

    def __init__(self, store: ISandboxStore) -> None:
        super().__init__()
        self.store = store

    def render_GET(self, request: Request) -> int:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")

        def answer(ready: bool) -> None:
            request.setResponseCode(200 if ready else 503)
            body = b"ok\n" if ready else b"storage unavailable\n"
            request.setHeader(b"content-length", str(len(body)).encode("ascii"))
            request.write(body)
            request.finish()

        def unready(failure: Failure) -> bool:
            self.log.warn("Not ready: {reason}", reason=failure.getErrorMessage())
            return False

        self.store.ping().addCallbacks(lambda _: True, unready).addCallback(answer)
        return NOT_DONE_YET


def admin_site(
    reactor: IReactorTime | None = None,
    api: AdminApi | None = None,
    store: ISandboxStore | None = None,
) -> Site:
    """The admin site (loopback): ``/healthz``, and given them ``/readyz`` (*store*) and
    ``/__admin/...`` (*api*)."""
    root = Resource()
    root.putChild(b"healthz", HealthResource())
    if store is not None:
        root.putChild(b"readyz", ReadyResource(store))
    if api is not None:
        root.putChild(b"__admin", AdminResource(api))
    site = QuietSite(root, reactor=reactor)
    site.displayTracebacks = False
    return site
