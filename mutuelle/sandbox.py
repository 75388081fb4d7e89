"""Per-establishment sandboxes: each FINESS gets its own engagements, journal, clock and faults.

Pure state, no I/O: the clock is injected (``IReactorTime``; ``piano.testing.StrictClock`` in
tests). A sandbox starts from a *seed* (``SandboxSeed``, built from the catalogue) so that
every case is reachable from ordinary data on a fresh sandbox; ``reset`` goes back to it. Two
establishments never share anything. ``MemoryStore`` keeps them in process memory behind the
storage seam (``mutuelle.storage``); ``mutuelle.sqlstore`` keeps the same state in a database.

Coherence rules across calls live here, as state transitions:

- IDB answering 00 records an *identification* (beneficiary, period, sector);
- CLC needs an identification covering its beneficiary, period and sector (else 07); finds
  the active engagement of the same stay reference (a retry: 00 or 09 with it), refuses a
  stay overlapping another active one (13), and records an engagement;
- DEL cancels an engagement of this beneficiary at this AMC: 00, unknown (10), already
  cancelled (11), or no longer cancellable (12: billed, or older than the cancellation window).
"""

from __future__ import annotations

import datetime
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from mutuelle import engagements as records
from mutuelle.billing import BillingReturn
from mutuelle.care import CareHistory
from mutuelle.engagements import Engagement as Engagement
from mutuelle.engagements import EngagementState as EngagementState
from mutuelle.idb import CodedOutcome, ReturnCode
from mutuelle.model import BeneficiaryKey, CareKind, Sector
from mutuelle.storage import ISandbox, ISandboxStore
from mutuelle.technical import TechnicalFault

T = TypeVar("T")

#: An engagement can be cancelled for this long after the CLC that made it.
CANCELLATION_WINDOW = datetime.timedelta(days=30)
#: Entries kept in each sandbox's journal (oldest dropped first).
JOURNAL_SIZE = 500
#: Sandboxes kept at most (one per establishment seen); beyond, the least recent is dropped.
MAX_SANDBOXES = 5000
#: Identifications and engagements kept per sandbox; beyond, the oldest are dropped.
MAX_RECORDS = 10_000


class DelOutcome(CodedOutcome):
    """Every answer DEL can give."""

    CANCELLED = ReturnCode("00", "Engagement annulé", "The engagement is cancelled.")
    UNKNOWN = ReturnCode(
        "10",
        "Engagement inconnu",
        "No engagement with this number exists for this beneficiary at this AMC, in this "
        "establishment's sandbox.",
    )
    ALREADY_CANCELLED = ReturnCode(
        "11", "Engagement déjà annulé", "A DEL already cancelled this engagement."
    )
    BILLED = ReturnCode(
        "12",
        "Engagement non annulable : déjà facturé",
        "The engagement has been billed; it can no longer be cancelled.",
    )
    EXPIRED = ReturnCode(
        "12",
        "Engagement non annulable : délai d'annulation dépassé",
        f"The engagement is older than the cancellation window ({CANCELLATION_WINDOW.days} days).",
    )


@dataclass(frozen=True, slots=True)
class Identification:
    """A successful IDB: this beneficiary of this AMC, for this period and sector."""

    amc_number: str
    beneficiary: BeneficiaryKey
    start: datetime.date
    end: datetime.date
    sector: Sector

    def covers(
        self,
        amc_number: str,
        beneficiary: BeneficiaryKey,
        start: datetime.date,
        end: datetime.date,
        sector: Sector,
    ) -> bool:
        return (
            self.amc_number == amc_number
            and self.beneficiary == beneficiary
            and self.sector is sector
            and self.start <= start
            and end <= self.end
        )


