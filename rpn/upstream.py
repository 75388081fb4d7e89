"""Forwarding an exchange to one AMC: mutual TLS, a bounded pool, a breaker, a deadline.

One ``AmcUpstream`` per AMC holds its TLS client contexts (built once per host), its
persistent-connection pool, its concurrency limiter and its circuit breaker, so a failing
AMC only ever slows down or stops its own traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import error as net_error
from twisted.internet.defer import CancelledError, Deferred, TimeoutError, gatherResults
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web._newclient import RequestNotSent, ResponseFailed, ResponseNeverReceived
from twisted.web.client import URI, Agent, HTTPConnectionPool, _HTTP11ClientFactory
from twisted.web.error import SchemeNotSupported
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from roc.errors import RpnError, RpnFailure
from roc.tls import TLSFiles, client_options
from rpn._http import BodyTooLarge, BytesProducer, read_capped_body
from rpn.breaker import BreakerPolicy, BreakerState, CircuitBreaker
from rpn.pool import ConcurrencyLimiter, QueueFull, QueueTimeout

#: Hop-by-hop headers never relayed back (RFC 9110 section 7.6.1).
_HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
    }
)


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


def _unwrap(failure: Failure) -> list[Failure]:
    """The failures wrapped inside twisted.web's client exceptions (or the failure itself)."""
    reasons = getattr(failure.value, "reasons", None)
    return list(reasons) if reasons else [failure]


def classify(failure: Failure) -> RpnError:
    """Which relay error a failed forward is, from the client's point of view."""
    # A connection that could not be opened (refused, unreachable, connect timeout, which
    # twisted reports as a ConnectError too) means nothing left the relay.
    if failure.check(net_error.ConnectError, net_error.DNSLookupError, RequestNotSent):
        return RpnError.AMC_UNAVAILABLE
    if failure.check(TimeoutError, CancelledError):
        return RpnError.AMC_TIMEOUT
    if failure.check(BodyTooLarge):
        return RpnError.AMC_BAD_ANSWER
    for inner in _unwrap(failure):
        if inner.check(SSL.Error, VerificationError):
            return RpnError.AMC_TLS
    if failure.check(ResponseNeverReceived):
        inner_types = [f.type for f in _unwrap(failure)]
        if any(t is not None and issubclass(t, CancelledError) for t in inner_types):
            return RpnError.AMC_TIMEOUT
    if failure.check(ResponseFailed):
        return RpnError.AMC_BAD_ANSWER
    return RpnError.AMC_BAD_ANSWER


@implementer(IPolicyForHTTPS)
class _AmcTLSPolicy:
    """Mutual-TLS client options per AMC host, built once and reused for every connection."""

    def __init__(self, files: TLSFiles) -> None:
        self._files = files
        self._by_host: dict[bytes, IOpenSSLClientConnectionCreator] = {}

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        creator = self._by_host.get(hostname)
        if creator is None:
            creator = client_options(self._files, hostname.decode("ascii"))
            self._by_host[hostname] = creator
        return creator


@implementer(IAgentEndpointFactory)
class _CachedEndpoints:
    """One endpoint per AMC address, built once (what ``Agent``'s default factory builds).

    ``Agent`` builds a new ``HostnameEndpoint`` for every request, even one served by a pooled
    connection, and IDNA-encodes the host each time (3% of an exchange in the profile).
    """

    def __init__(self, reactor: Any, tls: IPolicyForHTTPS, connect_timeout: float) -> None:
        self._reactor = reactor
        self._tls = tls
        self._connect_timeout = connect_timeout
        self._endpoints: dict[tuple[bytes, bytes, int], IStreamClientEndpoint] = {}

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        key = (uri.scheme, uri.host, uri.port)
        endpoint = self._endpoints.get(key)
        if endpoint is None:
            if uri.scheme not in (b"https", b"http"):
                raise SchemeNotSupported(f"unsupported scheme {uri.scheme!r}")
            endpoint = HostnameEndpoint(
                self._reactor, uri.host, uri.port, timeout=self._connect_timeout
            )
            if uri.scheme == b"https":
                creator = self._tls.creatorForNetloc(uri.host, uri.port)
                endpoint = wrapClientTLS(creator, endpoint)
            self._endpoints[key] = endpoint
        return endpoint


class _QuietClientFactory(_HTTP11ClientFactory):
    """No "Starting factory" log line per upstream connection."""

    noisy = False


