"""The billing service's bodies (``roc/schemas/roc-dre.xsd``): XML to invoices and back, ARL
and returns to XML and back.

Requests are validated against the XSD first (``mutuelle.schemas``); ``RequestInvalid`` names
the element and the rule, never the value. The writers of requests and the readers of answers
serve clients, the demo and tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lxml import etree

from mutuelle.billing import (
    ArlAnswer,
    BillingReturn,
    Invoice,
    InvoiceLine,
    ReturnKind,
)
from mutuelle.care import LineCode, cents, euros
from mutuelle.care_codec import _beneficiary, _write_beneficiary
from mutuelle.codec import RequestInvalid, _child, _date, _integer, _sub, _text, _validated
from roc.model import SERVICE_NS

DRE_NS = SERVICE_NS["DRE"]
#: The body roots the billing service answers, and the answer of each.
INVOICE_ROOT = "DemandeDRE"
RETURNS_ROOT = "DemandeRetours"
ROOTS = {INVOICE_ROOT: "ReponseDRE", RETURNS_ROOT: "ReponseRetours"}


def _tag(name: str) -> str:
    return f"{{{DRE_NS}}}{name}"


def read_invoice(element: etree._Element, validate: bool = True) -> Invoice:
    if validate:
        _validated(element, "DRE")
    root, ns = INVOICE_ROOT, DRE_NS
    key, member = _beneficiary(element, ns, root)
    lines: list[InvoiceLine] = []
    for line in element.iterfind(f"{_tag('Lignes')}/{_tag('Ligne')}"):
        where = f"{root}/Lignes/Ligne"
        try:
            amount = cents(_text(line, ns, "MontantAMC", where))
        except ValueError:
            raise RequestInvalid(f"{where}/MontantAMC : montant invalide") from None
        lines.append(
            InvoiceLine(
                _integer(line, ns, "NumeroLigne", where),
                LineCode(_text(line, ns, "Code", where)),
                amount,
            )
        )
    return Invoice(
        invoice_number=_text(element, ns, "NumeroFacture", root),
        engagement_number=_text(element, ns, "NumeroEngagement", root),
        beneficiary=key,
        reference=_text(element, ns, "Sejour/ReferenceSejour", root),
        start=_date(element, ns, "Sejour/DateDebut", root),
        end=_date(element, ns, "Sejour/DateFin", root),
        lines=tuple(lines),
        member_number=member,
    )


def invoice_element(invoice: Invoice) -> etree._Element:
    ns = DRE_NS
    root = etree.Element(_tag(INVOICE_ROOT), nsmap={"dre": ns})
    _sub(root, ns, "NumeroFacture", invoice.invoice_number)
    _sub(root, ns, "NumeroEngagement", invoice.engagement_number)
    _write_beneficiary(root, ns, invoice.beneficiary, invoice.member_number)
    stay = _sub(root, ns, "Sejour")
    _sub(stay, ns, "ReferenceSejour", invoice.reference)
    _sub(stay, ns, "DateDebut", invoice.start.isoformat())
    _sub(stay, ns, "DateFin", invoice.end.isoformat())
    lines = _sub(root, ns, "Lignes")
    for line in invoice.lines:
        item = _sub(lines, ns, "Ligne")
        _sub(item, ns, "NumeroLigne", str(line.number))
        _sub(item, ns, "Code", line.code.value)
        _sub(item, ns, "MontantAMC", euros(line.amount_cents))
    return root


def arl_element(answer: ArlAnswer, anomalies: Sequence[str] = ()) -> etree._Element:
    """``ReponseDRE``: the ARL; *anomalies* name the schema's refusals (code 30)."""
    ns = DRE_NS
    root = etree.Element(_tag("ReponseDRE"), nsmap={"dre": ns})
    _sub(root, ns, "CodeRetour", answer.code)
    _sub(root, ns, "LibelleRetour", answer.label)
    if answer.invoice_number:
        _sub(root, ns, "NumeroFacture", answer.invoice_number)
    for anomaly in anomalies[:3]:
        _sub(root, ns, "Anomalie", anomaly[:200])
    return root


def read_returns_request(element: etree._Element, validate: bool = True) -> tuple[str, ...]:
    """The invoice numbers a ``DemandeRetours`` acknowledges."""
    if validate:
        _validated(element, "DRE")
    return tuple(
        (node.text or "").strip()
        for node in element.iterfind(f"{_tag('Acquitter')}/{_tag('NumeroFacture')}")
    )