@dataclass(frozen=True, slots=True)
class SandboxSeed:
    """What a fresh sandbox holds, so that every catalogue case plays without set-up."""

    identifications: tuple[Identification, ...] = ()
    engagements: tuple[Engagement, ...] = ()
    #: Billing returns already delivered and acknowledged (their invoice numbers are taken).
    returns: tuple[BillingReturn, ...] = ()


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a request breaks the schema or a ROC rule; never carries the value sent."""

    field: str
    rule: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"champ": self.field, "regle": self.rule, "raison": self.reason}


#: Bodies larger than this are not kept in the journal (a recorded suite skips their step).
BODY_KEPT_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One exchange as the sandbox's establishment may review it: codes, never personal data."""

    sequence: int
    time: float
    service: str
    exchange_id: str
    amc: str
    roc_version: str
    http_status: int
    outcome: str
    case: str
    violations: tuple[Violation, ...] = ()
    technical_fault: str = ""
    #: The request and answer bodies (fictitious data; kept for ``mutuelle.suite record``,
    #: shown by the admin API only when asked, never logged). Empty when over BODY_KEPT_BYTES.
    request: bytes = b""
    answer: bytes = b""
    #: Catalogue cases the request was about (its beneficiary's, for that AMC, service and
    #: version), even when it was refused: what ties a failed attempt to its qualification
    #: step (mutuelle.qualification). Empty when the request named no known beneficiary.
    aimed: tuple[str, ...] = ()
    #: Whether the exchange came through the relay (its X-ROC-Emetteur-Finess header).
    via_relay: bool = False
    #: The signature as checked: "" not checked (policy off), "VALIDE", or the defect's rule.
    signature: str = ""

    def as_dict(self, bodies: bool = False) -> dict[str, Any]:
        shown = (
            {
                "request": self.request.decode("utf-8", "replace"),
                "answer": self.answer.decode("utf-8", "replace"),
            }
            if bodies
            else {}
        )
        return shown | {
            "sequence": self.sequence,
            "time": datetime.datetime.fromtimestamp(self.time, datetime.UTC).isoformat(),
            "service": self.service,
            "exchange_id": self.exchange_id,
            "amc": self.amc,
            "roc_version": self.roc_version,
            "http_status": self.http_status,
            "outcome": self.outcome,
            "case": self.case,
            "technical_fault": self.technical_fault,
            "aimed": list(self.aimed),
            "via_relay": self.via_relay,
            "signature": self.signature,
            "conformance": {
                "conforming": not self.violations,
                "violations": [v.as_dict() for v in self.violations],
            },
        }


def cancellation(
    engagement: Engagement | None,
    amc_number: str,
    beneficiary: BeneficiaryKey,
    now: float,
    sandbox_created: float,
) -> DelOutcome:
    """DEL's decision on *engagement* (the one with the number asked, or None), for every store.

    Unknown unless it is this beneficiary's at this AMC; then its state decides (cancelled,
    billed); then the cancellation window, counted from its CLC, or for a seeded engagement from
    the sandbox's reset (*sandbox_created*) less the age it was seeded with. Billed, paid or
    rejected (``records.SETTLED``) answers ``BILLED`` (12). ``CANCELLED``
    means it may be cancelled now: the store records the transition.
    """
    if engagement is None or not engagement.is_of(amc_number, beneficiary):
        return DelOutcome.UNKNOWN
    if engagement.state is EngagementState.CANCELLED:
        return DelOutcome.ALREADY_CANCELLED
    if engagement.state in records.SETTLED:
        return DelOutcome.BILLED
    created = engagement.created
    if created is None:
        created = sandbox_created - engagement.age_at_reset
    if now - created > CANCELLATION_WINDOW.total_seconds():
        return DelOutcome.EXPIRED
    return DelOutcome.CANCELLED


