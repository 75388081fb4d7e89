"""Sandbox records to and from the text the database keeps (JSON), and back unchanged.

Pure: ``decode_x(encode_x(r)) == r`` for every engagement and journal entry (a unit test
checks it on the whole catalogue's seed). Keys are short and stable: changing one is a schema
change, made with a migration (``mutuelle/migrations``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import json
from typing import Any

from mutuelle.billing import BillingReturn, PaidLine, Rejection, ReturnKind, Shortfall
from mutuelle.care import Amounts, LineCode, Statement, StatementLine
from mutuelle.engagements import Engagement, EngagementState
from mutuelle.model import BeneficiaryKey, CareKind
from mutuelle.sandbox import JournalEntry, Violation


def _day(value: datetime.date | None) -> str | None:
    return None if value is None else value.isoformat()


def _undate(value: str | None) -> datetime.date | None:
    return None if value is None else datetime.date.fromisoformat(value)


def beneficiary_columns(key: BeneficiaryKey) -> tuple[str, str, int]:
    """The (nir, birth_date, birth_rank) columns of *key*."""
    return key.nir, key.birth_date.isoformat(), key.birth_rank


def beneficiary_of(nir: str, birth_date: str, birth_rank: int) -> BeneficiaryKey:
    return BeneficiaryKey(nir, datetime.date.fromisoformat(birth_date), int(birth_rank))


def _statement(statement: Statement | None) -> list[list[Any]] | None:
    if statement is None:
        return None
    return [
        [
            line.number,
            line.code.value,
            line.amounts.charged,
            line.amounts.amo,
            line.amounts.amc,
            line.amounts.patient,
            line.amounts.base,
        ]
        for line in statement.lines
    ]


def _unstatement(lines: list[list[Any]] | None) -> Statement | None:
    if lines is None:
        return None
    return Statement(
        tuple(
            StatementLine(number, LineCode(code), Amounts(charged, amo, amc, patient, base))
            for number, code, charged, amo, amc, patient, base in lines
        )
    )


def encode_engagement(engagement: Engagement) -> str:
    e = engagement
    return json.dumps(
        {
            "number": e.number,
            "amc": e.amc_number,
            "beneficiary": list(beneficiary_columns(e.beneficiary)),
            "reference": e.reference,
            "amc_cents": e.amc_cents,
            "created": e.created,
            "state": e.state.value,
            "start": _day(e.start),
            "end": _day(e.end),
            "care_kind": None if e.care_kind is None else e.care_kind.value,
            "statement": _statement(e.statement),
            "fingerprint": e.fingerprint,
            "private_room_days": [list(pair) for pair in e.private_room_days],
            "age_at_reset": e.age_at_reset,
        },
        separators=(",", ":"),
    )


def decode_engagement(text: str) -> Engagement:
    d = json.loads(text)
    return Engagement(
        number=d["number"],
        amc_number=d["amc"],
        beneficiary=beneficiary_of(*d["beneficiary"]),
        reference=d["reference"],
        amc_cents=d["amc_cents"],
        created=d["created"],
        state=EngagementState(d["state"]),
        start=_undate(d["start"]),
        end=_undate(d["end"]),
        care_kind=None if d["care_kind"] is None else CareKind(d["care_kind"]),
        statement=_unstatement(d["statement"]),
        fingerprint=d["fingerprint"],
        private_room_days=tuple((year, days) for year, days in d["private_room_days"]),
        age_at_reset=d["age_at_reset"],
    )


def encode_entry(entry: JournalEntry) -> str:
    e = entry
    return json.dumps(
        [
            e.sequence,
            e.time,
            e.service,
            e.exchange_id,
            e.amc,
            e.roc_version,
            e.http_status,
            e.outcome,
            e.case,
            [[v.field, v.rule, v.reason] for v in e.violations],
            e.technical_fault,
            list(e.aimed),
            e.via_relay,
            e.signature,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    )


def decode_entry(text: str) -> JournalEntry:
    fields = json.loads(text)
    # Entries journaled before the qualification fields have 11 of them.
    (sequence, time, service, exchange_id, amc, version, status, outcome, case, found, fault) = (
        fields[:11]
    )
    aimed, via_relay, signature = fields[11:] if len(fields) == 14 else ([], False, "")
    return JournalEntry(
        sequence,
        time,
        service,
        exchange_id,
        amc,
        version,
        status,
        outcome,
        case,
        tuple(Violation(*v) for v in found),
        fault,
        aimed=tuple(aimed),
        via_relay=via_relay,
        signature=signature,
    )


def encode_bodies(entry: JournalEntry) -> str | None:
    """The journal row's ``bodies`` column (migration 0004), None when none was kept."""
    if not entry.request and not entry.answer:
        return None
    return json.dumps([base64.b64encode(b).decode("ascii") for b in (entry.request, entry.answer)])


def decode_bodies(entry: JournalEntry, text: str | None) -> JournalEntry:
    """*entry* with the bodies of its ``bodies`` column."""
    if not text:
        return entry
    request, answer = (base64.b64decode(b) for b in json.loads(text))
    return dataclasses.replace(entry, request=request, answer=answer)


def encode_return(billing_return: BillingReturn) -> str:
    r = billing_return
    return json.dumps(
        {
            "kind": r.kind.value,
            "amc": r.amc_number,
            "invoice": r.invoice_number,
            "engagement": r.engagement_number,
            "due": r.due,
            "lines": [
                [
                    line.number,
                    line.code.value,
                    line.asked_cents,
                    line.paid_cents,
                    None if line.shortfall is None else line.shortfall.value,
                ]
                for line in r.lines
            ],
            "rejection": None if r.rejection is None else r.rejection.name,
        },
        sort_keys=True,
    )


def decode_return(text: str, acknowledged: bool = False) -> BillingReturn:
    d = json.loads(text)
    return BillingReturn(
        kind=ReturnKind(d["kind"]),
        amc_number=d["amc"],
        invoice_number=d["invoice"],
        engagement_number=d["engagement"],
        due=float(d["due"]),
        lines=tuple(
            PaidLine(
                number, LineCode(code), asked, paid, None if short is None else Shortfall(short)
            )
            for number, code, asked, paid, short in d["lines"]
        ),
        rejection=None if d["rejection"] is None else Rejection[d["rejection"]],
        acknowledged=acknowledged,
    )
