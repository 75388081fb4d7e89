"""SIM, CLC and DEL bodies: XML elements to requests, answers to XML elements, and back.

Requests are validated against their XSD first (``mutuelle.schemas``); the ROC rules a schema
cannot express are ``mutuelle.conformance``'s. ``RequestInvalid`` names the element and the
rule, never the value. The request writers serve clients, examples and tests.
"""

from __future__ import annotations

import datetime

from lxml import etree

from mutuelle.care import (
    Amounts,
    CareLine,
    CareRequest,
    Exemption,
    LineCode,
    Statement,
    StatementLine,
    cents,
    euros,
)
from mutuelle.codec import (
    AMOUNT_EXPECTED,
    RequestInvalid,
    _answer_root,
    _child,
    _date,
    _integer,
    _sub,
    _text,
    _validated,
)
from mutuelle.decisions import CareAnswer, DelAnswer, DelRequest
from mutuelle.model import BeneficiaryKey, CareKind, Sector
from roc.identifiers import nir_error
from roc.model import SERVICE_NS

SIM_NS = SERVICE_NS["SIM"]
CLC_NS = SERVICE_NS["CLC"]
DEL_NS = SERVICE_NS["DEL"]


def _beneficiary(element: etree._Element, ns: str, root: str) -> tuple[BeneficiaryKey, str | None]:
    nir = _text(element, ns, "Beneficiaire/NIR", root)
    if (reason := nir_error(nir)) is not None:
        raise RequestInvalid(f"{root}/Beneficiaire/NIR : {reason.fr}")
    member = _child(element, ns, "Beneficiaire/NumeroAdherent")
    key = BeneficiaryKey(
        nir=nir,
        birth_date=_date(element, ns, "Beneficiaire/DateNaissance", root),
        birth_rank=_integer(element, ns, "Beneficiaire/RangNaissance", root),
    )
    return key, None if member is None else (member.text or "").strip()


def _write_beneficiary(
    root: etree._Element, ns: str, key: BeneficiaryKey, member: str | None
) -> None:
    who = _sub(root, ns, "Beneficiaire")
    _sub(who, ns, "NIR", key.nir)
    _sub(who, ns, "DateNaissance", key.birth_date.isoformat())
    _sub(who, ns, "RangNaissance", str(key.birth_rank))
    if member is not None:
        _sub(who, ns, "NumeroAdherent", member)


# -- SIM and CLC -------------------------------------------------------------------------------


def _boolean(text: str) -> bool:
    """An xs:boolean: ``true``, ``false``, ``1`` or ``0``."""
    value = text.strip()
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError("not a boolean")


def _optional_date(parent: etree._Element, ns: str, name: str, where: str) -> datetime.date | None:
    if _child(parent, ns, name) is None:
        return None
    return _date(parent, ns, name, where)


def read_care_request(element: etree._Element, service: str, validate: bool = True) -> CareRequest:
    """The ``DemandeSIM`` or ``DemandeCLC`` (*service*) in *element*, schema-checked."""
    if validate:
        _validated(element, service)
    ns = SERVICE_NS[service]
    root = f"Demande{service}"
    key, member = _beneficiary(element, ns, root)
    lines = []
    for index, line in enumerate(element.iterfind(f"{{{ns}}}Prestations/{{{ns}}}Prestation"), 1):
        where = f"{root}/Prestations/Prestation[{index}]"
        base = _child(line, ns, "BaseRemboursement")
        optam = _child(line, ns, "Optam")
        try:
            price = cents(_text(line, ns, "PrixUnitaire", where))
        except ValueError:
            raise RequestInvalid(f"{where}/PrixUnitaire : {AMOUNT_EXPECTED}") from None
        try:
            base_cents = None if base is None else cents(base.text or "")
        except ValueError:
            raise RequestInvalid(f"{where}/BaseRemboursement : {AMOUNT_EXPECTED}") from None
        try:
            flag = None if optam is None else _boolean(optam.text or "")
        except ValueError:
            raise RequestInvalid(f"{where}/Optam : booléen attendu (true, false, 1, 0)") from None
        lines.append(
            CareLine(
                number=_integer(line, ns, "NumeroLigne", where),
                code=LineCode(_text(line, ns, "Code", where)),
                quantity=_integer(line, ns, "Quantite", where),
                unit_price_cents=price,
                base_cents=base_cents,
                start=_optional_date(line, ns, "DateDebut", where),
                optam=flag,
            )
        )
    exemption = _child(element, ns, "Sejour/Exoneration")
    return CareRequest(
        beneficiary=key,
        member_number=member,
        reference=_text(element, ns, "Sejour/ReferenceSejour", root),
        start=_date(element, ns, "Sejour/DateDebut", root),
        end=_date(element, ns, "Sejour/DateFin", root),
        sector=Sector(_text(element, ns, "Sejour/Secteur", root)),
        care_kind=CareKind(_text(element, ns, "Sejour/NatureSoins", root)),
        amo_rate=_integer(element, ns, "Sejour/TauxAMO", root),
        lines=tuple(lines),
        exemption=None
        if exemption is None
        else Exemption(_text(element, ns, "Sejour/Exoneration", root)),
    )


