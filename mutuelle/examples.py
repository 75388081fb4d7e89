"""Example SOAP messages for the catalogue's cases, as a hospital's software would send them.

``python -m mutuelle.examples --out examples/`` writes the IDB examples (from the catalogue,
so they always reach their case) and an ANN request; the SIM, CLC and DEL examples are
written by hand against their first-model schemas. A test checks the files are up to date.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from lxml import etree

from mutuelle.catalogue import Case, Catalogue, default_catalogue
from mutuelle.codec import ann_request_element, idb_request_element
from mutuelle.soap import envelope, routing_element
from roc.model import SERVICE_NS, AmcKey, RoutingKey, Service, SoapVersion

#: The sending establishment of every example: hospital A of the development PKI.
SENDER_FINESS_LEGAL = "990000010"
SENDER_FINESS_SITE = "990000028"
EXAMPLE_AMC = "990000101"
CONVENTION_TYPE = "TP"
SECONDARY_CRITERION = "01"

#: File name -> catalogue case (at ``EXAMPLE_AMC``) it plays.
IDB_EXAMPLES = {
    "idb-droits-ouverts.xml": "IDB_OK_MCO_DROITS_OUVERTS",
    "idb-droits-fermes.xml": "IDB_KO_MCO_DROITS_FERMES",
    "idb-beneficiaire-inconnu.xml": "IDB_KO_MCO_BENEFICIAIRE_INCONNU",
}
ANN_EXAMPLE = "ann.xml"
#: File name -> service of the examples for services not simulated yet (first-model schemas).
FIRST_MODEL_EXAMPLES = {"sim.xml": Service.SIM, "clc.xml": Service.CLC, "del.xml": Service.DEL}
#: The beneficiary the SIM, CLC and DEL examples are about.
FIRST_MODEL_CASE = "IDB_OK_MCO_DROITS_OUVERTS"

_NOTICE = "PiANO project model of ROC — not the official schema."


def routing_for(case: Case, exchange_id: str) -> RoutingKey:
    """The routing block a hospital sends to play *case*."""
    return RoutingKey(
        service=case.service,
        roc_version=case.version,
        amc=AmcKey(case.amc_number, CONVENTION_TYPE, SECONDARY_CRITERION),
        sender_finess_legal=SENDER_FINESS_LEGAL,
        sender_finess_site=SENDER_FINESS_SITE,
        exchange_id=exchange_id,
    )


def case_request(
    case: Case, exchange_id: str, version: SoapVersion = SoapVersion.SOAP11, pretty: bool = False
) -> bytes:
    """The complete SOAP request playing *case*."""
    return envelope(
        idb_request_element(case.request),
        version,
        [routing_element(routing_for(case, exchange_id))],
        pretty=pretty,
    )


def _with_comment(document: bytes, comment: str) -> bytes:
    declaration, rest = document.split(b"\n", 1)
    return declaration + b"\n<!-- " + comment.encode() + b" -->\n" + rest


#: (code, quantity, unit price, base per unit) of the example stay's lines: a five-day MCO
#: stay with four nights in a private room.
_STAY_LINES = (
    ("GHS", 1, "3500.00", "3500.00"),
    ("FJH", 5, "20.00", None),
    ("CP", 4, "65.00", None),
)


def _first_model_body(service: Service, case: Case) -> etree._Element:
    """A SIM, CLC or DEL body about *case*'s beneficiary, per the first-model schemas."""
    ns = SERVICE_NS[service.value]
    prefix = service.value.lower()
    root = etree.Element(f"{{{ns}}}Demande{service.value}", nsmap={prefix: ns})

    def add(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
        child = etree.SubElement(parent, f"{{{ns}}}{name}")
        child.text = text
        return child

    request = case.request
    who = add(root, "Beneficiaire")
    add(who, "NIR", request.beneficiary.nir)
    add(who, "DateNaissance", request.beneficiary.birth_date.isoformat())
    add(who, "RangNaissance", str(request.beneficiary.birth_rank))
    if request.member_number:
        add(who, "NumeroAdherent", request.member_number)
    if service is Service.DEL:
        add(root, "NumeroEngagement", f"ENG-{case.amc_number}-000001")
        add(root, "Motif", "ANNULATION_SEJOUR")
        return root
    stay = add(root, "Sejour")
    add(stay, "ReferenceSejour", "SEJ-2026-000123")
    add(stay, "DateDebut", request.start.isoformat())
    add(stay, "DateFin", request.end.isoformat())
    add(stay, "Secteur", request.sector.value)
    add(stay, "NatureSoins", request.care_kind.value)
    add(stay, "TauxAMO", "80")
    lines = add(root, "Prestations")
    for number, (code, quantity, price, base) in enumerate(_STAY_LINES, start=1):
        line = add(lines, "Prestation")
        add(line, "NumeroLigne", str(number))
        add(line, "Code", code)
        add(line, "Quantite", str(quantity))
        add(line, "PrixUnitaire", price)
        if base is not None:
            add(line, "BaseRemboursement", base)
    return root


def render_examples(catalogue: Catalogue) -> dict[str, bytes]:
    """The generated example files, keyed by file name."""
    files = {}
    for name, case_name in IDB_EXAMPLES.items():
        case = catalogue.get(EXAMPLE_AMC, case_name)
        if case is None:
            raise ValueError(f"case {case_name} is missing at AMC {EXAMPLE_AMC}")
        exchange_id = "exemple-" + name.removesuffix(".xml")
        comment = (
            f"{_NOTICE} Case {case.name} at AMC {case.amc_number}: expected CodeRetour "
            f"{case.expected_code} ({case.expected_label}). Generated by "
            "`python -m mutuelle.examples`."
        )
        files[name] = _with_comment(case_request(case, exchange_id, pretty=True), comment)
    case = catalogue.get(EXAMPLE_AMC, FIRST_MODEL_CASE)
    if case is None:
        raise ValueError(f"case {FIRST_MODEL_CASE} is missing at AMC {EXAMPLE_AMC}")
    for name, service in FIRST_MODEL_EXAMPLES.items():
        routing = replace(
            routing_for(case, "exemple-" + name.removesuffix(".xml")), service=service
        )
        document = envelope(
            _first_model_body(service, case), SoapVersion.SOAP11, [routing_element(routing)], True
        )
        comment = (
            f"{_NOTICE} {service.value} request (first model, not simulated yet: Mutuelle ANS "
            f"answers MUT-501-NON-SIMULE) for the beneficiary of {case.name} at AMC "
            f"{case.amc_number}. Generated by `python -m mutuelle.examples`."
        )
        files[name] = _with_comment(document, comment)
    ann = envelope(
        ann_request_element(AmcKey(EXAMPLE_AMC, CONVENTION_TYPE, SECONDARY_CRITERION)),
        SoapVersion.SOAP11,
        pretty=True,
    )
    comment = (
        f"{_NOTICE} Demo annuaire request (the relay sends it). Generated by "
        "`python -m mutuelle.examples`."
    )
    files[ANN_EXAMPLE] = _with_comment(ann, comment)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mutuelle.examples",
        description="Write the generated example SOAP messages.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("examples"), help="directory (default: examples)"
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, content in render_examples(default_catalogue()).items():
        (args.out / name).write_bytes(content)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
