"""The relay's configuration: one TOML file parsed into frozen dataclasses at start-up."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piano.config import ConfigError, load, non_negative, one_of, positive, read_toml, setting
from piano.tls import ServerTLSConfig
from roc.identifiers import amc_number_error, finess_error
from rpn.breaker import BreakerPolicy
from rpn.lifecycle import SECTORS, State
from rpn.workers import check_worker_endpoint


def _finess_list(values: Any) -> str | None:
    for i, value in enumerate(values):
        problem = finess_error(value)
        if problem:
            return f"[{i}]: {problem}"
    return None


def _amc_numbers(values: Any) -> str | None:
    for i, value in enumerate(values):
        problem = amc_number_error(value)
        if problem:
            return f"[{i}]: {problem}"
    return None


def _paths(values: Any) -> str | None:
    if not values:
        return "must list at least one path"
    for value in values:
        if not value.startswith("/") or (value.endswith("/") and value != "/"):
            return f"{value!r}: must start with / and not end with /"
    return None


def _networks(values: Any) -> str | None:
    for i, value in enumerate(values):
        try:
            ipaddress.ip_network(value)
        except ValueError:
            return f"[{i}]: not an IP network (a.b.c.d/n)"
    return None


def _https_url(value: Any) -> str | None:
    return None if value.startswith("https://") else "must be an https:// URL"


@dataclass(frozen=True, slots=True)
class ListenConfig:
    endpoint: str = setting(
        "Twisted server endpoint for establishments (TLS is added by the relay); "
        "'systemd:domain=INET:index=0' for socket activation.",
        "tcp:8443:interface=127.0.0.1",
    )
    workers: int = setting(
        "Relay processes on this host sharing the listening socket (one per core); the "
        "admin endpoint of worker N is the admin port + N.",
        1,
        positive,
    )


@dataclass(frozen=True, slots=True)
class HttpConfig:
    paths: tuple[str, ...] = setting(
        "URL paths where ROC services are published (a request path must equal one or "
        "start with it followed by /).",
        ("/roc",),
        _paths,
    )
    max_body_bytes: int = setting("Largest request body accepted (413 above).", 1 << 20, positive)
    max_response_bytes: int = setting("Largest AMC answer relayed (502 above).", 4 << 20, positive)
    idle_timeout: float = setting(
        "Seconds a client connection may stay silent before it is closed.", 30.0, positive
    )
    read_timeout: float = setting(
        "Seconds a client has to send a whole request once it started (slow clients cut).",
        30.0,
        positive,
    )


@dataclass(frozen=True, slots=True)
class ShutdownConfig:
    drain_timeout: float = setting(
        "Seconds exchanges in flight may take to finish once the relay is asked to stop "
        "(it stops accepting at once; what is still running after this is cut).",
        15.0,
        non_negative,
    )


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    policy: str = setting(
        "Routing-key extraction policy, a Twisted plugin name: soap-header, http-header, "
        "url-path, or a third-party one.",
        "soap-header",
    )
    options: dict[str, Any] = setting(
        "Options for the policy (for soap-header: paths, max_header_bytes).", default_factory=dict
    )


def _one_finess(value: Any) -> str | None:
    return finess_error(value)


def _sites(values: Any) -> str | None:
    if not values:
        return "must list at least one site (FINESS géographique)"
    return _finess_list(values)


def _sectors(values: Any) -> str | None:
    if not values:
        return "must list at least one sector"
    for value in values:
        if value not in SECTORS:
            return f"{value!r}: must be one of {', '.join(SECTORS)}"
    if len(set(values)) != len(values):
        return "lists a sector twice"
    return None


@dataclass(frozen=True, slots=True)
class LegalEntityConfig:
    finess: str = setting("FINESS juridique of the legal entity.", check=_one_finess)
    sites: tuple[str, ...] = setting(
        "FINESS géographiques of its sites registered with the relay.", check=_sites
    )
    state: str = setting(
        "Where the entity stands on its way to production (docs/raccordement.md): "
        "qualification (reaches only lifecycle.simulated_amcs), production_sous_surveillance "
        "(live, tighter anomaly rules for lifecycle.watch_days), production, or suspendue "
        "(only lifecycle.simulated_amcs). Its sites share it. Change it with "
        "`python -m rpn.lifecycle set`, then reload.",
        State.PRODUCTION.value,
        one_of(*(s.value for s in State)),
    )
    since: datetime.date | None = setting(
        "The day the state began (YYYY-MM-DD): pages count the days in a state, and the "
        "watch of production_sous_surveillance ends lifecycle.watch_days after it.",
        None,
    )
    sectors: tuple[str, ...] = setting(
        "Sectors of the entity's activity (MCO, PSY, HAD, SMR, OQN): they choose its "
        "qualification suite (ROC V1 for MCO only, V2 otherwise).",
        ("MCO",),
        _sectors,
    )


#: Shown when a configuration still has the first wave's flat allow-list.
OLD_ALLOW_LIST = (
    "establishments.allowed: the flat allow-list is replaced by the registration of each "
    "legal entity with its sites, so that no establishment can speak for another's site. "
    "Write, for each legal entity:\n"
    "  [[establishments.legal_entities]]\n"
    '  finess = "<FINESS juridique>"\n'
    '  sites = ["<FINESS géographique>", ...]\n'
    "(docs/configuration.md, docs/operations.md)"
)


@dataclass(frozen=True, slots=True)
class EstablishmentsConfig:
    legal_entities: tuple[LegalEntityConfig, ...] = setting(
        "Registered establishments: each legal entity (FINESS juridique) with its sites "
        "(FINESS géographiques). A client certificate names a site or a legal entity; a "
        "message is accepted when its sender pair is registered and the certificate is "
        "that site or its legal entity.",
        (),
    )
    check_sender: bool = setting(
        "Refuse a message whose sender pair (FinessJuridique, FinessGeographique) is not "
        "registered or not the client certificate's site or legal entity.",
        True,
    )
    max_in_flight: int = setting(
        "Exchanges one establishment may have in flight at once (429 above), so that one "
        "misbehaving client cannot take every AMC slot.",
        64,
        positive,
    )

    def __post_init__(self) -> None:
        entities: dict[str, int] = {}
        sites: dict[str, str] = {}
        for index, entity in enumerate(self.legal_entities):
            if entity.finess in entities:
                raise ConfigError(
                    f"legal_entities[{index}].finess: {entity.finess} is already "
                    f"legal_entities[{entities[entity.finess]}]"
                )
            entities[entity.finess] = index
            for site in entity.sites:
                if site in sites:
                    raise ConfigError(
                        f"legal_entities[{index}].sites: site {site} is already registered "
                        f"under {sites[site]}"
                    )
                sites[site] = entity.finess


@dataclass(frozen=True, slots=True)
class LifecycleConfig:
    simulated_amcs: tuple[str, ...] = setting(
        "AMC numbers Mutuelle ANS plays (fictitious AMCs): the only ones an establishment in "
        "qualification or suspended reaches.",
        (),
        _amc_numbers,
    )
    watch_days: int = setting(
        "Days after going live (the since of production_sous_surveillance) during which an "
        "establishment is under the tighter anomaly rules (exported as rpn_lifecycle_watch_days).",
        30,
        positive,
    )
    audit_log: Path | None = setting(
        "File where `python -m rpn.lifecycle set` appends one JSON line per state change "
        "(who, why, from, to, when).",
        None,
    )


@dataclass(frozen=True, slots=True)
class AnnuaireConfig:
    static_file: Path | None = setting(
        "TOML directory of AMCs (development, or operator override of the web service).", None
    )
    service_url: str | None = setting(
        "URL of the annuaire web service (ANN), called over mutual TLS.", None, _https_url
    )
    timeout: float = setting("Seconds to wait for the annuaire web service.", 5.0, positive)
    ttl: float = setting("Seconds an AMC entry is used before it is asked again.", 300.0, positive)
    negative_ttl: float = setting("Seconds an 'unknown AMC' answer is remembered.", 60.0, positive)
    stale_if_error: float = setting(
        "Seconds an expired entry may still be used while the annuaire fails.",
        86400.0,
        non_negative,
    )
    snapshot: Path | None = setting(
        "File keeping the last-known-good entries, used at start-up if the annuaire is down.",
        None,
    )


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    certificate: Path = setting("PEM client certificate the relay presents to AMCs.")
    private_key: Path = setting("PEM private key of that certificate.")
    ca_certificates: tuple[Path, ...] = setting("PEM files of the CAs that sign AMC servers.")
    connect_timeout: float = setting("Seconds to open a connection to an AMC.", 3.0, positive)
    request_timeout: float = setting(
        "Seconds an AMC has to answer once the exchange is sent (504 after).", 10.0, positive
    )
    max_active: int = setting("Concurrent exchanges per AMC.", 32, positive)
    max_queued: int = setting("Exchanges waiting for a slot per AMC (503 above).", 64, non_negative)
    queue_timeout: float = setting("Seconds an exchange may wait for a slot.", 2.0, positive)
    idle_timeout: float = setting(
        "Seconds an idle pooled connection is kept (shorter than AMCs' keep-alive).",
        20.0,
        positive,
    )
    breaker: BreakerPolicy = setting("Per-AMC circuit breaker.", default_factory=BreakerPolicy)


@dataclass(frozen=True, slots=True)
class AdminConfig:
    endpoint: str = setting(
        "Endpoint for /healthz, /readyz and /metrics (keep it on loopback).",
        "tcp:9180:interface=127.0.0.1",
    )
    allowed_networks: tuple[str, ...] = setting(
        "Client networks allowed on the admin endpoint (403 for others), e.g. the "
        "Prometheus servers' and load balancers' addresses.",
        ("127.0.0.0/8", "::1/128"),
        _networks,
    )


@dataclass(frozen=True, slots=True)
class LogConfig:
    access_log: Path | None = setting(
        "File receiving one JSON line per exchange; absent: one event per exchange in the "
        "service log.",
        None,
    )


@dataclass(frozen=True, slots=True)
class RpnConfig:
    tls: ServerTLSConfig = setting("TLS towards establishments.")
    upstream: UpstreamConfig = setting("Connections to AMCs.")
    listen: ListenConfig = setting("Where establishments connect.", default_factory=ListenConfig)
    http: HttpConfig = setting("HTTP limits.", default_factory=HttpConfig)
    routing: RoutingConfig = setting("Routing-key extraction.", default_factory=RoutingConfig)
    establishments: EstablishmentsConfig = setting(
        "Registered establishments.", default_factory=EstablishmentsConfig
    )
    lifecycle: LifecycleConfig = setting(
        "Establishments' path to production.", default_factory=LifecycleConfig
    )
    annuaire: AnnuaireConfig = setting("The AMC directory.", default_factory=AnnuaireConfig)
    admin: AdminConfig = setting("Admin endpoint.", default_factory=AdminConfig)
    log: LogConfig = setting("Logging.", default_factory=LogConfig)
    shutdown: ShutdownConfig = setting("Graceful stop.", default_factory=ShutdownConfig)

    def __post_init__(self) -> None:
        problem = check_worker_endpoint(self.listen.endpoint, self.listen.workers)
        if problem:
            raise ConfigError(f"listen.endpoint: {problem}")
        if not self.lifecycle.simulated_amcs:
            for entity in self.establishments.legal_entities:
                if entity.state in (State.QUALIFICATION.value, State.SUSPENDED.value):
                    raise ConfigError(
                        f"lifecycle.simulated_amcs: empty, so legal entity {entity.finess} "
                        f"({entity.state}) could reach no AMC; list Mutuelle ANS's AMC numbers"
                    )
        if self.annuaire.static_file is None and self.annuaire.service_url is None:
            raise ConfigError("annuaire: set static_file, service_url or both")


def load_config(path: Path) -> RpnConfig:
    """Read and validate the relay configuration at *path* (ConfigError names the key)."""
    return parse_config(read_toml(path), path.parent.resolve())


def parse_config(data: dict[str, Any], base: Path | None = None) -> RpnConfig:
    """Validate parsed TOML *data* into the relay configuration."""
    establishments = data.get("establishments")
    if isinstance(establishments, dict) and "allowed" in establishments:
        raise ConfigError(OLD_ALLOW_LIST)
    return load(RpnConfig, data, base)
