"""Suites as files and their replay: manifest, comparison, reports (no sockets: a fake sender)."""

from __future__ import annotations

import datetime
import json
import ssl
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from mutuelle import replay
from mutuelle.catalogue import Catalogue, default_catalogue
from mutuelle.faults import MutuelleError, fault_document
from mutuelle.suite import export_suite, record_suite
from mutuelle.suite_model import (
    Expectation,
    Observed,
    SuiteError,
    compare,
    load_suite,
    manifest_text,
    parse_manifest,
    read_answer,
    substitute,
    write_suite,
)
from roc.model import Service
from roc.signature import Trust, verify
from roc.xmlsafe import parse_document
from tools.devpki import HOSPITAL_A, issue, make_ca

JUNIT_XSD = Path(__file__).parent.parent / "junit.xsd"
CATALOGUE = default_catalogue()


@pytest.fixture(scope="module")
def exported() -> tuple[object, dict[str, bytes]]:
    return export_suite(CATALOGUE)


def _suite_dir(tmp_path: Path, manifest: str, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    (tmp_path / "suite.toml").write_text(manifest)
    return tmp_path


def test_the_exported_catalogue_reads_back_as_the_same_suite(exported, tmp_path: Path) -> None:
    suite, files = exported
    write_suite(tmp_path, suite, files, "a comment")
    assert load_suite(tmp_path) == suite
    business = [c for c in CATALOGUE.all_cases if c.technical_fault is None]
    assert {s.id for s in suite.steps} >= {f"{c.amc_number}/{c.name}" for c in business}
    clc = next(s for s in suite.steps if s.id == "990000101/CLC_OK_MCO_ENGAGEMENT")
    assert clc.expect.code == "00" and clc.expect.totals["amc"]
    assert clc.expect.lines  # amounts per line are expected too


def test_a_stay_billed_is_one_chain_whose_invoice_quotes_the_clc_engagement(exported) -> None:
    suite, files = exported
    chain = next(c for c in suite.chains() if c[-1].id == "990000101/DRE_OK_MCO_SEJOUR_COMPLET")
    assert [s.service for s in chain] == [Service.IDB, Service.SIM, Service.CLC, Service.DRE]
    assert chain[2].capture == {"engagement": "NumeroEngagement"}
    assert b">${engagement}<" in files[chain[3].file]


def test_signed_export_signs_every_request_it_can_and_marks_the_others(tmp_path: Path) -> None:
    ca = make_ca("Test CA")
    hospital = issue(ca, "A", client=True, finess=HOSPITAL_A["site"])
    cert = hospital.certificate.public_bytes(serialization.Encoding.PEM)
    key = hospital.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    wanted = ("IDB_OK_MCO_DROITS_OUVERTS", "DRE_OK_MCO_SEJOUR_COMPLET", "IDB_KO_MCO_SIGNATURE_")
    few = Catalogue(
        [
            c
            for c in CATALOGUE.all_cases
            if c.amc_number == "990000101" and c.name.startswith(wanted)
        ]
    )
    suite, files = export_suite(few, signer=(cert, key))
    by_id = {s.id: s for s in suite.steps}
    idb = by_id["990000101/IDB_OK_MCO_DROITS_OUVERTS"]
    now = datetime.datetime.now(datetime.UTC)
    verify(parse_document(files[idb.file]), Trust([ca.certificate]), now, (HOSPITAL_A["site"],))
    assert by_id["990000101/DRE_OK_MCO_SEJOUR_COMPLET"].sign is True
    missing = by_id["990000101/IDB_KO_MCO_SIGNATURE_ABSENTE"]
    assert missing.expect.fault == "MUT-400-SIGNATURE" and missing.expect.status == 400
    assert b"Signature" not in files[missing.file]
    assert "990000101/IDB_KO_MCO_SIGNATURE_VALEUR" not in by_id  # needs a broken signer


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ('[[steps]]\nid = "a"\nfile = "a.xml"\nservice = "XYZ"\n', "step a.service: 'XYZ'"),
        ('[[steps]]\nid = "a"\nfile = "../a.xml"\nservice = "IDB"\n', "step a.file: must be"),
        (
            '[[steps]]\nid = "a"\nfile = "a.xml"\nservice = "IDB"\n[steps.expect]\nkode = "00"\n',
            "step a.expect.kode: unknown key",
        ),
        (
            '[[steps]]\nid = "a"\nfile = "a.xml"\nservice = "IDB"\n'
            '[[steps]]\nid = "a"\nfile = "a.xml"\nservice = "IDB"\n',
            "steps[1].id: a appears twice",
        ),
        ('[suite]\nname = "x"\n', "steps: the suite has no [[steps]]"),
    ],
)
def test_a_bad_manifest_is_refused_naming_the_step_and_key(manifest: str, message: str) -> None:
    with pytest.raises(SuiteError) as raised:
        parse_manifest(tomllib.loads(manifest))
    assert message in str(raised.value)


