"""Who may read what: an establishment its own page (certificate FINESS), the agency all pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from piano.tls import TLSConfigError, load_pem_certificates
from roc.certificates import finess_from_certificate


@dataclass(frozen=True, slots=True)
class Identity:
    """The reader named by a client certificate: an establishment, the agency, or nobody."""

    finess: str | None = None
    agency: bool = False
    #: Who the agency's reader is (its certificate's common name): the author of the changes
    #: the promotion page prints.
    name: str | None = None

    def may_read(self, finess: str) -> bool:
        return self.agency or self.finess == finess

    @property
    def known(self) -> bool:
        return self.agency or self.finess is not None


def fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


def agency_fingerprints(paths: Sequence[Path]) -> frozenset[bytes]:
    """SHA-256 fingerprints of every certificate in the PEM files at *paths*."""
    found = set()
    for path in paths:
        for cert in load_pem_certificates(path):
            found.add(fingerprint(cert.original.to_cryptography()))
    if paths and not found:
        raise TLSConfigError("access.agency_certificates: no certificate found")
    return frozenset(found)


def identify(
    cert: x509.Certificate | None, finess_attribute: str, agency: frozenset[bytes]
) -> Identity:
    """The reader *cert* names; an agency certificate wins over a FINESS it may also carry."""
    if cert is None:
        return Identity()
    if fingerprint(cert) in agency:
        return Identity(agency=True, name=agent_name(cert))
    return Identity(finess=finess_from_certificate(cert, finess_attribute))


def agent_name(cert: x509.Certificate) -> str:
    """The certificate's common name (its SHA-256 fingerprint when it has none), printable."""
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    printable = "".join(c for c in text if c.isprintable()).strip()
    return printable or f"certificat sha256:{fingerprint(cert).hex()[:16]}"
