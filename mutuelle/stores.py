"""Opening the sandboxes' store that ``storage.url`` names (memory, SQLite or PostgreSQL),
its schema migrated; apart from ``mutuelle.databases`` (connections and dialects), which the
SQL store itself uses."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twisted.application.service import IService

from mutuelle.databases import (
    POSTGRESQL_MIGRATION_LOCK,
    SQLITE,
    connect_postgresql,
    connect_sqlite,
    postgresql_dialect,
    sqlite_path,
)
from mutuelle.dbpool import ThreadedConnections
from mutuelle.migrate import SchemaError, upgrade
from mutuelle.sandbox import MemoryStore, Sandboxes, SandboxSeed
from mutuelle.sqlstore import SqlStore
from piano.reactors import IServiceReactor


@dataclasses.dataclass
class OpenedStore:
    store: Any
    #: Runs the database threads (start it with the service; None for memory:).
    service: IService | None
    #: Loggable description (never a password).
    description: str


def open_store(
    url: str, base: Path, reactor: IServiceReactor, sandboxes: Sandboxes, threads: int
) -> OpenedStore:
    """The store *url* names, its schema migrated; SchemaError or OSError if unusable."""
    seed: SandboxSeed = sandboxes.seed
    if url == "memory:":
        return OpenedStore(MemoryStore(sandboxes), None, "memory")
    if url.startswith("sqlite:"):
        path = sqlite_path(url, base)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            first = connect_sqlite(path)
            try:
                upgrade(first, "?", SQLITE.begin)
            finally:
                first.close()
        except sqlite3.Error as exc:
            raise SchemaError(f"{path}: {exc}") from None
        connections = ThreadedConnections(
            reactor, lambda: connect_sqlite(path), SQLITE.unavailable, threads=1
        )
        return OpenedStore(
            SqlStore(connections, SQLITE, reactor, seed), connections, f"sqlite {path}"
        )
    dialect = postgresql_dialect()
    try:
        first = connect_postgresql(url)
        try:
            upgrade(first, dialect.mark, POSTGRESQL_MIGRATION_LOCK)
        finally:
            first.close()
    except dialect.unavailable as exc:
        raise SchemaError(f"cannot reach PostgreSQL: {str(exc).strip().splitlines()[0]}") from None
    connections = ThreadedConnections(
        reactor, lambda: connect_postgresql(url), dialect.unavailable, threads=threads
    )
    parts = urlsplit(url)
    where = f"postgresql {parts.hostname or 'local'}:{parts.port or 5432}{parts.path}"
    return OpenedStore(SqlStore(connections, dialect, reactor, seed), connections, where)
