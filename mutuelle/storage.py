"""The storage seam behind the sandboxes: what the rules see of one, and what keeps them all.

``ISandbox`` is one establishment's sandbox as the rules (``mutuelle.decisions``), the
simulator and the admin API use it, inside one unit of work; ``ISandboxStore`` runs such a
unit of work (``transact``) and answers the questions about every sandbox (list, purge,
readiness). Two implementations pass the same contract suite (``tests/storage_contract.py``):

- ``mutuelle.sandbox.MemoryStore``: the sandboxes in process memory, work run at once on the
  caller's thread; the verified fake of unit tests, and ``storage.url = "memory:"``;
- ``mutuelle.sqlstore.SqlStore``: SQLite (the default) or PostgreSQL, each unit of work one
  database transaction run off the reactor thread.

The rules stay pure: they call ``ISandbox`` methods and never see a connection or a Deferred.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from mutuelle.billing import BillingReturn
    from mutuelle.care import CareHistory
    from mutuelle.engagements import Engagement, EngagementState
    from mutuelle.model import BeneficiaryKey, CareKind, Sector
    from mutuelle.sandbox import DelOutcome, Identification, JournalEntry

T = TypeVar("T")


class StorageUnavailable(Exception):
    """The sandboxes' storage cannot be reached or refused the work; nothing was written.

    The message says why in English, for the log (never personal data).
    """


class ISandbox(Interface):
    """One establishment's sandbox within one unit of work (see ``mutuelle.sandbox``)."""

    finess = Attribute("The establishment's FINESS, or 'anonyme'.")
    fault = Attribute("The technical fault switched on for the whole sandbox, or None.")
    clock_offset = Attribute("Seconds added to the reactor's time (admin API).")
    signature_policy = Attribute(
        "This sandbox's signature policy ('require', 'report', 'off'), or None: the "
        "configuration's (admin API)."
    )

    def now() -> float:
        """Sandbox time in POSIX seconds."""

    def today() -> datetime.date:
        """Sandbox date (UTC)."""

    def identify(identification: Identification) -> None:
        """Remember a successful IDB (most recent last)."""

    def identified(
        amc_number: str,
        beneficiary: BeneficiaryKey,
        start: datetime.date,
        end: datetime.date,
        sector: Sector,
    ) -> bool:
        """Whether an identification covers this beneficiary, period and sector."""

    def active_engagement_for(
        amc_number: str, beneficiary: BeneficiaryKey, reference: str
    ) -> Engagement | None:
        """The active engagement of this stay reference, if any."""

    def overlapping_engagement(
        amc_number: str,
        beneficiary: BeneficiaryKey,
        reference: str,
        start: datetime.date,
        end: datetime.date,
        care_kind: CareKind,
    ) -> Engagement | None:
        """An active engagement of another stay sharing days with this one."""

    def history(amc_number: str, beneficiary: BeneficiaryKey, reference: str) -> CareHistory:
        """What earlier engagements already billed this beneficiary."""

    def engage(engagement: Engagement) -> Engagement:
        """Record *engagement* under a new number, unique in the sandbox, and return it."""

    def add_engagement(engagement: Engagement) -> None:
        """Record *engagement* under its own number (admin seed), replacing one of that number."""

    def cancel(amc_number: str, beneficiary: BeneficiaryKey, number: str) -> DelOutcome:
        """DEL's state transition."""

    def engagement(number: str) -> Engagement | None:
        """The engagement of this number, whatever its beneficiary and state, if any; a seeded
        one's ``created`` is resolved (the sandbox's reset time minus its age)."""

    def set_engagement_state(number: str, state: EngagementState) -> None:
        """Move engagement *number* to *state* (billing); nothing if there is none."""

    def invoice_received(amc_number: str, invoice_number: str) -> bool:
        """Whether an invoice of this number to this AMC was accepted in this sandbox."""

    def keep_return(billing_return: BillingReturn) -> None:
        """Keep the return of an accepted invoice until it is acknowledged."""

    def returns_due(amc_number: str) -> list[BillingReturn]:
        """This AMC's returns due at sandbox time and not acknowledged, oldest due first."""

    def acknowledge(amc_number: str, invoice_number: str) -> bool:
        """Mark a due return acknowledged; False when no such due, unacknowledged return."""

    def release_returns() -> int:
        """Make every pending return due now (admin "produce returns now"); how many."""

    def record(entry: JournalEntry) -> None:
        """Add a journal entry (sequence and time set here) and count its conformance."""

    def journal_tail(limit: int) -> list[JournalEntry]:
        """The last *limit* journal entries, oldest first."""

    def reset() -> None:
        """Back to the seed."""

    def summary() -> dict[str, Any]:
        """Counts and codes for the admin API, no personal data."""

    def conformance_summary() -> dict[str, Any]:
        """The conformance counts."""


class ISandboxStore(Interface):
    """Keeps every sandbox; each unit of work sees and changes one sandbox, all or nothing."""

    def transact(finess: str, work: Callable[[ISandbox], T]) -> Deferred[T]:
        """Run *work* on *finess*'s sandbox (created from the seed if new) and keep what it did.

        If *work* raises, nothing it did is kept and the Deferred fails with its exception;
        if the storage fails, nothing is kept and it fails with ``StorageUnavailable``.
        """

    def inspect(finess: str, work: Callable[[ISandbox | None], T]) -> Deferred[T]:
        """Run *work* on *finess*'s sandbox, or on None if it has none; creates nothing."""

    def summaries() -> Deferred[list[dict[str, Any]]]:
        """Every sandbox's ``summary()``, by FINESS."""

    def purge_idle(idle_seconds: float) -> Deferred[int]:
        """Delete the sandboxes unused for more than *idle_seconds*; how many were deleted."""

    def ping() -> Deferred[None]:
        """Succeeds when the storage answers (readiness)."""
