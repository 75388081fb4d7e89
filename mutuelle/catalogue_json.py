"""The catalogue as data: one JSON object per case and AMC, for publishers' suites.

``python -m mutuelle.catalogue --json`` prints the array. Amounts are decimal strings in
euros (``"126.00"``), dates ISO 8601. The same cases as docs/catalogue.md, from the same
source. Pure: builds plain structures, the caller serialises them.
"""

from __future__ import annotations

from typing import Any

from mutuelle.billing import Invoice
from mutuelle.care import Amounts, CareRequest, Statement, euros
from mutuelle.catalogue import Case, Catalogue
from mutuelle.decisions import DelRequest
from mutuelle.faults import MutuelleError
from mutuelle.specs_signature import HOW_SENT
from mutuelle.wording import SIGNATURE_REASONS


def _amounts(amounts: Amounts) -> dict[str, str]:
    return {
        "charged": euros(amounts.charged),
        "amo_base": euros(amounts.base),
        "amo": euros(amounts.amo),
        "amc": euros(amounts.amc),
        "patient": euros(amounts.patient),
    }


def _statement(statement: Statement) -> dict[str, Any]:
    return {
        "totals": _amounts(statement.total),
        "lines": [
            {"number": line.number, "code": line.code.value, **_amounts(line.amounts)}
            for line in statement.lines
        ],
    }


def _sent(case: Case) -> dict[str, Any]:
    request = case.request
    if isinstance(request, DelRequest):
        return {"engagement_number": request.engagement_number, "reason": request.reason}
    if isinstance(request, Invoice):
        return {
            "invoice_number": request.invoice_number,
            "engagement_number": request.engagement_number,
            "reference": request.reference,
            "lines": [
                {"number": line.number, "code": line.code.value, "amc": euros(line.amount_cents)}
                for line in request.lines
            ],
        }
    sent: dict[str, Any] = {"care_kind": request.care_kind.value}
    if isinstance(request, CareRequest):
        sent |= {
            "reference": request.reference,
            "amo_rate": request.amo_rate,
            "exemption": None if request.exemption is None else request.exemption.value,
            "lines": [
                {
                    "number": line.number,
                    "code": line.code.value,
                    "quantity": line.quantity,
                    "unit_price": euros(line.unit_price_cents),
                    "base": None if line.base_cents is None else euros(line.base_cents),
                    "start": None if line.start is None else line.start.isoformat(),
                    "optam": line.optam,
                }
                for line in request.lines
            ],
        }
    return sent


def case_json(case: Case) -> dict[str, Any]:
    """One case at one AMC: who, what is sent, what comes back."""
    request = case.request
    key = request.beneficiary
    spec = case.spec
    fault = case.technical_fault
    expected: dict[str, Any] = {
        "code": None if fault else case.expected_code,
        "label": None if fault else case.expected_label,
        "technical_fault": None if fault is None else fault.value,
    }
    if case.expected_statement is not None:
        expected |= _statement(case.expected_statement)
    number = case.expected_engagement_number
    if number is not None:
        expected["engagement_number"] = number
    billed = case.expected_return
    if billed is not None:
        if billed.rejection is not None:
            expected["return"] = {
                "type": billed.kind.value,
                "code": billed.rejection.code,
                "label": billed.rejection.label,
            }
        else:
            expected["return"] = {
                "type": billed.kind.value,
                "asked": euros(billed.asked_cents),
                "paid": euros(billed.paid_cents),
                "full": billed.full,
                "lines": [
                    {
                        "number": line.number,
                        "code": line.code.value,
                        "asked": euros(line.asked_cents),
                        "paid": euros(line.paid_cents),
                        "motif": None if line.shortfall is None else line.shortfall.value,
                        "motif_label": line.label or None,
                    }
                    for line in billed.lines
                ],
            }
    defect = spec.signature
    if defect is not None:
        expected["signature"] = {
            "rule": defect.value,
            "sent": HOW_SENT[defect],
            "fault_code": MutuelleError.SIGNATURE_INVALID.code,
            "reason": SIGNATURE_REASONS[defect],
        }
    seeded = case.seeded
    return {
        "id": case.name,
        "amc": case.amc_number,
        "service": case.service.value,
        "version": case.version.value,
        "sector": case.sector.value,
        "beneficiary": {
            "nir": key.nir,
            "birth_date": key.birth_date.isoformat(),
            "birth_rank": key.birth_rank,
            "member_number": request.member_number,
        },
        "period": {"start": spec.start.isoformat(), "end": spec.end.isoformat()},
        "request": _sent(case),
        **({"steps": [service.value for service, _ in case.steps]} if case.steps else {}),
        "sandbox": {
            "identified": spec.identified,
            "engagement": None
            if seeded is None
            else {
                "number": seeded.number,
                "state": seeded.state.value,
                "reference": seeded.reference,
            },
        },
        "expected": expected,
        "description": spec.description,
        "rule": spec.rule,
    }


def catalogue_json(catalogue: Catalogue) -> list[dict[str, Any]]:
    """Every case of *catalogue* (business, technical and signature), AMC by AMC."""
    return [case_json(case) for case in catalogue.all_cases]
