"""The indicators service wired together (tests call ``build_service`` directly)."""

from __future__ import annotations

from functools import partial

from prometheus_client import CollectorRegistry
from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.client import Agent, HTTPConnectionPool

from indicators import refresh
from indicators.access import agency_fingerprints, identify
from indicators.config import Config
from indicators.mutuelle_admin import MutuelleAdminApi
from indicators.progress import IProgressSource
from indicators.prometheus import IPrometheus, PrometheusHttpApi
from indicators.refresh import Refresher
from indicators.web import PagesResource, PromotionSettings, admin_resource
from piano.reactors import IServiceReactor
from piano.tls import SwappableServerContext, TLSFiles, server_options
from piano.web import BoundedRequest, QuietSite, listen


class IndicatorsService(MultiService):
    """Root service; keeps the refresher so tests and probes can reach the snapshot."""

    def __init__(self, refresher: Refresher, pool: HTTPConnectionPool | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.refresher = refresher
        self._pool = pool

    def stopService(self) -> Deferred[None]:
        """Stop listening and reading, then close the connections to Prometheus."""
        stopped = super().stopService()  # type: ignore[no-untyped-call]
        return Deferred.fromCoroutine(self._close(stopped))

    async def _close(self, stopped: Deferred[None] | None) -> None:
        if stopped is not None:
            await stopped
        if self._pool is not None:
            await self._pool.closeCachedConnections()


def prometheus_api(
    config: Config, reactor: IServiceReactor
) -> tuple[IPrometheus, HTTPConnectionPool]:
    """The HTTP API client of the configured Prometheus, and its connection pool."""
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool._factory.noisy = False  # one log line per connection otherwise
    agent = Agent(reactor, connectTimeout=config.prometheus.timeout, pool=pool)
    api = PrometheusHttpApi(agent, config.prometheus.url, config.prometheus.timeout, reactor)
    return api, pool


def progress_api(
    config: Config, reactor: IServiceReactor, pool: HTTPConnectionPool
) -> IProgressSource | None:
    """The client of Mutuelle ANS's admin API, when one is configured."""
    qualification = config.qualification
    if qualification.mutuelle_admin_url is None:
        return None
    agent = Agent(reactor, connectTimeout=qualification.timeout, pool=pool)
    return MutuelleAdminApi(agent, qualification.mutuelle_admin_url, qualification.timeout, reactor)


def build_service(
    config: Config,
    reactor: IServiceReactor,
    registry: CollectorRegistry,
    prometheus: IPrometheus | None = None,
    progress: IProgressSource | None = None,
) -> IndicatorsService:
    """Every part wired together; nothing listens or queries until the service starts."""
    tls = config.tls
    context = SwappableServerContext(
        server_options(TLSFiles(tls.certificate, tls.private_key, tls.ca_certificates))
    )
    agency = agency_fingerprints(config.access.agency_certificates)
    ind = config.indicators
    pool = None
    if prometheus is None:
        prometheus, pool = prometheus_api(config, reactor)
    if progress is None and config.qualification.mutuelle_admin_url is not None:
        if pool is None:
            pool = HTTPConnectionPool(reactor, persistent=True)
            pool._factory.noisy = False
        progress = progress_api(config, reactor, pool)
    refresher = Refresher(
        prometheus,
        reactor,
        ind.window_days,
        ind.daily_days,
        ind.top_codes,
        ind.minimum_peers,
        progress,
        config.qualification.stuck_days,
    )
    refresh.register(registry, refresher, reactor)
    root = IndicatorsService(refresher, pool)
    timer = TimerService(ind.refresh_interval, refresher.refresh)
    timer.clock = reactor
    timer.setServiceParent(root)
    pages = PagesResource(
        lambda: refresher.snapshot,
        lambda: refresher.failing_since,
        partial(identify, finess_attribute=tls.finess_attribute, agency=agency),
        PromotionSettings(config.qualification.relay_config, config.qualification.reload_command),
        reactor,
    )
    site = QuietSite(pages)  # type: ignore[no-untyped-call]
    site.requestFactory = BoundedRequest  # the promotion form is the only body: a few hundred bytes
    tls_factory = TLSMemoryBIOFactory(context, False, site, clock=reactor)
    listen(config.listen.endpoint, tls_factory, reactor, "listen.endpoint", root)
    admin = QuietSite(  # type: ignore[no-untyped-call]
        admin_resource(registry, lambda: refresher.snapshot is not None)
    )
    listen(config.admin.endpoint, admin, reactor, "admin.endpoint", root)
    return root
