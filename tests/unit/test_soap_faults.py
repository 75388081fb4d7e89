"""The relay's SOAP Faults: what a SOAP 1.1 or 1.2 client receives when the relay refuses."""

from __future__ import annotations

import pytest
from lxml import etree

from roc.model import (
    RPN_FAULT_NS,
    SOAP11_CONTENT_TYPE,
    SOAP11_NS,
    SOAP12_CONTENT_TYPE,
    SOAP12_NS,
    SoapVersion,
)
from roc.model import soap_content_type as content_type
from rpn.errors import RpnError
from rpn.faults import fault_document

S11 = f"{{{SOAP11_NS}}}"
S12 = f"{{{SOAP12_NS}}}"
E = f"{{{RPN_FAULT_NS}}}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


def parse(document: bytes) -> etree._Element:
    """Parse like a strict client: no entities, no DTD, no network."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(document, parser=parser)


def rpn_detail(root: etree._Element) -> dict[str, str]:
    block = root.find(f".//{E}ErreurRPN")
    assert block is not None
    return {child.tag.removeprefix(E): child.text or "" for child in block}


def test_soap11_client_fault_has_faultcode_client_and_the_message() -> None:
    error = RpnError.SENDER_MISMATCH
    root = parse(fault_document(error, exchange_id="ex-1"))
    assert root.tag == f"{S11}Envelope"
    fault = root.find(f"{S11}Body/{S11}Fault")
    assert fault is not None
    code = fault.findtext("faultcode")
    assert code is not None
    prefix, _, local = code.partition(":")
    assert fault.nsmap[prefix] == SOAP11_NS
    assert local == "Client"
    assert fault.findtext("faultstring") == error.spec.message
    assert fault.find(f"detail/{E}ErreurRPN") is not None


def test_soap11_server_fault_has_faultcode_server() -> None:
    root = parse(fault_document(RpnError.AMC_TIMEOUT))
    assert root.findtext(f"{S11}Body/{S11}Fault/faultcode") == "soap:Server"


@pytest.mark.parametrize(
    ("error", "value"),
    [(RpnError.ROUTING_UNREADABLE, "Sender"), (RpnError.AMC_UNAVAILABLE, "Receiver")],
)
def test_soap12_fault_code_is_sender_or_receiver(error: RpnError, value: str) -> None:
    root = parse(fault_document(error, version=SoapVersion.SOAP12))
    assert root.tag == f"{S12}Envelope"
    fault = root.find(f"{S12}Body/{S12}Fault")
    assert fault is not None
    code = fault.findtext(f"{S12}Code/{S12}Value")
    assert code is not None
    prefix, _, local = code.partition(":")
    assert fault.nsmap[prefix] == SOAP12_NS
    assert local == value
    text = fault.find(f"{S12}Reason/{S12}Text")
    assert text is not None
    assert text.get(XML_LANG) == "fr"
    assert text.text == error.spec.message
    assert fault.find(f"{S12}Detail/{E}ErreurRPN") is not None


def test_fault_detail_carries_code_message_exchange_id_and_retryable() -> None:
    root = parse(fault_document(RpnError.AMC_CIRCUIT_OPEN, "next attempt in 2.0 s", "ex-42"))
    assert rpn_detail(root) == {
        "Code": "RPN-503-AMC-SUSPENDUE",
        "Message": RpnError.AMC_CIRCUIT_OPEN.spec.message + " (next attempt in 2.0 s)",
        "IdentifiantEchange": "ex-42",
        "Rejouable": "true",
    }


def test_a_fault_without_exchange_id_has_an_empty_identifier() -> None:
    root = parse(fault_document(RpnError.NOT_FOUND))
    detail = rpn_detail(root)
    assert detail["IdentifiantEchange"] == ""
    assert detail["Rejouable"] == "false"


@pytest.mark.parametrize("version", list(SoapVersion))
def test_markup_in_detail_and_exchange_id_stays_text(version: SoapVersion) -> None:
    detail = "</e:Message><e:Code>RPN-200-OK</e:Code> & <![CDATA[x]]> ]]>"
    exchange_id = '"/><injected xmlns="urn:x"/><x a="'
    root = parse(fault_document(RpnError.ROUTING_UNREADABLE, detail, exchange_id, version))
    found = rpn_detail(root)
    assert found["Code"] == "RPN-400-ROUTAGE"
    assert found["Message"].endswith(f"({detail})")
    assert found["IdentifiantEchange"] == exchange_id
    assert root.find(".//{urn:x}injected") is None
    assert len(root.findall(f".//{E}Code")) == 1


@pytest.mark.parametrize("error", list(RpnError), ids=lambda e: e.name)
@pytest.mark.parametrize("version", list(SoapVersion))
def test_every_relay_error_renders_as_a_parseable_fault(
    error: RpnError, version: SoapVersion
) -> None:
    root = parse(fault_document(error, "detail", "ex-1", version))
    detail = rpn_detail(root)
    assert detail["Code"] == error.code
    assert detail["Rejouable"] == ("true" if error.spec.retryable else "false")
    envelope_ns = SOAP12_NS if version is SoapVersion.SOAP12 else SOAP11_NS
    assert root.tag == f"{{{envelope_ns}}}Envelope"


@pytest.mark.parametrize("error", list(RpnError), ids=lambda e: e.name)
def test_error_codes_agree_with_their_http_status_and_fault_role(error: RpnError) -> None:
    assert error.code.startswith(f"RPN-{error.http_status}-")
    assert error.spec.fault_role == ("Client" if error.http_status < 500 else "Server")


def test_error_codes_are_unique() -> None:
    codes = [error.code for error in RpnError]
    assert len(codes) == len(set(codes))


def test_fault_documents_declare_utf8_and_encode_accented_detail() -> None:
    document = fault_document(RpnError.INTERNAL, "d\u00e9lai d\u00e9pass\u00e9")
    assert document.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert rpn_detail(parse(document))["Message"].endswith("(d\u00e9lai d\u00e9pass\u00e9)")


def test_content_type_matches_the_soap_version() -> None:
    assert content_type(SoapVersion.SOAP11) == SOAP11_CONTENT_TYPE
    assert content_type(SoapVersion.SOAP12) == SOAP12_CONTENT_TYPE
    assert SOAP11_CONTENT_TYPE.startswith("text/xml")
    assert SOAP12_CONTENT_TYPE.startswith("application/soap+xml")
