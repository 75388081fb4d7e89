"""Billing rules (``mutuelle.billing``): the ARL, then the 578R or 908R, from the engagement."""

from __future__ import annotations

import dataclasses
import datetime

import pytest

from mutuelle import testing
from mutuelle.billing import (
    BILLING_DEADLINE,
    RETURN_DELAY,
    ArlOutcome,
    Invoice,
    InvoiceLine,
    Rejection,
    ReturnKind,
    Shortfall,
    billed,
    receive,
)
from mutuelle.care import Amounts, LineCode, Statement, StatementLine
from mutuelle.engagements import Engagement, EngagementState
from mutuelle.model import BeneficiaryKey

DATA, _ = testing.shipped()
DATASET = DATA.dataset
AMC = "990000101"
D = datetime.date
OPEN = next(
    b
    for b in DATASET.beneficiaries
    if b.amc_number == AMC and any(p.end is None and p.start <= D(2026, 1, 1) for p in b.rights)
).key
CLOSED = next(
    b
    for b in DATASET.beneficiaries
    if b.amc_number == AMC and all(p.end is not None and p.end < D(2025, 1, 1) for p in b.rights)
).key
STAY = (D(2026, 9, 1), D(2026, 9, 3))
#: Sandbox time: ten days after the stay.
NOW = datetime.datetime(2026, 9, 13, 10, tzinfo=datetime.UTC).timestamp()


def engagement(
    person: BeneficiaryKey = OPEN, state: EngagementState = EngagementState.ACTIVE
) -> Engagement:
    statement = Statement(
        (
            StatementLine(1, LineCode.PJ, Amounts(300_00, 240_00, 60_00, 0, 300_00)),
            StatementLine(2, LineCode.FJH, Amounts(60_00, 0, 40_00, 20_00)),
            StatementLine(3, LineCode.CP, Amounts(150_00, 0, 150_00, 0)),
        )
    )
    return Engagement(
        "ENG-990000101-000001",
        AMC,
        person,
        "SEJ-1",
        250_00,
        NOW - 86400,
        state,
        STAY[0],
        STAY[1],
        statement=statement,
    )


def invoice(*amounts: int, person: BeneficiaryKey = OPEN) -> Invoice:
    codes = (LineCode.PJ, LineCode.FJH, LineCode.CP, LineCode.ACC)
    lines = tuple(InvoiceLine(i + 1, codes[i], a) for i, a in enumerate(amounts))
    return Invoice("FAC-0001", "ENG-990000101-000001", person, "SEJ-1", *STAY, lines)


def test_an_invoice_matching_the_engagement_is_acknowledged_then_paid_in_full() -> None:
    answer = receive(invoice(60_00, 40_00, 150_00), AMC, engagement(), False, DATASET, NOW)
    assert answer.outcome is ArlOutcome.ACCEPTED and answer.code == "00"
    pending = answer.pending
    assert pending is not None and pending.kind is ReturnKind.PAYMENT
    assert pending.full and pending.paid_cents == 250_00
    assert all(line.shortfall is None for line in pending.lines)
    assert pending.due == NOW + RETURN_DELAY.total_seconds()
    assert pending.engagement_state is EngagementState.PAID
    assert pending.payment_reference == dataclasses.replace(pending, due=0).payment_reference


def test_an_invoice_asking_more_is_paid_the_engaged_share_each_difference_explained() -> None:
    answer = receive(invoice(80_00, 40_00, 200_00, 30_00), AMC, engagement(), False, DATASET, NOW)
    pending = answer.pending
    assert pending is not None and pending.kind is ReturnKind.PAYMENT and not pending.full
    assert [(p.paid_cents, p.shortfall) for p in pending.lines] == [
        (60_00, Shortfall.MORE_THAN_ENGAGED),
        (40_00, None),
        (150_00, Shortfall.MORE_THAN_ENGAGED),
        (0, Shortfall.NOT_ENGAGED),
    ]
    assert pending.paid_cents == 250_00 and pending.asked_cents == 350_00
    assert pending.lines[0].label == "Montant demandé supérieur à la part AMC engagée"


