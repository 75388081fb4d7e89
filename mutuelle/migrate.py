"""The sandboxes database's schema, brought up to date at start-up.

The schema is a short ordered list of SQL files in ``mutuelle/migrations`` (``0001_x.sql``,
``0002_y.sql``...), each applied once, in one transaction with the version it brings, and
recorded in ``schema_version``. Why not Alembic: it needs SQLAlchemy, which nothing else here
uses, for four tables written in portable SQL; the files are read by the same two drivers
that run the exchanges, and an operator can read (and apply by hand) plain SQL.

A database at a version this code does not know (written by a newer Mutuelle ANS) is refused:
the simulator does not start, rather than misread or damage it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class SchemaError(Exception):
    """The database cannot be used by this version of the code; the message says why."""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """The file's statements (separated by ``;`` at the end of a line), comments dropped."""
        lines = [line for line in self.sql.splitlines() if not line.strip().startswith("--")]
        text = "\n".join(lines)
        return [s.strip() for s in re.split(r";\s*$", text, flags=re.M) if s.strip()]


def migrations() -> list[Migration]:
    """Every migration shipped, by version; versions are 1, 2, 3... with no gap."""
    found = []
    for item in resources.files("mutuelle.migrations").iterdir():
        match = _NAME.match(item.name)
        if match:
            found.append(Migration(int(match.group(1)), item.name, item.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise SchemaError("mutuelle/migrations: versions must be 1, 2, 3... without gaps")
    return found


def current_version(cursor: Any) -> int:
    """The schema version recorded in the database (0 for an empty one)."""
    cursor.execute("SELECT MAX(version) FROM schema_version")
    row = cursor.fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def upgrade(connection: Any, placeholder: str, lock: str | None) -> tuple[int, int]:
    """Apply the missing migrations on *connection*; (version before, version after).

    *lock* is a statement run first in the transaction so that two instances starting
    together apply each migration once (PostgreSQL: an advisory lock; SQLite: ``BEGIN
    IMMEDIATE`` already serialises writers). Commits; rolls back on any error.
    """
    shipped = migrations()
    known = len(shipped)
    cursor = connection.cursor()
    try:
        if lock is not None:
            cursor.execute(lock)
        cursor.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        before = current_version(cursor)
        if before > known:
            raise SchemaError(
                f"the sandboxes database is at schema version {before}, newer than this "
                f"Mutuelle ANS knows ({known}): it was written by a newer release. Run that "
                "release, or point storage.url at another database; nothing was changed"
            )
        for migration in shipped[before:]:
            for statement in migration.statements():
                cursor.execute(statement)
            insert = "INSERT INTO schema_version (version) VALUES (?)"
            cursor.execute(insert.replace("?", placeholder), (migration.version,))
        connection.commit()
        return before, known
    except BaseException:
        connection.rollback()
        raise
    finally:
        cursor.close()
