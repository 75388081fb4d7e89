"""XML signatures against an independent implementation: xmlsec1 (libxmlsec1, OpenSSL).

The project signs, xmlsec1 verifies; xmlsec1 signs (from a template of the model's form), the
project verifies. Also through the command publishers use (``python -m roc.signature``), as
processes: a tampered Body byte, an unknown CA and another establishment's certificate are
each refused with their rule.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from roc.messages import Routing, envelope
from roc.model import SoapVersion
from roc.signature import (
    BASE64_BINARY,
    DS_NS,
    WSSE_NS,
    WSU_NS,
    X509_VALUE_TYPE,
)
from tools.devpki import HOSPITAL_A

#: Never skipped: `make test-integration` installs it (`make system-deps`, Debian xmlsec1).
XMLSEC1 = shutil.which("xmlsec1")
BODY = (
    '<idb:DemandeIDB xmlns:idb="urn:piano:roc:idb:v1"><idb:Beneficiaire>'
    "<idb:NIR>180039999900794</idb:NIR></idb:Beneficiaire></idb:DemandeIDB>"
)
_ID_ATTRS = ("--id-attr:Id", "Body", "--id-attr:Id", "Routage")


def _message(version: SoapVersion = SoapVersion.SOAP11) -> bytes:
    routing = Routing("IDB", "990000101", HOSPITAL_A["legal"], HOSPITAL_A["site"])
    return envelope(routing, BODY, version)


def _roc_signature(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "roc.signature", *args], capture_output=True, timeout=60
    )


def _sign(pki: Path, stem: str, message: Path) -> bytes:
    done = _roc_signature(
        "sign", "--cert", str(pki / f"{stem}.pem"), "--key", str(pki / f"{stem}.key"), str(message)
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def xmlsec1_sign(pki: Path, stem: str, template: bytes, directory: Path) -> bytes:
    """*template* signed by xmlsec1 with *stem*'s key."""
    (directory / "template.xml").write_bytes(template)
    done = _xmlsec1(
        "--sign", "--privkey-pem", str(pki / f"{stem}.key"), *_ID_ATTRS,
        "--output", str(directory / "xmlsec1-signed.xml"), str(directory / "template.xml"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return (directory / "xmlsec1-signed.xml").read_bytes()


def _xmlsec1(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert XMLSEC1 is not None, "xmlsec1 missing: run `make system-deps` (Debian package xmlsec1)"
    return subprocess.run([XMLSEC1, *args], capture_output=True, timeout=60)


@pytest.mark.parametrize("version", list(SoapVersion))
def test_xmlsec1_verifies_a_message_the_project_signed(
    pki: Path, tmp_path: Path, version: SoapVersion
) -> None:
    (tmp_path / "in.xml").write_bytes(_message(version))
    signed = tmp_path / "signed.xml"
    signed.write_bytes(_sign(pki, "hospital-a", tmp_path / "in.xml"))
    done = _xmlsec1(
        "--verify", "--pubkey-cert-pem", str(pki / "hospital-a.pem"), *_ID_ATTRS, str(signed)
    )
    assert done.returncode == 0, done.stderr
    assert b"SignedInfo References (ok/all): 2/2" in done.stderr
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(signed.read_bytes().replace(b"180039999900794", b"180039999900795"))
    refused = _xmlsec1(
        "--verify", "--pubkey-cert-pem", str(pki / "hospital-a.pem"), *_ID_ATTRS, str(tampered)
    )
    assert refused.returncode != 0


def xmlsec1_template(
    message: bytes,
    certificate: x509.Certificate,
    prefixes: tuple[str, str, str] = ("wsse", "wsu", "ds"),
) -> bytes:
    """*message* with the model's wsse:Security header left for xmlsec1 to fill in, its
    namespaces under *prefixes* (WS-Security, utility, XML-DSig)."""
    root = etree.fromstring(message)
    soap = etree.QName(root).namespace
    header = root.find(f"{{{soap}}}Header")
    body = root.find(f"{{{soap}}}Body")
    assert header is not None and body is not None
    routing = header.find("{urn:piano:roc:routage:v1}Routage")
    assert routing is not None
    wsse, wsu, dsig = prefixes
    body.set(f"{{{WSU_NS}}}Id", "corps-xmlsec")
    routing.set(f"{{{WSU_NS}}}Id", "routage-xmlsec")
    security = etree.Element(f"{{{WSSE_NS}}}Security", nsmap={wsse: WSSE_NS, wsu: WSU_NS})
    security.set(f"{{{soap}}}mustUnderstand", "1")
    token = etree.SubElement(security, f"{{{WSSE_NS}}}BinarySecurityToken")
    token.set("EncodingType", BASE64_BINARY)
    token.set("ValueType", X509_VALUE_TYPE)
    token.set(f"{{{WSU_NS}}}Id", "jeton")
    token.text = base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()
    ds = f"{{{DS_NS}}}"
    signature = etree.SubElement(security, f"{ds}Signature", nsmap={dsig: DS_NS})
    info = etree.SubElement(signature, f"{ds}SignedInfo")
    exc_c14n = "http://www.w3.org/2001/10/xml-exc-c14n#"
    etree.SubElement(info, f"{ds}CanonicalizationMethod", Algorithm=exc_c14n)
    etree.SubElement(
        info, f"{ds}SignatureMethod", Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
    )
    for ident in ("corps-xmlsec", "routage-xmlsec"):
        reference = etree.SubElement(info, f"{ds}Reference", URI=f"#{ident}")
        transforms = etree.SubElement(reference, f"{ds}Transforms")
        etree.SubElement(transforms, f"{ds}Transform", Algorithm=exc_c14n)
        etree.SubElement(
            reference, f"{ds}DigestMethod", Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"
        )
        etree.SubElement(reference, f"{ds}DigestValue")
    etree.SubElement(signature, f"{ds}SignatureValue")
    key_info = etree.SubElement(signature, f"{ds}KeyInfo")
    token_reference = etree.SubElement(key_info, f"{{{WSSE_NS}}}SecurityTokenReference")
    etree.SubElement(
        token_reference, f"{{{WSSE_NS}}}Reference", URI="#jeton", ValueType=X509_VALUE_TYPE
    )
    header.insert(0, security)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.mark.parametrize("version", list(SoapVersion))
def test_the_project_verifies_a_message_xmlsec1_signed(
    pki: Path, tmp_path: Path, version: SoapVersion
) -> None:
    certificate = x509.load_pem_x509_certificate((pki / "hospital-a.pem").read_bytes())
    template = tmp_path / "template.xml"
    template.write_bytes(xmlsec1_template(_message(version), certificate))
    signed = tmp_path / "signed.xml"
    done = _xmlsec1(
        "--sign", "--privkey-pem", str(pki / "hospital-a.key"), *_ID_ATTRS,
        "--output", str(signed), str(template),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert b"<ds:DigestValue></ds:DigestValue>" not in signed.read_bytes()
    checked = _roc_signature("verify", "--ca", str(pki / "ca.pem"), str(signed))
    assert checked.returncode == 0, checked.stderr
    assert b"valid: signed by FINESS 990000028" in checked.stdout
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(signed.read_bytes().replace(b"180039999900794", b"180039999900795"))
    refused = _roc_signature("verify", "--ca", str(pki / "ca.pem"), str(tampered))
    assert refused.returncode == 1
    assert b"SIGNATURE_EMPREINTE" in refused.stderr


def test_the_command_refuses_an_unknown_ca_and_another_establishments_certificate(
    pki: Path, tmp_path: Path
) -> None:
    (tmp_path / "in.xml").write_bytes(_message())
    for stem, rule in (
        ("untrusted-hospital", b"SIGNATURE_CERTIFICAT_INCONNU"),
        ("hospital-b", b"SIGNATURE_FINESS"),
        ("hospital-a-expired", b"SIGNATURE_CERTIFICAT_EXPIRE"),
    ):
        signed = tmp_path / f"{stem}.xml"
        signed.write_bytes(_sign(pki, stem, tmp_path / "in.xml"))
        # xmlsec1 finds each signature itself sound: only the certificate is wrong.
        sound = _xmlsec1(
            "--verify", "--pubkey-cert-pem", str(pki / f"{stem}.pem"), *_ID_ATTRS, str(signed)
        )
        assert sound.returncode == 0, sound.stderr
        refused = _roc_signature("verify", "--ca", str(pki / "ca.pem"), str(signed))
        assert refused.returncode == 1, stem
        assert rule in refused.stderr, refused.stderr
