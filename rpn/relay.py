"""The relay's exchange logic: limits, authorisation, routing, forwarding, relaying back.

``Relay.handle`` runs one exchange: the client's establishment comes from its certificate,
the routing key from the message header (the body is never parsed or re-serialised), the AMC
endpoint from the annuaire, and the answer from the AMC's upstream, relayed as received.
Every refusal is a SOAP Fault with the relay's error code; every exchange is recorded once.
HTTP itself (framing, limits, timeouts) is ``rpn.h1server``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from OpenSSL import crypto
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from roc.errors import RpnError, RpnFailure
from roc.model import RELAYED_SERVICES, RoutingKey, Service, SoapVersion, soap_action
from roc.routing import IRoutingExtractor, RequestView
from roc.soap import content_type, fault_document
from roc.tls import finess_from_certificate
from rpn.h1server import HttpRequest, HttpServerFactory, soap_version_of_header
from rpn.interfaces import AmcEntry, IAnnuaire
from rpn.registration import Registration
from rpn.stats import ExchangeRecord, IStatsSink, answer_outcome, business_code
from rpn.upstream import UpstreamAnswer, UpstreamRegistry

_SOAP_TYPES = (b"text/xml", b"application/soap+xml")
#: Client certificates whose FINESS is remembered (about 1 KB each); beyond, start again.
_IDENTITY_CACHE_SIZE = 20_000
_USER_AGENT = (b"User-Agent", b"PiANO-RPN/0.1")
_SOAP_ACTIONS = {service: f'"{soap_action(service)}"'.encode() for service in Service}


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    """The parts of the configuration the exchange path reads; swapped whole on reload."""

    paths: tuple[str, ...]
    registration: Registration
    check_sender: bool
    finess_attribute: str
    max_body_bytes: int
    read_timeout: float
    #: Exchanges one establishment may have in flight at once (429 above).
    max_in_flight_per_establishment: int = 64


def _path_matches(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def relay_factory(
    relay: Callable[[], Relay], clock: IReactorTime, idle_timeout: float
) -> HttpServerFactory:
    """The protocol factory of the relay's listener (under TLS): requests go to ``relay()``."""
    return HttpServerFactory(
        relay,
        clock,
        lambda: relay().policy.read_timeout,
        lambda: relay().policy.max_body_bytes,
        idle_timeout,
    )


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
        #: (FINESS, expiry) by DER client certificate, forgotten with each new policy.
        self._identities: dict[bytes, tuple[str | None, float]] = {}
        self._policy = policy
        self.extractor = extractor
        self.annuaire = annuaire
        self.upstreams = upstreams
        self.stats = stats
        self.in_flight = 0
        #: Exchanges in flight per registered establishment (only those with some).
        self.in_flight_by_establishment: dict[str, int] = {}
        #: Exchanges past admission and not yet answered: what a forced stop must cut.
        self._forwarding: dict[int, tuple[Deferred[Any], ExchangeRecord]] = {}
        #: Exchanges being cut by a forced stop (their cancellation is not a bug).
        self._cut: set[int] = set()
        self.accepting = True
        #: Stopping: requests on open connections are still served, each answer closing its
        #: connection so that clients move to another process or host.
        self.draining = False
        self._idle_waiters: list[Deferred[None]] = []

    @property
    def policy(self) -> RelayPolicy:
        return self._policy

    @policy.setter
    def policy(self, policy: RelayPolicy) -> None:
        """A reloaded policy; certificates are read again (``finess_attribute`` may change)."""
        self._policy = policy
        self._identities.clear()

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

    def handle(self, request: HttpRequest) -> None:
        started = self.clock.seconds()
        record = ExchangeRecord()
        body = request.body
        record.bytes_in = len(body)
        self.in_flight += 1
        ctype = request.headers.get(b"content-type")
        version = soap_version_of_header(ctype)
        try:
            key = self._admit(request, ctype, record)
        except RpnFailure as failure:
            self._fault(request, record, failure, version, started)
            return
        finess = record.finess
        held = self.in_flight_by_establishment
        held[finess] = held.get(finess, 0) + 1
        token = id(record)
        d: Deferred[Any] = self.annuaire.resolve(key.amc)
        self._forwarding[token] = (d, record)
        d.addCallback(self._forward, request, key, record)
        d.addCallbacks(
            self._relay_answer,
            self._failed,
            callbackArgs=(request, record, started),
            errbackArgs=(request, record, key.soap_version, started, token),
        )
        d.addErrback(self._bug, request, record, started)
        d.addBoth(self._release, finess, token)

    def _release(self, _: object, finess: str, token: int) -> None:
        """The exchange is over: its establishment's count goes down, whatever ended it."""
        self._forwarding.pop(token, None)
        self._cut.discard(token)
        left = self.in_flight_by_establishment[finess] - 1
        if left:
            self.in_flight_by_establishment[finess] = left
        else:
            del self.in_flight_by_establishment[finess]

    def cut_in_flight(self) -> int:
        """End every exchange still waiting for its AMC (a forced stop); how many were cut.

        Each is answered ``RPN-503-ARRET-COUPE`` (it may have reached the AMC) and recorded
        with the outcome ``cut_by_shutdown``; its AMC slot is given back.
        """
        cut = list(self._forwarding.items())
        for token, (deferred, _) in cut:
            self._cut.add(token)
            deferred.cancel()
        return len(cut)

    def _forward(
        self, entry: AmcEntry, request: HttpRequest, key: RoutingKey, record: ExchangeRecord
    ) -> Deferred[UpstreamAnswer]:
        record.amc = entry.amc_number
        url = entry.endpoint_for(key.service.value, key.roc_version.value)
        if url is None:
            raise RpnFailure(
                RpnError.SERVICE_NOT_OFFERED, f"{key.service.value} {key.roc_version.value}"
            )
        upstream = self.upstreams.for_amc(entry.amc_number)
        return upstream.forward(url, request.body, self._upstream_headers(request, key, record))

    def _admit(
        self, request: HttpRequest, ctype: bytes | None, record: ExchangeRecord
    ) -> RoutingKey:
        """Check the request and read its routing key; RpnFailure says why not."""
        if not self.accepting:
            raise RpnFailure(RpnError.SHUTTING_DOWN)
        path = request.path.decode("latin-1")
        if request.method != b"POST":
            if not _path_matches(path, self.policy.paths):
                raise RpnFailure(RpnError.NOT_FOUND)
            raise RpnFailure(RpnError.METHOD_NOT_ALLOWED)
        if not _path_matches(path, self.policy.paths):
            raise RpnFailure(RpnError.NOT_FOUND)
        if ctype is None or not ctype.lower().startswith(_SOAP_TYPES):
            raise RpnFailure(RpnError.CONTENT_TYPE)
        finess, expiry = self._identity(request)
        if finess is None:
            raise RpnFailure(RpnError.SENDER_NOT_REGISTERED, "no FINESS in the certificate")
        record.finess = finess
        policy = self.policy
        if not policy.registration.knows(finess):
            raise RpnFailure(
                RpnError.SENDER_NOT_REGISTERED,
                f"certificate FINESS {finess} is neither a registered site nor legal entity",
            )
        record.registered = True
        record.certificate_expiry = expiry
        if self.in_flight_by_establishment.get(finess, 0) >= (
            self.policy.max_in_flight_per_establishment
        ):
            raise RpnFailure(RpnError.RATE_LIMITED)
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in request.headers.items()
        }
        key = self.extractor.extract(RequestView(path, headers, request.body))
        record.exchange_id = key.exchange_id
        record.service = key.service.value
        record.version = key.roc_version.value
        if key.service is Service.DRE:
            raise RpnFailure(RpnError.DRE_NOT_RELAYED)
        if key.service not in RELAYED_SERVICES:
            raise RpnFailure(RpnError.SERVICE_NOT_OFFERED, f"{key.service.value} is not relayed")
        if policy.check_sender:
            refusal = policy.registration.sender_refusal(
                finess, key.sender_finess_legal, key.sender_finess_site
            )
            if refusal is not None:
                raise RpnFailure(RpnError.SENDER_MISMATCH, refusal)
        return key

    def _identity(self, request: HttpRequest) -> tuple[str | None, float | None]:
        """FINESS and expiry (unix time) of the client certificate, read once per connection."""
        connection = request.connection
        cached = connection.identity
        if cached is not None:
            return cached
        peer = getattr(connection.transport, "getPeerCertificate", lambda: None)()
        identity: tuple[str | None, float | None] = (None, None)
        if peer is not None:
            # Establishments reconnect with the same certificate: read each one once.
            der = crypto.dump_certificate(crypto.FILETYPE_ASN1, peer)
            known = self._identities.get(der)
            if known is None:
                cert = peer.to_cryptography()
                known = (
                    finess_from_certificate(cert, self.policy.finess_attribute),
                    cert.not_valid_after_utc.timestamp(),
                )
                if len(self._identities) >= _IDENTITY_CACHE_SIZE:
                    self._identities.clear()
                self._identities[der] = known
            identity = known
        connection.identity = identity
        return identity

    def _upstream_headers(
        self, request: HttpRequest, key: RoutingKey, record: ExchangeRecord
    ) -> list[tuple[bytes, bytes]]:
        ctype = request.headers.get(b"content-type") or b"text/xml; charset=utf-8"
        headers = [
            (b"Content-Type", ctype),
            _USER_AGENT,
            # Validated values only (routing parser, certificate): no CR/LF can get in.
            (b"X-ROC-Echange", key.exchange_id.encode("ascii")),
            (b"X-ROC-Emetteur-Finess", record.finess.encode("ascii")),
        ]
        if key.soap_version is SoapVersion.SOAP11:
            headers.append((b"SOAPAction", _SOAP_ACTIONS[key.service]))
        return headers

    # -- answers -------------------------------------------------------------------------

    def _relay_answer(
        self,
        answer: UpstreamAnswer,
        request: HttpRequest,
        record: ExchangeRecord,
        started: float,
    ) -> None:
        record.business_code = business_code(answer.body)
        record.outcome = answer_outcome(answer.status, record.business_code)
        record.status = answer.status
        record.upstream_seconds = answer.seconds
        record.bytes_out = len(answer.body)
        connection = request.connection
        if connection.disconnected:
            record.outcome = "client_gone"
        else:
            # One pass over the AMC's headers: its X-ROC-Echange is replaced by the relay's,
            # and its Date, if any, is kept (the server then adds none).
            headers = []
            has_date = False
            for name, value in answer.headers:
                lowered = name.lower()
                if lowered == b"x-roc-echange":
                    continue
                has_date = has_date or lowered == b"date"
                headers.append((name, value))
            headers.append((b"X-ROC-Echange", record.exchange_id.encode("ascii")))
            connection.respond(
                answer.status, headers, answer.body, close=self.draining, date=not has_date
            )
        self._done(record, started)

    def _failed(
        self,
        failure: Failure,
        request: HttpRequest,
        record: ExchangeRecord,
        version: SoapVersion,
        started: float,
        token: int,
    ) -> None:
        if token in self._cut and failure.check(CancelledError):
            self._fault(request, record, RpnFailure(RpnError.CUT_BY_SHUTDOWN), version, started)
            return
        failure.trap(RpnFailure)
        assert isinstance(failure.value, RpnFailure)
        self._fault(request, record, failure.value, version, started)

    def _bug(
        self, failure: Failure, request: HttpRequest, record: ExchangeRecord, started: float
    ) -> None:
        self.log.failure(
            "exchange {exchange_id} failed unexpectedly", failure, exchange_id=record.exchange_id
        )
        self._fault(request, record, RpnFailure(RpnError.INTERNAL), SoapVersion.SOAP11, started)

    def _fault(
        self,
        request: HttpRequest,
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
        connection = request.connection
        if not connection.disconnected:
            headers = [(b"Content-Type", content_type(version).encode())]
            if record.exchange_id:
                headers.append((b"X-ROC-Echange", record.exchange_id.encode("ascii")))
            if error is RpnError.METHOD_NOT_ALLOWED:
                headers.append((b"Allow", b"POST"))
            if error.spec.retryable and error.http_status in (429, 503):
                headers.append((b"Retry-After", b"1"))
            connection.respond(error.http_status, headers, body, close=self.draining)
        self._done(record, started)

    def _done(self, record: ExchangeRecord, started: float) -> None:
        record.total_seconds = self.clock.seconds() - started
        self.in_flight -= 1
        try:
            self.stats.record(record)
        finally:
            self._wake_idle_waiters()

    def _wake_idle_waiters(self) -> None:
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
    RpnError.CUT_BY_SHUTDOWN: "cut_by_shutdown",
    RpnError.ANNUAIRE_UNAVAILABLE: "annuaire_unavailable",
    RpnError.INTERNAL: "relay_error",
}
