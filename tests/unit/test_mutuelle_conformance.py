"""Conformance: every request is checked field by field; a non-conforming one gets a fault."""

from __future__ import annotations

import dataclasses

import pytest
from lxml import etree

from mutuelle import testing
from mutuelle.care import CareLine, CareRequest, LineCode
from mutuelle.conformance import RULES, care_violations, idb_violations
from mutuelle.examples import case_request
from mutuelle.faults import MUTUELLE_FAULT_NS
from mutuelle.idb import IdbRequest
from mutuelle.model import CareKind, Sector
from mutuelle.soap import request_headers
from roc.model import RocVersion, Service, SoapVersion
from roc.testing import StrictClock

DATA, CATALOGUE = testing.shipped()
STAY = CATALOGUE.get("990000101", "SIM_OK_MCO_PRISE_EN_CHARGE_TOTALE")
assert STAY is not None and isinstance(STAY.request, CareRequest)
REQUEST: CareRequest = STAY.request


def rules(request: CareRequest, version: RocVersion = RocVersion.V1) -> list[str]:
    return [v.rule for v in care_violations(request, version, "DemandeSIM")]


def with_lines(*lines: CareLine, **changes: object) -> CareRequest:
    return dataclasses.replace(REQUEST, lines=lines, **changes)  # type: ignore[arg-type]


def test_the_catalogue_requests_conform() -> None:
    for case in CATALOGUE.all_cases:
        if isinstance(case.request, CareRequest):
            assert care_violations(case.request, case.version, "DemandeSIM") == [], case.name
        elif isinstance(case.request, IdbRequest):
            assert idb_violations(case.request, case.version) == [], case.name


@pytest.mark.parametrize(
    ("request_", "rule"),
    [
        (with_lines(CareLine(1, LineCode.GHS, 1, 1000, 1000), CareLine(2, LineCode.FJH, 9, 2000)),
         "JOURS"),
        (with_lines(CareLine(1, LineCode.GHS, 1, 1000, 1000), CareLine(2, LineCode.FJH, 1, 1800)),
         "FJH_TARIF"),
        (with_lines(CareLine(1, LineCode.GHS, 1, 1000, 1000), CareLine(2, LineCode.FJH, 1, 2000),
                    sector=Sector.HAD), "FJH_HAD"),
        (with_lines(CareLine(1, LineCode.FJH, 1, 2000)), "HOSP_GHS"),
        (with_lines(CareLine(1, LineCode.GHS, 1, 1000)), "BASE_REQUISE"),
        (with_lines(CareLine(1, LineCode.GHS, 1, 1000, 1000), CareLine(2, LineCode.CP, 1, 10, 10)),
         "BASE_INTERDITE"),
        (with_lines(CareLine(1, LineCode.GHS, 1, 1500, 1000)), "BASE_PRIX"),
        (with_lines(CareLine(1, LineCode.GHS, 1, 1000, 1000), CareLine(1, LineCode.CP, 1, 10)),
         "LIGNES_UNIQUES"),
        (with_lines(CareLine(1, LineCode.GHS, 1, 1000, 1000), CareLine(2, LineCode.DEP, 1, 10, 10)),
         "DEP_OQN"),
        (with_lines(CareLine(1, LineCode.ACT, 1, 1000, 1000), CareLine(2, LineCode.PFA, 1, 1800),
                    care_kind=CareKind.EXTERNAL, end=REQUEST.start), "PFA_TARIF"),
        (with_lines(CareLine(1, LineCode.ACT, 1, 1000, 1000), care_kind=CareKind.EXTERNAL),
         "ACE_UN_JOUR"),
        (with_lines(CareLine(1, LineCode.GHS, 1, 1000, 1000), care_kind=CareKind.EXTERNAL,
                    end=REQUEST.start), "ACE_LIGNES"),
        (with_lines(CareLine(1, LineCode.GHS, 1, 1000, 1000), end=REQUEST.start.replace(day=1)),
         "PERIODE"),
    ],
)  # fmt: skip
def test_each_rule_is_reported_with_its_field(request_: CareRequest, rule: str) -> None:
    found = care_violations(request_, RocVersion.V1, "DemandeSIM")
    assert rule in [v.rule for v in found]
    violation = next(v for v in found if v.rule == rule)
    assert violation.field.startswith("DemandeSIM/")
    assert violation.reason == RULES[rule]


def test_fee_overruns_need_roc_v2_and_an_ex_oqn_clinic() -> None:
    overrun = with_lines(
        CareLine(1, LineCode.GHS, 1, 1000, 1000),
        CareLine(2, LineCode.DEP, 1, 500, 1000),
        sector=Sector.OQN,
    )
    assert rules(overrun, RocVersion.V2) == []
    assert rules(overrun, RocVersion.V1) == ["DEP_OQN"]


def _post_with(document: bytes, service: Service) -> tuple[int, bytes]:
    site = testing.site(testing.simulator(clock=StrictClock()))
    reply = testing.post(
        site, f"/roc/{service.value}", document, request_headers(service, SoapVersion.SOAP11)
    )
    return reply.status, reply.body


def test_a_non_conforming_request_gets_a_fault_naming_the_first_violations() -> None:
    bad = dataclasses.replace(
        STAY,
        request=with_lines(
            CareLine(1, LineCode.GHS, 1, 1500, 1000),
            CareLine(2, LineCode.FJH, 9, 1800),
            CareLine(2, LineCode.CP, 1, 6500, 6500),
        ),
    )
    status, body = _post_with(case_request(bad, "t-bad"), Service.SIM)
    assert status == 400
    root = etree.fromstring(body)
    assert root.findtext(f".//{{{MUTUELLE_FAULT_NS}}}Code") == "MUT-400-CONFORMITE"
    message = root.findtext(f".//{{{MUTUELLE_FAULT_NS}}}Message") or ""
    assert "[BASE_PRIX]" in message and "Prestation[1]/PrixUnitaire" in message
    assert "[FJH_TARIF]" in message
    assert "more" in message  # five violations, three named
    assert REQUEST.beneficiary.nir not in body.decode()


def test_a_schema_violation_is_reported_field_by_field_in_the_journal() -> None:
    simulator = testing.simulator(clock=StrictClock())
    document = case_request(STAY, "t-xsd").replace(b"<sim:TauxAMO>80<", b"<sim:TauxAMO>180<")
    reply = simulator.handle("SIM", "POST", "text/xml; charset=utf-8", None, document, "990000028")
    assert reply.status == 400 and b"MUT-400-DEMANDE" in reply.body
    sandbox = simulator.sandboxes.find("990000028")
    assert sandbox is not None
    (entry,) = sandbox.journal
    report = entry.as_dict()["conformance"]
    assert report["conforming"] is False
    assert report["violations"][0]["regle"] == "XSD"
    assert "TauxAMO" in report["violations"][0]["champ"]
    assert "180" not in str(report)
    assert sandbox.conformance_summary()["violations_by_rule"] == {"XSD": 1}
