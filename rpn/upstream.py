"""Forwarding an exchange to one AMC: mutual TLS, a bounded pool, a breaker, a deadline.

One ``AmcUpstream`` per AMC holds its TLS client contexts (built once per host), its
persistent-connection pool, its concurrency limiter and its circuit breaker, so a failing
AMC only ever slows down or stops its own traffic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, fail, gatherResults
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IPolicyForHTTPS

from piano.reactors import IServiceReactor
from piano.tls import TLSFiles
from roc.reasons import Reason
from rpn.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from rpn.errors import RpnError, RpnFailure
from rpn.http.client import Call, ClientTLSPolicy, ConnectionPool, HttpClient
from rpn.http.common import (
    AnswerCut,
    BadUrl,
    BodyTooLarge,
    ConnectionFailed,
    NoAnswer,
    RequestNotSent,
)
from rpn.limiter import ConcurrencyLimiter, QueueFull, QueueTimeout, Slot


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    connect_timeout: float
    request_timeout: float
    max_active: int
    max_queued: int
    queue_timeout: float
    idle_timeout: float
    max_response_bytes: int
    breaker: BreakerPolicy


@dataclass(frozen=True, slots=True)
class UpstreamAnswer:
    """The AMC's answer, relayed as received."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    seconds: float


def _inner(failure: Failure) -> Failure:
    """What a failed connection failed with (or the failure itself)."""
    value = failure.value
    return value.reason if isinstance(value, ConnectionFailed) else failure


def classify(failure: Failure) -> RpnError:
    """Which relay error a failed forward is, from the client's point of view."""
    # A connection that could not be opened (refused, unreachable, connect timeout, which
    # twisted reports as a ConnectError too) means nothing left the relay.
    if failure.check(net_error.ConnectError, net_error.DNSLookupError, RequestNotSent, BadUrl):
        return RpnError.AMC_UNAVAILABLE
    if failure.check(TimeoutError, CancelledError):
        return RpnError.AMC_TIMEOUT
    if failure.check(BodyTooLarge):
        return RpnError.AMC_BAD_ANSWER
    inner = _inner(failure)
    if inner.check(SSL.Error, VerificationError):
        return RpnError.AMC_TLS
    if failure.check(NoAnswer) and inner.check(CancelledError):
        return RpnError.AMC_TIMEOUT
    return RpnError.AMC_BAD_ANSWER


def failure_reason(failure: Failure, request_timeout: float) -> Reason:
    """What went wrong with a forward, in words an establishment and an operator can use."""
    if failure.check(net_error.ConnectionRefusedError):
        return Reason("connection refused", "connexion refusée")
    if failure.check(net_error.DNSLookupError):
        return Reason("host name not found", "nom d'hôte introuvable")
    if failure.check(net_error.TimeoutError):
        return Reason("no connection within the deadline", "pas de connexion dans le délai")
    if failure.check(net_error.ConnectError):
        return Reason("connection failed", "connexion impossible")
    if failure.check(RequestNotSent):
        return Reason(
            "request not sent: the connection closed", "requête non envoyée : connexion fermée"
        )
    if failure.check(BadUrl):
        return Reason(
            "the annuaire's URL for it is unusable", "son adresse dans l'annuaire est inutilisable"
        )
    if failure.check(TimeoutError, CancelledError):
        return Reason(
            f"no answer within {request_timeout:g} s", f"pas de réponse en {request_timeout:g} s"
        )
    if failure.check(BodyTooLarge):
        limit = getattr(failure.value, "limit", 0)
        return Reason(f"answer larger than {limit} bytes", f"réponse de plus de {limit} octets")
    inner = _inner(failure)
    if inner.check(VerificationError):
        return Reason(
            "the AMC's certificate does not name its host",
            "le certificat de l'AMC ne porte pas le nom de son serveur",
        )
    if inner.check(SSL.Error):
        return Reason(
            "TLS handshake failed (certificate not trusted or expired)",
            "échec de la négociation TLS (certificat non reconnu ou expiré)",
        )
    if failure.check(NoAnswer):
        return Reason("connection lost before any answer", "connexion perdue avant toute réponse")
    if failure.check(AnswerCut):
        return Reason("answer cut or not HTTP", "réponse coupée ou qui n'est pas du HTTP")
    return Reason("answer unusable", "réponse inutilisable")


