"""The two databases the sandboxes can live in: how to connect, and what differs in their SQL.

``open_store`` turns ``storage.url`` into a store and the service that runs it:

- ``memory:``: the sandboxes in process memory, lost at restart (``MemoryStore``);
- ``sqlite:///relative/file.sqlite3``, ``sqlite:////absolute/file.sqlite3`` (SQLAlchemy's
  spelling): one file, one host; the default;
- ``postgresql://user@host:port/dbname`` (any libpq URL): sandboxes shared by every instance.

The schema is brought up to date (``mutuelle.migrate``) before anything listens.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


@dataclasses.dataclass(frozen=True)
class Dialect:
    """What differs between the two databases, for the same SQL."""

    name: str
    #: Run first in a writing transaction (SQLite takes the write lock up front).
    begin: str | None
    #: Errors meaning "the database is unreachable or failed", not "the work is wrong".
    unavailable: tuple[type[BaseException], ...]
    #: Errors of a constraint (or a serialisation conflict): the work is played again once.
    conflict: tuple[type[BaseException], ...]
    #: The DB-API parameter mark.
    mark: str = "?"

    def sql(self, text: str) -> str:
        return text if self.mark == "?" else text.replace("?", self.mark)


SQLITE = Dialect(
    "sqlite",
    begin="BEGIN IMMEDIATE",
    unavailable=(sqlite3.OperationalError, sqlite3.DatabaseError),
    conflict=(sqlite3.IntegrityError,),
)


def connect_sqlite(path: Path) -> sqlite3.Connection:
    """A connection to the SQLite file *path* (created if missing): WAL, foreign keys on.

    Autocommit mode (``isolation_level=None``): each unit of work opens its transaction
    itself (``BEGIN IMMEDIATE`` when it writes). ``synchronous=NORMAL`` in WAL mode keeps
    the database consistent after a crash; a power cut may lose the last exchanges.
    """
    connection = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection


def postgresql_dialect() -> Dialect:
    import psycopg

    return Dialect(
        "postgresql",
        begin=None,
        unavailable=(psycopg.OperationalError, psycopg.InterfaceError),
        conflict=(psycopg.errors.IntegrityError, psycopg.errors.SerializationFailure),
        mark="%s",
    )


#: Taken while migrating, so that instances starting together migrate once.
POSTGRESQL_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(140014)"


def connect_postgresql(url: str) -> Any:
    """A connection to the PostgreSQL server of *url*; connecting gives up after 5 s."""
    import psycopg

    return psycopg.connect(url, connect_timeout=5, autocommit=False)


def storage_url_error(url: str) -> str | None:
    """Why *url* is not a storage URL, or None."""
    if url == "memory:":
        return None
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
            return "sqlite URLs are sqlite:///relative/path or sqlite:////absolute/path"
        return None
    if parts.scheme in ("postgresql", "postgres"):
        return None if parts.netloc or parts.query else "postgresql URLs name a server"
    return "must be memory:, sqlite:///FILE or postgresql://..."


def sqlite_path(url: str, base: Path) -> Path:
    """The file a ``sqlite:///`` *url* names; relative paths resolve against *base*."""
    path = Path(urlsplit(url).path[1:])
    return path if path.is_absolute() else base / path
