"""Builds the relay's service tree from a parsed configuration (tests call this directly)."""

from __future__ import annotations

import gc
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.application import strports
from twisted.application.service import MultiService, Service
from twisted.internet.defer import Deferred, TimeoutError, gatherResults, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from piano.config import ConfigError
from piano.reactors import IServiceReactor
from piano.tls import (
    SwappableServerContext,
    TLSConfigError,
    TLSFiles,
    WholeMessageTLSFactory,
    server_options,
)
from piano.web import QuietSite, listen
from rpn.admin import RelayCollector, UpstreamCollector, admin_resource
from rpn.annuaire import CachedAnnuaire, JsonFileSnapshot
from rpn.annuaire_sources import OverrideSource, SoapAnnuaireSource, StaticAnnuaireSource
from rpn.config import RpnConfig, load_config
from rpn.http.client import ClientTLSPolicy, ConnectionPool, HttpClient
from rpn.http.server import HttpServerFactory
from rpn.interfaces import IAnnuaireSource
from rpn.lifecycle import Lifecycle, State, changes
from rpn.registration import Registration
from rpn.relay import Relay, RelayPolicy, relay_factory
from rpn.routing import build_extractor
from rpn.stats import AccessLog, PrometheusStats, StatsFanout
from rpn.upstream import UpstreamRegistry, UpstreamSettings, delay_until
from rpn.workers import (
    SINGLE_PROCESS,
    AdoptedPortService,
    ReactorInstaller,
    WorkerBuilder,
    WorkerRole,
    WorkerSupervisor,
    admin_endpoint_for,
    open_listening_socket,
)


def registration(config: RpnConfig) -> Registration:
    """The registered establishments, their sites and where each stands (rpn.lifecycle)."""
    entities = config.establishments.legal_entities
    return Registration.of(
        ((entity.finess, entity.sites) for entity in entities),
        {
            entity.finess: Lifecycle(State(entity.state), entity.since, tuple(entity.sectors))
            for entity in entities
        },
        config.lifecycle.simulated_amcs,
        config.lifecycle.watch_days,
    )


def relay_policy(config: RpnConfig) -> RelayPolicy:
    return RelayPolicy(
        paths=config.http.paths,
        registration=registration(config),
        check_sender=config.establishments.check_sender,
        finess_attribute=config.tls.finess_attribute,
        max_body_bytes=config.http.max_body_bytes,
        read_timeout=config.http.read_timeout,
        max_in_flight_per_establishment=config.establishments.max_in_flight,
    )


def upstream_settings(config: RpnConfig) -> UpstreamSettings:
    up = config.upstream
    return UpstreamSettings(
        connect_timeout=up.connect_timeout,
        request_timeout=up.request_timeout,
        max_active=up.max_active,
        max_queued=up.max_queued,
        queue_timeout=up.queue_timeout,
        idle_timeout=up.idle_timeout,
        max_response_bytes=config.http.max_response_bytes,
        breaker=up.breaker,
    )


def upstream_tls_files(config: RpnConfig) -> TLSFiles:
    up = config.upstream
    return TLSFiles(up.certificate, up.private_key, up.ca_certificates)


def annuaire_source(config: RpnConfig, reactor: IServiceReactor) -> IAnnuaireSource:
    """The static file, the web service, or the file overriding the web service."""
    ann = config.annuaire
    static = StaticAnnuaireSource.from_file(ann.static_file) if ann.static_file else None
    if ann.service_url is None:
        assert static is not None  # RpnConfig refuses a configuration with neither
        return static
    pool = ConnectionPool(
        reactor,
        ClientTLSPolicy(upstream_tls_files(config)),
        ann.timeout,
        _ANNUAIRE_IDLE_CONNECTIONS,
        config.upstream.idle_timeout,
    )
    remote = SoapAnnuaireSource(HttpClient(pool), ann.service_url, ann.timeout, reactor)
    return remote if static is None else OverrideSource(static, remote)