def delay_until(clock: IReactorTime, when: float) -> float:
    """Seconds from now to *when*, never negative: a timer armed from a computed deadline.

    The reactor refuses a negative delay (``callLater`` raises), and a deadline read a moment
    ago may already be past when the clock is read again.
    """
    return max(0.0, when - clock.seconds())


class _Deadlines:
    """Fails exchanges at their deadline, with one reactor timer for all of an AMC's exchanges.

    A timer per exchange would be created and cancelled for almost every one; this timer
    fires at the earliest deadline pending and is set again only then. The timer is armed
    again before any exchange is expired, and one exchange failing to expire never stops
    the others': a leaked exchange would hold its AMC slot until a restart.
    """

    log = Logger()

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._pending: dict[_Exchange, None] = {}
        self._call: IDelayedCall | None = None
        self._due = 0.0

    def add(self, exchange: _Exchange) -> None:
        self._pending[exchange] = None
        deadline = exchange.deadline
        if self._call is None:
            self._due = deadline
            self._call = self._clock.callLater(delay_until(self._clock, deadline), self._expire)
        elif deadline < self._due:
            self._due = deadline
            self._call.reset(delay_until(self._clock, deadline))

    def remove(self, exchange: _Exchange) -> None:
        self._pending.pop(exchange, None)

    @property
    def pending(self) -> int:
        """Exchanges waiting for their deadline (each holds, or waits for, an AMC slot)."""
        return len(self._pending)

    def stop(self) -> None:
        """Cancel the timer if nothing is pending (the service is stopping)."""
        if not self._pending and self._call is not None:
            self._call.cancel()
            self._call = None

    def _expire(self) -> None:
        self._call = None
        # One reading of the clock decides what expires now; the next timer is armed from
        # it, clamped, so a deadline falling between two readings cannot arm one in the past.
        now = max(self._clock.seconds(), self._due)
        expired = [exchange for exchange in self._pending if exchange.deadline <= now]
        for exchange in expired:
            del self._pending[exchange]
        if self._pending:
            self._due = min(exchange.deadline for exchange in self._pending)
            self._call = self._clock.callLater(delay_until(self._clock, self._due), self._expire)
        for exchange in expired:
            try:
                exchange.expire()
            except Exception:  # noqa: BLE001 - the other exchanges must still expire
                self.log.failure("an exchange failed to expire at its deadline")


