"""The project's XSDs and WSDL: they load, say they are a model, and match the messages."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from lxml import etree

from mutuelle.faults import MUTUELLE_FAULT_NS, MutuelleError, fault_document
from mutuelle.schemas import (
    BILLING_WSDL_FILE,
    SCHEMA_FILES,
    WSDL_FILE,
    schema,
    schema_text,
    validation_error,
    validation_errors,
)
from mutuelle.soap import read_envelope, read_routing
from roc.model import RPN_FAULT_NS, SOAP11_NS, SOAP12_NS, SoapVersion
from rpn.errors import RpnError
from rpn.faults import fault_document as rpn_fault_document

REPO = Path(__file__).resolve().parents[2]
NOTICE = "PiANO project model of ROC — not the official schema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
XS = "http://www.w3.org/2001/XMLSchema"
WSDL_SOAP11 = "http://schemas.xmlsoap.org/wsdl/soap/"
WSDL_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"
EXAMPLES = sorted((REPO / "examples").glob("*.xml"))


@pytest.fixture(scope="module")
def wsdl() -> etree._ElementTree:
    with resources.as_file(resources.files("roc.schemas").joinpath(WSDL_FILE)) as path:
        return etree.parse(str(path))


@pytest.mark.parametrize("name", [*SCHEMA_FILES.values(), WSDL_FILE])
def test_every_schema_file_says_it_is_the_projects_model(name: str) -> None:
    assert NOTICE in schema_text(name).decode("utf-8")


@pytest.mark.parametrize("key", sorted(SCHEMA_FILES))
def test_every_xsd_compiles(key: str) -> None:
    assert isinstance(schema(key), etree.XMLSchema)


def test_wsdl_types_compile_with_every_imported_schema(wsdl: etree._ElementTree) -> None:
    types = wsdl.find(f"{{{WSDL}}}types/{{{XS}}}schema")
    assert types is not None
    combined = etree.XMLSchema(types)
    example = etree.parse(str(REPO / "examples" / "idb-droits-ouverts.xml")).getroot()
    body = example.find(f"{{{SOAP11_NS}}}Body")
    assert body is not None
    assert combined.validate(body[0])


def _names(wsdl: etree._ElementTree, path: str) -> list[str]:
    return [e.get("name", "") for e in wsdl.getroot().iterfind(path)]


def test_wsdl_has_one_port_type_for_roc_services_and_one_for_the_annuaire(
    wsdl: etree._ElementTree,
) -> None:
    assert _names(wsdl, f"{{{WSDL}}}portType") == ["RocPortType", "AnnuairePortType"]
    roc = f"{{{WSDL}}}portType[@name='RocPortType']/{{{WSDL}}}operation"
    ann = f"{{{WSDL}}}portType[@name='AnnuairePortType']/{{{WSDL}}}operation"
    assert _names(wsdl, roc) == ["IDB", "SIM", "CLC", "DEL"]
    assert _names(wsdl, ann) == ["ANN"]


@pytest.mark.parametrize(
    ("binding", "soap_ns"),
    [
        ("RocSoap11Binding", WSDL_SOAP11),
        ("RocSoap12Binding", WSDL_SOAP12),
        ("AnnuaireSoap11Binding", WSDL_SOAP11),
        ("AnnuaireSoap12Binding", WSDL_SOAP12),
    ],
)
def test_bindings_are_document_literal_with_the_models_soap_actions(
    wsdl: etree._ElementTree, binding: str, soap_ns: str
) -> None:
    element = wsdl.getroot().find(f"{{{WSDL}}}binding[@name='{binding}']")
    assert element is not None
    style = element.find(f"{{{soap_ns}}}binding")
    assert style is not None and style.get("style") == "document"
    for operation in element.iterfind(f"{{{WSDL}}}operation"):
        name = operation.get("name")
        action = operation.find(f"{{{soap_ns}}}operation")
        assert action is not None and action.get("soapAction") == f"urn:piano:roc:{name}"
        for body in operation.iter(f"{{{soap_ns}}}body"):
            assert body.get("use") == "literal"
        header = operation.find(f"{{{WSDL}}}input/{{{soap_ns}}}header")
        if name == "ANN":
            assert header is None
        else:
            assert header is not None
            assert (header.get("message"), header.get("part")) == (f"tns:{name}Request", "routage")


def test_request_messages_carry_the_routing_block_and_the_body(
    wsdl: etree._ElementTree,
) -> None:
    for service in ("IDB", "SIM", "CLC", "DEL"):
        message = wsdl.getroot().find(f"{{{WSDL}}}message[@name='{service}Request']")
        assert message is not None
        parts = {p.get("name"): p.get("element") for p in message}
        assert parts == {
            "routage": "rt:Routage",
            "parameters": f"{service.lower()}:Demande{service}",
        }


def test_each_service_has_a_port_at_its_own_path(wsdl: etree._ElementTree) -> None:
    addresses = {
        port.get("name"): port[0].get("location", "")
        for port in wsdl.getroot().iterfind(f"{{{WSDL}}}service/{{{WSDL}}}port")
    }
    for service in ("IDB", "SIM", "CLC", "DEL", "ANN"):
        for suffix in ("Soap11", "Soap12"):
            assert addresses[f"{service}_{suffix}"].endswith(f"/roc/{service}")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_validate_against_the_schemas(path: Path) -> None:
    request = read_envelope(path.read_bytes(), 1 << 20)
    service = etree.QName(request.body).localname.removeprefix("Demande")
    assert validation_error(request.body, service) is None
    if service != "ANN":
        assert request.header is not None
        assert validation_error(request.header[0], "ROUTAGE") is None
        routing = read_routing(request)
        assert routing.service.value == service
        assert (routing.sender_finess_legal, routing.sender_finess_site) == (
            "990000010",
            "990000028",
        )
        assert routing.amc.amc_number == "990000101"


def test_examples_cover_every_service() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "idb-droits-ouverts.xml",
        "idb-droits-fermes.xml",
        "idb-beneficiaire-inconnu.xml",
        "sim.xml",
        "clc.xml",
        "del.xml",
    } <= names
    assert (REPO / "examples" / "README.md").exists()


@pytest.mark.parametrize("version", list(SoapVersion))
@pytest.mark.parametrize("error", list(MutuelleError), ids=lambda e: e.code)
def test_simulator_faults_carry_a_valid_detail(error: MutuelleError, version: SoapVersion) -> None:
    root = etree.fromstring(fault_document(error, "Champ/X: règle", "ex-1", version))
    soap = SOAP12_NS if version is SoapVersion.SOAP12 else SOAP11_NS
    assert root.tag == f"{{{soap}}}Envelope"
    detail = root.find(f".//{{{MUTUELLE_FAULT_NS}}}ErreurSimulateur")
    assert detail is not None
    assert validation_error(detail, "MUTUELLE_ERREURS") is None


@pytest.mark.parametrize("version", list(SoapVersion))
@pytest.mark.parametrize("error", list(RpnError), ids=lambda e: e.code)
def test_relay_faults_match_rpn_erreurs_xsd(error: RpnError, version: SoapVersion) -> None:
    root = etree.fromstring(rpn_fault_document(error, "detail", "ex-1", version))
    detail = root.find(f".//{{{RPN_FAULT_NS}}}ErreurRPN")
    assert detail is not None
    assert validation_error(detail, "RPN_ERREURS") is None


def test_requests_validated_in_several_threads_at_once_each_get_their_own_errors() -> None:
    """Exchanges are validated in the storage's threads: one's errors never leak to another."""
    import copy
    import threading

    from mutuelle.catalogue import default_catalogue
    from mutuelle.examples import case_request
    from mutuelle.soap import read_envelope

    idb = default_catalogue().get("990000101", "IDB_OK_MCO_DROITS_OUVERTS")
    assert idb is not None
    body = read_envelope(case_request(idb, "t-threads"), 1 << 20).body

    def without(local_name: str) -> etree._Element:
        broken = copy.deepcopy(body)
        element = next(e for e in broken.iter() if etree.QName(e).localname == local_name)
        parent = element.getparent()
        assert parent is not None
        parent.remove(element)
        return broken

    cases = [(document, validation_errors(document, "IDB")) for document in
             (without("NIR"), without("DateNaissance"))]  # fmt: skip
    assert cases[0][1] != cases[1][1] and all(errors for _, errors in cases)
    wrong: list[object] = []

    def validate(document: etree._Element, expected: object) -> None:
        for _ in range(1500):
            found = validation_errors(document, "IDB")
            if found != expected:
                wrong.append(found)

    threads = [threading.Thread(target=validate, args=case) for case in cases * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []


# -- The billing service (DRE) ------------------------------------------------------------------


@pytest.fixture(scope="module")
def billing_wsdl() -> etree._ElementTree:
    with resources.as_file(resources.files("roc.schemas").joinpath(BILLING_WSDL_FILE)) as path:
        return etree.parse(str(path))


def test_the_billing_wsdl_says_it_is_a_model_and_its_types_compile(
    billing_wsdl: etree._ElementTree,
) -> None:
    from mutuelle.billing_codec import invoice_element
    from mutuelle.catalogue import default_catalogue

    assert NOTICE in schema_text(BILLING_WSDL_FILE).decode("utf-8")
    types = billing_wsdl.find(f"{{{WSDL}}}types/{{{XS}}}schema")
    assert types is not None
    combined = etree.XMLSchema(types)
    played = default_catalogue().get("990000101", "DRE_OK_MCO_PAIEMENT_PARTIEL")
    assert played is not None
    assert combined.validate(invoice_element(played.request))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("binding", "soap_ns"),
    [("FacturationSoap11Binding", WSDL_SOAP11), ("FacturationSoap12Binding", WSDL_SOAP12)],
)
def test_billing_bindings_share_the_dre_action_and_carry_the_routing_block(
    billing_wsdl: etree._ElementTree, binding: str, soap_ns: str
) -> None:
    element = billing_wsdl.getroot().find(f"{{{WSDL}}}binding[@name='{binding}']")
    assert element is not None
    names = []
    for operation in element.iterfind(f"{{{WSDL}}}operation"):
        names.append(operation.get("name"))
        action = operation.find(f"{{{soap_ns}}}operation")
        assert action is not None and action.get("soapAction") == "urn:piano:roc:DRE"
        assert operation.find(f"{{{WSDL}}}input/{{{soap_ns}}}header") is not None
    assert names == ["DRE", "Retours"]
    ports = billing_wsdl.getroot().iterfind(f"{{{WSDL}}}service/{{{WSDL}}}port")
    for port in ports:
        address = next(iter(port))
        assert address.get("location", "").endswith("/roc/DRE")