#: Idle connections kept to the annuaire web service (lookups are few and cached).
_ANNUAIRE_IDLE_CONNECTIONS = 2


class AnnuaireCollector:
    """Annuaire cache counters, read at scrape time."""

    def __init__(self, annuaire: CachedAnnuaire, clock: IReactorTime) -> None:
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
        info = GaugeMetricFamily(
            "rpn_amc_info",
            "Every AMC the relay's annuaire knows, with its name (value 1).",
            labels=("amc", "name"),
        )
        for amc, name in sorted(self._annuaire.names().items()):
            info.add_metric((amc, name), 1.0)
        yield info
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
        config: RpnConfig,
        reactor: IServiceReactor,
        server_tls: SwappableServerContext,
        relay: Relay,
        annuaire: CachedAnnuaire,
        upstreams: UpstreamRegistry,
        access_log: AccessLog,
        config_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.server_tls = server_tls
        self.relay = relay
        self.annuaire = annuaire
        self.upstreams = upstreams
        self.access_log = access_log
        self.config_path = config_path
        self.ready = False
        self.reloads = 0
        self.supervisor: WorkerSupervisor | None = None
        self.listening_socket: socket.socket | None = None
        #: The client connections' factory, closed last when stopping.
        self.http: HttpServerFactory | None = None
        #: The admin endpoint (/readyz, /metrics), stopped after the drain.
        self.admin_service: Service | None = None

    @property
    def drain_timeout(self) -> float:
        return self.config.shutdown.drain_timeout

    def reload(self) -> bool:
        """Re-read the configuration file and apply it without dropping a connection.

        Certificates, CAs, allow-list, routing, limits, deadlines and the annuaire sources
        are replaced for new connections and exchanges; exchanges in flight finish as they
        started. A configuration that fails validation is refused and the running one kept.
        """
        if self.config_path is None:
            self.log.warn("reload asked but the relay was not started from a file")
            return False
        try:
            config = load_config(self.config_path)
            options = server_options(inbound_tls_files(config))
            extractor = build_extractor(config.routing.policy, config.routing.options)
            source = annuaire_source(config, self.reactor)
            tls_files, settings = upstream_tls_files(config), upstream_settings(config)
            policy = relay_policy(config)
        except (ConfigError, TLSConfigError, ValueError) as exc:
            self.log.error(
                "reload refused, the running configuration is kept: {error}", error=str(exc)
            )
            return False
        for fixed in ("listen", "admin", "log"):
            if getattr(config, fixed) != getattr(self.config, fixed):
                self.log.warn("{table}: changes need a restart; kept as started", table=fixed)
        self.server_tls.swap(options)
        self._log_lifecycle_changes(self.relay.policy.registration, policy.registration)
        self.relay.policy = policy
        self.relay.extractor = extractor
        self.annuaire.replace_source(source)
        self.upstreams.reconfigure(tls_files, settings)
        self.access_log.reopen()
        self.config = config
        self.reloads += 1
        if self.supervisor is not None:
            self.supervisor.reload()
        self.log.info("configuration reloaded from {path}", path=str(self.config_path))
        return True

    def _log_lifecycle_changes(self, before: Registration, after: Registration) -> None:
        for entity, old, new in changes(before.lifecycle_of_entity, after.lifecycle_of_entity):
            since = after.lifecycle_of_entity[entity].since if new is not None else None
            self.log.info(
                "lifecycle_changed finess={finess} from={old} to={new} since={since}",
                finess=entity,
                old="unregistered" if old is None else old.value,
                new="unregistered" if new is None else new.value,
                since=since or "-",
            )

    def startService(self) -> None:
        # Everything built so far (modules, configuration, TLS contexts) lives as long as the
        # process: keep it out of the collector's full passes, which otherwise traverse those
        # ~55,000 objects each time (about 45 ms on this project's benchmark machine, a pause
        # every exchange in flight waits through; docs/performance.md).
        gc.collect()
        gc.freeze()
        super().startService()
        self.ready = True
        if self.config_path is not None and threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGHUP, self._on_sighup)
            self._previous_sighup = previous
        self.log.info("relay started")

    def _on_sighup(self, signum: int, frame: object) -> None:
        self.reactor.callFromThread(self.reload)

    def stopService(self) -> Deferred[None]:
        """Stop accepting, let exchanges in flight finish (up to the drain timeout), close.

        The admin endpoint stays up until the very end, so that a load balancer's probe of
        ``/readyz`` reads 503 while the relay drains instead of a refused connection.
        """
        self.ready = False
        self.relay.draining = True
        if getattr(self, "_previous_sighup", None) is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
        Service.stopService(self)
        stopping = [
            maybeDeferred(child.stopService)
            for child in reversed(list(self))
            if child is not self.admin_service
        ]
        listeners_stopped = gatherResults(stopping).addCallback(lambda _: None)
        return Deferred.fromCoroutine(self._drain(listeners_stopped))

    async def _drain(self, listeners_stopped: Deferred[None]) -> None:
        clock = self.relay.clock
        deadline = clock.seconds() + self.drain_timeout
        await listeners_stopped
        if self.relay.in_flight:
            self.log.info("draining {count} exchanges in flight", count=self.relay.in_flight)
            idle = self.relay.wait_idle()
            idle.addTimeout(delay_until(clock, deadline), clock)
            try:
                await idle
            except TimeoutError:
                cut = self.relay.cut_in_flight()
                self.log.warn(
                    "drain timeout: {count} exchanges still in flight are cut "
                    "(answered RPN-503-ARRET-COUPE, recorded as cut_by_shutdown)",
                    count=cut,
                )
        self.relay.accepting = False  # anything arriving now gets RPN-503-ARRET
        if self.http is not None:
            # Answers already written leave before the TLS close; then the process may exit.
            closed = self.http.close_connections()
            closed.addTimeout(max(0.5, delay_until(clock, deadline)), clock)
            try:
                await closed
            except TimeoutError:
                self.log.warn(
                    "drain timeout: {count} client connections still open are cut",
                    count=len(self.http.connections),
                )
        self.annuaire.flush()
        await self.upstreams.close()
        # Last: every exchange has been recorded by now, the cut ones included.
        self.access_log.close()
        if self.admin_service is not None:
            await maybeDeferred(self.admin_service.stopService)


