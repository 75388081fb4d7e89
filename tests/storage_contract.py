"""The contract every sandbox store keeps, run against each: memory, SQLite, PostgreSQL.

A test module subclasses ``StoreContract`` and provides a ``stores`` fixture: a factory
``make(clock) -> ISandboxStore`` whose stores all see the same database (a second one is
"the simulator restarted", or "another instance"), and whose Deferreds have fired when
returned (inline connections: no thread, no reactor).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
from collections.abc import Callable
from typing import Any

import pytest
from lxml import etree
from zope.interface.verify import verifyObject

from mutuelle import testing
from mutuelle.billing import BillingReturn, PaidLine, Rejection, ReturnKind, Shortfall
from mutuelle.care import CareRequest, LineCode
from mutuelle.catalogue import Case
from mutuelle.decisions import DelRequest
from mutuelle.engagements import Engagement, EngagementState
from mutuelle.examples import case_request
from mutuelle.idb import IdbRequest
from mutuelle.model import BeneficiaryKey, Sector
from mutuelle.sandbox import (
    CANCELLATION_WINDOW,
    JOURNAL_SIZE,
    DelOutcome,
    Identification,
    JournalEntry,
    Violation,
)
from mutuelle.soap import request_headers
from mutuelle.storage import ISandbox, ISandboxStore
from piano.testing import StrictClock
from roc.model import SERVICE_NS, SoapVersion
from tests.deferreds import success_result_of

DATA, CATALOGUE = testing.shipped()
SEED = CATALOGUE.sandbox_seed()
AMC = "990000101"
HOSPITAL_A = "990000028"
HOSPITAL_B = "990000036"
D = datetime.date
PERSON = BeneficiaryKey("199999999999901", D(1980, 1, 1), 1)

MakeStore = Callable[[StrictClock], ISandboxStore]


def case(name: str) -> Case:
    found = CATALOGUE.get(AMC, name)
    assert found is not None
    return found


def entry(outcome: str = "00", violations: tuple[Violation, ...] = ()) -> JournalEntry:
    return JournalEntry(0, 0.0, "IDB", "x-1", AMC, "V2", 200, outcome, "", violations)


def play(
    store: ISandboxStore,
    played: Case,
    request: IdbRequest | CareRequest | DelRequest | None = None,
    finess: str = HOSPITAL_A,
) -> tuple[str, etree._Element]:
    """One exchange through the simulator, in *store*: its CodeRetour and answer body."""
    simulator = testing.simulator()
    if request is not None:
        played = dataclasses.replace(played, request=request)
    service = played.service
    content_type = request_headers(service, SoapVersion.SOAP11)["Content-Type"]
    body = case_request(played, "c-1")

    def work(sandbox: ISandbox) -> Any:
        return simulator.handle_in(sandbox, service.value, "POST", content_type, None, body)

    reply = success_result_of(store.transact(finess, work))
    root = etree.fromstring(reply.body)
    return root.findtext(f".//{{{SERVICE_NS[service.value]}}}CodeRetour") or "", root


def in_sandbox(
    store: ISandboxStore, work: Callable[[ISandbox], Any], finess: str = HOSPITAL_A
) -> Any:
    return success_result_of(store.transact(finess, work))


def _identified(
    sandbox: ISandbox, start: datetime.date, end: datetime.date, sector: Sector
) -> bool:
    return bool(sandbox.identified(AMC, PERSON, start, end, sector))


class StoreContract:
    """Behaviour a trainee or an operator would notice, whatever keeps the sandboxes."""

    #: Whether a failed unit of work keeps nothing (databases; the memory fake keeps it).
    atomic = True
    #: Whether a second store on the same database sees the first one's sandboxes.
    durable = True

    @pytest.fixture
    def clock(self) -> StrictClock:
        clock = StrictClock()
        clock.advance(1_790_000_000)
        return clock

    @pytest.fixture
    def store(self, stores: MakeStore, clock: StrictClock) -> ISandboxStore:
        return stores(clock)

    def test_the_store_and_its_sandboxes_provide_their_interfaces(
        self, store: ISandboxStore
    ) -> None:
        assert verifyObject(ISandboxStore, store)
        assert in_sandbox(store, lambda sandbox: verifyObject(ISandbox, sandbox))

    def test_a_new_sandbox_starts_from_the_seed_and_reset_goes_back_to_it(
        self, store: ISandboxStore
    ) -> None:
        first = in_sandbox(store, lambda s: s.summary())
        assert first["identifications"] == len(set(SEED.identifications))
        assert sum(first["engagements"].values()) == len({e.number for e in SEED.engagements})
        assert first["conformance"]["requests"] == 0

        def change(sandbox: ISandbox) -> None:
            sandbox.identify(Identification(AMC, PERSON, D(2026, 1, 1), D(2026, 1, 9), Sector.MCO))
            sandbox.record(entry())
            sandbox.fault = None
            sandbox.clock_offset = 86400.0
            sandbox.signature_policy = "require"

        in_sandbox(store, change)
        changed = in_sandbox(store, lambda s: s.summary())
        assert changed["identifications"] == first["identifications"] + 1
        assert changed["clock_offset_seconds"] == 86400.0
        assert first["signature_policy"] is None and changed["signature_policy"] == "require"
        in_sandbox(store, lambda s: s.reset())
        assert in_sandbox(store, lambda s: s.summary()) == first

    def test_identifications_cover_what_they_say_and_nothing_else(
        self, store: ISandboxStore
    ) -> None:
        stay = Identification(AMC, PERSON, D(2026, 3, 1), D(2026, 3, 31), Sector.MCO)
        in_sandbox(store, lambda s: s.identify(stay))
        in_sandbox(store, lambda s: s.identify(stay))  # again: still one
        covered = in_sandbox(
            store, lambda s: s.identified(AMC, PERSON, D(2026, 3, 2), D(2026, 3, 5), Sector.MCO)
        )
        assert covered
        for start, end, sector, finess in [
            (D(2026, 2, 28), D(2026, 3, 5), Sector.MCO, HOSPITAL_A),
            (D(2026, 3, 2), D(2026, 3, 5), Sector.PSY, HOSPITAL_A),
            (D(2026, 3, 2), D(2026, 3, 5), Sector.MCO, HOSPITAL_B),
        ]:
            query = functools.partial(_identified, start=start, end=end, sector=sector)
            found = in_sandbox(store, query, finess)
            assert not found, (start, sector, finess)

    def test_idb_clc_del_keep_the_rules_across_units_of_work(self, store: ISandboxStore) -> None:
        clc = case("CLC_KO_MCO_SANS_IDB_PREALABLE")
        assert isinstance(clc.request, CareRequest)
        assert play(store, clc)[0] == "07"
        assert play(store, case("IDB_OK_MCO_DROITS_OUVERTS"), clc.request.rights_question)[0] == (
            "00"
        )
        code, body = play(store, clc)
        number = body.findtext(f".//{{{SERVICE_NS['CLC']}}}NumeroEngagement")
        assert code == "00" and number and number.startswith(f"ENG-{AMC}-")
        code, again = play(store, clc)  # a retry: the same engagement
        assert (code, again.findtext(f".//{{{SERVICE_NS['CLC']}}}NumeroEngagement")) == (
            "00",
            number,
        )
        changed = dataclasses.replace(clc.request, lines=clc.request.lines[:2])
        assert play(store, clc, changed)[0] == "09"
        cancel = DelRequest(clc.request.beneficiary, None, number, "ERREUR_SAISIE")
        assert play(store, case("DEL_OK_MCO_ANNULATION"), cancel)[0] == "00"
        assert play(store, case("DEL_OK_MCO_ANNULATION"), cancel)[0] == "11"
        assert play(store, clc, changed)[0] == "00"  # cancelled: a new engagement
        assert play(store, clc, changed, finess=HOSPITAL_B)[0] == "07"  # another establishment
        journal = in_sandbox(store, lambda s: s.journal_tail(100))
        assert [e.outcome for e in journal] == ["07", "00", "00", "00", "09", "00", "11", "00"]
        assert [e.sequence for e in journal] == list(range(1, 9))

    def test_engagements_are_numbered_once_and_cancelled_within_the_window(
        self, store: ISandboxStore, clock: StrictClock
    ) -> None:
        made = Engagement("", AMC, PERSON, "SEJ-1", 1234, None, fingerprint="f1")
        first = in_sandbox(store, lambda s: s.engage(made))
        second = in_sandbox(store, lambda s: s.engage(dataclasses.replace(made, reference="S2")))
        assert first.number != second.number and first.created == clock.seconds()
        found = in_sandbox(store, lambda s: s.active_engagement_for(AMC, PERSON, "SEJ-1"))
        assert found == first
        other = BeneficiaryKey("299999999999902", D(1990, 1, 1), 1)
        assert in_sandbox(store, lambda s: s.cancel(AMC, other, first.number)) is (
            DelOutcome.UNKNOWN
        )
        assert in_sandbox(store, lambda s: s.cancel(AMC, PERSON, first.number)) is (
            DelOutcome.CANCELLED
        )
        assert in_sandbox(store, lambda s: s.cancel(AMC, PERSON, first.number)) is (
            DelOutcome.ALREADY_CANCELLED
        )
        assert in_sandbox(store, lambda s: s.active_engagement_for(AMC, PERSON, "SEJ-1")) is None
        clock.advance(CANCELLATION_WINDOW.total_seconds() + 1)
        assert in_sandbox(store, lambda s: s.cancel(AMC, PERSON, second.number)) is (
            DelOutcome.EXPIRED
        )
        billed = dataclasses.replace(made, number="ENG-B-1", state=EngagementState.BILLED)
        in_sandbox(store, lambda s: s.add_engagement(billed))
        assert in_sandbox(store, lambda s: s.cancel(AMC, PERSON, "ENG-B-1")) is DelOutcome.BILLED

    def test_billing_returns_wait_their_delay_then_are_delivered_until_acknowledged(
        self, stores: MakeStore, store: ISandboxStore, clock: StrictClock
    ) -> None:
        made = Engagement("", AMC, PERSON, "SEJ-F", 5000, None, fingerprint="f1")
        engaged = in_sandbox(store, lambda s: s.engage(made))
        paid = BillingReturn(
            ReturnKind.PAYMENT,
            AMC,
            "FAC-1",
            engaged.number,
            clock.seconds() + 3600,
            (PaidLine(1, LineCode.PJ, 6000, 5000, Shortfall.MORE_THAN_ENGAGED),),
        )
        rejected = BillingReturn(
            ReturnKind.REJECTION,
            AMC,
            "FAC-2",
            "ENG-X",
            clock.seconds() + 7200,
            (),
            Rejection.LATE,
        )

        def bill(sandbox: ISandbox) -> None:
            sandbox.set_engagement_state(engaged.number, EngagementState.BILLED)
            sandbox.keep_return(paid)
            sandbox.keep_return(rejected)

        in_sandbox(store, bill)
        assert in_sandbox(store, lambda s: s.invoice_received(AMC, "FAC-1"))
        assert not in_sandbox(store, lambda s: s.invoice_received(AMC, "FAC-3"))
        assert not in_sandbox(store, lambda s: s.invoice_received(AMC, "FAC-1"), HOSPITAL_B)
        assert in_sandbox(store, lambda s: s.engagement(engaged.number)).state is (
            EngagementState.BILLED
        )
        assert in_sandbox(store, lambda s: s.cancel(AMC, PERSON, engaged.number)) is (
            DelOutcome.BILLED
        )
        assert in_sandbox(store, lambda s: s.returns_due(AMC)) == []
        assert not in_sandbox(store, lambda s: s.acknowledge(AMC, "FAC-1"))
        clock.advance(3600)
        assert in_sandbox(store, lambda s: s.returns_due(AMC)) == [paid]
        assert in_sandbox(store, lambda s: s.returns_due("990000202")) == []
        counts = in_sandbox(store, lambda s: s.summary())["billing_returns"]
        assert (counts["pending"], counts["due"]) == (1, 1)
        assert in_sandbox(store, lambda s: s.release_returns()) == 1
        due = in_sandbox(store, lambda s: s.returns_due(AMC))
        assert [r.invoice_number for r in due] == ["FAC-1", "FAC-2"]
        assert due[1].rejection is Rejection.LATE and due[1].due == clock.seconds()
        assert in_sandbox(store, lambda s: s.acknowledge(AMC, "FAC-1"))
        assert not in_sandbox(store, lambda s: s.acknowledge(AMC, "FAC-1"))
        if self.durable:
            store = stores(clock)  # a restart keeps what is still to deliver
        assert [r.invoice_number for r in in_sandbox(store, lambda s: s.returns_due(AMC))] == [
            "FAC-2"
        ]
        in_sandbox(store, lambda s: s.set_engagement_state(engaged.number, EngagementState.PAID))
        assert in_sandbox(store, lambda s: s.engagement(engaged.number)).state is (
            EngagementState.PAID
        )
        assert in_sandbox(store, lambda s: s.cancel(AMC, PERSON, engaged.number)) is (
            DelOutcome.BILLED
        )
        in_sandbox(store, lambda s: s.reset())
        assert not in_sandbox(store, lambda s: s.invoice_received(AMC, "FAC-2"))
        assert in_sandbox(store, lambda s: s.engagement(engaged.number)) is None

    def test_the_journal_keeps_request_and_answer_bodies_for_recording(
        self, store: ISandboxStore
    ) -> None:
        played = dataclasses.replace(entry("00"), request=b"<a>\xc3\xa9</a>", answer=b"<b/>")

        def two(sandbox: ISandbox) -> None:
            sandbox.record(played)
            sandbox.record(entry("01"))

        in_sandbox(store, two)
        first, second = in_sandbox(store, lambda s: s.journal_tail(10))
        assert (first.request, first.answer) == (b"<a>\xc3\xa9</a>", b"<b/>")
        assert (second.request, second.answer) == (b"", b"")
        in_sandbox(store, lambda s: s.reset())
        assert in_sandbox(store, lambda s: s.journal_tail(10)) == []

    def test_the_journal_keeps_what_ties_an_exchange_to_its_qualification_step(
        self, store: ISandboxStore
    ) -> None:
        played = dataclasses.replace(
            entry("01"),
            aimed=("IDB_KO_MCO_BENEFICIAIRE_INCONNU", "IDB_OK_MCO_DROITS_OUVERTS"),
            via_relay=True,
            signature="VALIDE",
        )
        in_sandbox(store, lambda s: s.record(played))
        in_sandbox(store, lambda s: s.record(entry("00")))
        first, second = in_sandbox(store, lambda s: s.journal_tail(10))
        assert (first.aimed, first.via_relay, first.signature) == (
            played.aimed,
            True,
            "VALIDE",
        )
        assert (second.aimed, second.via_relay, second.signature) == ((), False, "")

    def test_the_journal_keeps_the_last_entries_and_counts_conformance(
        self, store: ISandboxStore
    ) -> None:
        bad = (Violation("Demande/X", "R1", "absent"),)

        def many(sandbox: ISandbox) -> None:
            for i in range(JOURNAL_SIZE + 5):
                sandbox.record(entry(f"{i % 100:02d}", bad if i % 2 else ()))

        in_sandbox(store, many)
        kept = in_sandbox(store, lambda s: s.journal_tail(10_000))
        assert len(kept) == JOURNAL_SIZE
        assert kept[0].sequence == 6 and kept[-1].sequence == JOURNAL_SIZE + 5
        assert kept[-2].violations == bad and kept[-1].violations == ()
        assert in_sandbox(store, lambda s: s.journal_tail(2)) == kept[-2:]
        summary = in_sandbox(store, lambda s: s.conformance_summary())
        assert summary == {
            "requests": JOURNAL_SIZE + 5,
            "conforming": (JOURNAL_SIZE + 6) // 2,
            "non_conforming": (JOURNAL_SIZE + 4) // 2,
            "violations_by_rule": {"R1": (JOURNAL_SIZE + 4) // 2},
        }

    def test_inspecting_creates_nothing_and_summaries_list_every_sandbox(
        self, store: ISandboxStore
    ) -> None:
        assert success_result_of(store.inspect(HOSPITAL_B, lambda s: s)) is None
        in_sandbox(store, lambda s: s.record(entry()), HOSPITAL_B)
        in_sandbox(store, lambda s: None, HOSPITAL_A)
        listed = success_result_of(store.summaries())
        assert [s["finess"] for s in listed] == [HOSPITAL_A, HOSPITAL_B]
        assert success_result_of(store.ping()) is None

    def test_idle_sandboxes_are_purged_and_used_ones_kept(
        self, store: ISandboxStore, clock: StrictClock
    ) -> None:
        in_sandbox(store, lambda s: s.record(entry()), HOSPITAL_A)
        in_sandbox(store, lambda s: s.record(entry()), HOSPITAL_B)
        clock.advance(3600)
        in_sandbox(store, lambda s: None, HOSPITAL_B)
        assert success_result_of(store.purge_idle(1800)) == 1
        listed = success_result_of(store.summaries())
        assert [s["finess"] for s in listed] == [HOSPITAL_B]
        assert success_result_of(store.inspect(HOSPITAL_A, lambda s: s)) is None

    def test_a_failed_unit_of_work_keeps_nothing(self, store: ISandboxStore) -> None:
        if not self.atomic:
            pytest.skip("the memory fake documents that it keeps a failed unit's changes")

        def half(sandbox: ISandbox) -> None:
            sandbox.engage(Engagement("", AMC, PERSON, "SEJ-H", 1, None, fingerprint="f"))
            sandbox.record(entry())
            raise RuntimeError("defect after the engagement, before the answer")

        failed = store.transact(HOSPITAL_A, half)
        failed.addErrback(lambda f: f.trap(RuntimeError))
        assert in_sandbox(store, lambda s: s.active_engagement_for(AMC, PERSON, "SEJ-H")) is None
        assert in_sandbox(store, lambda s: s.journal_tail(10)) == []

    def test_a_second_store_on_the_same_database_sees_every_sandbox(
        self, stores: MakeStore, store: ISandboxStore, clock: StrictClock
    ) -> None:
        if not self.durable:
            pytest.skip("the memory fake forgets everything with its process")
        made = Engagement("", AMC, PERSON, "SEJ-R", 1234, None, fingerprint="f1")
        first = in_sandbox(store, lambda s: s.engage(made))

        def tune(sandbox: ISandbox) -> None:
            sandbox.clock_offset = 60.0
            sandbox.signature_policy = "report"
            sandbox.record(entry("01"))

        in_sandbox(store, tune)
        restarted = stores(clock)
        again = in_sandbox(restarted, lambda s: s.active_engagement_for(AMC, PERSON, "SEJ-R"))
        assert again == first
        summary = in_sandbox(restarted, lambda s: s.summary())
        assert summary["clock_offset_seconds"] == 60.0
        assert summary["signature_policy"] == "report"
        assert [e.outcome for e in in_sandbox(restarted, lambda s: s.journal_tail(5))] == ["01"]

    def test_records_are_bounded_and_a_repeated_idb_drops_no_other(
        self, store: ISandboxStore, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from mutuelle import sandbox as memory
        from mutuelle import sqlstore

        monkeypatch.setattr(memory, "MAX_RECORDS", 150)
        monkeypatch.setattr(sqlstore, "MAX_RECORDS", 150)
        kept = Identification(AMC, PERSON, D(2026, 1, 1), D(2026, 1, 31), Sector.MCO)
        repeated = dataclasses.replace(kept, sector=Sector.PSY)

        def again_and_again(sandbox: ISandbox) -> None:
            sandbox.identify(kept)
            for _ in range(450):
                sandbox.identify(repeated)

        in_sandbox(store, again_and_again)
        assert in_sandbox(
            store, lambda s: s.identified(AMC, PERSON, D(2026, 1, 2), D(2026, 1, 3), Sector.MCO)
        )

        def many(sandbox: ISandbox) -> None:
            for day in range(1, 451):
                start = D(2020, 1, 1) + datetime.timedelta(days=day)
                sandbox.identify(dataclasses.replace(kept, start=start, end=start))

        in_sandbox(store, many)
        count = in_sandbox(store, lambda s: s.summary())["identifications"]
        assert 150 <= count <= 150 + 100