@implementer(ISandbox)
@dataclass
class Sandbox:
    """One establishment's world, in memory (the reference ``ISandbox``)."""

    finess: str
    clock: IReactorTime
    seed: SandboxSeed
    #: Successful IDBs, in arrival order (a dict used as an ordered set).
    identifications: dict[Identification, None] = field(default_factory=dict)
    engagements: dict[str, Engagement] = field(default_factory=dict)
    #: Billing returns by (AMC, invoice number), in the order invoices were accepted.
    returns: dict[tuple[str, str], BillingReturn] = field(default_factory=dict)
    journal: deque[JournalEntry] = field(default_factory=lambda: deque(maxlen=JOURNAL_SIZE))
    clock_offset: float = 0.0
    fault: TechnicalFault | None = None
    #: The signature policy of this sandbox ("require", "report", "off"); None: the
    #: configuration's (``mutuelle.signatures.SignaturePolicy`` values).
    signature_policy: str | None = None
    requests: int = 0
    conforming: int = 0
    violations_by_rule: dict[str, int] = field(default_factory=dict)
    _next_engagement: int = 1
    _created: float = 0.0
    #: Reactor time of the last exchange or admin call (retention).
    last_used: float = 0.0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Back to the seed: no journal, offset, fault or signature policy; seeded state only."""
        self.identifications = dict.fromkeys(self.seed.identifications)
        self.engagements = {e.number: e for e in self.seed.engagements}
        self.returns = {(r.amc_number, r.invoice_number): r for r in self.seed.returns}
        self.journal.clear()
        self.clock_offset = 0.0
        self.fault = None
        self.signature_policy = None
        self.requests = 0
        self.conforming = 0
        self.violations_by_rule = {}
        self._next_engagement = 1
        self._created = self.clock.seconds()
        self.last_used = self._created

    def now(self) -> float:
        """Sandbox time: the reactor's, moved by the offset set through the admin API."""
        return self.clock.seconds() + self.clock_offset

    def today(self) -> datetime.date:
        return datetime.datetime.fromtimestamp(self.now(), datetime.UTC).date()

    # -- Coherence --------------------------------------------------------------------------

    def identify(self, identification: Identification) -> None:
        self.identifications.pop(identification, None)
        self.identifications[identification] = None  # most recent last
        while len(self.identifications) > MAX_RECORDS:
            del self.identifications[next(iter(self.identifications))]

    def identified(
        self,
        amc_number: str,
        beneficiary: BeneficiaryKey,
        start: datetime.date,
        end: datetime.date,
        sector: Sector,
    ) -> bool:
        return any(
            i.covers(amc_number, beneficiary, start, end, sector) for i in self.identifications
        )

    def active_engagement_for(
        self, amc_number: str, beneficiary: BeneficiaryKey, reference: str
    ) -> Engagement | None:
        return records.active_for_stay(
            self.engagements.values(), amc_number, beneficiary, reference
        )

    def overlapping_engagement(
        self,
        amc_number: str,
        beneficiary: BeneficiaryKey,
        reference: str,
        start: datetime.date,
        end: datetime.date,
        care_kind: CareKind,
    ) -> Engagement | None:
        return records.overlapping(
            self.engagements.values(), amc_number, beneficiary, reference, start, end, care_kind
        )

    def history(self, amc_number: str, beneficiary: BeneficiaryKey, reference: str) -> CareHistory:
        return records.history(self.engagements.values(), amc_number, beneficiary, reference)

    def engage(self, engagement: Engagement) -> Engagement:
        """Record *engagement* under a new number (unique in this sandbox) and return it."""
        while True:
            number = f"ENG-{engagement.amc_number}-{self._next_engagement:06d}"
            self._next_engagement += 1
            if number not in self.engagements:
                break
        recorded = replace(engagement, number=number, created=self.now())
        self.engagements[number] = recorded
        while len(self.engagements) > MAX_RECORDS:
            del self.engagements[next(iter(self.engagements))]
        return recorded

    def add_engagement(self, engagement: Engagement) -> None:
        """Record *engagement* under its own number (admin seed)."""
        self.engagements[engagement.number] = engagement

    def cancel(self, amc_number: str, beneficiary: BeneficiaryKey, number: str) -> DelOutcome:
        """DEL: cancel engagement *number* if it is this beneficiary's at this AMC."""
        engagement = self.engagements.get(number)
        outcome = cancellation(engagement, amc_number, beneficiary, self.now(), self._created)
        if outcome is DelOutcome.CANCELLED and engagement is not None:
            self.engagements[number] = replace(engagement, state=EngagementState.CANCELLED)
        return outcome

    # -- Billing ----------------------------------------------------------------------------

    def engagement(self, number: str) -> Engagement | None:
        found = self.engagements.get(number)
        if found is None or found.created is not None:
            return found
        return replace(found, created=self._created - found.age_at_reset)

    def set_engagement_state(self, number: str, state: EngagementState) -> None:
        engagement = self.engagements.get(number)
        if engagement is not None and engagement.state is not state:
            self.engagements[number] = replace(engagement, state=state)

    def invoice_received(self, amc_number: str, invoice_number: str) -> bool:
        return (amc_number, invoice_number) in self.returns

    def keep_return(self, billing_return: BillingReturn) -> None:
        key = (billing_return.amc_number, billing_return.invoice_number)
        self.returns[key] = billing_return
        while len(self.returns) > MAX_RECORDS:
            del self.returns[next(iter(self.returns))]

    def returns_due(self, amc_number: str) -> list[BillingReturn]:
        now = self.now()
        due = [
            r
            for r in self.returns.values()
            if r.amc_number == amc_number and not r.acknowledged and r.due <= now
        ]
        return sorted(due, key=lambda r: r.due)

    def acknowledge(self, amc_number: str, invoice_number: str) -> bool:
        found = self.returns.get((amc_number, invoice_number))
        if found is None or found.acknowledged or found.due > self.now():
            return False
        self.returns[(amc_number, invoice_number)] = replace(found, acknowledged=True)
        return True

    def release_returns(self) -> int:
        now = self.now()
        pending = [k for k, r in self.returns.items() if not r.acknowledged and r.due > now]
        for key in pending:
            self.returns[key] = replace(self.returns[key], due=now)
        return len(pending)

    # -- Journal ----------------------------------------------------------------------------

    def record(self, entry: JournalEntry) -> None:
        """Add *entry* (its sequence and time are set here) and count its conformance."""
        self.requests += 1
        if not entry.violations:
            self.conforming += 1
        for violation in entry.violations:
            self.violations_by_rule[violation.rule] = (
                self.violations_by_rule.get(violation.rule, 0) + 1
            )
        self.journal.append(replace(entry, sequence=self.requests, time=self.now()))

    def journal_tail(self, limit: int) -> list[JournalEntry]:
        return list(self.journal)[-limit:] if limit > 0 else []

    def summary(self) -> dict[str, Any]:
        """The sandbox at a glance (admin API): counts and codes, no personal data."""
        states: dict[str, int] = {}
        for engagement in self.engagements.values():
            states[engagement.state.value] = states.get(engagement.state.value, 0) + 1
        return {
            "finess": self.finess,
            "clock_offset_seconds": self.clock_offset,
            "sandbox_date": self.today().isoformat(),
            "technical_fault": None if self.fault is None else self.fault.value,
            "signature_policy": self.signature_policy,
            "identifications": len(self.identifications),
            "engagements": states,
            "billing_returns": _returns_summary(self.returns.values(), self.now()),
            "conformance": self.conformance_summary(),
        }

    def conformance_summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "conforming": self.conforming,
            "non_conforming": self.requests - self.conforming,
            "violations_by_rule": dict(sorted(self.violations_by_rule.items())),
        }


