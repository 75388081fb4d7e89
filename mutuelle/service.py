"""Mutuelle ANS wired together: data, catalogue, simulator, TLS site and admin site.

``build_service`` is what ``twistd mutuelle`` runs (through ``mutuelle.tap``) and what tests
call with a memory reactor; nothing listens until the returned service starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from twisted.application.internet import TimerService
from twisted.application.service import MultiService
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from mutuelle.admin import AdminApi
from mutuelle.catalogue import Catalogue, build_catalogue
from mutuelle.config import MutuelleConfig
from mutuelle.datafiles import DataError, SimulatorData, load_data
from mutuelle.migrate import SchemaError
from mutuelle.server import admin_site, roc_site
from mutuelle.signatures import SignaturePolicy
from mutuelle.simulator import Simulator
from mutuelle.storage import ISandboxStore
from mutuelle.stores import OpenedStore, open_store
from piano.config import ConfigError
from piano.reactors import IServiceReactor
from piano.tls import SwappableServerContext, TLSConfigError, TLSFiles, server_options
from piano.web import listen
from roc.signature import Trust

_log = Logger(namespace="mutuelle.service")


class MutuelleService(MultiService):
    """The simulator's root service; keeps the parts a reload or a test needs."""

    def __init__(self, simulator: Simulator, tls_context: SwappableServerContext) -> None:
        super().__init__()
        self.simulator = simulator
        self.tls_context = tls_context
        self.store: ISandboxStore | None = None

    def reload_tls(self, config: MutuelleConfig) -> None:
        """Serve new connections with the certificates *config* names (for a later SIGHUP)."""
        self.tls_context.swap(_tls_options(config))


def _tls_options(config: MutuelleConfig) -> Any:
    tls = config.tls
    try:
        return server_options(
            TLSFiles(tls.certificate, tls.private_key, tls.ca_certificates),
            tls.require_client_certificate,
        )
    except TLSConfigError as exc:
        raise ConfigError(f"tls: {exc}") from None


def _signature_trust(config: MutuelleConfig) -> Trust | None:
    """The CAs trusted to sign requests: ``signatures.ca_certificates``, else the TLS ones."""
    paths = config.signatures.ca_certificates or config.tls.ca_certificates
    where = "signatures.ca_certificates" if config.signatures.ca_certificates else "tls"
    if not paths:
        if config.signatures.policy != "off":
            raise ConfigError("signatures.ca_certificates: required to check signatures")
        return None
    try:
        return Trust.from_files(paths)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{where}: cannot read the CAs trusted to sign ({exc})") from None


def load_simulator_data(config: MutuelleConfig) -> tuple[SimulatorData, Catalogue]:
    """The configured data and its catalogue; ConfigError naming ``data_dir`` if unusable."""
    try:
        data = load_data(config.data_dir)
        return data, build_catalogue(data)
    except (DataError, ValueError) as exc:
        raise ConfigError(f"data_dir: {exc}") from None


def build_service(
    config: MutuelleConfig, reactor: IServiceReactor, data: SimulatorData | None = None
) -> MutuelleService:
    """Every part of the simulator wired together; ConfigError (with its path) if unusable.

    *data* replaces the configured data (tests pass generated data).
    """
    if data is None:
        data, catalogue = load_simulator_data(config)
    else:
        catalogue = build_catalogue(data)
    simulator = Simulator(
        data,
        catalogue,
        config.public_url,
        config.max_body_bytes,
        clock=reactor,
        timeout_delay=config.faults.timeout_delay,
        late_delay=config.faults.late_delay,
        signature_policy=SignaturePolicy(config.signatures.policy),
        signature_trust=_signature_trust(config),
    )
    tls_context = SwappableServerContext(_tls_options(config))
    root = MutuelleService(simulator, tls_context)
    opened = _open_storage(config, reactor, simulator)
    if opened.service is not None:
        opened.service.setServiceParent(root)  # started before the listeners below
    store = opened.store
    root.store = store
    _purge_job(config, store, reactor).setServiceParent(root)
    site = roc_site(simulator, reactor, store)
    tls_factory = TLSMemoryBIOFactory(tls_context, False, site, clock=reactor)
    listen(config.listen.endpoint, tls_factory, reactor, "listen.endpoint", root)
    if config.plain.endpoint:
        plain = roc_site(simulator, reactor, store)
        listen(config.plain.endpoint, plain, reactor, "plain.endpoint", root)
    checkable = simulator.signature_trust is not None
    api = AdminApi(store, signatures_checkable=checkable, catalogue=simulator.catalogue)
    admin = admin_site(reactor, api, store)
    listen(config.admin.endpoint, admin, reactor, "admin.endpoint", root)
    _log.info("Sandboxes kept in {storage}", storage=opened.description)
    return root


def _open_storage(
    config: MutuelleConfig, reactor: IServiceReactor, simulator: Simulator
) -> OpenedStore:
    storage = config.storage
    try:
        return open_store(
            storage.url, Path.cwd(), reactor, simulator.sandboxes, threads=storage.threads
        )
    except (SchemaError, OSError) as exc:
        raise ConfigError(f"storage.url: {exc}") from None


def _purge_job(
    config: MutuelleConfig, store: ISandboxStore, reactor: IServiceReactor
) -> TimerService:
    """The periodic purge of idle sandboxes (in the store's threads, never the reactor's)."""
    idle = config.storage.idle_days * 86400

    def purge() -> Deferred[None]:
        def done(count: int) -> None:
            if count:
                _log.info("Purged {count} idle sandboxes", count=count)

        def failed(failure: Failure) -> None:
            _log.warn("Purging idle sandboxes failed: {reason}", reason=failure.getErrorMessage())

        return store.purge_idle(idle).addCallbacks(done, failed)

    job = TimerService(config.storage.purge_interval, purge)
    job.clock = reactor
    return job
