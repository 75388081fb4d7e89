"""Mutuelle ANS's configuration: one TOML file parsed into frozen dataclasses at start-up.

Unknown keys and bad values are rejected with their path (``tls.certificate: required``)
before anything listens; relative paths resolve against the configuration file's directory.
See ``etc/mutuelle.toml`` for a commented example.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from piano.config import load_file, one_of, positive, setting


def _https_base_url(value: Any) -> str | None:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        return "must be an https:// URL"
    if parts.query or parts.fragment or value.endswith("/"):
        return "must have no query, fragment or trailing slash"
    return None


def _plain_endpoint(value: Any) -> str | None:
    if not value.strip():
        return "must be a Twisted endpoint string"
    if value.split(":", 1)[0].lower() == "ssl":
        return "must not be an ssl: endpoint (the simulator adds TLS itself)"
    return None


@dataclass(frozen=True, slots=True)
class ListenConfig:
    endpoint: str = setting(
        "Twisted server endpoint for ROC clients (TLS is added by the simulator); "
        "'systemd:domain=INET:index=0' for socket activation.",
        "tcp:8444:interface=127.0.0.1",
        _plain_endpoint,
    )


@dataclass(frozen=True, slots=True)
class PlainListenConfig:
    endpoint: str | None = setting(
        "Optional plain-HTTP (no TLS) endpoint serving the same /roc/<SERVICE> paths, for "
        "benchmarks and local training tools; keep it on loopback. Sandbox: the "
        "X-ROC-Emetteur-Finess header, else the shared 'anonyme' sandbox.",
        None,
        _plain_endpoint,
    )


@dataclass(frozen=True, slots=True)
class FaultsConfig:
    timeout_delay: float = setting(
        "Seconds the DELAI_DEPASSE fault waits before closing the connection without an "
        "answer (longer than a client's timeout).",
        65.0,
        positive,
    )
    late_delay: float = setting(
        "Seconds the REPONSE_TARDIVE fault waits before the normal answer.", 3.0, positive
    )


@dataclass(frozen=True, slots=True)
class TLSConfig:
    certificate: Path = setting("PEM server certificate (leaf first, then intermediates).")
    private_key: Path = setting("PEM private key of the server certificate.")
    ca_certificates: tuple[Path, ...] = setting(
        "PEM files of the CAs whose client certificates are accepted (the relay's, or "
        "establishments' for direct training access).",
        (),
    )
    require_client_certificate: bool = setting(
        "Require and verify a client certificate (mutual TLS), as ROC does.", True
    )


@dataclass(frozen=True, slots=True)
class AdminConfig:
    endpoint: str = setting(
        "Plain-HTTP endpoint serving /healthz and the admin API (/__admin/...); keep it on "
        "loopback.",
        "tcp:9181:interface=127.0.0.1",
        _plain_endpoint,
    )


def _storage_url(value: Any) -> str | None:
    from mutuelle.databases import storage_url_error

    return storage_url_error(value)


@dataclass(frozen=True, slots=True)
class StorageConfig:
    url: str = setting(
        "Where the sandboxes are kept: 'sqlite:///file.sqlite3' (relative to this file) or "
        "'sqlite:////var/lib/piano/mutuelle/sandboxes.sqlite3' (absolute), one host; "
        "'postgresql://user@host:5432/dbname' (a libpq URL), shared by several instances; "
        "'memory:', lost at restart. The schema is migrated at start-up.",
        "sqlite:///mutuelle-sandboxes.sqlite3",
        _storage_url,
    )
    threads: int = setting(
        "Threads (each with its own connection) running the PostgreSQL transactions; SQLite "
        "always uses one.",
        4,
        positive,
    )
    idle_days: float = setting(
        "A sandbox unused (no exchange, no admin call) for this many days is deleted.",
        90.0,
        positive,
    )
    purge_interval: float = setting(
        "Seconds between two runs of the purge of idle sandboxes (off the reactor thread).",
        3600.0,
        positive,
    )


@dataclass(frozen=True, slots=True)
class SignaturesConfig:
    policy: str = setting(
        "What to do with a request's XML signature (WS-Security, docs/roc-model.md): "
        "'require' (a missing or invalid one gets the fault MUT-400-SIGNATURE), 'report' "
        "(served, the violation recorded in the conformance report) or 'off'. A sandbox may "
        "override it (admin API).",
        "off",
        one_of("require", "report", "off"),
    )
    ca_certificates: tuple[Path, ...] = setting(
        "PEM files of the CAs whose establishment certificates may sign requests; empty: "
        "those of tls.ca_certificates.",
        (),
    )


@dataclass(frozen=True, slots=True)
class MutuelleConfig:
    public_url: str = setting(
        "https URL at which clients reach the simulator (no trailing slash); the demo "
        "annuaire lists <public_url>/roc/<SERVICE> for every AMC.",
        check=_https_base_url,
    )
    tls: TLSConfig = setting("Server TLS.")
    listen: ListenConfig = setting("Where ROC clients connect.")
    admin: AdminConfig = setting("Loopback administration endpoint (health, admin API).")
    plain: PlainListenConfig = setting("Optional plain-HTTP listener.")
    faults: FaultsConfig = setting("Technical faults' timings.")
    signatures: SignaturesConfig = setting("Checking requests' XML signatures.")
    storage: StorageConfig = setting("Where the sandboxes' state is kept, and for how long.")
    data_dir: Path | None = setting(
        "Directory holding amcs.toml and beneficiaries.toml to use instead of the shipped "
        "fictitious data (python -m mutuelle.generate writes them), and optionally "
        "tariffs.toml, the dated regulated amounts (else the shipped table).",
        None,
    )
    max_body_bytes: int = setting("Largest request accepted, in bytes.", 1 << 20, positive)


def load_config(path: Path) -> MutuelleConfig:
    """Read and validate the TOML configuration at *path*.

    A relative ``sqlite:///`` storage URL is made absolute against the file's directory.
    """
    config = load_file(MutuelleConfig, path)
    url = config.storage.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        absolute = os.path.normpath(path.resolve().parent / url[len("sqlite:///") :])
        storage = replace(config.storage, url=f"sqlite:///{absolute}")
        config = replace(config, storage=storage)
    return config