def returns_request_element(acknowledged: Sequence[str] = ()) -> etree._Element:
    ns = DRE_NS
    root = etree.Element(_tag(RETURNS_ROOT), nsmap={"dre": ns})
    if acknowledged:
        ack = _sub(root, ns, "Acquitter")
        for number in acknowledged:
            _sub(ack, ns, "NumeroFacture", number)
    return root


#: ``ReponseRetours``'s CodeRetour and label (the list may be empty).
RETURNS_LISTED = ("00", "Retours disponibles")


def returns_element(acknowledged: int, returns: Sequence[BillingReturn]) -> etree._Element:
    ns = DRE_NS
    root = etree.Element(_tag("ReponseRetours"), nsmap={"dre": ns})
    _sub(root, ns, "CodeRetour", RETURNS_LISTED[0])
    _sub(root, ns, "LibelleRetour", RETURNS_LISTED[1])
    _sub(root, ns, "Acquittes", str(acknowledged))
    for r in returns:
        item = _sub(root, ns, "Retour")
        _sub(item, ns, "Type", r.kind.value)
        _sub(item, ns, "NumeroFacture", r.invoice_number)
        _sub(item, ns, "NumeroEngagement", r.engagement_number)
        if r.kind is ReturnKind.PAYMENT:
            paid = _sub(item, ns, "Paiement")
            _sub(paid, ns, "ReferencePaiement", r.payment_reference)
            _sub(paid, ns, "DatePaiement", r.payment_date.isoformat())
            _sub(paid, ns, "MontantDemande", euros(r.asked_cents))
            _sub(paid, ns, "MontantPaye", euros(r.paid_cents))
            _sub(paid, ns, "Integral", "true" if r.full else "false")
            for line in r.lines:
                node = _sub(paid, ns, "LignePayee")
                _sub(node, ns, "NumeroLigne", str(line.number))
                _sub(node, ns, "Code", line.code.value)
                _sub(node, ns, "MontantDemande", euros(line.asked_cents))
                _sub(node, ns, "MontantPaye", euros(line.paid_cents))
                if line.shortfall is not None:
                    _sub(node, ns, "Motif", line.shortfall.value)
                    _sub(node, ns, "LibelleMotif", line.label)
        else:
            assert r.rejection is not None
            rejected = _sub(item, ns, "Rejet")
            _sub(rejected, ns, "CodeRejet", r.rejection.code)
            _sub(rejected, ns, "LibelleRejet", r.rejection.label)
    return root


@dataclass(frozen=True, slots=True)
class ReadReturn:
    """A return as a client reads it from ``ReponseRetours`` (amounts in cents)."""

    kind: str
    invoice_number: str
    engagement_number: str
    paid_cents: int | None = None
    asked_cents: int | None = None
    full: bool | None = None
    #: 578R: (line number, paid cents, shortfall code or "") per line.
    lines: tuple[tuple[int, int, str], ...] = ()
    rejection_code: str = ""
    rejection_label: str = ""


def read_arl(element: etree._Element) -> tuple[str, str]:
    """(CodeRetour, LibelleRetour) of a ``ReponseDRE``, validated."""
    _validated(element, "DRE")
    return (
        _text(element, DRE_NS, "CodeRetour", "ReponseDRE"),
        _text(element, DRE_NS, "LibelleRetour", "ReponseDRE"),
    )


def read_returns(element: etree._Element) -> list[ReadReturn]:
    """The returns a ``ReponseRetours`` lists, validated."""
    _validated(element, "DRE")
    ns, out = DRE_NS, []
    for item in element.iterfind(_tag("Retour")):
        where = "ReponseRetours/Retour"
        kind = _text(item, ns, "Type", where)
        common = (
            kind,
            _text(item, ns, "NumeroFacture", where),
            _text(item, ns, "NumeroEngagement", where),
        )
        paid = _child(item, ns, "Paiement")
        if paid is not None:
            lines = tuple(
                (
                    _integer(node, ns, "NumeroLigne", where),
                    cents(_text(node, ns, "MontantPaye", where)),
                    (node.findtext(_tag("Motif")) or ""),
                )
                for node in paid.iterfind(_tag("LignePayee"))
            )
            out.append(
                ReadReturn(
                    *common,
                    paid_cents=cents(_text(paid, ns, "MontantPaye", where)),
                    asked_cents=cents(_text(paid, ns, "MontantDemande", where)),
                    full=_text(paid, ns, "Integral", where) in ("true", "1"),
                    lines=lines,
                )
            )
        else:
            out.append(
                ReadReturn(
                    *common,
                    rejection_code=_text(item, ns, "Rejet/CodeRejet", where),
                    rejection_label=_text(item, ns, "Rejet/LibelleRejet", where),
                )
            )
    return out
