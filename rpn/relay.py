"""The relay's HTTP front: limits, authorisation, routing, forwarding, relaying back.

``Relay.handle`` runs one exchange: the client's establishment comes from its certificate,
the routing key from the message header (the body is never parsed or re-serialised), the AMC
endpoint from the annuaire, and the answer from the AMC's upstream, relayed as received.
Every refusal is a SOAP Fault with the relay's error code; every exchange is recorded once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from roc.errors import RpnError, RpnFailure
from roc.model import RELAYED_SERVICES, RoutingKey, Service, SoapVersion, soap_action
from roc.routing import IRoutingExtractor, RequestView, soap_version_of
from roc.soap import content_type, fault_document
from roc.tls import finess_from_certificate
from rpn.interfaces import IAnnuaire
from rpn.stats import ExchangeRecord, IStatsSink, answer_outcome, business_code
from rpn.upstream import UpstreamAnswer, UpstreamRegistry

_SOAP_TYPES = (b"text/xml", b"application/soap+xml")
_REASONS = {
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    415: b"Unsupported Media Type",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    """The parts of the configuration the exchange path reads; swapped whole on reload."""

    paths: tuple[str, ...]
    allowed: frozenset[str]
    check_sender: bool
    finess_attribute: str
    max_body_bytes: int
    read_timeout: float
    #: Exchanges one establishment may have in flight at once (429 above).
    max_in_flight_per_establishment: int = 64


def _first(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _path_matches(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


#: Seconds a refused client has to acknowledge the TLS close before its connection is aborted.
_ABORT_AFTER = 2.0


class RelayChannel(HTTPChannel):
    """HTTPChannel whose request line must also arrive within the read timeout.

    twisted.web creates a request (and the relay its read deadline) only once the request
    line is complete, and resets the idle timeout on every byte: without this, a client
    dribbling a request line one byte at a time would hold its connection forever.
    """

    site: RelaySite
    _line_deadline: IDelayedCall | None = None
    _abort_call: IDelayedCall | None = None

    def dataReceived(self, data: bytes) -> None:
        if self._line_deadline is None and not self.requests:
            self._line_deadline = self.site.clock.callLater(
                self.site.policy().read_timeout, self._line_too_slow
            )
        super().dataReceived(data)
        if self.requests:
            self._cancel_line_deadline()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_line_deadline()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        super().connectionLost(reason)

    def _cancel_line_deadline(self) -> None:
        if self._line_deadline is not None and self._line_deadline.active():
            self._line_deadline.cancel()
        self._line_deadline = None

    def _line_too_slow(self) -> None:
        self._line_deadline = None
        self.close_with_fault(
            RpnError.REQUEST_TIMEOUT,
            "request line not received within the read timeout",
            SoapVersion.SOAP11,
        )

    def close_with_fault(self, error: RpnError, detail: str, version: SoapVersion) -> None:
        """Answer *error* at once and close, whatever the client sends meanwhile."""
        body = fault_document(error, detail, version=version)
        status = error.http_status
        head = (
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n"
            % (status, _REASONS.get(status, b"Error"), content_type(version).encode(), len(body))
        )
        if self.transport is not None and self._abort_call is None:
            self.transport.write(head + body)
            # HTTPChannel.loseConnection unregisters the channel as the transport's producer
            # first: TLS never starts its close while a producer is registered, and the
            # client's every byte would keep resetting the idle timeout.
            self.loseConnection()
            self._abort_call = self.site.clock.callLater(_ABORT_AFTER, self.forceAbortClient)
        self.site.on_early_refusal(error, status, len(body))


class RelayRequest(Request):
    """A request refused early when its body is too large or arrives too slowly."""

    refused = False
    _received = 0
    _read_deadline: IDelayedCall | None = None

    def __init__(self, channel: Any, queued: Any = None) -> None:
        super().__init__(channel, queued)
        site: RelaySite = channel.site
        self._read_deadline = site.clock.callLater(site.policy().read_timeout, self._too_slow)

    def _relay_site(self) -> RelaySite:
        site: RelaySite = self.channel.site  # type: ignore[attr-defined]
        return site

    def gotLength(self, length: int | None) -> None:
        self.content = BytesIO()
        if length is not None and length > self._relay_site().policy().max_body_bytes:
            self._refuse(RpnError.BODY_TOO_LARGE, "declared Content-Length over the limit")

    def handleContentChunk(self, data: bytes) -> None:
        if self.refused:
            return
        self._received += len(data)
        if self._received > self._relay_site().policy().max_body_bytes:
            self._refuse(RpnError.BODY_TOO_LARGE, "body over the limit")
            return
        self.content.write(data)  # type: ignore[union-attr]

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        self._cancel_deadline()
        if self.refused:
            return
        super().requestReceived(command, path, version)

    def connectionLost(self, reason: Failure) -> None:
        self._cancel_deadline()
        super().connectionLost(reason)

    def _cancel_deadline(self) -> None:
        if self._read_deadline is not None and self._read_deadline.active():
            self._read_deadline.cancel()
        self._read_deadline = None

    def _too_slow(self) -> None:
        self._read_deadline = None
        self._refuse(RpnError.REQUEST_TIMEOUT, "request not received within the read timeout")

    def _refuse(self, error: RpnError, detail: str) -> None:
        """Answer now with a fault and close: the rest of the body is never read."""
        if self.refused:
            return
        self.refused = True
        # Twisted would otherwise answer "100 Continue" after this refusal.
        self.requestHeaders.removeHeader(b"expect")
        version = soap_version_of(_first(self.getHeader(b"content-type")))
        channel: RelayChannel = self.channel  # type: ignore[assignment]
        channel.close_with_fault(error, detail, version)


class RelaySite(Site):
    """twisted.web's Site with the relay's request class and limits."""

    requestFactory = RelayRequest  # type: ignore[assignment]
    # HTTP/1.1 only (no ALPN is offered), so no _GenericHTTPChannelProtocol wrapper.
    protocol = RelayChannel  # type: ignore[assignment]

    def __init__(
        self,
        resource: RelayResource,
        clock: IReactorTime,
        policy: Callable[[], RelayPolicy],
        on_early_refusal: Callable[[RpnError, int, int], None],
        idle_timeout: float,
    ) -> None:
        # A SOAP body is never a form upload: skip twisted.web's Content-Type parsing of every
        # POST (the largest item of the relay's profile, bench/ and docs/performance.md).
        super().__init__(
            resource, timeout=idle_timeout, reactor=clock, parsePOSTFormSubmission=False
        )
        self.clock = clock
        self.policy = policy
        self.on_early_refusal = on_early_refusal
        self.noisy = False

    def getContentFile(self, length: int | None) -> BytesIO:
        return BytesIO()

    def log(self, request: Any) -> None:
        """The relay writes its own access log without personal data."""


class Relay:
    """One exchange from an establishment to an AMC and back."""

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        policy: RelayPolicy,
        extractor: IRoutingExtractor,
        annuaire: IAnnuaire,
        upstreams: UpstreamRegistry,
        stats: IStatsSink,
    ) -> None:
        self.clock = clock
        self.policy = policy
        self.extractor = extractor
        self.annuaire = annuaire
        self.upstreams = upstreams
        self.stats = stats
        self.in_flight = 0
        #: Exchanges in flight per registered establishment (only those with some).
        self.in_flight_by_establishment: dict[str, int] = {}
        self.accepting = True
        #: Stopping: requests on open connections are still served, each answer closing its
        #: connection so that clients move to another process or host.
        self.draining = False
        self._idle_waiters: list[Deferred[None]] = []

    def wait_idle(self) -> Deferred[None]:
        """Fires once no exchange is in flight (at once if none is)."""
        if self.in_flight == 0:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._idle_waiters.append(waiter)
        return waiter

    # -- early refusals (before any routing) ---------------------------------------------

    def record_early_refusal(self, error: RpnError, status: int, size: int) -> None:
        self.log.info("request refused early: {code}", code=error.code)
        self.stats.record(ExchangeRecord(code=error.code, status=status, bytes_out=size))

    # -- the exchange --------------------------------------------------------------------

    def handle(self, request: Request) -> None:
        started = self.clock.seconds()
        # No "Server: TwistedWeb/x.y" (version disclosure, and a second Server header next
        # to the AMC's own): the relay is transparent.
        request.responseHeaders.removeHeader(b"server")
        record = ExchangeRecord()
        body = request.content.getvalue() if isinstance(request.content, BytesIO) else b""
        record.bytes_in = len(body)
        self.in_flight += 1
        version = soap_version_of(_first(request.getHeader(b"content-type")))
        try:
            key = self._admit(request, body, record)
        except RpnFailure as failure:
            self._fault(request, record, failure, version, started)
            return
        finess = record.finess
        held = self.in_flight_by_establishment
        held[finess] = held.get(finess, 0) + 1
        d = Deferred.fromCoroutine(self._exchange(request, body, key, record))
        d.addCallback(self._relay_answer, request, record, started)
        d.addErrback(self._failed, request, record, key.soap_version, started)
        d.addErrback(self._bug, request, record, started)
        d.addBoth(self._release, finess)

    def _release(self, _: object, finess: str) -> None:
        left = self.in_flight_by_establishment[finess] - 1
        if left:
            self.in_flight_by_establishment[finess] = left
        else:
            del self.in_flight_by_establishment[finess]

    async def _exchange(
        self, request: Request, body: bytes, key: RoutingKey, record: ExchangeRecord
    ) -> UpstreamAnswer:
        entry = await self.annuaire.resolve(key.amc)
        record.amc = entry.amc_number
        url = entry.endpoint_for(key.service.value, key.roc_version.value)
        if url is None:
            raise RpnFailure(
                RpnError.SERVICE_NOT_OFFERED, f"{key.service.value} {key.roc_version.value}"
            )
        upstream = self.upstreams.for_amc(entry.amc_number)
        return await upstream.forward(url, body, self._upstream_headers(request, key, record))

    def _admit(self, request: Request, body: bytes, record: ExchangeRecord) -> RoutingKey:
        """Check the request and read its routing key; RpnFailure says why not."""
        if not self.accepting:
            raise RpnFailure(RpnError.SHUTTING_DOWN)
        path = request.path.decode("latin-1")
        if request.method != b"POST":
            if not _path_matches(path, self.policy.paths):
                raise RpnFailure(RpnError.NOT_FOUND)
            request.setHeader(b"Allow", b"POST")
            raise RpnFailure(RpnError.METHOD_NOT_ALLOWED)
        if not _path_matches(path, self.policy.paths):
            raise RpnFailure(RpnError.NOT_FOUND)
        ctype = (request.getHeader(b"content-type") or b"").lower()
        if not ctype.startswith(_SOAP_TYPES):
            raise RpnFailure(RpnError.CONTENT_TYPE)
        finess, expiry = self._identity(request)
        if finess is None:
            raise RpnFailure(RpnError.SENDER_NOT_REGISTERED, "no FINESS in the certificate")
        record.finess = finess
        if finess not in self.policy.allowed:
            raise RpnFailure(RpnError.SENDER_NOT_REGISTERED)
        record.registered = True
        record.certificate_expiry = expiry
        if self.in_flight_by_establishment.get(finess, 0) >= (
            self.policy.max_in_flight_per_establishment
        ):
            raise RpnFailure(RpnError.RATE_LIMITED)
        key = self.extractor.extract(
            RequestView.from_raw(request.path, request.requestHeaders.getAllRawHeaders(), body)
        )
        record.exchange_id = key.exchange_id
        record.service = key.service.value
        record.version = key.roc_version.value
        if key.service is Service.DRE:
            raise RpnFailure(RpnError.DRE_NOT_RELAYED)
        if key.service not in RELAYED_SERVICES:
            raise RpnFailure(RpnError.SERVICE_NOT_OFFERED, f"{key.service.value} is not relayed")
        if self.policy.check_sender and finess not in key.sender_finess:
            raise RpnFailure(RpnError.SENDER_MISMATCH)
        return key

    def _identity(self, request: Request) -> tuple[str | None, float | None]:
        """FINESS and expiry (unix time) of the client certificate, read once per connection."""
        channel: Any = request.channel
        cached = getattr(channel, "_rpn_identity", None)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        peer = getattr(channel.transport, "getPeerCertificate", lambda: None)()
        identity: tuple[str | None, float | None] = (None, None)
        if peer is not None:
            cert = peer.to_cryptography()
            identity = (
                finess_from_certificate(cert, self.policy.finess_attribute),
                cert.not_valid_after_utc.timestamp(),
            )
        channel._rpn_identity = identity
        return identity

    def _upstream_headers(
        self, request: Request, key: RoutingKey, record: ExchangeRecord
    ) -> Headers:
        ctype = request.getHeader(b"content-type") or b"text/xml; charset=utf-8"
        headers = Headers(
            {
                b"Content-Type": [ctype],
                b"User-Agent": [b"PiANO-RPN/0.1"],
                # Validated values only (routing parser, certificate): no CR/LF can get in.
                b"X-ROC-Echange": [key.exchange_id.encode("ascii")],
                b"X-ROC-Emetteur-Finess": [record.finess.encode("ascii")],
            }
        )
        if key.soap_version is SoapVersion.SOAP11:
            headers.setRawHeaders(b"SOAPAction", [f'"{soap_action(key.service)}"'.encode()])
        return headers

    # -- answers -------------------------------------------------------------------------

    def _relay_answer(
        self, answer: UpstreamAnswer, request: Request, record: ExchangeRecord, started: float
    ) -> None:
        record.business_code = business_code(answer.body)
        record.outcome = answer_outcome(answer.status, record.business_code)
        record.status = answer.status
        record.upstream_seconds = answer.seconds
        record.bytes_out = len(answer.body)
        if request._disconnected:
            record.outcome = "client_gone"
        else:
            self._close_if_draining(request)
            request.setResponseCode(answer.status)
            for name, value in answer.headers:
                request.responseHeaders.addRawHeader(name, value)
            request.setHeader(b"X-ROC-Echange", record.exchange_id.encode("ascii"))
            request.setHeader(b"Content-Length", b"%d" % len(answer.body))
            request.write(answer.body)
            request.finish()
        self._done(record, started)

    def _failed(
        self,
        failure: Failure,
        request: Request,
        record: ExchangeRecord,
        version: SoapVersion,
        started: float,
    ) -> None:
        failure.trap(RpnFailure)
        assert isinstance(failure.value, RpnFailure)
        self._fault(request, record, failure.value, version, started)

    def _bug(
        self, failure: Failure, request: Request, record: ExchangeRecord, started: float
    ) -> None:
        self.log.failure(
            "exchange {exchange_id} failed unexpectedly", failure, exchange_id=record.exchange_id
        )
        self._fault(request, record, RpnFailure(RpnError.INTERNAL), SoapVersion.SOAP11, started)

    def _fault(
        self,
        request: Request,
        record: ExchangeRecord,
        failure: RpnFailure,
        version: SoapVersion,
        started: float,
    ) -> None:
        error = failure.error
        record.code = error.code
        record.status = error.http_status
        record.outcome = _OUTCOME.get(error, "rejected")
        body = fault_document(error, failure.detail, record.exchange_id, version)
        record.bytes_out = len(body)
        self.log.info(
            "exchange {exchange_id} refused: {code} ({detail}) finess={finess} amc={amc} "
            "service={service}",
            exchange_id=record.exchange_id,
            code=error.code,
            detail=failure.detail,
            finess=record.finess,
            amc=record.amc,
            service=record.service,
        )
        if not request._disconnected:
            self._close_if_draining(request)
            request.setResponseCode(error.http_status)
            request.setHeader(b"Content-Type", content_type(version).encode())
            request.setHeader(b"Content-Length", b"%d" % len(body))
            if record.exchange_id:
                request.setHeader(b"X-ROC-Echange", record.exchange_id.encode("ascii"))
            if error.spec.retryable and error.http_status in (429, 503):
                request.setHeader(b"Retry-After", b"1")
            request.write(body)
            request.finish()
        self._done(record, started)

    def _close_if_draining(self, request: Request) -> None:
        if self.draining:
            request.setHeader(b"Connection", b"close")
            request.channel.persistent = False

    def _done(self, record: ExchangeRecord, started: float) -> None:
        record.total_seconds = self.clock.seconds() - started
        self.in_flight -= 1
        self.stats.record(record)
        if self.in_flight == 0 and self._idle_waiters:
            waiters, self._idle_waiters = self._idle_waiters, []
            for waiter in waiters:
                waiter.callback(None)


_OUTCOME = {
    RpnError.AMC_BAD_ANSWER: "amc_error",
    RpnError.AMC_TLS: "amc_error",
    RpnError.AMC_UNAVAILABLE: "amc_unavailable",
    RpnError.AMC_CIRCUIT_OPEN: "breaker_open",
    RpnError.OVERLOADED: "overloaded",
    RpnError.AMC_TIMEOUT: "timeout",
    RpnError.ANNUAIRE_UNAVAILABLE: "annuaire_unavailable",
    RpnError.INTERNAL: "relay_error",
}


class RelayResource(Resource):
    """Every path goes to the relay, which answers 404/405 faults itself."""

    isLeaf = True

    def __init__(self, relay: Callable[[], Relay]) -> None:
        super().__init__()
        self._relay = relay

    def render(self, request: Request) -> Any:
        self._relay().handle(request)
        return NOT_DONE_YET
