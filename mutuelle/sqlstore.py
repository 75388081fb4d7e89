"""The sandboxes in a SQL database: SQLite (one host) or PostgreSQL (several instances).

Each unit of work (``SqlStore.transact``) is one transaction, run off the reactor thread
(``mutuelle.dbpool``). It starts by taking the sandbox's row: an upsert that creates it when
new and, on PostgreSQL, locks it until commit (SQLite: ``BEGIN IMMEDIATE`` serialises writers),
so two instances playing exchanges of one sandbox take turns, and the second sees what the
first committed. A partial unique index keeps at most one active CLC engagement per stay,
should anything bypass that; a unit of work that breaks it is played again once, from the
start, and then finds the engagement (a retried CLC).

``SqlSandbox`` answers the rules' questions by reading the beneficiary's rows and asking the
pure functions of ``mutuelle.engagements`` and ``Identification.covers``: the rules are
written once, here and in memory alike.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from mutuelle import engagements as records
from mutuelle.billing import BillingReturn
from mutuelle.care import CareHistory
from mutuelle.databases import Dialect
from mutuelle.engagements import Engagement, EngagementState
from mutuelle.model import BeneficiaryKey, CareKind, Sector
from mutuelle.rows import (
    beneficiary_columns,
    decode_bodies,
    decode_engagement,
    decode_entry,
    decode_return,
    encode_bodies,
    encode_engagement,
    encode_entry,
    encode_return,
)
from mutuelle.sandbox import (
    JOURNAL_SIZE,
    MAX_RECORDS,
    DelOutcome,
    Identification,
    JournalEntry,
    SandboxSeed,
    cancellation,
)
from mutuelle.storage import ISandbox, ISandboxStore, StorageUnavailable
from mutuelle.technical import by_name

T = TypeVar("T")

#: Takes a sandbox's row, creating it if new (and on PostgreSQL locking it until commit).
_UPSERT = (
    "INSERT INTO sandboxes (finess, created, last_used) VALUES (?, ?, ?) "
    "ON CONFLICT (finess) DO UPDATE SET last_used = excluded.last_used "
    "RETURNING created, seeded, clock_offset, fault, requests, conforming, violations_by_rule, "
    "next_engagement, next_record, signature_policy"
)
_SELECT = (
    "SELECT created, seeded, clock_offset, fault, requests, conforming, violations_by_rule, "
    "next_engagement, next_record, signature_policy FROM sandboxes WHERE finess = ?"
)
#: Old identifications and engagements are trimmed once every this many records, old journal
#: entries once every this many exchanges.
_TRIM_EVERY = 100


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


@implementer(ISandbox)
class SqlSandbox:
    """One sandbox within one open transaction (a DB-API cursor); changes go straight in."""

    def __init__(
        self,
        cursor: Any,
        dialect: Dialect,
        finess: str,
        clock: IReactorTime,
        seed: SandboxSeed,
        row: tuple[Any, ...],
    ) -> None:
        self._cursor = cursor
        self._dialect = dialect
        self.finess = finess
        self._clock = clock
        self._seed = seed
        (
            self._created,
            seeded,
            self._clock_offset,
            fault,
            self._requests,
            self._conforming,
            violations,
            self._next_engagement,
            self._next_record,
            self._signature_policy,
        ) = row
        self._fault = None if fault is None else by_name(fault)
        self._violations: dict[str, int] = json.loads(violations)
        self._dirty = False
        self._read: dict[tuple[str, BeneficiaryKey], list[Engagement]] = {}
        if not seeded:
            self._plant_seed()

    # -- Plumbing ---------------------------------------------------------------------------

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        self._cursor.execute(self._dialect.sql(sql), params)
        return self._cursor

    def flush(self) -> None:
        """Write the sandbox's own row if anything in it changed (end of the unit of work)."""
        if not self._dirty:
            return
        self._execute(
            "UPDATE sandboxes SET created = ?, seeded = 1, clock_offset = ?, fault = ?, "
            "requests = ?, conforming = ?, violations_by_rule = ?, next_engagement = ?, "
            "next_record = ?, signature_policy = ? WHERE finess = ?",
            (
                self._created,
                self._clock_offset,
                None if self._fault is None else self._fault.value,
                self._requests,
                self._conforming,
                json.dumps(self._violations, sort_keys=True),
                self._next_engagement,
                self._next_record,
                self._signature_policy,
                self.finess,
            ),
        )
        self._dirty = False

    def _take_record_number(self) -> int:
        number: int = self._next_record
        self._next_record += 1
        self._dirty = True
        if number % _TRIM_EVERY == 0:
            self._trim("identifications")
            self._trim("engagements")
        return number

    def _trim(self, table: str) -> None:
        """Keep the ``MAX_RECORDS`` most recent rows of *table* in this sandbox."""
        (count,) = self._execute(
            f"SELECT COUNT(*) FROM {table} WHERE finess = ?",  # noqa: S608 - fixed names
            (self.finess,),
        ).fetchone()
        if count > MAX_RECORDS:
            self._execute(
                f"DELETE FROM {table} WHERE finess = ? AND seq <= (SELECT seq FROM {table} "  # noqa: S608
                "WHERE finess = ? ORDER BY seq LIMIT 1 OFFSET ?)",
                (self.finess, self.finess, count - MAX_RECORDS - 1),
            )
            self._read.clear()

    def _plant_seed(self) -> None:
        for identification in self._seed.identifications:
            self.identify(identification)
        for engagement in self._seed.engagements:
            self.add_engagement(engagement)
        for billing_return in self._seed.returns:
            self.keep_return(billing_return)
        self._dirty = True

    def _put_engagement(self, engagement: Engagement) -> None:
        self._read.clear()
        nir, birth, rank = beneficiary_columns(engagement.beneficiary)
        self._execute(
            "DELETE FROM engagements WHERE finess = ? AND number = ?",
            (self.finess, engagement.number),
        )
        self._execute(
            "INSERT INTO engagements (finess, number, seq, amc, nir, birth_date, birth_rank, "
            "reference, state, fingerprint, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                self.finess,
                engagement.number,
                self._take_record_number(),
                engagement.amc_number,
                nir,
                birth,
                rank,
                engagement.reference,
                engagement.state.value,
                engagement.fingerprint,
                encode_engagement(engagement),
            ),
        )

    def _engagements_of(self, amc_number: str, beneficiary: BeneficiaryKey) -> list[Engagement]:
        """The beneficiary's engagements, read once per unit of work until one is written."""
        key = (amc_number, beneficiary)
        cached = self._read.get(key)
        if cached is None:
            cached = self._read[key] = self._read_engagements(amc_number, beneficiary)
        return cached

    def _read_engagements(self, amc_number: str, beneficiary: BeneficiaryKey) -> list[Engagement]:
        rows = self._execute(
            "SELECT record FROM engagements WHERE finess = ? AND amc = ? AND nir = ? "
            "AND birth_date = ? AND birth_rank = ? ORDER BY seq",
            (self.finess, amc_number, *beneficiary_columns(beneficiary)),
        ).fetchall()
        return [decode_engagement(text) for (text,) in rows]

    # -- ISandbox ---------------------------------------------------------------------------

    @property
    def fault(self) -> Any:
        return self._fault

    @fault.setter
    def fault(self, value: Any) -> None:
        self._fault = value
        self._dirty = True

    @property
    def clock_offset(self) -> float:
        return float(self._clock_offset)

    @clock_offset.setter
    def clock_offset(self, value: float) -> None:
        self._clock_offset = value
        self._dirty = True

    @property
    def signature_policy(self) -> str | None:
        policy: str | None = self._signature_policy
        return policy

    @signature_policy.setter
    def signature_policy(self, value: str | None) -> None:
        self._signature_policy = value
        self._dirty = True

    def now(self) -> float:
        return self._clock.seconds() + self.clock_offset

    def today(self) -> datetime.date:
        return datetime.datetime.fromtimestamp(self.now(), datetime.UTC).date()

    def identify(self, identification: Identification) -> None:
        i = identification
        self._execute(
            "INSERT INTO identifications (finess, amc, nir, birth_date, birth_rank, sector, "
            "first_day, last_day, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (finess, amc, nir, birth_date, birth_rank, sector, first_day, last_day) "
            "DO UPDATE SET seq = excluded.seq",
            (
                self.finess,
                i.amc_number,
                *beneficiary_columns(i.beneficiary),
                i.sector.value,
                i.start.isoformat(),
                i.end.isoformat(),
                self._take_record_number(),
            ),
        )

    def identified(
        self,
        amc_number: str,
        beneficiary: BeneficiaryKey,
        start: datetime.date,
        end: datetime.date,
        sector: Sector,
    ) -> bool:
        rows = self._execute(
            "SELECT sector, first_day, last_day FROM identifications WHERE finess = ? "
            "AND amc = ? AND nir = ? AND birth_date = ? AND birth_rank = ?",
            (self.finess, amc_number, *beneficiary_columns(beneficiary)),
        ).fetchall()
        known = (
            Identification(
                amc_number,
                beneficiary,
                datetime.date.fromisoformat(first),
                datetime.date.fromisoformat(last),
                Sector(kind),
            )
            for kind, first, last in rows
        )
        return any(i.covers(amc_number, beneficiary, start, end, sector) for i in known)

    def active_engagement_for(
        self, amc_number: str, beneficiary: BeneficiaryKey, reference: str
    ) -> Engagement | None:
        mine = self._engagements_of(amc_number, beneficiary)
        return records.active_for_stay(mine, amc_number, beneficiary, reference)

    def overlapping_engagement(
        self,
        amc_number: str,
        beneficiary: BeneficiaryKey,
        reference: str,
        start: datetime.date,
        end: datetime.date,
        care_kind: CareKind,
    ) -> Engagement | None:
        mine = self._engagements_of(amc_number, beneficiary)
        return records.overlapping(mine, amc_number, beneficiary, reference, start, end, care_kind)

    def history(self, amc_number: str, beneficiary: BeneficiaryKey, reference: str) -> CareHistory:
        mine = self._engagements_of(amc_number, beneficiary)
        return records.history(mine, amc_number, beneficiary, reference)

    def engage(self, engagement: Engagement) -> Engagement:
        while True:
            number = f"ENG-{engagement.amc_number}-{self._next_engagement:06d}"
            self._next_engagement += 1
            self._dirty = True
            taken = self._execute(
                "SELECT 1 FROM engagements WHERE finess = ? AND number = ?", (self.finess, number)
            ).fetchone()
            if taken is None:
                break
        recorded = dataclasses.replace(engagement, number=number, created=self.now())
        self._put_engagement(recorded)
        return recorded

    def add_engagement(self, engagement: Engagement) -> None:
        self._put_engagement(engagement)

    def cancel(self, amc_number: str, beneficiary: BeneficiaryKey, number: str) -> DelOutcome:
        row = self._execute(
            "SELECT record FROM engagements WHERE finess = ? AND number = ?", (self.finess, number)
        ).fetchone()
        engagement = None if row is None else decode_engagement(row[0])
        outcome = cancellation(engagement, amc_number, beneficiary, self.now(), self._created)
        if outcome is not DelOutcome.CANCELLED or engagement is None:
            return outcome
        cancelled = dataclasses.replace(engagement, state=EngagementState.CANCELLED)
        self._read.clear()
        self._execute(
            "UPDATE engagements SET state = ?, record = ? WHERE finess = ? AND number = ?",
            (cancelled.state.value, encode_engagement(cancelled), self.finess, number),
        )
        return DelOutcome.CANCELLED

    # -- Billing ----------------------------------------------------------------------------

    def _engagement(self, number: str) -> Engagement | None:
        row = self._execute(
            "SELECT record FROM engagements WHERE finess = ? AND number = ?", (self.finess, number)
        ).fetchone()
        return None if row is None else decode_engagement(row[0])

    def engagement(self, number: str) -> Engagement | None:
        found = self._engagement(number)
        if found is None or found.created is not None:
            return found
        return dataclasses.replace(found, created=self._created - found.age_at_reset)

    def set_engagement_state(self, number: str, state: EngagementState) -> None:
        engagement = self._engagement(number)
        if engagement is None or engagement.state is state:
            return
        changed = dataclasses.replace(engagement, state=state)
        self._read.clear()
        self._execute(
            "UPDATE engagements SET state = ?, record = ? WHERE finess = ? AND number = ?",
            (state.value, encode_engagement(changed), self.finess, number),
        )

    def invoice_received(self, amc_number: str, invoice_number: str) -> bool:
        row = self._execute(
            "SELECT 1 FROM billing_returns WHERE finess = ? AND amc = ? AND invoice_number = ?",
            (self.finess, amc_number, invoice_number),
        ).fetchone()
        return row is not None

    def keep_return(self, billing_return: BillingReturn) -> None:
        r = billing_return
        self._execute(
            "DELETE FROM billing_returns WHERE finess = ? AND amc = ? AND invoice_number = ?",
            (self.finess, r.amc_number, r.invoice_number),
        )
        self._execute(
            "INSERT INTO billing_returns (finess, amc, invoice_number, due, acknowledged, record) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                self.finess,
                r.amc_number,
                r.invoice_number,
                r.due,
                1 if r.acknowledged else 0,
                encode_return(r),
            ),
        )

    def returns_due(self, amc_number: str) -> list[BillingReturn]:
        rows = self._execute(
            "SELECT record, due FROM billing_returns WHERE finess = ? AND amc = ? "
            "AND acknowledged = 0 AND due <= ? ORDER BY due, invoice_number",
            (self.finess, amc_number, self.now()),
        ).fetchall()
        return [dataclasses.replace(decode_return(text), due=float(due)) for text, due in rows]

    def acknowledge(self, amc_number: str, invoice_number: str) -> bool:
        cursor = self._execute(
            "UPDATE billing_returns SET acknowledged = 1 WHERE finess = ? AND amc = ? "
            "AND invoice_number = ? AND acknowledged = 0 AND due <= ?",
            (self.finess, amc_number, invoice_number, self.now()),
        )
        return bool(cursor.rowcount)

    def release_returns(self) -> int:
        now = self.now()
        rows = self._execute(
            "SELECT amc, invoice_number, record FROM billing_returns WHERE finess = ? "
            "AND acknowledged = 0 AND due > ?",
            (self.finess, now),
        ).fetchall()
        for amc, invoice_number, text in rows:
            released = dataclasses.replace(decode_return(text), due=now)
            self._execute(
                "UPDATE billing_returns SET due = ?, record = ? WHERE finess = ? AND amc = ? "
                "AND invoice_number = ?",
                (now, encode_return(released), self.finess, amc, invoice_number),
            )
        return len(rows)

    def record(self, entry: JournalEntry) -> None:
        self._requests += 1
        if not entry.violations:
            self._conforming += 1
        for violation in entry.violations:
            self._violations[violation.rule] = self._violations.get(violation.rule, 0) + 1
        self._dirty = True
        kept = dataclasses.replace(entry, sequence=self._requests, time=self.now())
        self._execute(
            "INSERT INTO journal (finess, sequence, entry, bodies) VALUES (?, ?, ?, ?)",
            (self.finess, kept.sequence, encode_entry(kept), encode_bodies(kept)),
        )
        if self._requests > JOURNAL_SIZE and self._requests % _TRIM_EVERY == 0:
            # Older entries go in batches (one statement saved per exchange); the tail never
            # shows more than JOURNAL_SIZE.
            self._execute(
                "DELETE FROM journal WHERE finess = ? AND sequence <= ?",
                (self.finess, self._requests - JOURNAL_SIZE),
            )

    def journal_tail(self, limit: int) -> list[JournalEntry]:
        rows = self._execute(
            "SELECT entry, bodies FROM journal WHERE finess = ? AND sequence > ? "
            "ORDER BY sequence DESC LIMIT ?",
            (self.finess, self._requests - JOURNAL_SIZE, limit),
        ).fetchall()
        return [decode_bodies(decode_entry(text), bodies) for (text, bodies) in reversed(rows)]

    def reset(self) -> None:
        self._read.clear()
        for table in ("identifications", "engagements", "journal", "billing_returns"):
            self._execute(f"DELETE FROM {table} WHERE finess = ?", (self.finess,))  # noqa: S608
        self._created = self._clock.seconds()
        self._clock_offset = 0.0
        self._fault = None
        self._signature_policy = None
        self._requests = self._conforming = 0
        self._violations = {}
        self._next_engagement = 1
        self._plant_seed()

    def summary(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for state, count in self._execute(
            "SELECT state, COUNT(*) FROM engagements WHERE finess = ? GROUP BY state",
            (self.finess,),
        ).fetchall():
            states[state] = int(count)
        (identifications,) = self._execute(
            "SELECT COUNT(*) FROM identifications WHERE finess = ?", (self.finess,)
        ).fetchone()
        returns = {"pending": 0, "due": 0, "acknowledged": 0}
        for acknowledged, due in self._execute(
            "SELECT acknowledged, due FROM billing_returns WHERE finess = ?", (self.finess,)
        ).fetchall():
            now = self.now()
            returns["acknowledged" if acknowledged else "due" if due <= now else "pending"] += 1
        return {
            "finess": self.finess,
            "clock_offset_seconds": self.clock_offset,
            "sandbox_date": self.today().isoformat(),
            "technical_fault": None if self._fault is None else self._fault.value,
            "signature_policy": self._signature_policy,
            "identifications": int(identifications),
            "engagements": dict(sorted(states.items())),
            "billing_returns": returns,
            "conformance": self.conformance_summary(),
        }

    def conformance_summary(self) -> dict[str, Any]:
        return {
            "requests": self._requests,
            "conforming": self._conforming,
            "non_conforming": self._requests - self._conforming,
            "violations_by_rule": dict(sorted(self._violations.items())),
        }


@implementer(ISandboxStore)
class SqlStore:
    """Every sandbox in one database; *connections* runs each unit of work (``dbpool``)."""

    def __init__(
        self, connections: Any, dialect: Dialect, clock: IReactorTime, seed: SandboxSeed
    ) -> None:
        self.connections = connections
        self.dialect = dialect
        self.clock = clock
        self.seed = seed

    def _run(self, work: Callable[[Any], T]) -> Deferred[T]:
        """*work* in one transaction; played again once after a conflict; failures named."""
        dialect = self.dialect

        def again(failure: Any) -> Deferred[T]:
            failure.trap(*dialect.conflict)
            return self.connections.run(work)  # type: ignore[no-any-return]

        def named(failure: Any) -> Any:
            if failure.check(*dialect.conflict):
                # Never the database's text: a constraint message quotes the row's values.
                raise StorageUnavailable(f"{dialect.name}: {failure.type.__name__} twice")
            if failure.check(*dialect.unavailable):
                raise StorageUnavailable(f"{dialect.name}: {_first_line(failure.value)}")
            return failure

        ran: Deferred[T] = self.connections.run(work)
        return ran.addErrback(again).addErrback(named)

    def _open(self, cursor: Any, finess: str, create: bool) -> SqlSandbox | None:
        now = self.clock.seconds()
        if create:
            if self.dialect.begin is not None:
                cursor.execute(self.dialect.begin)
            cursor.execute(self.dialect.sql(_UPSERT), (finess, now, now))
        else:
            cursor.execute(self.dialect.sql(_SELECT), (finess,))
        row = cursor.fetchone()
        if row is None:
            return None
        return SqlSandbox(cursor, self.dialect, finess, self.clock, self.seed, tuple(row))

    def transact(self, finess: str, work: Callable[[ISandbox], T]) -> Deferred[T]:
        def unit(connection: Any) -> T:
            cursor = connection.cursor()
            sandbox = self._open(cursor, finess, create=True)
            assert sandbox is not None
            result = work(sandbox)
            sandbox.flush()
            return result

        return self._run(unit)

    def inspect(self, finess: str, work: Callable[[ISandbox | None], T]) -> Deferred[T]:
        def unit(connection: Any) -> T:
            cursor = connection.cursor()
            sandbox = self._open(cursor, finess, create=False)
            result = work(sandbox)
            if sandbox is not None:
                sandbox.flush()  # a sandbox read for the first time is seeded
            return result

        return self._run(unit)

    def summaries(self) -> Deferred[list[dict[str, Any]]]:
        def unit(connection: Any) -> list[dict[str, Any]]:
            cursor = connection.cursor()
            cursor.execute("SELECT finess FROM sandboxes ORDER BY finess")
            names = [name for (name,) in cursor.fetchall()]
            out = []
            for name in names:
                sandbox = self._open(cursor, name, create=False)
                if sandbox is not None:
                    out.append(sandbox.summary())
            return out

        return self._run(unit)

    def purge_idle(self, idle_seconds: float) -> Deferred[int]:
        limit = self.clock.seconds() - idle_seconds

        def unit(connection: Any) -> int:
            cursor = connection.cursor()
            if self.dialect.begin is not None:
                cursor.execute(self.dialect.begin)
            cursor.execute(self.dialect.sql("DELETE FROM sandboxes WHERE last_used < ?"), (limit,))
            return int(cursor.rowcount)

        return self._run(unit)

    def ping(self) -> Deferred[None]:
        def unit(connection: Any) -> None:
            cursor = connection.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchone()

        return self._run(unit)
