"""XML signatures of ROC messages (the project's model, docs/roc-model.md): make and check them.

A signed message carries, in its SOAP header, a ``wsse:Security`` block holding the signer's
certificate (``wsse:BinarySecurityToken``) and one ``ds:Signature`` (exclusive
canonicalisation, RSA-SHA256, SHA-256 digests) with two references by ``wsu:Id``: the SOAP
Body and the routing block. Canonicalisation, digests and signature values are ``signxml``'s
(on ``lxml`` and ``cryptography``); the chain of trust is checked with pyOpenSSL's store. This
module only places the elements and says which rule a message breaks.

Pure: bytes, certificates and a time in, bytes or a verdict out. Reasons are in English and
never quote the message (it carries personal data); ``mutuelle.wording`` gives the French.

``python -m roc.signature sign --cert C --key K IN.xml > OUT.xml`` and
``python -m roc.signature verify --ca CA.pem IN.xml`` (exit 0 valid, 1 invalid, 2 usage).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import enum
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from OpenSSL import crypto
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from roc.certificates import finess_from_certificate
from roc.model import ROUTING_NS, SOAP11_NS, SOAP12_NS, SoapVersion
from roc.routing import RoutingProblem, block_texts, routing_key_from_block
from roc.xmlsafe import MalformedXml, UnsafeXml, parse_document

WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
X509_VALUE_TYPE = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
)
BASE64_BINARY = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)
#: The ``wsu:Id`` the signer gives the parts it signs when they have none.
BODY_ID = "id-corps"
ROUTING_ID = "id-routage"
CERTIFICATE_ID = "id-certificat"

_WSU_ID = f"{{{WSU_NS}}}Id"
_ENVELOPES = (SOAP11_NS, SOAP12_NS)
_ROUTAGE = f"{{{ROUTING_NS}}}Routage"
_SECURITY = f"{{{WSSE_NS}}}Security"
_TOKEN = f"{{{WSSE_NS}}}BinarySecurityToken"
_SIGNATURE = f"{{{DS_NS}}}Signature"
#: OpenSSL's X509_V_FLAG_NO_CHECK_TIME (1.1.0 and later; pyOpenSSL does not name it): the
#: chain is built without its dates, which ``Trust.check`` compares itself.
_X509_V_FLAG_NO_CHECK_TIME = 0x200000
#: Chains remembered per ``Trust`` (establishments' certificates are few).
_MAX_WINDOWS = 4096
_EXPECTED = SignatureConfiguration(
    require_x509=True,
    expect_references=2,
    signature_methods=frozenset({SignatureMethod.RSA_SHA256}),
    digest_algorithms=frozenset({DigestAlgorithm.SHA256}),
)


class Defect(enum.Enum):
    """How a message's signature fails; values are the stable rule codes reports name."""

    MISSING = "SIGNATURE_ABSENTE"
    MALFORMED = "SIGNATURE_FORME"
    DIGEST = "SIGNATURE_EMPREINTE"
    VALUE = "SIGNATURE_VALEUR"
    UNTRUSTED = "SIGNATURE_CERTIFICAT_INCONNU"
    EXPIRED = "SIGNATURE_CERTIFICAT_EXPIRE"
    FINESS = "SIGNATURE_FINESS"


class SignatureInvalid(Exception):
    """The message's signature breaks *defect*; *reason* (English) names the part, no value."""

    def __init__(self, defect: Defect, reason: str) -> None:
        super().__init__(f"{defect.value}: {reason}")
        self.defect = defect
        self.reason = reason


class SigningError(ValueError):
    """The message cannot be signed (not a SOAP envelope with a routing block, bad key...)."""


@dataclass(frozen=True, slots=True)
class Signed:
    """A valid signature: who signed (the FINESS in the certificate) and with what."""

    signer_finess: str | None
    certificate: x509.Certificate