class _Exchange:
    """One forward: waits for a slot, sends through the AMC's client, reads the answer.

    Driven by plain callbacks (it is its call's ``AnswerReceiver``); the only Deferreds are
    the caller's, the slot's, and a new connection's. Everything it holds (slot, call,
    deadline) is given back once, in ``_end``, whatever ends it; the breaker hears of it
    once, in ``_report``.
    """

    __slots__ = (
        "_acquiring",
        "_body",
        "_call",
        "_headers",
        "_reported",
        "_slot",
        "_upstream",
        "_url",
        "deadline",
        "done",
        "result",
        "started",
    )

    def __init__(
        self,
        upstream: AmcUpstream,
        url: str,
        body: bytes,
        headers: Sequence[tuple[bytes, bytes]],
    ) -> None:
        self._upstream = upstream
        self._url = url
        self._body = body
        self._headers = headers
        self._slot: Slot | None = None
        self._acquiring: Deferred[Slot] | None = None
        self._call: Call | None = None
        self._reported = False
        self.done = False
        self.started = 0.0
        self.deadline = 0.0
        self.result: Deferred[UpstreamAnswer] = Deferred(self._cancel)

    def start(self, queue_timeout: float) -> None:
        limiter = self._upstream.limiter
        slot = limiter.try_acquire()
        if slot is not None:
            self._slot_granted(slot)
            return
        acquiring = limiter.acquire(queue_timeout)
        if not acquiring.called:
            self._acquiring = acquiring  # to cancel while waiting in the queue
        acquiring.addCallbacks(self._slot_granted, self._slot_refused)

    def _slot_granted(self, slot: Slot) -> None:
        self._acquiring = None
        self._slot = slot
        upstream = self._upstream
        self.started = upstream.clock.seconds()
        self.deadline = self.started + upstream.settings.request_timeout
        upstream.deadlines.add(self)
        try:
            self._call = upstream.client.request(
                self._url, self._headers, self._body, upstream.settings.max_response_bytes, self
            )
        except BadUrl:
            self._failed(Failure())  # an unusable URL: nothing was sent
        except Exception:  # noqa: BLE001 - a bug: reported to the caller below
            self._broken(Failure())

    def _slot_refused(self, failure: Failure) -> None:
        self._acquiring = None
        self.done = True
        self._report(None)
        settings = self._upstream.settings
        if failure.check(QueueFull):
            full = failure.value
            assert isinstance(full, QueueFull)
            failure = Failure(
                RpnFailure(
                    RpnError.OVERLOADED,
                    Reason(
                        f"{full.max_active} exchanges in flight and {full.max_queued} waiting",
                        f"{full.max_active} échanges en cours et {full.max_queued} en attente",
                    ),
                    retry_after=1.0,
                )
            )
        elif failure.check(QueueTimeout):
            failure = Failure(
                RpnFailure(
                    RpnError.OVERLOADED,
                    Reason(
                        f"no connection slot within {settings.queue_timeout:g} s",
                        f"aucune connexion libre en {settings.queue_timeout:g} s",
                    ),
                    retry_after=1.0,
                )
            )
        if not self.result.called:
            self.result.errback(failure)

    # AnswerReceiver

    def answer_received(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        if self.done:
            return
        self._call = None
        self._report(status not in (502, 503, 504))
        upstream = self._upstream
        answer = UpstreamAnswer(status, headers, body, upstream.clock.seconds() - self.started)
        self._end()
        self.result.callback(answer)

    def answer_failed(self, reason: Failure) -> None:
        if self.done:
            return
        self._call = None
        self._failed(reason)

    # endings

    def expire(self) -> None:
        """The deadline passed: a timeout if the request was written, else unavailable.

        Still connecting at the deadline, the request provably never left the relay: the
        establishment is told it was not delivered (and may send it again).
        """
        if self.done:
            return
        call = self._call
        if call is not None and not call.written:
            self._failed(Failure(net_error.TimeoutError("no connection within the deadline")))
        else:
            self._failed(Failure(TimeoutError()))

    def _failed(self, reason: Failure) -> None:
        self._report(False)
        error = RpnFailure(
            classify(reason), failure_reason(reason, self._upstream.settings.request_timeout)
        )
        self._end()
        self.result.errback(error)

    def _broken(self, failure: Failure) -> None:
        """A bug: the caller gets the exception itself (the relay logs it as one)."""
        if self.done:
            self._upstream.log.failure(
                "AMC {amc}: forwarding failed", failure, amc=self._upstream.amc_number
            )
            return
        self._report(None)
        self._end()
        self.result.errback(failure)

    def _cancel(self, result: Deferred[UpstreamAnswer]) -> None:
        if self.done:
            return
        if self._acquiring is not None:
            self._acquiring.cancel()  # _slot_refused gives the breaker its probe back
            return
        self._report(None)
        self._end()

    def _report(self, success: bool | None) -> None:
        """Tell the breaker how the exchange went (success, failure, or neither: None), once."""
        if self._reported:
            return
        self._reported = True
        breaker = self._upstream.breaker
        if success is None:
            breaker.record_cancelled()
        elif success:
            breaker.record_success()
        else:
            breaker.record_failure()

    def _end(self) -> None:
        """Give back everything the exchange holds (its slot last: it may start the next)."""
        self.done = True
        self._upstream.deadlines.remove(self)
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
        slot, self._slot = self._slot, None
        if slot is not None:
            slot.release()


class AmcUpstream:
    """Everything the relay keeps for one AMC."""

    log = Logger()

    def __init__(
        self,
        reactor: IServiceReactor,
        amc_number: str,
        tls: IPolicyForHTTPS,
        settings: UpstreamSettings,
        on_breaker_transition: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self.amc_number = amc_number
        self.clock: IReactorTime = reactor
        self.settings = settings
        self.pool = ConnectionPool(
            reactor, tls, settings.connect_timeout, settings.max_active, settings.idle_timeout
        )
        self.client = HttpClient(self.pool)
        self.deadlines = _Deadlines(reactor)
        self.limiter = ConcurrencyLimiter(reactor, settings.max_active, settings.max_queued)

        def transition(old: BreakerState, new: BreakerState) -> None:
            self.log.warn(
                "breaker of AMC {amc} {old} -> {new}", amc=amc_number, old=old.value, new=new.value
            )
            if on_breaker_transition is not None:
                on_breaker_transition(amc_number, old, new)

        self.breaker = CircuitBreaker(reactor, settings.breaker, on_transition=transition)

    def reconfigure(self, tls: IPolicyForHTTPS, settings: UpstreamSettings) -> None:
        """New limits, deadlines and client certificate for exchanges from now on.

        Exchanges in flight finish with what they started with; pooled connections are
        reused until idle; the breaker keeps its state (and its policy).
        """
        self.settings = settings
        self.limiter.set_limits(settings.max_active, settings.max_queued)
        self.pool.reconfigure(
            tls, settings.connect_timeout, settings.max_active, settings.idle_timeout
        )

    def forward(
        self, url: str, body: bytes, headers: Sequence[tuple[bytes, bytes]]
    ) -> Deferred[UpstreamAnswer]:
        """POST *body* to *url* with *headers* and collect the answer; fails with RpnFailure.

        *headers* must not include Host, Content-Length or hop-by-hop headers: the client
        sets the first two. Cancelling the Deferred gives back the slot and drops the
        connection of the exchange, if it had one.
        """
        if not self.breaker.try_acquire():
            wait = self.breaker.retry_after()
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                reason = Reason(
                    f"next attempt in {seconds} s", f"prochaine tentative dans {seconds} s"
                )
            else:
                seconds = 1
                reason = Reason("recovery probes in progress", "tests de reprise en cours")
            return fail(RpnFailure(RpnError.AMC_CIRCUIT_OPEN, reason, retry_after=seconds))
        exchange = _Exchange(self, url, body, headers)
        exchange.start(self.settings.queue_timeout)
        return exchange.result

    @property
    def sent_total(self) -> int:
        """Requests written to this AMC (each may have reached it)."""
        return self.client.written_total

    def close(self) -> Deferred[None]:
        """Close the idle connections (exchanges in flight keep theirs)."""
        self.deadlines.stop()
        return self.client.close()


class UpstreamRegistry:
    """The AMC upstreams, created on first use; one TLS policy shared by all."""

    def __init__(
        self,
        reactor: IServiceReactor,
        tls_files: TLSFiles,
        settings: UpstreamSettings,
        on_breaker_transition: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self._reactor = reactor
        self._tls = ClientTLSPolicy(tls_files)
        self._settings = settings
        self._on_transition = on_breaker_transition
        self.upstreams: dict[str, AmcUpstream] = {}

    def for_amc(self, amc_number: str) -> AmcUpstream:
        upstream = self.upstreams.get(amc_number)
        if upstream is None:
            upstream = AmcUpstream(
                self._reactor, amc_number, self._tls, self._settings, self._on_transition
            )
            self.upstreams[amc_number] = upstream
        return upstream

    def reconfigure(self, tls_files: TLSFiles, settings: UpstreamSettings) -> None:
        """Apply a reloaded configuration to every AMC, and to those seen from now on."""
        self._tls = ClientTLSPolicy(tls_files)
        self._settings = settings
        for upstream in self.upstreams.values():
            upstream.reconfigure(self._tls, settings)

    def close(self) -> Deferred[list[None]]:
        return gatherResults([u.close() for u in self.upstreams.values()])
