"""Signed requests cross the relay untouched: Mutuelle ANS (signatures required) finds every
signature valid, whatever odd but valid form the message takes.

Real processes: ``twistd rpn`` and ``twistd mutuelle`` on 127.0.0.1 with mutual TLS; requests
signed by the project (``roc.signature``) and by xmlsec1, then sent by hospital A.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from lxml import etree

from mutuelle.catalogue import default_catalogue
from mutuelle.examples import body_element
from roc.model import SERVICE_NS
from roc.signature import sign
from tests.integration.conftest import StartRelay
from tests.integration.harness import (
    SoapClient,
    client_context,
    http_get,
)
from tests.integration.test_signature_interop import xmlsec1_sign, xmlsec1_template
from tests.integration.test_with_mutuelle import run_mutuelle
from tools.devpki import HOSPITAL_A

SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
AMC = "990000101"
CASE = "IDB_OK_MCO_DROITS_OUVERTS"


def _body(default_namespace: bool) -> str:
    """The case's DemandeIDB, with the service's namespace as a prefix or as the default."""
    case = default_catalogue().get(AMC, CASE)
    assert case is not None
    element = body_element(case)
    if default_namespace:
        element = _renamespaced(element, SERVICE_NS["IDB"])
    return etree.tostring(element, encoding="unicode")


def _renamespaced(element: etree._Element, namespace: str) -> etree._Element:
    copy = etree.Element(element.tag, nsmap={None: namespace})
    copy.text = element.text
    for child in element:
        copy.append(_renamespaced(child, namespace))
        copy[-1].tail = child.tail
    return copy


def _message(
    exchange_id: str,
    soap: str = SOAP11,
    soap_prefix: str = "soap",
    routing_prefix: str = "rt",
    default_namespace: bool = False,
    comments: bool = False,
    instructions: bool = False,
    newline: str = "\n",
) -> bytes:
    s, r = soap_prefix, routing_prefix
    note = "<!-- a comment -->" if comments else ""
    pi = "<?gap-editeur version='4.2'?>" if instructions else ""
    body = _body(default_namespace)
    if instructions:
        body = body.replace("><", f">{pi}<", 1)
    if comments:
        body = body.replace("><", f">{note}<", 2)
    text = (
        f'<?xml version="1.0" encoding="UTF-8"?>{newline}{pi}{newline}{note}'
        f'<{s}:Envelope xmlns:{s}="{soap}">{newline}  <{s}:Header>{newline}'
        f'    <{r}:Routage xmlns:{r}="urn:piano:roc:routage:v1">{newline}'
        f"      <{r}:Service>IDB</{r}:Service>{note}{newline}"
        f"      <{r}:VersionROC>V1</{r}:VersionROC>{newline}"
        f"      <{r}:AMC><{r}:Numero>{AMC}</{r}:Numero><{r}:TypeConvention>TP</{r}:TypeConvention>"
        f"<{r}:CritereSecondaire>01</{r}:CritereSecondaire></{r}:AMC>{newline}"
        f"      <{r}:Emetteur><{r}:FinessJuridique>{HOSPITAL_A['legal']}</{r}:FinessJuridique>"
        f"{pi}<{r}:FinessGeographique>{HOSPITAL_A['site']}</{r}:FinessGeographique>"
        f"</{r}:Emetteur>{newline}"
        f"      <{r}:IdentifiantEchange>{exchange_id}</{r}:IdentifiantEchange>{newline}"
        f"    </{r}:Routage>{newline}  </{s}:Header>{newline}"
        f"  <{s}:Body>{newline}    {body}{newline}  </{s}:Body>{newline}</{s}:Envelope>{newline}"
    )
    return text.encode()


def _project_signed(pki: Path, message: bytes) -> bytes:
    return sign(
        message, (pki / "hospital-a.pem").read_bytes(), (pki / "hospital-a.key").read_bytes()
    )


def _crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _forms(pki: Path, tmp_path: Path) -> Iterator[tuple[str, bytes, str]]:
    """(name, signed request, SOAP version's content type) of each odd but valid form."""
    text_xml = "text/xml; charset=utf-8"
    soap12 = 'application/soap+xml; charset=utf-8; action="urn:piano:roc:IDB"'
    yield "plain", _project_signed(pki, _message("sig-plain")), text_xml
    yield "crlf", _crlf(_project_signed(pki, _message("sig-crlf"))), text_xml
    yield (
        "crlf-before-signing",
        _project_signed(pki, _message("sig-crlf-avant", newline="\r\n")),
        text_xml,
    )
    signed = _project_signed(pki, _message("sig-commentaires", comments=True))
    # Comments are not signed (exclusive c14n without comments): add more after signing too.
    added = signed.replace(b"<rt:VersionROC>", b"<!-- ajout --><rt:VersionROC>", 1)
    yield "comments", added, text_xml
    yield (
        "processing-instructions",
        _project_signed(pki, _message("sig-pi", instructions=True)),
        text_xml,
    )
    yield (
        "other-prefixes",
        _project_signed(
            pki,
            _message("sig-prefixes", soap_prefix="S", routing_prefix="r", default_namespace=True),
        ),
        text_xml,
    )
    yield (
        "soap12",
        _project_signed(pki, _message("sig-soap12", soap=SOAP12, soap_prefix="env")),
        soap12,
    )
    everything = _message(
        "sig-tout",
        soap=SOAP12,
        soap_prefix="e",
        routing_prefix="route",
        default_namespace=True,
        comments=True,
        instructions=True,
        newline="\r\n",
    )
    yield "all-at-once", _crlf(_project_signed(pki, everything)), soap12
    certificate = x509.load_pem_x509_certificate((pki / "hospital-a.pem").read_bytes())
    for name, message, content_type in (
        ("xmlsec1-prefixes", _message("sig-xmlsec1", soap_prefix="SOAP-ENV"), text_xml),
        ("xmlsec1-soap12-odd", everything.replace(b"sig-tout", b"sig-xmlsec1-12"), soap12),
    ):
        template = xmlsec1_template(message, certificate, ("sec", "util", "dsig"))
        directory = tmp_path / name
        directory.mkdir()
        yield name, _crlf(xmlsec1_sign(pki, "hospital-a", template, directory)), content_type


@pytest.fixture
def mutuelle(pki: Path, tmp_path: Path) -> Iterator[tuple[int, int]]:
    twistd, port, admin = run_mutuelle(pki, tmp_path, tables={"signatures": {"policy": "require"}})
    yield port, admin
    twistd.stop()


def test_every_odd_but_valid_signed_form_arrives_valid_through_the_relay(
    start_relay: StartRelay, pki: Path, tmp_path: Path, mutuelle: tuple[int, int]
) -> None:
    port, admin = mutuelle
    relay = start_relay({AMC: f"https://127.0.0.1:{port}"})
    client = SoapClient(relay.port, client_context(pki, "hospital-a"))
    forms = list(_forms(pki, tmp_path))
    assert len(forms) >= 10
    try:
        for name, request, content_type in forms:
            answer = client.post(request, headers={"Content-Type": content_type})
            assert answer.status == 200, (name, answer.body)
            assert b"<idb:CodeRetour>00</idb:CodeRetour>" in answer.body or (
                b"CodeRetour>00<" in answer.body
            ), (name, answer.body)
        # The control: the same check refuses a byte changed on the way.
        tampered = forms[0][1].replace(b"sig-plain", b"sig-plaim")
        refused = client.post(tampered)
        assert refused.status == 400
        assert b"MUT-400-SIGNATURE" in refused.body and b"SIGNATURE_EMPREINTE" in refused.body
    finally:
        client.close()
    status, body = http_get(
        f"http://127.0.0.1:{admin}/__admin/sandboxes/{HOSPITAL_A['site']}/journal"
    )
    assert status == 200
    entries = json.loads(body)["entries"]
    assert len(entries) == len(forms) + 1
    assert [e["conformance"]["violations"] for e in entries[:-1]] == [[]] * len(forms)
    assert [e["outcome"] for e in entries[:-1]] == ["00"] * len(forms)
    last = entries[-1]["conformance"]["violations"]
    assert [v["regle"] for v in last] == ["SIGNATURE_EMPREINTE"]