class Trust:
    """The certification authorities whose certificates may sign messages."""

    def __init__(self, authorities: Iterable[x509.Certificate]) -> None:
        self.authorities = tuple(authorities)
        if not self.authorities:
            raise ValueError("at least one certification authority is needed")
        self._store_certificates = [crypto.X509.from_cryptography(a) for a in self.authorities]
        #: Certificate fingerprint -> (start, end) of its chain's validity.
        self._windows: dict[bytes, tuple[datetime.datetime, ...]] = {}

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> Trust:
        return cls(
            cert for path in paths for cert in x509.load_pem_x509_certificates(path.read_bytes())
        )

    def check(self, certificate: x509.Certificate, now: datetime.datetime) -> None:
        """Raise ``SignatureInvalid`` unless *certificate* chains to an authority at *now*.

        The chain is built once per certificate (its validity window kept, a bounded number
        of them); the time is compared with the window on every check.
        """
        key = certificate.fingerprint(hashes.SHA256())
        window = self._windows.get(key)
        if window is None:
            window = self._chain_window(certificate)
            if len(self._windows) >= _MAX_WINDOWS:
                del self._windows[next(iter(self._windows))]
            self._windows[key] = window
        start, end = window
        if not start <= now <= end:
            raise SignatureInvalid(
                Defect.EXPIRED, "the signer's certificate is expired or not yet valid"
            )

    def _chain_window(self, certificate: x509.Certificate) -> tuple[datetime.datetime, ...]:
        """When the chain from *certificate* to an authority is valid (times not checked)."""
        store = crypto.X509Store()
        for authority in self._store_certificates:
            store.add_cert(authority)
        store.set_flags(_X509_V_FLAG_NO_CHECK_TIME)
        context = crypto.X509StoreContext(store, crypto.X509.from_cryptography(certificate))
        try:
            chain = [c.to_cryptography() for c in context.get_verified_chain()]
        except crypto.X509StoreContextError:
            raise SignatureInvalid(
                Defect.UNTRUSTED,
                "the signer's certificate was not issued by a trusted certification authority",
            ) from None
        start = max(c.not_valid_before_utc for c in chain)
        end = min(c.not_valid_after_utc for c in chain)
        return start, end


# Where the parts sit.


@dataclass(frozen=True, slots=True)
class _Parts:
    envelope: etree._Element
    header: etree._Element | None
    body: etree._Element
    routing: etree._Element | None


def _parts(root: etree._Element) -> _Parts:
    namespace = etree.QName(root).namespace
    if namespace not in _ENVELOPES or etree.QName(root).localname != "Envelope":
        raise ValueError("the root element is not a SOAP Envelope")
    header = root.find(f"{{{namespace}}}Header")
    body = root.find(f"{{{namespace}}}Body")
    if body is None:
        raise ValueError("the SOAP Envelope has no Body")
    routing = None if header is None else header.find(_ROUTAGE)
    return _Parts(root, header, body, routing)


# Signing.


