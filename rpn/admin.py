"""The admin endpoint: liveness, readiness and Prometheus metrics, on loopback by default."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.pages import forbidden
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from piano.web import HealthResource
from rpn.breaker import BreakerState
from rpn.metric_tables import MetricTable, exposition
from rpn.registration import Registration
from rpn.relay import Relay
from rpn.upstream import UpstreamRegistry


def render_metrics(registry: CollectorRegistry, tables: Sequence[MetricTable]) -> bytes:
    """One scrape: the registry's families, then the hand-rendered tables."""
    return generate_latest(registry) + exposition(tables)


class _Metrics(Resource):
    """The registry plus the hand-rendered tables, rendered in a thread: a national-scale
    scrape takes long enough that it must not stall the exchanges the reactor is serving."""

    isLeaf = True
    log = Logger()

    def __init__(
        self, registry: CollectorRegistry, tables: Sequence[MetricTable], reactor: IReactorThreads
    ) -> None:
        super().__init__()
        self._registry = registry
        self._tables = tables
        self._reactor = reactor

    def _render(self) -> bytes:
        return render_metrics(self._registry, self._tables)

    def render_GET(self, request: Request) -> int:
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        rendering = deferToThreadPool(self._reactor, self._reactor.getThreadPool(), self._render)

        def send(body: bytes) -> None:
            if not getattr(request, "_disconnected", False):
                request.write(body)
                request.finish()

        def failed(failure: Failure) -> None:
            self.log.failure("metrics rendering failed", failure)
            if not getattr(request, "_disconnected", False):
                request.setResponseCode(500)
                request.write(b"metrics rendering failed\n")
                request.finish()

        rendering.addCallbacks(send, failed)
        return NOT_DONE_YET


class _Guard(Resource):
    """Answers 403 to clients outside the allowed networks, else hands over to the tree."""

    def __init__(self, inner: Resource, networks: Callable[[], tuple[str, ...]]) -> None:
        super().__init__()
        self._inner = inner
        self._networks = networks

    def getChildWithDefault(self, path: bytes, request: Request) -> IResource:
        address = request.getClientAddress()
        host = getattr(address, "host", None)
        try:
            client = ipaddress.ip_address(host) if host else None
        except ValueError:
            client = None
        if client is None or not any(client in ipaddress.ip_network(n) for n in self._networks()):
            return forbidden("Forbidden", "This address may not use the admin endpoint.")
        child: IResource = self._inner.getChildWithDefault(path, request)
        return child


def admin_resource(
    registry: CollectorRegistry,
    ready: Callable[[], bool],
    reactor: IReactorThreads,
    allowed_networks: Callable[[], tuple[str, ...]] = lambda: ("127.0.0.0/8", "::1/128"),
    tables: Sequence[MetricTable] = (),
) -> Resource:
    """/healthz (the process answers), /readyz (it accepts exchanges), /metrics; only for
    clients in *allowed_networks*. *reactor* renders /metrics in its thread pool."""
    root = Resource()
    root.putChild(b"healthz", HealthResource())
    root.putChild(b"readyz", HealthResource(ready))
    root.putChild(b"metrics", _Metrics(registry, tables, reactor))
    return _Guard(root, allowed_networks)