def test_a_missing_request_file_is_named(tmp_path: Path) -> None:
    _suite_dir(tmp_path, '[[steps]]\nid = "a"\nfile = "a.xml"\nservice = "IDB"\n', {})
    with pytest.raises(SuiteError, match=r"step a\.file: a\.xml is missing"):
        load_suite(tmp_path)


def test_a_variable_never_captured_is_named() -> None:
    assert substitute(b"<n>${eng}</n>", {"eng": "E1"}, "s") == b"<n>E1</n>"
    with pytest.raises(SuiteError, match=r"step s: variable \$\{other\} was not captured"):
        substitute(b"<n>${other}</n>", {"eng": "E1"}, "s")


def test_an_answer_that_is_not_soap_is_an_observed_error() -> None:
    observed = read_answer(502, b"<html>Bad gateway</html")
    assert observed.error is not None and "not a SOAP answer" in observed.error
    differences = compare(Expectation(code="00"), observed)
    assert [d.what for d in differences] == ["answer"]


def test_a_fault_answer_gives_its_code() -> None:
    body = fault_document(MutuelleError.SIGNATURE_INVALID, "x")
    observed = read_answer(400, body)
    assert observed.fault == "MUT-400-SIGNATURE"
    assert compare(Expectation(status=400, fault="MUT-400-SIGNATURE"), observed) == []


def test_differences_name_code_totals_and_lines() -> None:
    expect = Expectation(code="00", totals={"amc": "126.00"}, lines={1: {"amc": "100.00"}})
    observed = Observed(status=200, code="01", totals={"amc": "120.00"}, lines={1: {"amc": "1"}})
    assert [(d.what, d.expected, d.observed) for d in compare(expect, observed)] == [
        ("code", "00", "01"),
        ("totals.amc", "126.00", "120.00"),
        ("line 1.amc", "100.00", "1"),
    ]


def _target() -> replay.Target:
    context = ssl.create_default_context()
    return replay.Target("https://t/roc", "https://t/roc/{service}", context, 1.0)


def _chain_suite(tmp_path: Path) -> Path:
    manifest = (
        '[[steps]]\nid = "clc"\nfile = "clc.xml"\nservice = "CLC"\nchain = "c"\n'
        'capture = { eng = "NumeroEngagement" }\n[steps.expect]\ncode = "00"\n'
        '[[steps]]\nid = "dre"\nfile = "dre.xml"\nservice = "DRE"\nchain = "c"\n'
        '[steps.expect]\ncode = "00"\n'
        '[[steps]]\nid = "idb"\nfile = "idb.xml"\nservice = "IDB"\n[steps.expect]\ncode = "00"\n'
    )
    files = {"clc.xml": b"<clc/>", "dre.xml": b"<dre>${eng}</dre>", "idb.xml": b"<idb/>"}
    return _suite_dir(tmp_path, manifest, files)


def _answer(code: str, extra: str = "") -> bytes:
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        f'<r:Reponse xmlns:r="urn:x"><r:CodeRetour>{code}</r:CodeRetour>{extra}'
        "</r:Reponse></s:Body></s:Envelope>"
    ).encode()


def test_a_captured_engagement_is_sent_by_the_next_step_of_its_chain(tmp_path: Path) -> None:
    directory = _chain_suite(tmp_path)
    sent: list[tuple[str, bytes]] = []

    def send(target: object, url: str, body: bytes, headers: object) -> tuple[int, bytes]:
        sent.append((url, body))
        if body == b"<clc/>":
            return 200, _answer("00", "<r:NumeroEngagement>ENG-42</r:NumeroEngagement>")
        return 200, _answer("00")

    results = replay.replay(directory, load_suite(directory), _target(), 2, send=send)
    assert all(r.passed for r in results)
    assert ("https://t/roc/DRE", b"<dre>ENG-42</dre>") in sent
    assert [r.step.id for r in results] == ["clc", "dre", "idb"]