def test_a_seeded_engagement_without_statement_pays_up_to_its_total() -> None:
    seeded = dataclasses.replace(engagement(), statement=None, amc_cents=100_00)
    pending = receive(invoice(60_00, 70_00), AMC, seeded, False, DATASET, NOW).pending
    assert pending is not None
    assert [(p.paid_cents, p.shortfall) for p in pending.lines] == [
        (60_00, None),
        (40_00, Shortfall.TOTAL_REACHED),
    ]


@pytest.mark.parametrize(
    ("found", "duplicate", "outcome"),
    [
        (None, False, ArlOutcome.UNKNOWN_ENGAGEMENT),
        (dataclasses.replace(engagement(), amc_number="990000202"), False, "unknown"),
        (engagement(CLOSED), False, "unknown"),
        (engagement(), True, ArlOutcome.DUPLICATE),
        (engagement(state=EngagementState.BILLED), False, ArlOutcome.ALREADY_BILLED),
        (engagement(state=EngagementState.PAID), False, ArlOutcome.ALREADY_BILLED),
    ],
)
def test_a_negative_arl_says_why_and_keeps_nothing(
    found: Engagement | None, duplicate: bool, outcome: ArlOutcome | str
) -> None:
    expected = ArlOutcome.UNKNOWN_ENGAGEMENT if outcome == "unknown" else outcome
    answer = receive(invoice(60_00), AMC, found, duplicate, DATASET, NOW)
    assert answer.outcome is expected and answer.pending is None
    assert answer.code in {"31", "32", "33"}


@pytest.mark.parametrize(
    ("found", "now", "reason", "state"),
    [
        (
            engagement(state=EngagementState.CANCELLED),
            NOW,
            Rejection.CANCELLED,
            EngagementState.CANCELLED,
        ),
        (engagement(CLOSED), NOW, Rejection.RIGHTS_CLOSED, EngagementState.REJECTED),
        (
            engagement(),
            NOW + BILLING_DEADLINE.total_seconds(),
            Rejection.LATE,
            EngagementState.REJECTED,
        ),
    ],
)
def test_an_accepted_invoice_can_still_be_rejected_by_a_908r(
    found: Engagement, now: float, reason: Rejection, state: EngagementState
) -> None:
    person = found.beneficiary
    answer = receive(invoice(60_00, person=person), AMC, found, False, DATASET, now)
    assert answer.outcome is ArlOutcome.ACCEPTED
    pending = answer.pending
    assert pending is not None and pending.kind is ReturnKind.REJECTION
    assert pending.rejection is reason and pending.lines == ()
    assert pending.engagement_state is state


def test_the_deadline_counts_from_the_engagement_in_sandbox_time() -> None:
    made = engagement()
    assert made.created is not None
    on_time = made.created + BILLING_DEADLINE.total_seconds()
    pending = receive(invoice(60_00), AMC, made, False, DATASET, on_time).pending
    assert pending is not None and pending.rejection is None
    late = on_time + 1
    pending = receive(invoice(60_00), AMC, made, False, DATASET, late).pending
    assert pending is not None and pending.rejection is Rejection.LATE


def test_nothing_payable_is_a_rejection_not_a_zero_payment() -> None:
    odd = Invoice(
        "FAC-9",
        "ENG-990000101-000001",
        OPEN,
        "SEJ-1",
        *STAY,
        (InvoiceLine(7, LineCode.ACC, 10_00),),
    )
    pending = receive(odd, AMC, engagement(), False, DATASET, NOW).pending
    assert pending is not None and pending.rejection is Rejection.NOTHING_PAYABLE


def test_an_accepted_invoice_bills_an_active_engagement_only() -> None:
    assert billed(engagement()) is EngagementState.BILLED
    cancelled = engagement(state=EngagementState.CANCELLED)
    assert billed(cancelled) is EngagementState.CANCELLED
