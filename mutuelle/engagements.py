"""Engagements and the questions CLC asks of them, as pure functions over records.

A sandbox holds engagements (``mutuelle.sandbox``); whatever stores them later (issue 14's
storage seam) needs only these operations: find the active engagement of a stay, find an
active engagement whose days overlap a stay, count the private-room days already billed in
each year. Each takes the records and returns a decision; none changes anything.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from mutuelle.care import CareHistory, Statement
from mutuelle.model import BeneficiaryKey, CareKind


class EngagementState(StrEnum):
    ACTIVE = "ACTIF"
    CANCELLED = "ANNULE"
    BILLED = "FACTURE"
    #: Billing (``mutuelle.billing``): a 578R paid the invoice, or a 908R rejected it.
    PAID = "PAYE"
    REJECTED = "REJETE"


#: States of an engagement whose invoice was accepted: DEL answers 12, a new invoice ARL 33.
SETTLED = frozenset({EngagementState.BILLED, EngagementState.PAID, EngagementState.REJECTED})


@dataclass(frozen=True, slots=True)
class Engagement:
    """An AMC's payment commitment, made by a CLC, with what the CLC asked and answered."""

    number: str
    amc_number: str
    beneficiary: BeneficiaryKey
    reference: str
    amc_cents: int
    #: Sandbox time (POSIX seconds) of the CLC; None for seeded ones: "made at reset".
    created: float | None
    state: EngagementState = EngagementState.ACTIVE
    #: The stay: first and last day, and kind of care (None for admin-seeded records).
    start: datetime.date | None = None
    end: datetime.date | None = None
    care_kind: CareKind | None = None
    #: The statement the CLC answered (returned again to a retried CLC).
    statement: Statement | None = None
    #: ``care.request_fingerprint`` of the CLC request: a retry sends the same.
    fingerprint: str = ""
    #: (year, private-room days billed that year).
    private_room_days: tuple[tuple[int, int], ...] = ()
    #: Seeded records: how long before the reset the engagement was made, in seconds.
    age_at_reset: float = 0.0

    def __repr__(self) -> str:
        return f"Engagement(number={self.number!r}, state={self.state.value})"

    def is_of(self, amc_number: str, beneficiary: BeneficiaryKey) -> bool:
        return self.amc_number == amc_number and self.beneficiary == beneficiary


def _is_stay(kind: CareKind | None) -> bool:
    return kind is not None and kind is not CareKind.EXTERNAL


def active_for_stay(
    engagements: Iterable[Engagement], amc_number: str, beneficiary: BeneficiaryKey, reference: str
) -> Engagement | None:
    """The active engagement of this beneficiary for stay *reference*, if any."""
    for engagement in engagements:
        if (
            engagement.state is EngagementState.ACTIVE
            and engagement.is_of(amc_number, beneficiary)
            and engagement.reference == reference
        ):
            return engagement
    return None


def overlapping(
    engagements: Iterable[Engagement],
    amc_number: str,
    beneficiary: BeneficiaryKey,
    reference: str,
    start: datetime.date,
    end: datetime.date,
    care_kind: CareKind,
) -> Engagement | None:
    """An active engagement of this beneficiary for another stay sharing days with this one.

    Stays only (external visits may share a day); a stay may start on the day another ends
    (a transfer), so touching ends are not an overlap.
    """
    if not _is_stay(care_kind):
        return None
    for engagement in engagements:
        if (
            engagement.state is not EngagementState.ACTIVE
            or not engagement.is_of(amc_number, beneficiary)
            or engagement.reference == reference
            or not _is_stay(engagement.care_kind)
            or engagement.start is None
            or engagement.end is None
        ):
            continue
        first, last = max(engagement.start, start), min(engagement.end, end)
        touching = first == last and (engagement.end == start or end == engagement.start)
        if first <= last and not touching:
            return engagement
    return None


def history(
    engagements: Iterable[Engagement],
    amc_number: str,
    beneficiary: BeneficiaryKey,
    reference: str,
) -> CareHistory:
    """What earlier engagements (active or billed, other stays) already billed this person."""
    days: dict[int, int] = {}
    for engagement in engagements:
        if (
            engagement.state is EngagementState.CANCELLED
            or not engagement.is_of(amc_number, beneficiary)
            or engagement.reference == reference
        ):
            continue
        for year, count in engagement.private_room_days:
            days[year] = days.get(year, 0) + count
    return CareHistory(days)
