"""IDB and ANN bodies: XML elements to requests, answers to XML elements, and back.

Requests are validated against their XSD first (``mutuelle.schemas``), then read here with
the checks a schema cannot express (NIR key, period order). ``RequestInvalid`` names the
element and the rule, never the value. The writers for requests serve clients, examples and
tests.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from mutuelle.idb import IdbAnswer, IdbOutcome, IdbRequest, OpenRights
from mutuelle.model import BeneficiaryKey, CareKind, ContractPeriod, Sector
from mutuelle.schemas import validation_error
from roc.identifiers import nir_error
from roc.model import SERVICE_NS, AmcKey

IDB_NS = SERVICE_NS["IDB"]
ANN_NS = SERVICE_NS["ANN"]


class RequestInvalid(ValueError):
    """A request body breaks the schema or a rule; the message (in French, for the hospital)
    names the element only."""


AMOUNT_EXPECTED = "montant décimal positif ou nul, au plus deux décimales, attendu"


def _sub(parent: etree._Element, ns: str, name: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, f"{{{ns}}}{name}")
    child.text = text
    return child


def _answer_root(service: str, code: str, label: str) -> etree._Element:
    """A ``Reponse<service>`` element, opening as every ROC answer does: code, then label."""
    ns = SERVICE_NS[service]
    root = etree.Element(f"{{{ns}}}Reponse{service}", nsmap={service.lower(): ns})
    _sub(root, ns, "CodeRetour", code)
    _sub(root, ns, "LibelleRetour", label)
    return root


def _first(parent: etree._Element, tag: str) -> etree._Element | None:
    """The first child named *tag* (Clark notation); a plain loop beats ``find`` here."""
    for child in parent:
        if child.tag == tag:
            return child
    return None


def _child(parent: etree._Element, ns: str, path: str) -> etree._Element | None:
    node: etree._Element | None = parent
    for step in path.split("/"):
        if node is None:
            return None
        node = _first(node, f"{{{ns}}}{step}")
    return node


def _text(parent: etree._Element, ns: str, path: str, root: str) -> str:
    node = _child(parent, ns, path)
    if node is None or not (node.text or "").strip():
        raise RequestInvalid(f"{root}/{path} : absent ou vide")
    return (node.text or "").strip()


def _integer(parent: etree._Element, ns: str, path: str, root: str) -> int:
    """An xs:integer the schema accepted (``+5``, ``005``); ASCII digits only."""
    text = _text(parent, ns, path, root)
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit():
        raise RequestInvalid(f"{root}/{path} : entier attendu")
    return int(text)


def _date(parent: etree._Element, ns: str, path: str, root: str) -> datetime.date:
    text = _text(parent, ns, path, root)
    try:
        if len(text) != 10:
            raise ValueError
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise RequestInvalid(f"{root}/{path} : date AAAA-MM-JJ attendue") from None


def _validated(element: etree._Element, service: str) -> None:
    reason = validation_error(element, service)
    if reason is not None:
        raise RequestInvalid(reason)


# -- IDB ---------------------------------------------------------------------------------------


def read_idb_request(element: etree._Element, validate: bool = True) -> IdbRequest:
    """The ``DemandeIDB`` in *element* (schema-checked unless the caller did already)."""
    if validate:
        _validated(element, "IDB")
    root = "DemandeIDB"
    nir = _text(element, IDB_NS, "Beneficiaire/NIR", root)
    if (reason := nir_error(nir)) is not None:
        raise RequestInvalid(f"{root}/Beneficiaire/NIR : {reason.fr}")
    member = _child(element, IDB_NS, "Beneficiaire/NumeroAdherent")
    start = _date(element, IDB_NS, "Soins/DateDebut", root)
    end = _date(element, IDB_NS, "Soins/DateFin", root)
    if end < start:
        raise RequestInvalid(f"{root}/Soins/DateFin : antérieure à DateDebut")
    return IdbRequest(
        beneficiary=BeneficiaryKey(
            nir=nir,
            birth_date=_date(element, IDB_NS, "Beneficiaire/DateNaissance", root),
            birth_rank=_integer(element, IDB_NS, "Beneficiaire/RangNaissance", root),
        ),
        member_number=None if member is None else (member.text or "").strip(),
        start=start,
        end=end,
        sector=Sector(_text(element, IDB_NS, "Soins/Secteur", root)),
        care_kind=CareKind(_text(element, IDB_NS, "Soins/NatureSoins", root)),
    )


def idb_request_element(request: IdbRequest) -> etree._Element:
    """The ``DemandeIDB`` element asking *request*."""
    ns = IDB_NS
    root = etree.Element(f"{{{ns}}}DemandeIDB", nsmap={"idb": ns})
    who = _sub(root, ns, "Beneficiaire")
    _sub(who, ns, "NIR", request.beneficiary.nir)
    _sub(who, ns, "DateNaissance", request.beneficiary.birth_date.isoformat())
    _sub(who, ns, "RangNaissance", str(request.beneficiary.birth_rank))
    if request.member_number is not None:
        _sub(who, ns, "NumeroAdherent", request.member_number)
    care = _sub(root, ns, "Soins")
    _sub(care, ns, "DateDebut", request.start.isoformat())
    _sub(care, ns, "DateFin", request.end.isoformat())
    _sub(care, ns, "Secteur", request.sector.value)
    _sub(care, ns, "NatureSoins", request.care_kind.value)
    return root


def idb_answer_element(answer: IdbAnswer) -> etree._Element:
    """The ``ReponseIDB`` element carrying *answer*."""
    ns = IDB_NS
    root = _answer_root("IDB", answer.code, answer.label)
    rights = answer.rights
    if rights is not None:
        block = _sub(root, ns, "Droits")
        _sub(block, ns, "NumeroAMC", rights.amc_number)
        _sub(block, ns, "NumeroAdherent", rights.member_number)
        _sub(block, ns, "Contrat", rights.contract_id)
        if len(rights.contracts) > 1:
            spans = _sub(block, ns, "Contrats")
            for span in rights.contracts:
                item = _sub(spans, ns, "ContratPeriode")
                _sub(item, ns, "Contrat", span.contract_id)
                if span.start is not None:
                    _sub(item, ns, "DateDebut", span.start.isoformat())
                if span.end is not None:
                    _sub(item, ns, "DateFin", span.end.isoformat())
        _sub(block, ns, "DateDebut", rights.start.isoformat())
        if rights.end is not None:
            _sub(block, ns, "DateFin", rights.end.isoformat())
        for sector in rights.sectors:
            _sub(block, ns, "Secteur", sector.value)
    return root


def read_idb_answer(element: etree._Element) -> IdbAnswer:
    """The answer a ``ReponseIDB`` carries (for clients and tests)."""
    _validated(element, "IDB")
    root = "ReponseIDB"
    code = _text(element, IDB_NS, "CodeRetour", root)
    label = _text(element, IDB_NS, "LibelleRetour", root)
    outcome = next((o for o in IdbOutcome if o.code == code and o.label == label), None)
    if outcome is None:
        raise RequestInvalid(f"{root}/CodeRetour : code et libellé inconnus")
    block = _child(element, IDB_NS, "Droits")
    if block is None:
        return IdbAnswer(outcome)
    end = _child(block, IDB_NS, "DateFin")
    spans = tuple(
        ContractPeriod(
            _text(item, IDB_NS, "Contrat", root),
            None
            if _child(item, IDB_NS, "DateDebut") is None
            else _date(item, IDB_NS, "DateDebut", root),
            None
            if _child(item, IDB_NS, "DateFin") is None
            else _date(item, IDB_NS, "DateFin", root),
        )
        for item in block.iterfind(f"{{{IDB_NS}}}Contrats/{{{IDB_NS}}}ContratPeriode")
    )
    contract_id = _text(block, IDB_NS, "Contrat", root)
    rights = OpenRights(
        amc_number=_text(block, IDB_NS, "NumeroAMC", root),
        member_number=_text(block, IDB_NS, "NumeroAdherent", root),
        contract_id=contract_id,
        contracts=spans,
        start=_date(block, IDB_NS, "DateDebut", root),
        end=None if end is None else _date(block, IDB_NS, "DateFin", root),
        sectors=tuple(
            Sector((s.text or "").strip()) for s in block.iterfind(f"{{{IDB_NS}}}Secteur")
        ),
    )
    return IdbAnswer(outcome, rights)


# -- ANN ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnnAnswer:
    """What the demo annuaire says: found (00) with the AMC's endpoints, or unknown (01)."""

    code: str
    label: str
    amc_number: str | None = None
    name: str | None = None
    #: (service code, https URL), one per service offered, in a stable order.
    endpoints: Sequence[tuple[str, str]] = ()


