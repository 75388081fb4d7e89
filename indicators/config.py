"""The indicators service's configuration: one TOML file parsed into frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from piano.config import ConfigError, load_file, positive, setting
from piano.tls import ServerTLSConfig


def _http_url(value: Any) -> str | None:
    if not value.startswith(("http://", "https://")):
        return "must be an http:// or https:// URL"
    return None if not value.endswith("/") else "must not end with /"


def _days(value: Any) -> str | None:
    return None if 1 <= value <= 400 else "must be between 1 and 400"


@dataclass(frozen=True, slots=True)
class ListenConfig:
    endpoint: str = setting(
        "Twisted server endpoint for the pages (TLS is added by the service); "
        "'systemd:domain=INET:index=0' for socket activation.",
        "tcp:8445:interface=127.0.0.1",
    )


@dataclass(frozen=True, slots=True)
class AccessConfig:
    agency_certificates: tuple[Path, ...] = setting(
        "PEM files of the client certificates granted the agency view (every establishment); "
        "matched by SHA-256 fingerprint, so a renewed agency certificate must be listed.",
        (),
    )


@dataclass(frozen=True, slots=True)
class PrometheusConfig:
    url: str = setting(
        "Base URL of the Prometheus server that scrapes the relays.",
        "http://127.0.0.1:9090",
        _http_url,
    )
    timeout: float = setting("Seconds a query may take.", 10.0, positive)


@dataclass(frozen=True, slots=True)
class IndicatorsConfig:
    window_days: int = setting(
        "Days covered by the figures (volumes, rates, codes, latency).", 30, _days
    )
    daily_days: int = setting(
        "Days shown in the daily charts, volumes and rates (Paris days, today included).",
        14,
        _days,
    )
    refresh_interval: float = setting(
        "Seconds between two readings of Prometheus (pages show the latest reading).",
        60.0,
        positive,
    )
    top_codes: int = setting(
        "Rows of the codes table per establishment (code, service and AMC; most frequent first).",
        20,
        positive,
    )
    minimum_peers: int = setting(
        "Establishments with traffic needed before a page shows its position among them "
        "(fewer say nothing, and could name them).",
        5,
        positive,
    )


@dataclass(frozen=True, slots=True)
class QualificationConfig:
    mutuelle_admin_url: str | None = setting(
        "Base URL of Mutuelle ANS's admin API (e.g. 'http://127.0.0.1:8091/__admin'), read for "
        "each establishment's qualification progress; absent, the pages say the progress is "
        "not available.",
        None,
        _http_url,
    )
    timeout: float = setting("Seconds a progress request to Mutuelle ANS may take.", 5.0, positive)
    stuck_days: int = setting(
        "Days in qualification without a newly passed step after which the agency page lists "
        "an establishment as stuck (first).",
        7,
        _days,
    )
    relay_config: str = setting(
        "Path of the relays' configuration file, as the promotion page prints it in the "
        "`python -m rpn.lifecycle set --config ...` command.",
        "/etc/piano/rpn.toml",
    )
    reload_command: str = setting(
        "The command the promotion page tells the operator to run after the change, on every "
        "relay host.",
        "systemctl reload piano-rpn",
    )


@dataclass(frozen=True, slots=True)
class AdminConfig:
    endpoint: str = setting(
        "Endpoint for /healthz, /readyz and /metrics (keep it on loopback).",
        "tcp:9182:interface=127.0.0.1",
    )


@dataclass(frozen=True, slots=True)
class Config:
    tls: ServerTLSConfig = setting("TLS towards establishments and the agency.")
    listen: ListenConfig = setting("Where browsers connect.", default_factory=ListenConfig)
    access: AccessConfig = setting("Who sees what.", default_factory=AccessConfig)
    prometheus: PrometheusConfig = setting(
        "The Prometheus server read.", default_factory=PrometheusConfig
    )
    indicators: IndicatorsConfig = setting("What is computed.", default_factory=IndicatorsConfig)
    qualification: QualificationConfig = setting(
        "Qualification progress (Mutuelle ANS) and the promotion page.",
        default_factory=QualificationConfig,
    )
    admin: AdminConfig = setting("Admin endpoint.", default_factory=AdminConfig)

    def __post_init__(self) -> None:
        if self.indicators.daily_days > self.indicators.window_days:
            raise ConfigError("indicators.daily_days: must be <= window_days")


def load_config(path: Path) -> Config:
    """Read and validate the configuration at *path* (ConfigError names the key)."""
    return load_file(Config, path)
