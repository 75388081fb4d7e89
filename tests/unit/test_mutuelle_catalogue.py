"""Every catalogue case gives its documented answer, by the rules and over SOAP."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from lxml import etree

from mutuelle import testing
from mutuelle.care_codec import read_care_answer, read_del_answer
from mutuelle.catalogue import Case, build_catalogue
from mutuelle.catalogue_md import render_markdown
from mutuelle.codec import read_idb_answer
from mutuelle.datafiles import load_data
from mutuelle.decisions import DelRequest, calculate, cancel, simulate
from mutuelle.examples import case_request, render_examples
from mutuelle.idb import IdbRequest, decide
from mutuelle.sandbox import Sandbox
from mutuelle.schemas import validation_error
from mutuelle.soap import read_envelope, request_headers
from mutuelle.technical import TechnicalFault
from roc.model import Service, SoapVersion
from roc.testing import StrictClock

REPO = Path(__file__).resolve().parents[2]
DATA, CATALOGUE = testing.shipped()
CASES = list(CATALOGUE)
SITE = testing.site()


def case_id(case: Case) -> str:
    return f"{case.amc_number}-{case.name}"


def test_case_names_follow_the_convention_and_are_unique_per_amc() -> None:
    pattern = re.compile(r"(IDB|SIM|CLC|DEL)_(OK|KO)_(MCO|PSY|HAD|SMR|OQN)_[A-Z0-9_]+")
    for case in CATALOGUE.all_cases:
        assert pattern.fullmatch(case.name), case.name
        assert case.name.split("_")[2] == case.sector.value
        ok = case.expected_code == "00" and case.technical_fault is None
        assert (case.name.split("_")[1] == "OK") == ok
    everything = CATALOGUE.all_cases
    assert len({(c.amc_number, c.name) for c in everything}) == len(everything)


@pytest.mark.parametrize("amc", ["990000101", "990000202", "990000303"])
def test_each_demo_amc_has_the_three_basic_idb_cases(amc: str) -> None:
    expected = {
        "IDB_OK_MCO_DROITS_OUVERTS": "00",
        "IDB_KO_MCO_DROITS_FERMES": "02",
        "IDB_KO_MCO_BENEFICIAIRE_INCONNU": "01",
    }
    for name, code in expected.items():
        case = CATALOGUE.get(amc, name)
        assert case is not None
        assert case.expected_code == code


def test_the_unknown_beneficiary_case_uses_a_nir_no_amc_knows() -> None:
    dataset = load_data().dataset
    for case in CASES:
        if case.name == "IDB_KO_MCO_BENEFICIAIRE_INCONNU":
            assert case.beneficiary is None
            for amc in dataset.amcs:
                assert dataset.beneficiary(amc.number, case.request.beneficiary) is None


def test_every_case_is_documented() -> None:
    for case in CATALOGUE.all_cases:
        assert case.description and case.rule and case.expected_label
        assert case.service in (Service.IDB, Service.SIM, Service.CLC, Service.DEL)


def test_the_catalogue_names_at_least_thirty_cases_across_services_and_sectors() -> None:
    names = CATALOGUE.names()
    assert len(names) >= 30
    assert {n.split("_")[0] for n in names} == {"IDB", "SIM", "CLC", "DEL"}
    assert {n.split("_")[2] for n in names} == {"MCO", "PSY", "HAD", "SMR", "OQN"}
    assert len({c.technical_fault for c in CATALOGUE.technical}) == len(TechnicalFault)


def _play(case: Case) -> tuple[str, str]:
    """The answer the pure rules give to *case* on a fresh sandbox."""
    dataset = DATA.dataset
    sandbox = Sandbox("990000028", StrictClock(), CATALOGUE.sandbox_seed())
    request = case.request
    if isinstance(request, IdbRequest):
        answer = decide(request, case.amc_number, case.version, dataset)
        return answer.code, answer.label
    if isinstance(request, DelRequest):
        cancelled = cancel(request, case.amc_number, dataset, sandbox)
        return cancelled.code, cancelled.label
    if case.service is Service.CLC:
        care = calculate(request, case.amc_number, case.version, dataset, sandbox)
    else:
        care = simulate(request, case.amc_number, case.version, dataset)
    assert care.statement == case.expected_statement
    return care.code, care.label


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_rules_give_the_documented_answer(case: Case) -> None:
    assert _play(case) == (case.expected_code, case.expected_label)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_soap_exchange_gives_the_documented_answer(case: Case) -> None:
    site = testing.site(testing.simulator())
    service = case.service
    reply = testing.post(
        site,
        f"/roc/{service.value}",
        case_request(case, "t-" + case.name.lower().replace("_", "-")),
        request_headers(service, SoapVersion.SOAP11),
    )
    assert reply.status == 200, reply.body
    body = read_envelope(reply.body, 1 << 20).body
    assert validation_error(body, service.value) is None
    if service is Service.IDB:
        answer = read_idb_answer(body)
        assert (answer.code, answer.label) == (case.expected_code, case.expected_label)
        if case.expected_code == "00":
            assert case.beneficiary is not None and answer.rights is not None
            assert answer.rights.amc_number == case.amc_number
            assert answer.rights.member_number == case.beneficiary.member_number
            assert answer.rights.contract_id == case.beneficiary.contract_id
            assert case.sector in answer.rights.sectors
        else:
            assert answer.rights is None
    elif service is Service.DEL:
        code, label, number = read_del_answer(body)
        assert (code, label) == (case.expected_code, case.expected_label)
        assert (number is not None) == (code == "00")
    else:
        code, label, statement, number = read_care_answer(body, service.value)
        assert (code, label) == (case.expected_code, case.expected_label)
        assert statement == case.expected_statement
        assert (number is not None) == (service is Service.CLC and code == "00")


def test_an_exchange_is_matched_to_the_case_it_plays() -> None:
    for case in CASES:
        matched = CATALOGUE.match(
            case.amc_number, case.version, case.request, case.expected_code, case.service
        )
        assert matched is case


def test_catalogue_refuses_data_missing_a_case_beneficiary() -> None:
    data = load_data()
    incomplete = dataclasses.replace(data, case_beneficiaries={})
    with pytest.raises(ValueError, match="no beneficiary reaches case"):
        build_catalogue(incomplete)


def test_docs_catalogue_is_up_to_date_and_says_it_is_a_model() -> None:
    text = (REPO / "docs" / "catalogue.md").read_text("utf-8")
    assert text == render_markdown(load_data(), CATALOGUE), (
        "regenerate: python -m mutuelle.catalogue --markdown > docs/catalogue.md"
    )
    head = text[:1000]
    assert "Generated by" in head
    assert "not the official ROC" in head


def test_generated_examples_are_up_to_date() -> None:
    for name, content in render_examples(CATALOGUE).items():
        assert (REPO / "examples" / name).read_bytes() == content, (
            f"regenerate examples/{name}: python -m mutuelle.examples"
        )


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("idb-droits-ouverts.xml", "00"),
        ("idb-droits-fermes.xml", "02"),
        ("idb-beneficiaire-inconnu.xml", "01"),
    ],
)
def test_idb_examples_get_their_documented_answer(name: str, code: str) -> None:
    reply = testing.post(
        SITE,
        "/roc/IDB",
        (REPO / "examples" / name).read_bytes(),
        request_headers(Service.IDB, SoapVersion.SOAP11),
    )
    assert reply.status == 200
    answer = etree.fromstring(reply.body)
    assert answer.findtext(".//{urn:piano:roc:idb:v1}CodeRetour") == code