def read_ann_request(element: etree._Element) -> AmcKey:
    """The routing identifiers a ``DemandeANN`` asks about."""
    _validated(element, "ANN")
    root = "DemandeANN"
    criterion = _child(element, ANN_NS, "CritereSecondaire")
    return AmcKey(
        amc_number=_text(element, ANN_NS, "NumeroAMC", root),
        convention_type=_text(element, ANN_NS, "TypeConvention", root),
        secondary_criterion="" if criterion is None else (criterion.text or "").strip(),
    )


def ann_request_element(key: AmcKey) -> etree._Element:
    ns = ANN_NS
    root = etree.Element(f"{{{ns}}}DemandeANN", nsmap={"ann": ns})
    _sub(root, ns, "NumeroAMC", key.amc_number)
    _sub(root, ns, "TypeConvention", key.convention_type)
    _sub(root, ns, "CritereSecondaire", key.secondary_criterion)
    return root


def ann_answer_element(answer: AnnAnswer) -> etree._Element:
    """The ``ReponseANN`` element carrying *answer*."""
    ns = ANN_NS
    root = _answer_root("ANN", answer.code, answer.label)
    if answer.amc_number is not None:
        amc = _sub(root, ns, "AMC")
        _sub(amc, ns, "Numero", answer.amc_number)
        _sub(amc, ns, "Nom", answer.name)
        for service, url in answer.endpoints:
            _sub(amc, ns, "Service", url).set("code", service)
    return root
