"""Signing and checking ROC messages (roc.signature): what a publisher and an AMC see."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from lxml import etree

from roc.messages import Routing, envelope
from roc.model import SoapVersion
from roc.signature import (
    BODY_ID,
    WSSE_NS,
    WSU_NS,
    Defect,
    SignatureInvalid,
    SigningError,
    Trust,
    main,
    sign,
    verify,
)
from roc.xmlsafe import parse_document
from tools.devpki import HOSPITAL_A, HOSPITAL_B, Issued, issue, make_ca

NOW = datetime.datetime.now(datetime.UTC)
BODY = (
    '<idb:DemandeIDB xmlns:idb="urn:piano:roc:idb:v1"><idb:Beneficiaire>'
    "<idb:NIR>180039999900794</idb:NIR></idb:Beneficiaire></idb:DemandeIDB>"
)
SENDERS = (HOSPITAL_A["legal"], HOSPITAL_A["site"])


class Pki:
    def __init__(self) -> None:
        self.ca = make_ca("Test CA")
        self.hospital_a = issue(self.ca, "A", client=True, finess=HOSPITAL_A["site"])
        self.hospital_b = issue(self.ca, "B", client=True, finess=HOSPITAL_B["site"])
        self.expired = issue(
            self.ca,
            "A expired",
            client=True,
            finess=HOSPITAL_A["site"],
            not_before=NOW - datetime.timedelta(days=400),
            not_after=NOW - datetime.timedelta(days=2),
        )
        rogue = make_ca("Rogue CA")
        self.rogue = issue(rogue, "rogue", client=True, finess=HOSPITAL_A["site"])
        self.trust = Trust([self.ca.certificate])


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def _pem(issued: Issued) -> tuple[bytes, bytes]:
    cert = issued.certificate.public_bytes(serialization.Encoding.PEM)
    key = issued.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert, key


def _message(version: SoapVersion = SoapVersion.SOAP11) -> bytes:
    routing = Routing("IDB", "990000101", HOSPITAL_A["legal"], HOSPITAL_A["site"])
    return envelope(routing, BODY, version)


def _signed(issued: Issued, message: bytes | None = None) -> bytes:
    return sign(message or _message(), *_pem(issued))


def _check(data: bytes, pki: Pki, senders: tuple[str, ...] | None = SENDERS) -> Defect | None:
    try:
        verify(parse_document(data), pki.trust, NOW, senders)
    except SignatureInvalid as exc:
        return exc.defect
    return None


def test_a_message_signed_by_its_sender_is_valid_in_soap_11_and_12(pki: Pki) -> None:
    for version in SoapVersion:
        signed = _signed(pki.hospital_a, _message(version))
        result = verify(parse_document(signed), pki.trust, NOW, SENDERS)
        assert result.signer_finess == HOSPITAL_A["site"]


def test_the_signature_sits_in_a_wsse_security_header_with_the_certificate(pki: Pki) -> None:
    root = parse_document(_signed(pki.hospital_a))
    ns = {"wsse": WSSE_NS, "ds": "http://www.w3.org/2000/09/xmldsig#"}
    security = root.find(".//wsse:Security", ns)
    assert security is not None
    assert security.find("wsse:BinarySecurityToken", ns) is not None
    methods = security.xpath(".//ds:SignatureMethod/@Algorithm", namespaces=ns)
    assert methods == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"]
    uris = security.xpath(".//ds:Reference/@URI", namespaces=ns)
    assert sorted(uris) == ["#id-corps", "#id-routage"]


def test_one_changed_byte_in_the_body_is_an_invalid_digest(pki: Pki) -> None:
    signed = _signed(pki.hospital_a)
    tampered = signed.replace(b"180039999900794", b"180039999900795")
    assert tampered != signed
    assert _check(tampered, pki) is Defect.DIGEST


def test_a_changed_routing_block_is_an_invalid_digest(pki: Pki) -> None:
    signed = _signed(pki.hospital_a)
    tampered = signed.replace(b"<rt:Numero>990000101<", b"<rt:Numero>990000102<")
    assert _check(tampered, pki) is Defect.DIGEST


def test_a_changed_signature_value_is_refused(pki: Pki) -> None:
    signed = _signed(pki.hospital_a)
    start = signed.index(b"<ds:SignatureValue>") + len(b"<ds:SignatureValue>")
    flipped = b"A" if signed[start : start + 1] != b"A" else b"B"
    tampered = signed[:start] + flipped + signed[start + 1 :]
    assert _check(tampered, pki) is Defect.VALUE


def test_a_certificate_from_an_unknown_ca_is_untrusted(pki: Pki) -> None:
    assert _check(_signed(pki.rogue), pki) is Defect.UNTRUSTED


def test_an_expired_certificate_is_refused(pki: Pki) -> None:
    assert _check(_signed(pki.expired), pki) is Defect.EXPIRED


def test_another_establishments_certificate_is_not_the_senders(pki: Pki) -> None:
    signed = _signed(pki.hospital_b)
    assert _check(signed, pki) is Defect.FINESS
    assert _check(signed, pki, senders=None) is None  # the signature itself is sound


def test_an_unsigned_message_has_a_missing_signature(pki: Pki) -> None:
    assert _check(_message(), pki) is Defect.MISSING


def test_a_signature_not_covering_the_body_is_malformed(pki: Pki) -> None:
    signed = _signed(pki.hospital_a)
    moved = signed.replace(f'Id="{BODY_ID}"'.encode(), b'Id="ailleurs"')
    assert _check(moved, pki) is Defect.MALFORMED


def test_a_second_element_with_a_signed_id_is_refused(pki: Pki) -> None:
    """Signature wrapping: a copy of the signed Body elsewhere must not pass for it."""
    signed = _signed(pki.hospital_a)
    root = parse_document(signed)
    security = root.find(f".//{{{WSSE_NS}}}Security")
    assert security is not None
    body = root[-1]
    decoy = etree.SubElement(security, "Decoy")
    decoy.append(etree.fromstring(etree.tostring(body)))
    assert _check(etree.tostring(root), pki) is Defect.MALFORMED


def test_odd_but_valid_forms_stay_valid(pki: Pki) -> None:
    odd = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<?piano note?>\n'
        b'<S:Envelope xmlns:S="http://www.w3.org/2003/05/soap-envelope"><!-- c -->'
        b'<S:Header><r:Routage xmlns:r="urn:piano:roc:routage:v1"><r:Service>IDB</r:Service>'
        b"<r:VersionROC>V1</r:VersionROC><r:AMC><r:Numero>990000101</r:Numero>"
        b"<r:TypeConvention>TP</r:TypeConvention></r:AMC><r:Emetteur>"
        b"<r:FinessJuridique>990000010</r:FinessJuridique><!-- sender -->"
        b"<r:FinessGeographique>990000028</r:FinessGeographique></r:Emetteur>"
        b"<r:IdentifiantEchange>x-1</r:IdentifiantEchange></r:Routage></S:Header>\n"
        b'<S:Body><DemandeIDB xmlns="urn:piano:roc:idb:v1"><?pi inside?><Beneficiaire/>'
        b"</DemandeIDB></S:Body></S:Envelope>\n"
    )
    signed = _signed(pki.hospital_a, odd)
    assert b"<?pi inside?>" in signed and b"<!-- sender -->" in signed
    assert _check(signed.replace(b"\n", b"\r\n"), pki) is None
    commented = signed.replace(b"<Beneficiaire/>", b"<!-- added --><Beneficiaire/>")
    assert _check(commented, pki) is None  # comments are not signed (exclusive c14n)


def test_signing_needs_a_routing_block_and_an_unsigned_message(pki: Pki) -> None:
    bare = b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>'
    with pytest.raises(SigningError, match="routing block"):
        _signed(pki.hospital_a, bare)
    with pytest.raises(SigningError, match="already"):
        _signed(pki.hospital_a, _signed(pki.hospital_a))


def test_the_command_signs_and_verifies_with_its_exit_codes(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = _pem(pki.hospital_a)
    (tmp_path / "a.pem").write_bytes(cert)
    (tmp_path / "a.key").write_bytes(key)
    (tmp_path / "ca.pem").write_bytes(pki.ca.certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "in.xml").write_bytes(_message())
    args = ["--cert", str(tmp_path / "a.pem"), "--key", str(tmp_path / "a.key")]
    assert main(["sign", *args, str(tmp_path / "in.xml")]) == 0
    (tmp_path / "out.xml").write_bytes(capsys.readouterr().out.encode())
    ca = ["--ca", str(tmp_path / "ca.pem")]
    assert main(["verify", *ca, str(tmp_path / "out.xml")]) == 0
    assert "valid: signed by FINESS 990000028" in capsys.readouterr().out
    tampered = (tmp_path / "out.xml").read_bytes().replace(b"180039999900794", b"180039999900795")
    (tmp_path / "bad.xml").write_bytes(tampered)
    assert main(["verify", *ca, str(tmp_path / "bad.xml")]) == 1
    assert "SIGNATURE_EMPREINTE" in capsys.readouterr().err
    assert main(["verify", *ca, str(tmp_path / "in.xml")]) == 1
    assert "SIGNATURE_ABSENTE" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "out.xml")]) == 2
    assert main(["verify", *ca, str(tmp_path / "nowhere.xml")]) == 2


def test_the_signed_routing_block_still_validates_against_its_schema(pki: Pki) -> None:
    from mutuelle.schemas import schema

    root = parse_document(_signed(pki.hospital_a))
    routing = root.find(".//{urn:piano:roc:routage:v1}Routage")
    assert routing is not None and routing.get(f"{{{WSU_NS}}}Id") == "id-routage"
    assert schema("ROUTAGE").validate(routing), schema("ROUTAGE").error_log


def test_a_second_routing_block_beside_the_signed_one_is_refused(pki: Pki) -> None:
    signed = _signed(pki.hospital_a)
    root = parse_document(signed)
    routing = root.find(".//{urn:piano:roc:routage:v1}Routage")
    assert routing is not None and routing.getparent() is not None
    copy = etree.fromstring(etree.tostring(routing))
    del copy.attrib[f"{{{WSU_NS}}}Id"]
    routing.getparent().append(copy)
    assert _check(etree.tostring(root), pki) is Defect.MALFORMED


def test_a_certificate_checked_again_after_it_expired_is_refused(pki: Pki) -> None:
    """The chain is remembered, its dates are compared on every check."""
    certificate = pki.hospital_a.certificate
    pki.trust.check(certificate, NOW)
    later = certificate.not_valid_after_utc + datetime.timedelta(seconds=1)
    with pytest.raises(SignatureInvalid) as raised:
        pki.trust.check(certificate, later)
    assert raised.value.defect is Defect.EXPIRED
    pki.trust.check(certificate, NOW)


def test_a_certificate_from_an_expired_ca_is_refused() -> None:
    old_ca = make_ca("Old CA", NOW - datetime.timedelta(days=3651))
    leaf = issue(old_ca, "A", client=True, finess=HOSPITAL_A["site"])
    with pytest.raises(SignatureInvalid) as raised:
        Trust([old_ca.certificate]).check(leaf.certificate, NOW)
    assert raised.value.defect is Defect.EXPIRED