def inbound_tls_files(config: RpnConfig) -> TLSFiles:
    return TLSFiles(config.tls.certificate, config.tls.private_key, config.tls.ca_certificates)


def build_service(
    config: RpnConfig,
    reactor: IServiceReactor,
    registry: CollectorRegistry,
    config_path: Path | None = None,
    role: WorkerRole = SINGLE_PROCESS,
    server_tls: SwappableServerContext | None = None,
    install_reactor: ReactorInstaller | None = None,
) -> RelayService:
    """Every part of the relay wired together; nothing listens until the service starts.

    With *config_path*, SIGHUP re-reads that file (see ``RelayService.reload``). *role*
    says which worker this process is when ``listen.workers`` > 1 (see ``rpn.workers``);
    a forked worker passes the *server_tls* it inherited (its session-ticket keys), and
    worker 0 needs *install_reactor* for the workers it forks (``rpn.tap`` gives it).
    """
    if server_tls is None:
        server_tls = SwappableServerContext(server_options(inbound_tls_files(config)))
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
    access_log = (
        AccessLog.to_file(config.log.access_log, reactor) if config.log.access_log else AccessLog()
    )
    prometheus = PrometheusStats(registry, reactor)
    stats = StatsFanout(prometheus, access_log)
    relay = Relay(reactor, relay_policy(config), extractor, annuaire, upstreams, stats)
    registry.register(UpstreamCollector(upstreams))
    registry.register(RelayCollector(relay))
    registry.register(AnnuaireCollector(annuaire, reactor))

    service = RelayService(
        config, reactor, server_tls, relay, annuaire, upstreams, access_log, config_path
    )
    http = relay_factory(lambda: relay, reactor, config.http.idle_timeout)
    service.http = http
    tls_factory = WholeMessageTLSFactory(server_tls, False, http, clock=reactor)
    _listen(service, config, reactor, tls_factory, role, install_reactor)
    admin = QuietSite(
        admin_resource(
            registry,
            lambda: service.ready and relay.accepting,
            reactor,
            lambda: service.config.admin.allowed_networks,
            prometheus.tables,
        )
    )
    admin_endpoint = admin_endpoint_for(config.admin.endpoint, role.index)
    admin_service = strports.service(admin_endpoint, admin, reactor=reactor)
    admin_service.setServiceParent(service)
    service.admin_service = admin_service
    return service