class Sandboxes:
    """Every establishment's sandbox, created on first use from the same seed."""

    def __init__(
        self, clock: IReactorTime, seed: SandboxSeed, max_sandboxes: int = MAX_SANDBOXES
    ) -> None:
        self.clock = clock
        self.seed = seed
        self.max_sandboxes = max_sandboxes
        self._sandboxes: dict[str, Sandbox] = {}

    def get(self, finess: str) -> Sandbox:
        """The sandbox of *finess*, created if new (most recently used kept last)."""
        sandbox = self._sandboxes.pop(finess, None)
        if sandbox is None:
            sandbox = Sandbox(finess, self.clock, self.seed)
            while len(self._sandboxes) >= self.max_sandboxes:
                del self._sandboxes[next(iter(self._sandboxes))]
        self._sandboxes[finess] = sandbox
        sandbox.last_used = self.clock.seconds()
        return sandbox

    def purge_idle(self, idle_seconds: float) -> int:
        """Drop the sandboxes unused for more than *idle_seconds*; how many were dropped."""
        limit = self.clock.seconds() - idle_seconds
        idle = [f for f, s in self._sandboxes.items() if s.last_used < limit]
        for finess in idle:
            del self._sandboxes[finess]
        return len(idle)

    def find(self, finess: str) -> Sandbox | None:
        return self._sandboxes.get(finess)

    def __iter__(self) -> Iterator[Sandbox]:
        return iter(sorted(self._sandboxes.values(), key=lambda s: s.finess))

    def __len__(self) -> int:
        return len(self._sandboxes)

    def seeded(
        self,
        finess: str,
        identifications: Iterable[Identification] = (),
        engagements: Iterable[Engagement] = (),
    ) -> Sandbox:
        """Add identifications and engagements to *finess*'s sandbox (admin ``seed``)."""
        sandbox = self.get(finess)
        for identification in identifications:
            sandbox.identify(identification)
        for engagement in engagements:
            sandbox.add_engagement(engagement)
        return sandbox


