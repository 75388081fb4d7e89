"""The sandbox stores: the memory fake and SQLite keep the same contract; schema migrations;
records read back as written."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from mutuelle import migrate, testing
from mutuelle.care import CareRequest, compute
from mutuelle.databases import SQLITE, connect_sqlite, storage_url_error
from mutuelle.dbpool import InlineConnections
from mutuelle.decisions import engagement_record
from mutuelle.migrate import SchemaError, upgrade
from mutuelle.rows import decode_engagement, decode_entry, encode_engagement, encode_entry
from mutuelle.sandbox import JOURNAL_SIZE, MemoryStore, Sandboxes, Violation
from mutuelle.server import admin_site
from mutuelle.sqlstore import SqlStore
from mutuelle.storage import ISandbox, StorageUnavailable
from mutuelle.stores import open_store
from piano.testing import StrictClock, StrictMemoryReactorClock
from tests.deferreds import failure_result_of, success_result_of
from tests.storage_contract import CATALOGUE, DATA, SEED, MakeStore, StoreContract, entry

PREFIX = "/work"


class TestMemoryStore(StoreContract):
    atomic = False
    durable = False

    @pytest.fixture
    def stores(self) -> MakeStore:
        return lambda clock: MemoryStore(Sandboxes(clock, SEED))


def sqlite_store(path: Path, clock: StrictClock) -> tuple[SqlStore, InlineConnections]:
    first = connect_sqlite(path)
    upgrade(first, "?", SQLITE.begin)
    first.close()
    connections = InlineConnections(lambda: connect_sqlite(path), SQLITE.unavailable)
    return SqlStore(connections, SQLITE, clock, SEED), connections


class TestSqliteStore(StoreContract):
    @pytest.fixture
    def stores(self, tmp_path: Path) -> Iterator[MakeStore]:
        opened: list[InlineConnections] = []

        def make(clock: StrictClock) -> SqlStore:
            store, connections = sqlite_store(tmp_path / "sandboxes.sqlite3", clock)
            opened.append(connections)
            return store

        yield make
        for connections in opened:
            connections.close()


def test_the_database_refuses_two_active_clc_engagements_for_one_stay(tmp_path: Path) -> None:
    """The constraint behind the row lock: whatever races, one engagement per stay."""
    sqlite_store(tmp_path / "s.sqlite3", StrictClock())[1].close()
    db = connect_sqlite(tmp_path / "s.sqlite3")
    db.execute("INSERT INTO sandboxes (finess, created, last_used) VALUES ('990000028', 0, 0)")
    row = "INSERT INTO engagements VALUES ('990000028', ?, ?, 'A', 'N', 'D', 1, 'SEJ', ?, ?, '{}')"
    db.execute(row, ("ENG-1", 1, "ACTIF", "f1"))
    db.execute(row, ("ENG-0", 0, "ACTIF", ""))  # admin-seeded records are not CLC's
    with pytest.raises(sqlite3.IntegrityError):
        db.execute(row, ("ENG-2", 2, "ACTIF", "f2"))
    db.execute(row, ("ENG-3", 3, "ANNULE", "f3"))  # cancelled ones do not count
    db.close()


def test_an_unreachable_database_fails_the_unit_of_work_with_storage_unavailable(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "gone" / "s.sqlite3"
    connections = InlineConnections(lambda: connect_sqlite(missing), SQLITE.unavailable)
    store = SqlStore(connections, SQLITE, StrictClock(), SEED)
    failure = failure_result_of(store.transact("990000028", lambda s: None), StorageUnavailable)
    assert failure.getErrorMessage().startswith("sqlite: OperationalError: unable to open")
    failure_result_of(store.ping(), StorageUnavailable)


def test_migrations_apply_once_and_record_their_version(tmp_path: Path) -> None:
    db = connect_sqlite(tmp_path / "m.sqlite3")
    known = len(migrate.migrations())
    assert upgrade(db, "?", SQLITE.begin) == (0, known)
    assert upgrade(db, "?", SQLITE.begin) == (known, known)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"schema_version", "sandboxes", "identifications", "engagements", "journal"} <= tables


def test_a_database_newer_than_the_code_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    db = connect_sqlite(path)
    upgrade(db, "?", SQLITE.begin)
    db.execute("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(SchemaError, match=r"schema version 99, newer than this Mutuelle ANS"):
        upgrade(db, "?", SQLITE.begin)
    db.close()
    sandboxes = Sandboxes(StrictClock(), SEED)
    with pytest.raises(SchemaError, match="newer release"):
        open_store(f"sqlite:///{path}", tmp_path, StrictMemoryReactorClock(), sandboxes, 1)


def test_storage_urls_are_checked() -> None:
    assert storage_url_error("memory:") is None
    assert storage_url_error(f"sqlite:///{PREFIX}/s.sqlite3") is None
    assert storage_url_error("postgresql://mutuelle@127.0.0.1:5432/m") is None
    assert storage_url_error("sqlite:///") is not None
    assert storage_url_error("redis://x") == "must be memory:, sqlite:///FILE or postgresql://..."


def test_records_read_back_as_they_were_written() -> None:
    for engagement in SEED.engagements:
        assert decode_engagement(encode_engagement(engagement)) == engagement
    clc = CATALOGUE.get("990000101", "CLC_OK_MCO_ENGAGEMENT")
    assert clc is not None and isinstance(clc.request, CareRequest)
    person = DATA.dataset.beneficiary("990000101", clc.request.beneficiary)
    assert person is not None
    statement = compute(clc.request, DATA.dataset.cover_of(person), DATA.tariffs)
    made = engagement_record(clc.request, "990000101", statement, "ENG-1")
    assert decode_engagement(encode_engagement(made)) == made
    assert decode_engagement(encode_engagement(made)).statement == statement
    violation = Violation("Demande/Beneficiaire", "R-NIR", "clé invalide")
    for written in (entry(), entry("07", (violation,))):
        assert decode_entry(encode_entry(written)) == written


def test_readiness_follows_the_storage(tmp_path: Path) -> None:
    gone = InlineConnections(lambda: connect_sqlite(tmp_path / "no" / "s.sqlite3"), ())
    broken = SqlStore(gone, SQLITE, StrictClock(), SEED)
    for store, status, text in [
        (MemoryStore(Sandboxes(StrictClock(), SEED)), 200, b"ok\n"),
        (broken, 503, b"storage unavailable\n"),
    ]:
        site = admin_site(StrictMemoryReactorClock(), None, store)
        reply = testing.request(site, "/readyz", method="GET")
        assert (reply.status, reply.body) == (status, text)


def test_the_database_keeps_at_most_a_batch_more_than_the_journal_shows(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    store, connections = sqlite_store(path, StrictClock())

    def many(sandbox: ISandbox) -> None:
        for _ in range(1234):
            sandbox.record(entry())

    success_result_of(store.transact("990000028", many))
    connections.close()
    db = connect_sqlite(path)
    (rows,) = db.execute("SELECT COUNT(*) FROM journal").fetchone()
    db.close()
    assert JOURNAL_SIZE <= rows <= JOURNAL_SIZE + 100


def test_a_unit_of_work_meeting_a_constraint_is_played_again_once(tmp_path: Path) -> None:
    store, connections = sqlite_store(tmp_path / "c.sqlite3", StrictClock())
    attempts: list[int] = []

    def racing(sandbox: ISandbox) -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise sqlite3.IntegrityError("UNIQUE constraint failed: engagements.nir 1999999")
        return "played"

    assert success_result_of(store.transact("990000028", racing)) == "played"
    assert len(attempts) == 2

    def always(sandbox: ISandbox) -> None:
        raise sqlite3.IntegrityError("UNIQUE constraint failed: engagements.nir 1999999")

    failure = failure_result_of(store.transact("990000028", always), StorageUnavailable)
    assert failure.getErrorMessage() == "sqlite: IntegrityError twice"  # never the row's values
    connections.close()