def _listen(
    service: RelayService,
    config: RpnConfig,
    reactor: IServiceReactor,
    factory: Any,
    role: WorkerRole,
    install_reactor: ReactorInstaller | None,
) -> None:
    """One process: the configured endpoint. Several: a socket shared by every worker."""
    endpoint = config.listen.endpoint
    if role.inherited_fd is not None:
        family = socket.fromfd(role.inherited_fd, socket.AF_INET, socket.SOCK_STREAM).family
        AdoptedPortService(reactor, role.inherited_fd, family, factory).setServiceParent(service)
        return
    if config.listen.workers == 1:
        listen(endpoint, factory, reactor, "listen.endpoint", service)
        return
    if install_reactor is None:
        raise ValueError("listen.workers > 1: workers are forked by twistd rpn only")
    if endpoint.startswith("systemd:"):
        # Twisted's systemd parser read (and removed) LISTEN_FDS when it was imported: ask
        # it for the descriptor instead of the environment.
        try:
            adopted = serverFromString(reactor, endpoint)
            fileno = int(adopted.fileno)
        except (KeyError, IndexError, ValueError, AttributeError) as exc:
            raise ValueError(f"listen.endpoint: no socket passed by systemd ({exc})") from None
        os.set_inheritable(fileno, True)
        os.set_blocking(fileno, False)  # systemd passes it blocking: accept would block
        family = socket.fromfd(fileno, socket.AF_INET, socket.SOCK_STREAM).family
    else:
        sock = open_listening_socket(endpoint)
        service.listening_socket = sock  # kept open for the workers' lifetime
        fileno, family = sock.fileno(), sock.family
    AdoptedPortService(reactor, fileno, family, factory).setServiceParent(service)
    supervisor = WorkerSupervisor(
        reactor, config.listen.workers, _worker_builder(service, fileno), install_reactor
    )
    supervisor.setServiceParent(service)
    service.supervisor = supervisor


def _worker_builder(service: RelayService, fileno: int) -> WorkerBuilder:
    """How the zygote (forked by worker 0, see ``rpn.workers``) makes worker *index*.

    The worker keeps the TLS context inherited through the fork (the ticket keys every
    worker shares) and takes the configuration as it is on disk now, so a worker respawned
    after a reload serves the reloaded certificates and settings like the others.
    """
    config, config_path, server_tls = service.config, service.config_path, service.server_tls

    def build(reactor: IServiceReactor, index: int) -> RelayService:
        current = config
        if config_path is not None:
            try:
                current = load_config(config_path)
                server_tls.swap(server_options(inbound_tls_files(current)))
            except (ConfigError, TLSConfigError, ValueError) as exc:
                Logger().error(
                    "worker {index}: configuration file unusable ({error}); "
                    "serving the one worker 0 started with",
                    index=index,
                    error=str(exc),
                )
                current = config
        # Like a reload: listen, admin and log changes wait for a restart.
        current = replace(current, listen=config.listen, admin=config.admin, log=config.log)
        return build_service(
            current,
            reactor,
            CollectorRegistry(auto_describe=True),
            config_path,
            WorkerRole(index, fileno),
            server_tls,
        )

    return build
