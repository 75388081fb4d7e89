"""Requests signed as each signature case says (``mutuelle.specs_signature.HOW_SENT``).

For the demo, the tests and trainers: ``signed_as(message, defect, signers)`` returns
*message* signed by the sender's certificate, or broken in the one way *defect* names, with
the development PKI's certificates (``tools.devpki``). Signing itself is ``roc.signature``'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from roc.signature import BODY_ID, Defect, sign
from tools.devpki import Issued

#: (certificate PEM, private key PEM)
Pem = tuple[bytes, bytes]


def pem_of(issued: Issued) -> Pem:
    cert = issued.certificate.public_bytes(serialization.Encoding.PEM)
    key = issued.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert, key


@dataclass(frozen=True, slots=True)
class Signers:
    """The certificates the cases sign with."""

    #: The sending establishment's valid certificate.
    sender: Pem
    #: Another establishment's valid certificate.
    other: Pem
    #: A certificate from a CA nobody trusts.
    untrusted: Pem
    #: The sender's certificate, expired.
    expired: Pem

    @classmethod
    def from_directory(
        cls, pki: Path, sender: str = "hospital-a", other: str = "hospital-b"
    ) -> Signers:
        """The development PKI's certificates under *pki* (``python -m tools.devpki``)."""

        def read(stem: str) -> Pem:
            return (pki / f"{stem}.pem").read_bytes(), (pki / f"{stem}.key").read_bytes()

        return cls(read(sender), read(other), read("untrusted-hospital"), read(f"{sender}-expired"))


_BODY_ID = re.compile(rb'(:Id=")' + re.escape(BODY_ID.encode()) + rb'"')
_BODY_OPEN = re.compile(rb"<([A-Za-z_][\w.-]*:)?Body\b[^>]*>")
_SIGNATURE_VALUE = re.compile(rb"<([A-Za-z_][\w.-]*:)?SignatureValue>")


def signed_as(message: bytes, defect: Defect | None, signers: Signers) -> bytes:
    """*message* signed validly (*defect* None) or with the one *defect* a case names."""
    if defect is Defect.MISSING:
        return message
    certificate = (
        {
            Defect.UNTRUSTED: signers.untrusted,
            Defect.EXPIRED: signers.expired,
            Defect.FINESS: signers.other,
        }.get(defect, signers.sender)
        if defect is not None
        else signers.sender
    )
    signed = sign(message, *certificate)
    if defect is Defect.MALFORMED:
        return _BODY_ID.sub(rb'\1autre-corps"', signed, count=1)
    if defect is Defect.DIGEST:
        opening = _BODY_OPEN.search(signed)
        assert opening is not None
        return signed[: opening.end()] + b" " + signed[opening.end() :]
    if defect is Defect.VALUE:
        value = _SIGNATURE_VALUE.search(signed)
        assert value is not None
        at = value.end()
        flipped = b"B" if signed[at : at + 1] == b"A" else b"A"
        return signed[:at] + flipped + signed[at + 1 :]
    return signed