def care_request_element(request: CareRequest, service: str) -> etree._Element:
    """The ``DemandeSIM`` or ``DemandeCLC`` element asking *request*."""
    ns = SERVICE_NS[service]
    root = etree.Element(f"{{{ns}}}Demande{service}", nsmap={service.lower(): ns})
    _write_beneficiary(root, ns, request.beneficiary, request.member_number)
    stay = _sub(root, ns, "Sejour")
    _sub(stay, ns, "ReferenceSejour", request.reference)
    _sub(stay, ns, "DateDebut", request.start.isoformat())
    _sub(stay, ns, "DateFin", request.end.isoformat())
    _sub(stay, ns, "Secteur", request.sector.value)
    _sub(stay, ns, "NatureSoins", request.care_kind.value)
    _sub(stay, ns, "TauxAMO", str(request.amo_rate))
    if request.exemption is not None:
        _sub(stay, ns, "Exoneration", request.exemption.value)
    lines = _sub(root, ns, "Prestations")
    for line in request.lines:
        item = _sub(lines, ns, "Prestation")
        _sub(item, ns, "NumeroLigne", str(line.number))
        _sub(item, ns, "Code", line.code.value)
        _sub(item, ns, "Quantite", str(line.quantity))
        _sub(item, ns, "PrixUnitaire", euros(line.unit_price_cents))
        if line.base_cents is not None:
            _sub(item, ns, "BaseRemboursement", euros(line.base_cents))
        if line.start is not None:
            _sub(item, ns, "DateDebut", line.start.isoformat())
        if line.optam is not None:
            _sub(item, ns, "Optam", "true" if line.optam else "false")
    return root


def _amounts(parent: etree._Element, ns: str, amounts: Amounts) -> None:
    _sub(parent, ns, "MontantTotal", euros(amounts.charged))
    _sub(parent, ns, "BaseRemboursement", euros(amounts.base))
    _sub(parent, ns, "PartAMO", euros(amounts.amo))
    _sub(parent, ns, "PartAMC", euros(amounts.amc))
    _sub(parent, ns, "ResteACharge", euros(amounts.patient))


def _statement(parent: etree._Element, ns: str, statement: Statement) -> None:
    block = _sub(parent, ns, "Decompte")
    for line in statement.lines:
        item = _sub(block, ns, "Ligne")
        _sub(item, ns, "NumeroLigne", str(line.number))
        _sub(item, ns, "Code", line.code.value)
        _amounts(item, ns, line.amounts)
    _amounts(_sub(block, ns, "Total"), ns, statement.total)


def care_answer_element(answer: CareAnswer, service: str) -> etree._Element:
    """The ``ReponseSIM`` or ``ReponseCLC`` element carrying *answer*.

    A CLC answer carries its ``Engagement`` on 00, and the existing one on 09.
    """
    ns = SERVICE_NS[service]
    root = _answer_root(service, answer.code, answer.label)
    if answer.statement is not None:
        if service == "CLC":
            engagement = _sub(root, ns, "Engagement")
            _sub(engagement, ns, "NumeroEngagement", answer.engagement_number)
            _statement(engagement, ns, answer.statement)
        else:
            _statement(root, ns, answer.statement)
    return root


def _read_amounts(parent: etree._Element, ns: str, where: str) -> Amounts:
    return Amounts(
        *(
            cents(_text(parent, ns, name, where))
            for name in ("MontantTotal", "PartAMO", "PartAMC", "ResteACharge", "BaseRemboursement")
        )
    )


def read_care_answer(
    element: etree._Element, service: str
) -> tuple[str, str, Statement | None, str | None]:
    """CodeRetour, LibelleRetour, statement and engagement number of an answer (clients)."""
    _validated(element, service)
    ns = SERVICE_NS[service]
    root = f"Reponse{service}"
    code = _text(element, ns, "CodeRetour", root)
    label = _text(element, ns, "LibelleRetour", root)
    holder = _child(element, ns, "Engagement") if service == "CLC" else element
    number = None
    if holder is not None and service == "CLC":
        number = _text(holder, ns, "NumeroEngagement", root)
    block = None if holder is None else _child(holder, ns, "Decompte")
    if block is None:
        return code, label, None, number
    lines = tuple(
        StatementLine(
            int(_text(item, ns, "NumeroLigne", root)),
            LineCode(_text(item, ns, "Code", root)),
            _read_amounts(item, ns, root),
        )
        for item in block.iterfind(f"{{{ns}}}Ligne")
    )
    return code, label, Statement(lines), number


# -- DEL ---------------------------------------------------------------------------------------


def read_del_request(element: etree._Element, validate: bool = True) -> DelRequest:
    if validate:
        _validated(element, "DEL")
    root = "DemandeDEL"
    key, member = _beneficiary(element, DEL_NS, root)
    return DelRequest(
        key,
        member,
        _text(element, DEL_NS, "NumeroEngagement", root),
        _text(element, DEL_NS, "Motif", root),
    )


def del_request_element(request: DelRequest) -> etree._Element:
    ns = DEL_NS
    root = etree.Element(f"{{{ns}}}DemandeDEL", nsmap={"del": ns})
    _write_beneficiary(root, ns, request.beneficiary, request.member_number)
    _sub(root, ns, "NumeroEngagement", request.engagement_number)
    _sub(root, ns, "Motif", request.reason)
    return root


def del_answer_element(answer: DelAnswer) -> etree._Element:
    ns = DEL_NS
    root = _answer_root("DEL", answer.code, answer.label)
    if answer.engagement_number is not None:
        _sub(root, ns, "NumeroEngagement", answer.engagement_number)
    return root


def read_del_answer(element: etree._Element) -> tuple[str, str, str | None]:
    _validated(element, "DEL")
    root = "ReponseDEL"
    number = _child(element, DEL_NS, "NumeroEngagement")
    return (
        _text(element, DEL_NS, "CodeRetour", root),
        _text(element, DEL_NS, "LibelleRetour", root),
        None if number is None else (number.text or "").strip(),
    )
