"""Every catalogue case gives its documented answer, by the rules and over SOAP."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
from pathlib import Path

import pytest
from lxml import etree

from mutuelle import testing
from mutuelle.billing import Invoice, Rejection, ReturnKind
from mutuelle.billing_codec import read_arl
from mutuelle.care import CareRequest, euros
from mutuelle.care_codec import read_care_answer, read_del_answer
from mutuelle.catalogue import Case, Catalogue, build_catalogue
from mutuelle.catalogue_cli import main as catalogue_main
from mutuelle.catalogue_md import render_markdown
from mutuelle.codec import read_idb_answer
from mutuelle.datafiles import load_data
from mutuelle.decisions import (
    DelRequest,
    calculate,
    cancel,
    deliver_returns,
    invoice,
    record_identification,
    simulate_in,
)
from mutuelle.examples import case_request, render_examples
from mutuelle.generate import case_identity, generate
from mutuelle.idb import IdbRequest, decide
from mutuelle.sandbox import Sandbox
from mutuelle.schemas import validation_error
from mutuelle.soap import read_envelope, request_headers
from mutuelle.specs_care import ALL_SPECS
from mutuelle.tariffs import TariffCode
from mutuelle.technical import TechnicalFault
from piano.testing import StrictClock
from roc.model import RocVersion, Service, SoapVersion

REPO = Path(__file__).resolve().parents[2]
DATA, CATALOGUE = testing.shipped()
CASES = list(CATALOGUE)
SITE = testing.site()


def case_id(case: Case) -> str:
    return f"{case.amc_number}-{case.name}"


def test_case_names_follow_the_convention_and_are_unique_per_amc() -> None:
    pattern = re.compile(r"(IDB|SIM|CLC|DEL|DRE)_(OK|KO)_(MCO|PSY|HAD|SMR|OQN)_[A-Z0-9_]+")
    for case in CATALOGUE.all_cases:
        assert pattern.fullmatch(case.name), case.name
        assert case.name.split("_")[2] == case.sector.value
        ok = case.expected_code == "00" and case.technical_fault is None
        ok = ok and case.spec.signature is None
        ok = ok and case.spec.rejection is None  # a 908R follows an accepted invoice
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
        assert case.service in (Service.IDB, Service.SIM, Service.CLC, Service.DEL, Service.DRE)


THIRD_PARTY_AMCS = ("990000101", "990000202", "990000303")


def test_the_catalogue_names_cases_across_services_and_sectors() -> None:
    names = CATALOGUE.names()
    assert {n.split("_")[0] for n in names} == {"IDB", "SIM", "CLC", "DEL", "DRE"}
    assert {n.split("_")[2] for n in names} == {"MCO", "PSY", "HAD", "SMR", "OQN"}
    assert len({c.technical_fault for c in CATALOGUE.technical}) == len(TechnicalFault)


@pytest.mark.parametrize("amc", THIRD_PARTY_AMCS)
def test_each_third_party_amc_has_seventy_cases_ok_and_ko_per_service_and_version(
    amc: str,
) -> None:
    cases = CATALOGUE.for_amc(amc)
    assert len(cases) >= 70
    played = {(c.service, c.version, c.name.split("_")[1]) for c in cases}
    for service in (Service.IDB, Service.SIM, Service.CLC, Service.DEL, Service.DRE):
        for version in (RocVersion.V1, RocVersion.V2):
            for verdict in ("OK", "KO"):
                assert (service, version, verdict) in played, (service, version, verdict)


@pytest.mark.parametrize("amc", THIRD_PARTY_AMCS)
def test_each_third_party_amc_has_every_billing_case(amc: str) -> None:
    billing = [c for c in CATALOGUE.for_amc(amc) if c.service is Service.DRE]
    assert len(billing) >= 12
    assert {c.version for c in billing} == {RocVersion.V1, RocVersion.V2}
    assert {c.expected_code for c in billing} == {"00", "31", "32", "33"}  # negative ARLs
    returns = [c.expected_return for c in billing if c.expected_return is not None]
    assert {r.rejection for r in returns} == {None, *Rejection}  # each 908R reason
    assert any(r.kind is ReturnKind.PAYMENT and r.full for r in returns)
    assert any(r.kind is ReturnKind.PAYMENT and not r.full for r in returns)  # partial
    [whole] = [c for c in billing if c.steps]
    assert [service for service, _ in whole.steps] == [Service.IDB, Service.SIM, Service.CLC]
    assert all(c.name.startswith("DRE_KO_") == (c.expected_code != "00" or (
        c.expected_return is not None and c.expected_return.rejection is not None))
        for c in billing)  # fmt: skip


def test_every_computed_case_balances_line_by_line() -> None:
    computed = [c for c in CATALOGUE if c.expected_statement is not None]
    assert len(computed) >= 3 * 35
    for case in computed:
        assert case.expected_statement is not None
        for line in (*[item.amounts for item in case.expected_statement.lines],
                     case.expected_statement.total):  # fmt: skip
            assert line.charged == line.amo + line.amc + line.patient, case.name
            assert min(line.amo, line.amc, line.patient) >= 0, case.name


@pytest.mark.parametrize("amc", THIRD_PARTY_AMCS)
def test_the_flat_participation_case_reads_150_then_the_amount_in_force(amc: str) -> None:
    case = CATALOGUE.get(amc, "SIM_OK_MCO_PARTICIPATION_FORFAITAIRE")
    assert case is not None and case.expected_statement is not None
    flat = DATA.tariffs.value(TariffCode.FLAT_PARTICIPATION, case.spec.start)
    assert flat == 2400
    total = case.expected_statement.total
    assert (total.charged, total.amo, total.amc, total.patient) == (15000, 15000 - flat, flat, 0)


def _requests(catalogue: Catalogue) -> dict[tuple[str, str], object]:
    return {(c.amc_number, c.name): c.request for c in catalogue.all_cases}


def test_removing_or_reordering_cases_changes_no_other_case_request() -> None:
    everything = _requests(CATALOGUE)
    for removed in ("IDB_OK_MCO_DROITS_OUVERTS", "SIM_OK_MCO_IMPUTATION_FORFAIT_JOURNALIER"):
        specs = tuple(spec for spec in ALL_SPECS if spec.name != removed)
        fewer = _requests(build_catalogue(generate(2026, specs), specs))
        assert set(everything) - set(fewer) == {(amc, removed) for amc in THIRD_PARTY_AMCS}
        for key, request in fewer.items():
            assert request == everything[key], key
    shuffled = tuple(reversed(ALL_SPECS))
    assert _requests(build_catalogue(generate(2026, shuffled), shuffled)) == everything


def test_a_case_beneficiary_depends_on_the_case_name_only() -> None:
    spec = next(s for s in ALL_SPECS if s.name == "IDB_OK_MCO_DROITS_OUVERTS")
    renamed = dataclasses.replace(spec, suffix="DROITS_OUVERTS_BIS")
    assert case_identity(spec) == case_identity(dataclasses.replace(spec, description="x"))
    assert case_identity(renamed).nir != case_identity(spec).nir


def test_the_json_catalogue_has_every_case_with_its_request_and_expected_answer() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert catalogue_main(["--json"]) == 0
    cases = json.loads(out.getvalue())
    assert len(cases) == len(CATALOGUE.all_cases)
    by_key = {(item["amc"], item["id"]): item for item in cases}
    for case in CATALOGUE.all_cases:
        item = by_key[(case.amc_number, case.name)]
        assert item["service"] == case.service.value and item["version"] == case.version.value
        assert item["sector"] == case.sector.value
        key = case.request.beneficiary
        assert item["beneficiary"] == {
            "nir": key.nir,
            "birth_date": key.birth_date.isoformat(),
            "birth_rank": key.birth_rank,
            "member_number": case.request.member_number,
        }
        assert set(item["period"]) == {"start", "end"}
        if case.technical_fault is None:
            assert (item["expected"]["code"], item["expected"]["label"]) == (
                case.expected_code,
                case.expected_label,
            )
        if case.expected_statement is not None:
            totals = item["expected"]["totals"]
            total = case.expected_statement.total
            assert totals["charged"] == euros(total.charged)
            assert totals["amo"] == euros(total.amo) and totals["amc"] == euros(total.amc)
            assert totals["patient"] == euros(total.patient)
        else:
            assert "totals" not in item["expected"]


def _play(case: Case) -> tuple[str, str]:
    """The answer the pure rules give to *case* on a fresh sandbox."""
    dataset = DATA.dataset
    sandbox = Sandbox("990000028", StrictClock(), CATALOGUE.sandbox_seed())
    request = case.request
    if isinstance(request, IdbRequest):
        answer = decide(request, case.amc_number, case.version, dataset)
        return answer.code, answer.label
    if isinstance(request, Invoice):
        return _bill(case, request, sandbox)
    if isinstance(request, DelRequest):
        cancelled = cancel(request, case.amc_number, dataset, sandbox)
        return cancelled.code, cancelled.label
    if case.service is Service.CLC:
        care = calculate(request, case.amc_number, case.version, dataset, DATA.tariffs, sandbox)
        expected_number = case.expected_engagement_number
        if expected_number is not None:
            assert care.engagement_number == expected_number
    else:
        care = simulate_in(request, case.amc_number, case.version, dataset, DATA.tariffs, sandbox)
    assert care.statement == case.expected_statement
    return care.code, care.label


def _bill(case: Case, request: Invoice, sandbox: Sandbox) -> tuple[str, str]:
    """A DRE case on a fresh sandbox: the whole stay first if it is one, then the invoice;
    its return, delivered after the delay, is the documented one."""
    dataset, amc = DATA.dataset, case.amc_number
    for service, step in case.steps:
        if isinstance(step, IdbRequest):
            record_identification(sandbox, amc, step, decide(step, amc, case.version, dataset))
        elif service is Service.CLC:
            assert isinstance(step, CareRequest)
            made = calculate(step, amc, case.version, dataset, DATA.tariffs, sandbox)
            assert made.code == "00" and made.engagement_number is not None
            request = dataclasses.replace(request, engagement_number=made.engagement_number)
    arl = invoice(request, amc, dataset, sandbox)
    expected = case.expected_return
    assert (arl.pending is None) == (expected is None)
    sandbox.release_returns()
    _, due = deliver_returns((), amc, sandbox)
    if expected is not None:
        [delivered] = due
        assert (delivered.kind, delivered.rejection) == (expected.kind, expected.rejection)
        assert delivered.lines == expected.lines and delivered.full == expected.full
        engagement = sandbox.engagement(request.engagement_number)
        assert engagement is not None and engagement.state is expected.engagement_state
    else:
        assert due == []
    return arl.code, arl.label


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
    elif service is Service.DRE:
        code, label = read_arl(body)
        assert (code, label) == (case.expected_code, case.expected_label) or case.steps
    elif service is Service.DEL:
        code, label, number = read_del_answer(body)
        assert (code, label) == (case.expected_code, case.expected_label)
        assert (number is not None) == (code == "00")
    else:
        code, label, statement, number = read_care_answer(body, service.value)
        assert (code, label) == (case.expected_code, case.expected_label)
        assert statement == case.expected_statement
        if service is Service.CLC and case.expected_engagement_number is not None:
            assert number == case.expected_engagement_number
        assert (number is not None) == (service is Service.CLC and statement is not None)


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
