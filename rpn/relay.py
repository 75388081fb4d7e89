"""The relay's exchange, as glue: bytes and Deferreds around the decisions of ``rpn.exchange``.

``Relay.handle`` runs one exchange, top to bottom: admit the request (``exchange.admit``),
find the AMC (the annuaire), forward the untouched body (the AMC's upstream), classify what
came back (``outcomes.classify_answer``), answer, record. Every refusal, wherever it is
decided (the HTTP layer, admission, the annuaire, the upstream), is answered by
``exchange.fault_response`` and recorded once. HTTP itself (framing, limits, timeouts) is
``rpn.http.server``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from OpenSSL import crypto
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from roc.certificates import finess_from_certificate
from roc.model import RoutingKey, SoapVersion
from rpn.errors import RpnError, RpnFailure
from rpn.exchange import (
    Identity,
    RelayPolicy,
    Response,
    admit,
    amc_failure,
    fault_response,
    identify,
    not_offered,
    record_answer,
    record_fault,
    record_gone,
    relayed_headers,
    upstream_headers,
)
from rpn.http.server import (
    HttpRequest,
    HttpServerFactory,
    HttpServerProtocol,
    soap_version_of_header,
)
from rpn.interfaces import AmcEntry, IAnnuaire, IRoutingExtractor, IStatsSink
from rpn.outcomes import classify_answer
from rpn.stats import ExchangeRecord
from rpn.upstream import UpstreamAnswer, UpstreamRegistry

__all__ = ["Relay", "RelayPolicy", "relay_factory"]

#: Client certificates whose FINESS is remembered (about 1 KB each); beyond, start again.
_IDENTITY_CACHE_SIZE = 20_000


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
        self._identities: dict[bytes, Identity] = {}
        self._policy = policy
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
        #: Exchanges past admission and not yet answered: what a forced stop must cut.
        self._forwarding: dict[int, Deferred[Any]] = {}
        #: Exchanges being cut by a forced stop (their cancellation is not a bug).
        self._cut: set[int] = set()

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

    # -- refusals by the HTTP layer (before any routing) ---------------------------------

    def refuse_early(
        self,
        connection: HttpServerProtocol,
        error: RpnError,
        detail: str,
        content_type: bytes | None,
    ) -> Response:
        """The fault for a request the HTTP layer refused (size, framing, time), recorded.

        Counted for the establishment when its certificate identifies a registered one.
        """
        record = ExchangeRecord()
        try:
            identify(self.policy, self._identity(connection), record)
        except RpnFailure:
            pass  # an unknown certificate: counted in the relay's totals only
        failure = RpnFailure(error, detail)
        response = fault_response(failure, "", soap_version_of_header(content_type))
        record_fault(record, failure, response)
        self.log.info(
            "request refused early: {code} ({detail}) finess={finess}",
            code=error.code,
            detail=str(detail),
            finess=record.finess,
        )
        self.stats.record(record)
        return response

    # -- the exchange --------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> None:
        started = self.clock.seconds()
        record = ExchangeRecord()
        record.bytes_in = len(request.body)
        self.in_flight += 1
        version = soap_version_of_header(request.headers.get(b"content-type"))
        try:
            if not self.accepting:
                raise RpnFailure(RpnError.SHUTTING_DOWN)
            key = admit(
                self.policy,
                self.extractor,
                request.method,
                request.path,
                request.headers,
                request.body,
                self._identity(request.connection),
                self.in_flight_by_establishment,
                record,
            )
        except RpnFailure as failure:
            self._fault(request, record, failure, version, started)
            return
        finess = record.finess
        held = self.in_flight_by_establishment
        held[finess] = held.get(finess, 0) + 1
        token = id(record)
        entry = self.annuaire.fresh(key.amc)
        if entry is not None:
            self._resolved(entry, request, key, record, started, token)
            return
        # No Deferred chained into another: each stage adds its callbacks to the Deferred
        # it waits for, which is also the one a forced stop cancels.
        d: Deferred[AmcEntry] = self.annuaire.resolve(key.amc)
        self._forwarding[token] = d
        d.addCallbacks(
            self._resolved,
            self._stopped,
            callbackArgs=(request, key, record, started, token),
            errbackArgs=(request, record, key.soap_version, started, token),
        )

    def _resolved(
        self,
        entry: AmcEntry,
        request: HttpRequest,
        key: RoutingKey,
        record: ExchangeRecord,
        started: float,
        token: int,
    ) -> None:
        try:
            forwarding = self._forward(entry, request, key, record)
        except Exception:  # noqa: BLE001 - a refusal (or a bug), answered by _stopped
            self._stopped(Failure(), request, record, key.soap_version, started, token)
            return
        self._forwarding[token] = forwarding
        forwarding.addCallbacks(
            self._answered,
            self._stopped,
            callbackArgs=(request, record, started, token),
            errbackArgs=(request, record, key.soap_version, started, token),
        )

    def _answered(
        self,
        answer: UpstreamAnswer,
        request: HttpRequest,
        record: ExchangeRecord,
        started: float,
        token: int,
    ) -> None:
        try:
            self._relay_answer(answer, request, record, started)
        except Exception:  # noqa: BLE001 - a bug: answered RPN-500 and logged
            self._bug(Failure(), request, record, started)
        finally:
            self._release(record.finess, token)

    def _stopped(
        self,
        failure: Failure,
        request: HttpRequest,
        record: ExchangeRecord,
        version: SoapVersion,
        started: float,
        token: int,
    ) -> None:
        """The exchange ends without the AMC's answer: refused, failed, or cut."""
        try:
            self._failed(failure, request, record, version, started, token)
        except Exception:  # noqa: BLE001 - a bug: answered RPN-500 and logged
            self._bug(Failure(), request, record, started)
        finally:
            self._release(record.finess, token)

    def _forward(
        self, entry: AmcEntry, request: HttpRequest, key: RoutingKey, record: ExchangeRecord
    ) -> Deferred[UpstreamAnswer]:
        record.amc = entry.amc_number
        record.amc_name = entry.name
        url = entry.endpoint_for(key.service.value, key.roc_version.value)
        if url is None:
            raise not_offered(entry.amc_number, entry.name, key)
        upstream = self.upstreams.for_amc(entry.amc_number)
        headers = upstream_headers(request.headers, key, record.finess)
        return upstream.forward(url, request.body, headers)

    def _release(self, finess: str, token: int) -> None:
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
        for token, deferred in cut:
            self._cut.add(token)
            deferred.cancel()
        return len(cut)

    def _identity(self, connection: HttpServerProtocol) -> Identity:
        """FINESS and expiry (unix time) of the client certificate, read once per connection."""
        cached = connection.identity
        if cached is not None:
            return cached
        peer = getattr(connection.transport, "getPeerCertificate", lambda: None)()
        identity: Identity = (None, None)
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

    # -- answers -------------------------------------------------------------------------

    def _relay_answer(
        self,
        answer: UpstreamAnswer,
        request: HttpRequest,
        record: ExchangeRecord,
        started: float,
    ) -> None:
        verdict = classify_answer(answer.status, answer.body)
        record_answer(record, answer.status, answer.body, answer.seconds, verdict)
        connection = request.connection
        if connection.disconnected:
            record_gone(record)
        else:
            headers, has_date = relayed_headers(answer.headers, record.exchange_id)
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
        refused = failure.value
        assert isinstance(refused, RpnFailure)
        if record.amc and refused.error is not RpnError.SERVICE_NOT_OFFERED:
            refused = amc_failure(refused, record.amc, record.amc_name)
        self._fault(request, record, refused, version, started)

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
        exchange_id = record.exchange_id or failure.exchange_id
        response = fault_response(failure, exchange_id, version)
        record_fault(record, failure, response)
        self.log.info(
            "exchange {exchange_id} refused: {code} ({detail}) finess={finess} amc={amc} "
            "service={service}",
            exchange_id=record.exchange_id,
            code=failure.error.code,
            detail=str(failure.detail),
            finess=record.finess,
            amc=record.amc,
            service=record.service,
        )
        connection = request.connection
        if not connection.disconnected:
            connection.respond(
                response.status, response.headers, response.body, close=self.draining
            )
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
