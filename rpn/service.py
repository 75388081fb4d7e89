"""Builds the relay's service tree from a parsed configuration (tests call this directly)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, TimeoutError
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.client import Agent

from roc.routing import build_extractor
from roc.tls import SwappableServerContext, TLSFiles, server_options
from rpn.admin import QuietSite, UpstreamCollector, admin_resource
from rpn.annuaire import CachedAnnuaire, JsonFileSnapshot
from rpn.annuaire_sources import OverrideSource, SoapAnnuaireSource, StaticAnnuaireSource
from rpn.breaker import BreakerPolicy
from rpn.config import RpnConfig
from rpn.interfaces import IAnnuaireSource
from rpn.relay import Relay, RelayPolicy, RelayResource, RelaySite
from rpn.stats import AccessLog, PrometheusStats, StatsFanout
from rpn.upstream import UpstreamRegistry, UpstreamSettings, _AmcTLSPolicy, quiet_pool


def relay_policy(config: RpnConfig) -> RelayPolicy:
    return RelayPolicy(
        paths=config.http.paths,
        allowed=frozenset(config.establishments.allowed),
        check_sender=config.establishments.check_sender,
        finess_attribute=config.tls.finess_attribute,
        max_body_bytes=config.http.max_body_bytes,
        read_timeout=config.http.read_timeout,
    )


def upstream_settings(config: RpnConfig) -> UpstreamSettings:
    up = config.upstream
    b = up.breaker
    return UpstreamSettings(
        connect_timeout=up.connect_timeout,
        request_timeout=up.request_timeout,
        max_active=up.max_active,
        max_queued=up.max_queued,
        queue_timeout=up.queue_timeout,
        idle_timeout=up.idle_timeout,
        max_response_bytes=config.http.max_response_bytes,
        breaker=BreakerPolicy(
            failure_threshold=b.failure_threshold,
            open_base=b.open_base,
            open_max=b.open_max,
            jitter=b.jitter,
            half_open_probes=b.half_open_probes,
            recovery_ramp=b.recovery_ramp,
        ),
    )


def upstream_tls_files(config: RpnConfig) -> TLSFiles:
    up = config.upstream
    return TLSFiles(up.certificate, up.private_key, up.ca_certificates)


def annuaire_source(config: RpnConfig, reactor: Any) -> IAnnuaireSource:
    """The static file, the web service, or the file overriding the web service."""
    ann = config.annuaire
    static = StaticAnnuaireSource.from_file(ann.static_file) if ann.static_file else None
    if ann.service_url is None:
        assert static is not None  # RpnConfig refuses a configuration with neither
        return static
    pool = quiet_pool(reactor)
    agent = Agent(
        reactor, _AmcTLSPolicy(upstream_tls_files(config)), connectTimeout=ann.timeout, pool=pool
    )
    remote = SoapAnnuaireSource(agent, ann.service_url, ann.timeout, reactor)
    return remote if static is None else OverrideSource(static, remote)


class AnnuaireCollector:
    """Annuaire cache counters, read at scrape time."""

    def __init__(self, annuaire: CachedAnnuaire, clock: Any) -> None:
        self._annuaire = annuaire
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        lookups = CounterMetricFamily(
            "rpn_annuaire_lookups",
            "AMC directory lookups by result (hit, miss, coalesced, stale, negative, error).",
            labels=("result",),
        )
        for result, count in sorted(self._annuaire.lookups_total.items()):
            lookups.add_metric((result,), count)
        yield lookups
        yield CounterMetricFamily(
            "rpn_annuaire_malformed_answers",
            "Answers from the annuaire web service that could not be used (last-known-good kept).",
            value=self._annuaire.malformed_total,
        )
        yield GaugeMetricFamily(
            "rpn_annuaire_entries", "AMC entries held by the cache.", value=self._annuaire.size
        )
        last = self._annuaire.last_success_time
        if last is not None:
            yield GaugeMetricFamily(
                "rpn_annuaire_staleness_seconds",
                "Seconds since the annuaire last answered the relay.",
                value=self._clock.seconds() - last,
            )


class RelayService(MultiService):
    """The relay: its listeners, plus what must be flushed and closed on stop."""

    log = Logger()

    def __init__(
        self,
        relay: Relay,
        annuaire: CachedAnnuaire,
        upstreams: UpstreamRegistry,
        access_log: AccessLog,
        drain_timeout: float,
    ) -> None:
        super().__init__()
        self.relay = relay
        self.annuaire = annuaire
        self.upstreams = upstreams
        self.access_log = access_log
        self.drain_timeout = drain_timeout
        self.ready = False

    def startService(self) -> None:
        super().startService()
        self.ready = True
        self.log.info("relay started")

    def stopService(self) -> Deferred[None]:
        """Stop accepting, let exchanges in flight finish (up to the drain timeout), close."""
        self.ready = False
        self.relay.accepting = False
        stopped = super().stopService()
        return Deferred.fromCoroutine(self._drain(stopped))

    async def _drain(self, listeners_stopped: Deferred[None] | None) -> None:
        if listeners_stopped is not None:
            await listeners_stopped
        if self.relay.in_flight:
            self.log.info("draining {count} exchanges in flight", count=self.relay.in_flight)
            idle = self.relay.wait_idle()
            idle.addTimeout(self.drain_timeout, self.relay.clock)
            try:
                await idle
            except TimeoutError:
                self.log.warn(
                    "drain timeout: {count} exchanges still in flight are cut",
                    count=self.relay.in_flight,
                )
        self.annuaire.flush()
        self.access_log.close()
        await self.upstreams.close()


def build_service(config: RpnConfig, reactor: Any, registry: CollectorRegistry) -> RelayService:
    """Every part of the relay wired together; nothing listens until the service starts."""
    server_tls = SwappableServerContext(
        server_options(
            TLSFiles(config.tls.certificate, config.tls.private_key, config.tls.ca_certificates)
        )
    )
    extractor = build_extractor(config.routing.policy, config.routing.options)
    ann = config.annuaire
    annuaire = CachedAnnuaire(
        annuaire_source(config, reactor),
        reactor,
        ttl=ann.ttl,
        negative_ttl=ann.negative_ttl,
        stale_if_error=ann.stale_if_error,
        snapshot=JsonFileSnapshot(ann.snapshot) if ann.snapshot else None,
    )
    upstreams = UpstreamRegistry(reactor, upstream_tls_files(config), upstream_settings(config))
    access_log = AccessLog.to_file(config.log.access_log) if config.log.access_log else AccessLog()
    stats = StatsFanout(PrometheusStats(registry, reactor), access_log)
    relay = Relay(reactor, relay_policy(config), extractor, annuaire, upstreams, stats)
    registry.register(UpstreamCollector(upstreams))
    registry.register(AnnuaireCollector(annuaire, reactor))

    service = RelayService(relay, annuaire, upstreams, access_log, config.shutdown.drain_timeout)
    site = RelaySite(
        RelayResource(lambda: relay),
        reactor,
        lambda: relay.policy,
        relay.record_early_refusal,
        config.http.idle_timeout,
    )
    tls_factory = TLSMemoryBIOFactory(server_tls, False, site, clock=reactor)
    strports.service(config.listen.endpoint, tls_factory, reactor=reactor).setServiceParent(service)
    admin = QuietSite(admin_resource(registry, lambda: service.ready and relay.accepting))
    strports.service(config.admin.endpoint, admin, reactor=reactor).setServiceParent(service)
    return service
