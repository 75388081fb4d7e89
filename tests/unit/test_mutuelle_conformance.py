"""Conformance: every request is checked field by field; a non-conforming one gets a fault."""

from __future__ import annotations

import dataclasses
import datetime
import re

import pytest
from lxml import etree

from mutuelle import testing
from mutuelle.care import CareLine, CareRequest, Exemption, LineCode
from mutuelle.conformance import RULES, care_violations, idb_violations
from mutuelle.examples import case_request
from mutuelle.faults import MUTUELLE_FAULT_NS
from mutuelle.idb import IdbRequest
from mutuelle.model import CareKind, Sector
from mutuelle.soap import request_headers
from piano.testing import StrictClock
from roc.model import RocVersion, Service, SoapVersion

DATA, CATALOGUE = testing.shipped()
STAY = CATALOGUE.get("990000101", "SIM_OK_MCO_PRISE_EN_CHARGE_TOTALE")
assert STAY is not None and isinstance(STAY.request, CareRequest)
REQUEST: CareRequest = STAY.request


def rules(request: CareRequest, version: RocVersion = RocVersion.V1) -> list[str]:
    return [v.rule for v in care_violations(request, version, "DemandeSIM", DATA.tariffs)]


def with_lines(*lines: CareLine, **changes: object) -> CareRequest:
    return dataclasses.replace(REQUEST, lines=lines, **changes)  # type: ignore[arg-type]


D = datetime.date
PJ = CareLine(1, LineCode.PJ, 1, 1000, 1000)
GHS = CareLine(1, LineCode.GHS, 1, 1000, 1000)


def test_the_catalogue_requests_conform() -> None:
    for case in CATALOGUE.all_cases:
        if isinstance(case.request, CareRequest):
            assert rules(case.request, case.version) == [], case.name
        elif isinstance(case.request, IdbRequest):
            assert idb_violations(case.request, case.version) == [], case.name


@pytest.mark.parametrize(
    ("request_", "rule"),
    [
        (with_lines(PJ, CareLine(2, LineCode.FJH, 9, 2000)), "JOURS"),
        (with_lines(PJ, CareLine(2, LineCode.FJH, 3, 2000, None, D(2026, 3, 5))), "JOURS"),
        (with_lines(PJ, CareLine(2, LineCode.FJH, 1, 2000, None, D(2026, 3, 9))), "DATE_LIGNE"),
        (with_lines(PJ, CareLine(2, LineCode.FJH, 1, 1800)), "FJH_TARIF"),
        (with_lines(PJ, CareLine(2, LineCode.FJH, 1, 2000), sector=Sector.HAD), "FJH_HAD"),
        (with_lines(PJ, CareLine(2, LineCode.FJH, 1, 2000), care_kind=CareKind.PARTIAL),
         "FJH_PARTIEL"),
        (with_lines(PJ, CareLine(2, LineCode.FJH, 1, 2000), amo_rate=100,
                    exemption=Exemption.MATERNITY), "FJH_EXONERATION"),
        (with_lines(PJ, CareLine(2, LineCode.FJH, 3, 2000), CareLine(3, LineCode.FJH, 3, 2000,
                    None, D(2026, 3, 4))), "UN_PAR_JOUR"),
        (with_lines(CareLine(1, LineCode.FJH, 1, 2000)), "SEJOUR_TARIF"),
        (with_lines(GHS), "GHS_OQN"),
        (with_lines(CareLine(1, LineCode.PJ, 1, 1000)), "BASE_REQUISE"),
        (with_lines(PJ, CareLine(2, LineCode.CP, 1, 10, 10)), "BASE_INTERDITE"),
        (with_lines(CareLine(1, LineCode.PJ, 1, 1500, 1000)), "BASE_PRIX"),
        (with_lines(PJ, CareLine(1, LineCode.CP, 1, 10)), "LIGNES_UNIQUES"),
        (with_lines(PJ, CareLine(2, LineCode.DEP, 1, 10, 10, optam=True)), "DEP_OQN"),
        (with_lines(PJ, CareLine(2, LineCode.DEP, 1, 10, 10), sector=Sector.OQN), "DEP_OPTAM"),
        (with_lines(CareLine(1, LineCode.PJ, 1, 1000, 1000, optam=True)), "OPTAM_DEP"),
        (with_lines(PJ, amo_rate=70), "TAUX_AMO"),
        (with_lines(PJ, exemption=Exemption.ALD), "TAUX_AMO"),
        (with_lines(PJ, start=D(2003, 3, 2), end=D(2003, 3, 6)), "TARIF_INCONNU"),
        (with_lines(PJ, end=D(2027, 3, 6)), "DUREE_MAX"),
        (with_lines(CareLine(1, LineCode.ACT, 1, 1000, 1000), care_kind=CareKind.EXTERNAL,
                    amo_rate=70), "ACE_UN_JOUR"),
        (with_lines(PJ, care_kind=CareKind.EXTERNAL, end=REQUEST.start, amo_rate=70),
         "ACE_LIGNES"),
        (with_lines(PJ, end=REQUEST.start.replace(day=1)), "PERIODE"),
    ],
)  # fmt: skip
def test_each_rule_is_reported_with_its_field(request_: CareRequest, rule: str) -> None:
    found = care_violations(request_, RocVersion.V1, "DemandeSIM", DATA.tariffs)
    assert rule in [v.rule for v in found]
    violation = next(v for v in found if v.rule == rule)
    assert violation.field.startswith("DemandeSIM/")
    assert violation.reason == RULES[rule]


ENGLISH = re.compile(r"\b(the|must|only|carry|carries|should|and|is|are|per)\b")


def test_every_rule_is_stated_in_french() -> None:
    for rule, reason in RULES.items():
        assert not ENGLISH.search(reason), rule


def test_the_forfait_journalier_is_the_amount_in_force_on_each_day_it_covers() -> None:
    across = dict(start=D(2017, 12, 29), end=D(2018, 1, 2), amo_rate=100, exemption=Exemption.ALD)
    pj = CareLine(1, LineCode.PJ, 4, 1000, 1000)
    one_line = with_lines(pj, CareLine(2, LineCode.FJH, 5, 2000), **across)
    assert rules(one_line) == ["FJH_TARIF"]
    split = with_lines(
        pj,
        CareLine(2, LineCode.FJH, 3, 1800),
        CareLine(3, LineCode.FJH, 2, 2000, None, D(2018, 1, 1)),
        **across,
    )
    assert rules(split) == []
    psychiatry = with_lines(pj, CareLine(2, LineCode.FJH, 5, 1500), sector=Sector.PSY)
    assert rules(psychiatry, RocVersion.V2) == []


def test_fee_overruns_need_roc_v2_and_an_ex_oqn_clinic() -> None:
    overrun = with_lines(
        GHS, CareLine(2, LineCode.DEP, 1, 500, 1000, optam=False), sector=Sector.OQN
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
            CareLine(1, LineCode.PJ, 1, 1500, 1000),
            CareLine(2, LineCode.FJH, 1, 1800),
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
    assert "de plus" in message  # more violations than the three named
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