def sign(document: bytes, certificate_pem: bytes, key_pem: bytes) -> bytes:
    """*document* (a SOAP envelope with a routing block) signed with this key and certificate.

    The Body and the routing block get a ``wsu:Id`` when they have none; comments,
    processing instructions and namespace prefixes are kept. A document already signed is
    refused (sign the unsigned message).
    """
    try:
        root = parse_document(document, max_bytes=len(document) + 1)
        parts = _parts(root)
    except (UnsafeXml, MalformedXml, ValueError) as exc:
        raise SigningError(str(exc)) from None
    if parts.header is None or parts.routing is None:
        raise SigningError("the SOAP header has no routing block (Routage) to sign")
    if parts.header.find(_SECURITY) is not None:
        raise SigningError("the message already has a wsse:Security header")
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError:
        raise SigningError("the certificate is not a PEM X.509 certificate") from None
    body_id = _ensure_id(parts.body, BODY_ID)
    routing_id = _ensure_id(parts.routing, ROUTING_ID)
    soap = etree.QName(root).namespace
    security = etree.Element(_SECURITY, nsmap={"wsse": WSSE_NS, "wsu": WSU_NS})
    security.set(f"{{{soap}}}mustUnderstand", "1")
    token = etree.SubElement(security, _TOKEN)
    token.set("EncodingType", BASE64_BINARY)
    token.set("ValueType", X509_VALUE_TYPE)
    token.set(_WSU_ID, CERTIFICATE_ID)
    token.text = base64.b64encode(certificate.public_bytes(Encoding.DER)).decode()
    parts.header.insert(0, security)
    signer = XMLSigner(
        method=SignatureConstructionMethod.detached,
        signature_algorithm=SignatureMethod.RSA_SHA256,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    try:
        signature = signer.sign(
            root,
            key=key_pem,
            reference_uri=[f"#{body_id}", f"#{routing_id}"],
            key_info=_token_reference(),
            id_attribute="Id",
        )
    except (InvalidInput, ValueError, TypeError) as exc:
        raise SigningError(f"cannot sign: {exc}") from None
    security.append(signature)
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")


def _ensure_id(element: etree._Element, default: str) -> str:
    current = element.get(_WSU_ID)
    if current:
        return current
    element.set(_WSU_ID, default)
    return default


def _token_reference() -> etree._Element:
    key_info = etree.Element(f"{{{DS_NS}}}KeyInfo", nsmap={"ds": DS_NS})
    reference = etree.SubElement(
        key_info, f"{{{WSSE_NS}}}SecurityTokenReference", nsmap={"wsse": WSSE_NS}
    )
    pointer = etree.SubElement(reference, f"{{{WSSE_NS}}}Reference")
    pointer.set("URI", f"#{CERTIFICATE_ID}")
    pointer.set("ValueType", X509_VALUE_TYPE)
    return key_info


# Checking.


def verify(
    root: etree._Element,
    trust: Trust,
    now: datetime.datetime,
    senders: Sequence[str] | None = None,
) -> Signed:
    """Check the signature of the parsed message *root*; raise ``SignatureInvalid``.

    The signature must cover the message's own Body and routing block, with the expected
    algorithms, be made by the key of the certificate it carries, that certificate must chain
    to *trust* and be valid at *now* and, when *senders* is given (the routing block's FINESS
    pair), name one of them.
    """
    try:
        parts = _parts(root)
    except ValueError as exc:
        raise SignatureInvalid(Defect.MALFORMED, str(exc)) from None
    security = None if parts.header is None else parts.header.find(_SECURITY)
    if security is None or security.find(_SIGNATURE) is None:
        raise SignatureInvalid(Defect.MISSING, "no ds:Signature in a wsse:Security header")
    if len(security.findall(_SIGNATURE)) != 1:
        raise SignatureInvalid(Defect.MALFORMED, "more than one ds:Signature in wsse:Security")
    certificate = _token_certificate(security)
    covered = _covered_ids(security.find(_SIGNATURE))
    if parts.routing is None:
        raise SignatureInvalid(Defect.MALFORMED, "the SOAP header has no routing block")
    if parts.header is not None and len(parts.header.findall(_ROUTAGE)) != 1:
        # A second, unsigned block could be the one a reader takes.
        raise SignatureInvalid(Defect.MALFORMED, "the SOAP header has more than one routing block")
    for name, element in (("the SOAP Body", parts.body), ("the routing block", parts.routing)):
        ident = element.get(_WSU_ID)
        if not ident or ident not in covered:
            raise SignatureInvalid(Defect.MALFORMED, f"the signature does not cover {name}")
    soap = etree.QName(root).namespace
    config = SignatureConfiguration(
        require_x509=_EXPECTED.require_x509,
        expect_references=_EXPECTED.expect_references,
        signature_methods=_EXPECTED.signature_methods,
        digest_algorithms=_EXPECTED.digest_algorithms,
        location=f"./{{{soap}}}Header/{{{WSSE_NS}}}Security/",
        verification_time=now,
    )
    try:
        trust.check(certificate, now)
        XMLVerifier().verify(root, x509_cert=certificate, id_attribute="Id", expect_config=config)
    except InvalidDigest:
        raise SignatureInvalid(
            Defect.DIGEST, "a signed part (Body or routing block) was changed after signing"
        ) from None
    except InvalidCertificate:
        raise SignatureInvalid(
            Defect.EXPIRED, "the signer's certificate is expired or not yet valid"
        ) from None
    except InvalidSignature:
        raise SignatureInvalid(
            Defect.VALUE, "the signature value does not match the signer's certificate"
        ) from None
    except (InvalidInput, ValueError) as exc:
        raise SignatureInvalid(Defect.MALFORMED, _malformed(exc)) from None
    finess = finess_from_certificate(certificate)
    if senders is not None and finess not in senders:
        raise SignatureInvalid(
            Defect.FINESS, "the signer's certificate is not the sending establishment's"
        )
    return Signed(finess, certificate)


def _token_certificate(security: etree._Element) -> x509.Certificate:
    tokens = [t for t in security.findall(_TOKEN) if t.get("ValueType") == X509_VALUE_TYPE]
    if len(tokens) != 1:
        raise SignatureInvalid(
            Defect.MALFORMED, "wsse:Security must hold one X.509 wsse:BinarySecurityToken"
        )
    try:
        der = base64.b64decode("".join((tokens[0].text or "").split()), validate=True)
        return x509.load_der_x509_certificate(der)
    except (ValueError, binascii.Error):
        raise SignatureInvalid(
            Defect.MALFORMED, "the wsse:BinarySecurityToken is not an X.509 certificate"
        ) from None


def _covered_ids(signature: etree._Element | None) -> set[str]:
    if signature is None:
        return set()
    uris = [
        reference.get("URI") or ""
        for reference in signature.iterfind(f"{{{DS_NS}}}SignedInfo/{{{DS_NS}}}Reference")
    ]
    return {uri[1:] for uri in uris if uri.startswith("#")}


def _malformed(exc: Exception) -> str:
    """signxml's words for structural problems (they name elements and algorithms only)."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"the signature is not of the expected form ({text[:200]})"


# The command.


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m roc.signature",
        description="Sign a ROC message (project model) or check its signature.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sign_command = commands.add_parser("sign", help="sign IN.xml, print the signed message")
    sign_command.add_argument("--cert", type=Path, required=True, help="PEM signer certificate")
    sign_command.add_argument("--key", type=Path, required=True, help="PEM private key")
    sign_command.add_argument("input", type=Path, metavar="IN.xml")
    verify_command = commands.add_parser("verify", help="check the signature of IN.xml")
    verify_command.add_argument(
        "--ca", type=Path, required=True, action="append", help="PEM trusted CA (repeatable)"
    )
    verify_command.add_argument("input", type=Path, metavar="IN.xml")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    try:
        data = args.input.read_bytes()
        if args.command == "sign":
            signed = sign(data, args.cert.read_bytes(), args.key.read_bytes())
            sys.stdout.buffer.write(signed)
            return 0
        trust = Trust.from_files(args.ca)
    except OSError as exc:
        print(f"error: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    except SigningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: --ca: {exc}", file=sys.stderr)
        return 2
    return _verify_command(data, trust)


def _verify_command(data: bytes, trust: Trust) -> int:
    try:
        root = parse_document(data, max_bytes=max(len(data), 1))
    except (UnsafeXml, MalformedXml) as exc:
        print(f"invalid: {Defect.MALFORMED.value}: {exc}", file=sys.stderr)
        return 1
    senders, unreadable = _senders(root)
    try:
        signed = verify(root, trust, datetime.datetime.now(datetime.UTC), senders)
    except SignatureInvalid as exc:
        print(f"invalid: {exc.defect.value}: {exc.reason}", file=sys.stderr)
        return 1
    if unreadable:
        print(f"invalid: {Defect.MALFORMED.value}: {unreadable}", file=sys.stderr)
        return 1
    print(f"valid: signed by FINESS {signed.signer_finess or '(none in the certificate)'}")
    return 0


def _senders(root: etree._Element) -> tuple[tuple[str, ...] | None, str]:
    """The routing block's sender pair, read by the rules both ends share (``roc.routing``),
    or why not."""
    ns = etree.QName(root).namespace
    version = SoapVersion.SOAP12 if ns == SOAP12_NS else SoapVersion.SOAP11
    header = root.find(f"{{{ns}}}Header")
    block = None if header is None else header.find(f"{{{ROUTING_NS}}}Routage")
    if block is None:
        return None, "routing block unreadable (no Routage in the SOAP Header)"
    try:
        key = routing_key_from_block(block_texts(block), version)
    except RoutingProblem as exc:
        return None, f"routing block unreadable ({exc})"
    return (key.sender_finess_legal, key.sender_finess_site), ""


if __name__ == "__main__":
    raise SystemExit(main())