def quiet_pool(reactor: Any) -> HTTPConnectionPool:
    """A persistent connection pool whose connections do not log their factories."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool._factory = _QuietClientFactory
    return pool


class AmcUpstream:
    """Everything the relay keeps for one AMC."""

    log = Logger()

    def __init__(
        self,
        reactor: Any,
        amc_number: str,
        tls: IPolicyForHTTPS,
        settings: UpstreamSettings,
        on_breaker_transition: Callable[[str, BreakerState, BreakerState], None] | None = None,
        agent: IAgent | None = None,
    ) -> None:
        self.amc_number = amc_number
        self._clock: IReactorTime = reactor
        self._settings = settings
        self.pool = quiet_pool(reactor)
        self.pool.maxPersistentPerHost = settings.max_active
        self.pool.cachedConnectionTimeout = int(max(1, settings.idle_timeout))
        self.pool.retryAutomatically = False
        self._agent: IAgent = agent or Agent.usingEndpointFactory(
            reactor, _CachedEndpoints(reactor, tls, settings.connect_timeout), pool=self.pool
        )
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
        self._settings = settings
        self.limiter.set_limits(settings.max_active, settings.max_queued)
        self.pool.maxPersistentPerHost = settings.max_active
        self.pool.cachedConnectionTimeout = int(max(1, settings.idle_timeout))
        self._agent = Agent.usingEndpointFactory(
            self._clock,
            _CachedEndpoints(self._clock, tls, settings.connect_timeout),
            pool=self.pool,
        )

    def forward(self, url: str, body: bytes, headers: Headers) -> Deferred[UpstreamAnswer]:
        """Send *body* to *url* and collect the answer; fails with RpnFailure."""
        return Deferred.fromCoroutine(self._forward(url.encode("ascii"), body, headers))

    async def _forward(self, url: bytes, body: bytes, headers: Headers) -> UpstreamAnswer:
        if not self.breaker.try_acquire():
            wait = self.breaker.retry_after()
            raise RpnFailure(
                RpnError.AMC_CIRCUIT_OPEN,
                f"next attempt in {wait:.1f} s" if wait > 0 else "recovery probes in progress",
            )
        try:
            slot = await self.limiter.acquire(self._settings.queue_timeout)
        except QueueFull:
            self.breaker.record_cancelled()
            raise RpnFailure(RpnError.OVERLOADED, "queue full") from None
        except QueueTimeout:
            self.breaker.record_cancelled()
            raise RpnFailure(RpnError.OVERLOADED, "no connection slot in time") from None
        except CancelledError:
            self.breaker.record_cancelled()
            raise
        try:
            return await self._send(url, body, headers)
        finally:
            slot.release()

    async def _send(self, url: bytes, body: bytes, headers: Headers) -> UpstreamAnswer:
        started = self._clock.seconds()
        deadline = started + self._settings.request_timeout
        attempt = 0
        while True:
            attempt += 1
            remaining = max(0.001, deadline - self._clock.seconds())
            request = self._agent.request(b"POST", url, headers, BytesProducer(body))
            request.addTimeout(remaining, self._clock)
            try:
                response: IResponse = await request
                remaining = max(0.001, deadline - self._clock.seconds())
                reading = read_capped_body(response, self._settings.max_response_bytes)
                reading.addTimeout(remaining, self._clock)
                data = await reading
            except Exception:  # noqa: BLE001 - every failure is classified below
                failure = Failure()
                if failure.check(RequestNotSent) and attempt == 1:
                    # A pooled connection was found closed before any byte left: the AMC
                    # provably never saw this exchange, so one more attempt is safe.
                    self.log.debug(
                        "AMC {amc}: pooled connection closed, request not sent; retrying once",
                        amc=self.amc_number,
                    )
                    continue
                error = classify(failure)
                self.breaker.record_failure()
                raise RpnFailure(error, failure.type.__name__ if failure.type else "") from None
            seconds = self._clock.seconds() - started
            if response.code in (502, 503, 504):
                self.breaker.record_failure()
            else:
                self.breaker.record_success()
            relayed = [
                (name, value)
                for name, values in response.headers.getAllRawHeaders()
                if name.lower() not in _HOP_BY_HOP
                for value in values
            ]
            return UpstreamAnswer(response.code, relayed, data, seconds)

    def close(self) -> Deferred[None]:
        closed: Deferred[None] = self.pool.closeCachedConnections()
        return closed


class UpstreamRegistry:
    """The AMC upstreams, created on first use; one TLS policy shared by all."""

    def __init__(
        self,
        reactor: Any,
        tls_files: TLSFiles,
        settings: UpstreamSettings,
        on_breaker_transition: Callable[[str, BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self._reactor = reactor
        self._tls = _AmcTLSPolicy(tls_files)
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
        self._tls = _AmcTLSPolicy(tls_files)
        self._settings = settings
        for upstream in self.upstreams.values():
            upstream.reconfigure(self._tls, settings)

    def close(self) -> Deferred[list[None]]:
        return gatherResults([u.close() for u in self.upstreams.values()])