class UpstreamCollector:
    """Breaker and pool state per AMC, read at scrape time (nothing on the exchange path)."""

    def __init__(self, upstreams: UpstreamRegistry) -> None:
        self._upstreams = upstreams

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "rpn_breaker_state",
            "Circuit breaker state per AMC: 1 for the current state, 0 for the others.",
            labels=("amc", "state"),
        )
        opened = CounterMetricFamily(
            "rpn_breaker_opened",
            "Times each AMC's circuit breaker opened.",
            labels=("amc",),
        )
        rejected = CounterMetricFamily(
            "rpn_breaker_rejected",
            "Exchanges not sent because the AMC's breaker was open.",
            labels=("amc",),
        )
        active = GaugeMetricFamily(
            "rpn_pool_active_requests", "Exchanges in progress per AMC.", labels=("amc",)
        )
        queued = GaugeMetricFamily(
            "rpn_pool_queued_requests", "Exchanges waiting for a slot per AMC.", labels=("amc",)
        )
        sent = CounterMetricFamily(
            "rpn_upstream_requests",
            "Requests written to each AMC (each may have reached it; retries of requests "
            "provably not sent are not counted twice).",
            labels=("amc",),
        )
        shed = CounterMetricFamily(
            "rpn_pool_shed",
            "Exchanges refused because the AMC's wait queue was full or too slow.",
            labels=("amc",),
        )
        for amc, upstream in sorted(self._upstreams.upstreams.items()):
            current = upstream.breaker.state
            for candidate in BreakerState:
                state.add_metric((amc, candidate.value), 1.0 if candidate is current else 0.0)
            opened.add_metric((amc,), upstream.breaker.opened_total)
            rejected.add_metric((amc,), upstream.breaker.rejected_total)
            active.add_metric((amc,), upstream.limiter.active)
            queued.add_metric((amc,), upstream.limiter.queued)
            shed.add_metric((amc,), upstream.limiter.shed_total + upstream.limiter.timed_out_total)
            sent.add_metric((amc,), upstream.sent_total)
        yield from (state, opened, rejected, active, queued, shed, sent)


class RelayCollector:
    """Exchanges in flight, in total and per establishment, read at scrape time.

    With nothing left in flight both are zero: a count that stays above zero while no
    traffic flows is a leak (alert ``RpnInFlightWithoutTraffic``).
    """

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "rpn_exchanges_in_flight",
            "Exchanges this relay process has accepted and not yet answered.",
            value=self._relay.in_flight,
        )
        by_establishment = GaugeMetricFamily(
            "rpn_establishment_in_flight",
            "Exchanges in flight per registered establishment (FINESS of its certificate); "
            "establishments with none are not listed.",
            labels=("finess",),
        )
        for finess, count in sorted(self._relay.in_flight_by_establishment.items()):
            by_establishment.add_metric((finess,), count)
        yield by_establishment
        registration = self._relay.policy.registration
        registered = GaugeMetricFamily(
            "rpn_establishment_registered",
            "1 for each FINESS the relay's registration admits, by role (legal_entity, site): "
            "the indicators tell a registered establishment that has not sent yet from one "
            "the relays do not know.",
            labels=("finess", "role"),
        )
        for entity, sites in sorted(registration.sites_of_entity.items()):
            registered.add_metric((entity, "legal_entity"), 1)
            for site in sorted(sites):
                registered.add_metric((site, "site"), 1)
        yield registered
        yield from _lifecycle_metrics(registration)


def _lifecycle_metrics(registration: Registration) -> Iterator[Metric]:
    """Each registered FINESS's state and since when (docs/raccordement.md), and the watch."""
    since = GaugeMetricFamily(
        "rpn_establishment_lifecycle_since_timestamp_seconds",
        "Unix time of the day each registered FINESS's state began (0 when not given), with "
        "its state (qualification, production_sous_surveillance, production, suspendue), its "
        "legal entity and role, and the sectors that choose its qualification suite.",
        labels=("finess", "legal_entity", "role", "state", "sectors"),
    )
    for entity, sites in sorted(registration.sites_of_entity.items()):
        lifecycle = registration.lifecycle(entity)
        sectors = ",".join(sorted(lifecycle.sectors))
        state = lifecycle.state.value
        when = lifecycle.since_timestamp
        since.add_metric((entity, entity, "legal_entity", state, sectors), when)
        for site in sorted(sites):
            since.add_metric((site, entity, "site", state, sectors), when)
    yield since
    yield GaugeMetricFamily(
        "rpn_lifecycle_watch_days",
        "Days after going live (since of production_sous_surveillance) an establishment is "
        "under the tighter anomaly rules.",
        value=registration.watch_days,
    )