def test_refused_connections_and_timeouts_are_differences_not_crashes(tmp_path: Path) -> None:
    directory = _chain_suite(tmp_path)

    def send(target: object, url: str, body: bytes, headers: object) -> tuple[int, bytes]:
        if body == b"<clc/>":
            raise ConnectionRefusedError(111, "Connection refused")
        raise TimeoutError("timed out")

    results = replay.replay(directory, load_suite(directory), _target(), 1, send=send)
    observed = {r.step.id: r.differences[0].observed for r in results}
    assert observed["clc"].startswith("connection failed: ConnectionRefusedError")
    assert observed["dre"] == "not sent: step dre: variable ${eng} was not captured before"
    assert observed["idb"] == "no answer within 1 s"


def test_the_junit_report_is_valid_junit_and_names_the_failed_step(tmp_path: Path) -> None:
    directory = _chain_suite(tmp_path)

    def send(target: object, url: str, body: bytes, headers: object) -> tuple[int, bytes]:
        return 200, _answer(
            "01" if body == b"<idb/>" else "00", "<r:NumeroEngagement>E</r:NumeroEngagement>"
        )

    suite = load_suite(directory)
    results = replay.replay(directory, suite, _target(), 1, send=send)
    document = etree.fromstring(replay.junit_xml(suite, results))
    etree.XMLSchema(etree.parse(str(JUNIT_XSD))).assertValid(document)
    failed = [t.get("name") for t in document.iter("testcase") if t.find("failure") is not None]
    assert failed == ["idb"]
    assert document.find("testsuite").get("failures") == "1"
    report = replay.json_report(suite, results)
    assert (report["passed"], report["failed"]) == (2, 1)
    assert report["results"][2]["differences"] == [
        {"what": "code", "expected": "00", "observed": "01"}
    ]
    json.dumps(report)


def test_the_schema_refuses_what_junit_readers_refuse() -> None:
    schema = etree.XMLSchema(etree.parse(str(JUNIT_XSD)))
    assert not schema.validate(etree.fromstring(b'<testsuites><testsuite name="x"/></testsuites>'))


def test_the_command_exits_2_with_a_message_on_a_suite_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert replay.main([str(tmp_path), "--url", "https://127.0.0.1:1/roc", "--quiet"]) == 2
    assert "suite.toml: cannot be read" in capsys.readouterr().err
    with pytest.raises(SystemExit) as raised:
        replay.main([str(tmp_path), "--url", "https://x/roc", "--concurrency", "0"])
    assert raised.value.code == 2


def test_the_manifest_text_is_toml_a_person_can_edit(exported) -> None:
    suite, _ = exported
    text = manifest_text(suite)
    assert parse_manifest(tomllib.loads(text)) == suite
    assert '[[steps]]\nid = "990000101/IDB_OK_MCO_DROITS_OUVERTS"' in text


def _entry(sequence: int, service: str, request: str, answer: bytes, **extra: object) -> dict:
    return {
        "sequence": sequence,
        "time": f"2026-03-02T10:00:0{sequence}+00:00",
        "service": service,
        "http_status": 200,
        "request": request,
        "answer": answer.decode(),
        "technical_fault": "",
        "case": "",
        **extra,
    }


def test_a_recorded_session_captures_the_engagement_its_later_requests_quote() -> None:
    entries = [
        _entry(1, "CLC", "<clc/>", _answer("00", "<r:NumeroEngagement>ENG-9</r:NumeroEngagement>")),
        _entry(2, "DEL", "<del><n>ENG-9</n></del>", _answer("00")),
        _entry(3, "IDB", "<idb/>", b"", technical_fault="CONNEXION_COUPEE"),
        _entry(4, "IDB", "", _answer("00")),  # body not kept
    ]
    suite, files, skipped = record_suite(entries)
    assert skipped == 2
    assert [s.id for s in suite.steps] == ["00001-CLC", "00002-DEL"]
    assert suite.steps[0].capture == {"engagement_1": "NumeroEngagement"}
    assert files["requests/00002-DEL.xml"] == b"<del><n>${engagement_1}</n></del>"
    assert [s.expect.code for s in suite.steps] == ["00", "00"]
    since = datetime.datetime(2026, 3, 2, 10, 0, 2, tzinfo=datetime.UTC)
    assert [s.id for s in record_suite(entries, since)[0].steps] == ["00002-DEL"]