def _run(work: Callable[[], T]) -> Deferred[T]:
    try:
        return succeed(work())
    except Exception:  # noqa: BLE001 - handed to the caller's errback, as a store would
        return fail()


@implementer(ISandboxStore)
class MemoryStore:
    """The sandboxes in process memory (``storage.url = "memory:"``): lost at restart.

    The verified fake of ``ISandboxStore``: work runs at once on the caller's thread, and the
    Deferreds it returns have already fired. A failed unit of work keeps what it changed
    before failing (the rules decide before they change anything).
    """

    def __init__(self, sandboxes: Sandboxes) -> None:
        self.sandboxes = sandboxes

    def transact(self, finess: str, work: Callable[[ISandbox], T]) -> Deferred[T]:
        return _run(lambda: work(self.sandboxes.get(finess)))

    def inspect(self, finess: str, work: Callable[[ISandbox | None], T]) -> Deferred[T]:
        return _run(lambda: work(self.sandboxes.find(finess)))

    def summaries(self) -> Deferred[list[dict[str, Any]]]:
        return _run(lambda: [s.summary() for s in self.sandboxes])

    def purge_idle(self, idle_seconds: float) -> Deferred[int]:
        return _run(lambda: self.sandboxes.purge_idle(idle_seconds))

    def ping(self) -> Deferred[None]:
        return succeed(None)


def engagements_by_state(engagements: Mapping[str, Engagement]) -> dict[str, list[str]]:
    """Engagement numbers grouped by state (for the admin API; numbers are not personal)."""
    out: dict[str, list[str]] = {}
    for number, engagement in sorted(engagements.items()):
        out.setdefault(engagement.state.value, []).append(number)
    return out


def _returns_summary(returns: Iterable[BillingReturn], now: float) -> dict[str, int]:
    """Billing returns by delivery state (admin API): pending, due, acknowledged."""
    out = {"pending": 0, "due": 0, "acknowledged": 0}
    for r in returns:
        out["acknowledged" if r.acknowledged else "due" if r.due <= now else "pending"] += 1
    return out
