"""The simulator over HTTP: SOAP versions, the annuaire, precise faults, and clean logs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from lxml import etree
from twisted.logger import LogEvent, capturedLogs, formatEvent
from twisted.web.server import Site

from mutuelle import testing
from mutuelle.catalogue import default_catalogue
from mutuelle.datafiles import load_data
from mutuelle.examples import case_request
from mutuelle.faults import MUTUELLE_FAULT_NS
from mutuelle.schemas import validation_error
from mutuelle.simulator import Reply, Simulator
from mutuelle.soap import request_headers
from mutuelle.storage import ISandbox
from roc.model import SERVICE_NS, SOAP11_NS, SOAP12_NS, Service, SoapVersion

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = default_catalogue()
OPEN = CATALOGUE.get("990000101", "IDB_OK_MCO_DROITS_OUVERTS")
assert OPEN is not None and OPEN.beneficiary is not None
OPEN_NIR = OPEN.beneficiary.nir
IDB_NS = "urn:piano:roc:idb:v1"
ANN_NS = "urn:piano:roc:ann:v1"
SOAP11 = request_headers(Service.IDB, SoapVersion.SOAP11)
SOAP12 = request_headers(Service.IDB, SoapVersion.SOAP12)
ANN11 = request_headers(Service.ANN, SoapVersion.SOAP11)
ANN12 = request_headers(Service.ANN, SoapVersion.SOAP12)


@pytest.fixture
def site() -> Site:
    return testing.site()


def idb_document(version: SoapVersion = SoapVersion.SOAP11) -> bytes:
    assert OPEN is not None
    return case_request(OPEN, "t-open", version)


def fault_of(body: bytes) -> tuple[str, str, str]:
    """(SOAP namespace, simulator fault code, message) of a fault document."""
    root = etree.fromstring(body)
    detail = root.find(f".//{{{MUTUELLE_FAULT_NS}}}ErreurSimulateur")
    assert detail is not None, body
    assert validation_error(detail, "MUTUELLE_ERREURS") is None
    return (
        etree.QName(root).namespace or "",
        detail.findtext(f"{{{MUTUELLE_FAULT_NS}}}Code") or "",
        detail.findtext(f"{{{MUTUELLE_FAULT_NS}}}Message") or "",
    )


def assert_fault(reply: testing.HttpReply, status: int, code: str, says: str = "") -> str:
    assert reply.status == status, reply.body
    _, fault_code, message = fault_of(reply.body)
    assert fault_code == code
    assert says in message
    assert OPEN_NIR not in reply.body.decode()
    return message


# -- SOAP versions ------------------------------------------------------------------------------


def test_soap11_request_gets_a_soap11_answer(site: Site) -> None:
    reply = testing.post(site, "/roc/IDB", idb_document(), SOAP11)
    assert reply.status == 200
    assert reply.content_type.startswith("text/xml")
    assert etree.QName(etree.fromstring(reply.body)).namespace == SOAP11_NS


def test_soap12_request_gets_a_soap12_answer(site: Site) -> None:
    reply = testing.post(site, "/roc/IDB", idb_document(SoapVersion.SOAP12), SOAP12)
    assert reply.status == 200
    assert reply.content_type.startswith("application/soap+xml")
    root = etree.fromstring(reply.body)
    assert etree.QName(root).namespace == SOAP12_NS
    assert root.findtext(f".//{{{IDB_NS}}}CodeRetour") == "00"


def test_soap12_faults_are_soap12_faults_with_sender_code(site: Site) -> None:
    document = idb_document(SoapVersion.SOAP12).replace(b"<rt:Routage", b"<rt:Routing", 1)
    document = document.replace(b"</rt:Routage>", b"</rt:Routing>")
    reply = testing.post(site, "/roc/IDB", document, SOAP12)
    assert reply.status == 400
    assert reply.content_type.startswith("application/soap+xml")
    namespace, code, _ = fault_of(reply.body)
    assert (namespace, code) == (SOAP12_NS, "MUT-400-ROUTAGE")
    value = etree.fromstring(reply.body).findtext(f".//{{{SOAP12_NS}}}Value")
    assert value == "soap:Sender"


def test_content_type_and_envelope_must_agree_on_the_version(site: Site) -> None:
    reply = testing.post(site, "/roc/IDB", idb_document(SoapVersion.SOAP12), SOAP11)
    assert_fault(reply, 400, "MUT-400-SOAP", "le Content-Type annonce SOAP 1.1")
    assert fault_of(reply.body)[0] == SOAP12_NS


# -- Annuaire (ANN) -----------------------------------------------------------------------------


def ann_request(number: str, version: SoapVersion = SoapVersion.SOAP11) -> bytes:
    soap = SOAP12_NS if version is SoapVersion.SOAP12 else SOAP11_NS
    return (
        f'<soap:Envelope xmlns:soap="{soap}"><soap:Body>'
        f'<ann:DemandeANN xmlns:ann="{ANN_NS}">'
        f"<ann:NumeroAMC>{number}</ann:NumeroAMC><ann:TypeConvention>TP</ann:TypeConvention>"
        "<ann:CritereSecondaire>01</ann:CritereSecondaire>"
        "</ann:DemandeANN></soap:Body></soap:Envelope>"
    ).encode()


def test_annuaire_lists_every_service_of_a_known_amc(site: Site) -> None:
    reply = testing.post(site, "/roc/ANN", ann_request("990000101"), ANN11)
    assert reply.status == 200
    answer = etree.fromstring(reply.body).find(f".//{{{ANN_NS}}}ReponseANN")
    assert answer is not None
    assert validation_error(answer, "ANN") is None
    assert answer.findtext(f"{{{ANN_NS}}}CodeRetour") == "00"
    assert answer.findtext(f"{{{ANN_NS}}}LibelleRetour") == "AMC trouvée"
    assert answer.findtext(f"{{{ANN_NS}}}AMC/{{{ANN_NS}}}Numero") == "990000101"
    assert answer.findtext(f"{{{ANN_NS}}}AMC/{{{ANN_NS}}}Nom") == "Mutuelle Alpha (fictive)"
    services = {
        s.get("code"): s.text for s in answer.iterfind(f"{{{ANN_NS}}}AMC/{{{ANN_NS}}}Service")
    }
    assert services == {
        code: f"{testing.PUBLIC_URL}/roc/{code}" for code in ("IDB", "SIM", "CLC", "DEL")
    }


def test_annuaire_says_unknown_amc_with_code_01_and_no_amc(site: Site) -> None:
    reply = testing.post(site, "/roc/ANN", ann_request("990009999", SoapVersion.SOAP12), ANN12)
    assert reply.status == 200
    root = etree.fromstring(reply.body)
    assert etree.QName(root).namespace == SOAP12_NS
    answer = root.find(f".//{{{ANN_NS}}}ReponseANN")
    assert answer is not None
    assert validation_error(answer, "ANN") is None
    assert answer.findtext(f"{{{ANN_NS}}}CodeRetour") == "01"
    assert answer.findtext(f"{{{ANN_NS}}}LibelleRetour") == "AMC inconnue"
    assert answer.find(f"{{{ANN_NS}}}AMC") is None


def test_the_relays_annuaire_client_reads_our_answers(site: Site) -> None:
    from rpn.annuaire_sources import parse_ann_answer

    found = parse_ann_answer(testing.post(site, "/roc/ANN", ann_request("990000202"), ANN11).body)
    assert found is not None
    assert found.amc_number == "990000202"
    assert found.endpoint_for("IDB", "V2") == f"{testing.PUBLIC_URL}/roc/IDB"
    assert (
        parse_ann_answer(testing.post(site, "/roc/ANN", ann_request("990009999"), ANN11).body)
        is None
    )


def test_annuaire_refuses_a_malformed_amc_number(site: Site) -> None:
    reply = testing.post(site, "/roc/ANN", ann_request("99000"), ANN11)
    assert_fault(reply, 400, "MUT-400-DEMANDE", "DemandeANN/NumeroAMC")


# -- Faults -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (b"<soap:Envelope", "XML mal formé"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>',
            "les DTD et les déclarations d'entités sont refusées",
        ),
        (b"<x>&nir;</x>", "XML mal formé"),
    ],
    ids=["truncated", "dtd", "undeclared-entity"],
)
def test_unreadable_xml_is_refused(site: Site, document: bytes, says: str) -> None:
    assert_fault(testing.post(site, "/roc/IDB", document, SOAP11), 400, "MUT-400-XML", says)


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (b"<Envelope/>", "l'élément racine n'est pas une Envelope SOAP"),
        (f'<s:Envelope xmlns:s="{SOAP11_NS}"/>'.encode(), "un Header facultatif et un Body"),
        (
            f'<s:Envelope xmlns:s="{SOAP11_NS}"><s:Body><a/><b/></s:Body></s:Envelope>'.encode(),
            "exactement un élément",
        ),
    ],
    ids=["not-soap", "no-body", "two-elements"],
)
def test_non_soap_documents_are_refused(site: Site, document: bytes, says: str) -> None:
    assert_fault(testing.post(site, "/roc/IDB", document, SOAP11), 400, "MUT-400-SOAP", says)


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        (b"<rt:Routage", b"<rt:Autre", "pas de bloc Routage"),
        (b"<rt:IdentifiantEchange>t-open</rt:IdentifiantEchange>", b"", "IdentifiantEchange"),
        (
            b">990000028<",
            b">990000029<",
            "Routage/Emetteur/FinessGeographique : la clé de contrôle",
        ),
        (b"<rt:VersionROC>V1<", b"<rt:VersionROC>V3<", "Routage/VersionROC : doit valoir V1 ou V2"),
        (b"<rt:Numero>990000101<", b"<rt:Numero>99000010<", "Routage/AMC/Numero"),
    ],
    ids=["no-block", "no-exchange-id", "bad-finess", "bad-version", "bad-amc"],
)
def test_routing_block_problems_name_the_field(
    site: Site, old: bytes, new: bytes, says: str
) -> None:
    document = idb_document()
    assert old in document
    if old == b"<rt:Routage":
        document = document.replace(b"</rt:Routage>", b"</rt:Autre>")
    reply = testing.post(site, "/roc/IDB", document.replace(old, new), SOAP11)
    assert_fault(reply, 400, "MUT-400-ROUTAGE", says)


def test_missing_body_field_is_named(site: Site) -> None:
    document = idb_document()
    start = document.index(b"<idb:DateFin>")
    end = document.index(b"</idb:DateFin>") + len(b"</idb:DateFin>")
    reply = testing.post(site, "/roc/IDB", document[:start] + document[end:], SOAP11)
    message = assert_fault(reply, 400, "MUT-400-DEMANDE", "DemandeIDB/Soins/Secteur")
    assert "élément inattendu ; attendu : DateFin" in message


def test_nir_errors_never_echo_the_nir(site: Site) -> None:
    wrong_key = OPEN_NIR[:13] + f"{(int(OPEN_NIR[13:]) + 1) % 100:02d}"
    reply = testing.post(
        site, "/roc/IDB", idb_document().replace(OPEN_NIR.encode(), wrong_key.encode()), SOAP11
    )
    assert_fault(
        reply, 400, "MUT-400-DEMANDE", "DemandeIDB/Beneficiaire/NIR : la clé du NIR est fausse"
    )
    assert wrong_key not in reply.body.decode()
    bad_format = "X" + OPEN_NIR[1:]
    reply = testing.post(
        site, "/roc/IDB", idb_document().replace(OPEN_NIR.encode(), bad_format.encode()), SOAP11
    )
    assert_fault(reply, 400, "MUT-400-DEMANDE", "DemandeIDB/Beneficiaire/NIR : valeur non conforme")
    assert bad_format not in reply.body.decode()


def test_period_ending_before_it_starts_is_a_request_fault(site: Site) -> None:
    document = idb_document().replace(b">2026-03-06<", b">2026-03-01<")
    reply = testing.post(site, "/roc/IDB", document, SOAP11)
    assert_fault(reply, 400, "MUT-400-DEMANDE", "DemandeIDB/Soins/DateFin : antérieure à DateDebut")


@pytest.mark.parametrize(
    ("path", "document", "headers", "says"),
    [
        ("/roc/IDB", None, {"SOAPAction": '"urn:piano:roc:SIM"'}, "l'action SOAP"),
        (
            "/roc/IDB",
            None,
            {"Content-Type": 'application/soap+xml; action="urn:piano:roc:CLC"'},
            "l'action SOAP",
        ),
        ("/roc/ANN", None, {"SOAPAction": ""}, "DemandeANN"),
        ("/roc/SIM", None, {"SOAPAction": ""}, "DemandeSIM"),
    ],
    ids=["action-11", "action-12", "idb-body-at-ann", "idb-body-at-sim"],
)
def test_path_action_and_body_must_name_the_same_service(
    site: Site, path: str, document: bytes | None, headers: dict[str, str], says: str
) -> None:
    version = (
        SoapVersion.SOAP12 if "soap+xml" in headers.get("Content-Type", "") else SoapVersion.SOAP11
    )
    all_headers = {"Content-Type": "text/xml; charset=utf-8", **headers}
    reply = testing.post(site, path, document or idb_document(version), all_headers)
    assert_fault(reply, 400, "MUT-400-INCOHERENT", says)


def test_routing_block_must_name_the_service_of_the_path(site: Site) -> None:
    document = (REPO / "examples" / "sim.xml").read_bytes().replace(b">SIM<", b">CLC<")
    reply = testing.post(site, "/roc/SIM", document, {"Content-Type": "text/xml"})
    assert_fault(reply, 400, "MUT-400-INCOHERENT", "Routage/Service n'est pas SIM")


def test_an_amc_the_simulator_does_not_host_is_a_fault_naming_the_exchange(
    site: Site,
) -> None:
    document = idb_document().replace(b"<rt:Numero>990000101<", b"<rt:Numero>990009999<")
    reply = testing.post(site, "/roc/IDB", document, SOAP11)
    assert_fault(reply, 400, "MUT-400-AMC-INCONNUE", "ne simule pas l'AMC")
    detail = etree.fromstring(reply.body).find(f".//{{{MUTUELLE_FAULT_NS}}}IdentifiantEchange")
    assert detail is not None and detail.text == "t-open"


@pytest.mark.parametrize(
    ("name", "code"),
    [("sim.xml", "00"), ("sim-plafond.xml", "00"), ("clc.xml", "00"), ("del.xml", "00")],
)
def test_sim_clc_and_del_examples_get_their_documented_answer(
    site: Site, name: str, code: str
) -> None:
    document = (REPO / "examples" / name).read_bytes()
    service = name.split(".")[0].split("-")[0].upper()
    headers = request_headers(Service(service), SoapVersion.SOAP11)
    reply = testing.post(site, f"/roc/{service}", document, headers)
    assert reply.status == 200
    assert etree.fromstring(reply.body).findtext(f".//{{{SERVICE_NS[service]}}}CodeRetour") == code


def test_http_level_mistakes_get_soap_faults(site: Site) -> None:
    reply = testing.request(site, "/roc/IDB", method="GET")
    assert_fault(reply, 405, "MUT-405-METHODE")
    assert reply.headers["allow"] == "POST"
    assert_fault(testing.post(site, "/roc/XYZ", idb_document(), SOAP11), 404, "MUT-404-CHEMIN")
    assert_fault(testing.post(site, "/index.html", b"", SOAP11), 404, "MUT-404-CHEMIN")
    reply = testing.post(site, "/roc/IDB", idb_document(), {"Content-Type": "application/json"})
    assert_fault(reply, 415, "MUT-415-TYPE")


def test_oversized_requests_are_refused_and_not_kept() -> None:
    simulator = testing.simulator(max_body_bytes=2000)
    seen: list[int] = []
    handle_in = simulator.handle_in

    def spy(
        sandbox: ISandbox,
        service: str,
        method: str,
        ct: str | None,
        action: str | None,
        body: bytes,
        via_relay: bool = False,
    ) -> Reply:
        seen.append(len(body))
        return handle_in(sandbox, service, method, ct, action, body, via_relay)

    simulator.handle_in = spy  # type: ignore[method-assign]
    padded = idb_document().replace(b"<soap:Body>", b"<soap:Body>" + b" " * 5_000_000)
    reply = testing.post(testing.site(simulator), "/roc/IDB", padded, SOAP11)
    assert_fault(reply, 413, "MUT-413-TAILLE")
    assert seen == [2001]


def test_a_simulator_defect_answers_500_and_logs_no_request_content(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    simulator = testing.simulator()

    def broken(*args: object) -> object:
        raise ValueError(f"cannot handle {OPEN_NIR}")

    monkeypatch.setattr(simulator, "handle_in", broken)
    with capturedLogs() as events:
        reply = testing.post(testing.site(simulator), "/roc/IDB", idb_document(), SOAP11)
    assert_fault(reply, 500, "MUT-500-INTERNE")
    errors = [e for e in events if e.get("error_type") == "ValueError"]
    assert len(errors) == 1
    assert OPEN_NIR not in _everything(events)


# -- Logs ---------------------------------------------------------------------------------------


def _everything(events: Sequence[LogEvent]) -> str:
    return "\n".join(formatEvent(e) + repr(sorted(e.items(), key=str)) for e in events)


def test_one_structured_log_line_per_exchange_without_personal_data(site: Site) -> None:
    documents = [
        (case.amc_number, case.service.value, case_request(case, f"log-{i}"))
        for i, case in enumerate(CATALOGUE)
    ]
    bad_key = OPEN_NIR[:13] + f"{(int(OPEN_NIR[13:]) + 1) % 100:02d}"
    bad = idb_document().replace(OPEN_NIR.encode(), bad_key.encode())
    documents.append(("990000101", "IDB", bad))
    with capturedLogs() as events:
        for _, service, document in documents:
            testing.post(
                site,
                f"/roc/{service}",
                document,
                request_headers(Service(service), SoapVersion.SOAP11),
            )
    exchanges = [e for e in events if e.get("log_namespace") == "mutuelle.server.RocResource"]
    assert len(exchanges) == len(documents)
    for event, (amc, service, _) in zip(exchanges, documents, strict=True):
        assert event["service"] == service
        assert event["amc"] == amc
        assert event["exchange_id"].startswith("log-") or event["exchange_id"] == "t-open"
        assert event["outcome"]
    # A whole-stay billing case's invoice quotes the engagement its own CLC gives: alone, it
    # is refused (31) and plays no case.
    alone = {case.name for case in CATALOGUE if not case.steps}
    assert {e["case"] for e in exchanges[:-1]} == alone | {"-"}
    assert exchanges[-1]["outcome"] == "MUT-400-DEMANDE"
    text = _everything(events)
    for person in load_data().dataset.beneficiaries:
        assert person.nir not in text
        assert person.last_name not in text
        assert person.first_name not in text
        assert person.birth_date.isoformat() not in text
    assert bad_key not in text


def test_log_line_reads_well() -> None:
    simulator: Simulator = testing.simulator()
    with capturedLogs() as events:
        testing.post(testing.site(simulator), "/roc/IDB", idb_document(), SOAP11)
    (event,) = [e for e in events if e.get("log_namespace") == "mutuelle.server.RocResource"]
    assert formatEvent(event) == "IDB exchange t-open for AMC 990000101: 00"
    assert event["case"] == "IDB_OK_MCO_DROITS_OUVERTS"
    assert event["finess"] == "990000028"
    assert event["http_status"] == 200
