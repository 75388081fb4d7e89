"""The FINESS an establishment's certificate carries: read by the relay and Mutuelle ANS (TLS
identities), the indicators (access) and the signature check (the signer's FINESS)."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from roc.identifiers import finess_error

#: The subject attributes a FINESS may be read from, by name (configuration).
FINESS_ATTRIBUTES = {
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "CN": NameOID.COMMON_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER,
}


def finess_from_certificate(cert: x509.Certificate, attribute: str = "OU") -> str | None:
    """The establishment FINESS named in *cert*'s subject, or None.

    A 10-character value starting with "3" is a health-PKI structure identifier of type
    FINESS; the FINESS is what follows.
    """
    oid = FINESS_ATTRIBUTES.get(attribute)
    if oid is None:
        raise ValueError(f"unknown subject attribute {attribute!r}")
    for attr in cert.subject.get_attributes_for_oid(oid):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode()
        if len(value) == 10 and value.startswith("3"):
            value = value[1:]
        if finess_error(value) is None:
            return value
    return None
