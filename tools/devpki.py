"""A development PKI for PiANO: a CA and every certificate the demo and the tests need.

``python -m tools.devpki [DIR]`` writes, under ``.dev/pki/`` by default (git-ignored):

- ``ca.pem`` / ``ca.key``: the development CA every service trusts;
- ``rpn-server``: the relay's server certificate (localhost, 127.0.0.1);
- ``hospital-a``, ``hospital-b``: establishment client certificates with distinct FINESS numbers;
- ``untrusted-ca.pem`` and ``untrusted-hospital``: a client certificate from a CA nobody trusts;
- ``hospital-a-expired``: hospital A's site certificate, expired (signature checks refuse it);
- ``mutuelle-server``: the simulator's server certificate;
- ``rpn-client``: the relay's client certificate toward AMCs.

Nothing here is secret: these keys exist for loopback development only. The establishment
FINESS is written as a health-PKI structure identifier ("3" + FINESS) in the subject OU.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: Fictitious establishments of the development PKI (department 99 exists nowhere).
HOSPITAL_A = {"legal": "990000010", "site": "990000028"}
HOSPITAL_B = {"legal": "990000036", "site": "990000044"}
UNTRUSTED_FINESS = "990000051"


#: Every certificate ``generate`` writes (``<stem>.pem``).
STEMS = (
    "ca",
    "rpn-server",
    "hospital-a",
    "hospital-b",
    "hospital-a-expired",
    "untrusted-ca",
    "untrusted-hospital",
    "mutuelle-server",
    "rpn-client",
)


def registration(*hospitals: Mapping[str, str]) -> list[dict[str, object]]:
    """The relay's ``establishments.legal_entities`` entries registering *hospitals*."""
    return [{"finess": h["legal"], "sites": [h["site"]]} for h in hospitals]


@dataclass(frozen=True)
class Issued:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey


def _name(cn: str, o: str = "PiANO dev", ou: str | None = None) -> x509.Name:
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, o),
    ]
    if ou:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_ca(cn: str, now: datetime.datetime | None = None) -> Issued:
    now = now or datetime.datetime.now(datetime.UTC)
    key = _key()
    name = _name(cn)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(
    ca: Issued,
    cn: str,
    *,
    server_names: tuple[str, ...] = (),
    client: bool = False,
    finess: str | None = None,
    organisation: str = "PiANO dev",
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> Issued:
    """A leaf certificate signed by *ca*: a server one when *server_names* is given, a client
    one when *client*, carrying *finess* as OU "3" + FINESS."""
    now = datetime.datetime.now(datetime.UTC)
    key = _key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, organisation, f"3{finess}" if finess else None))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(days=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
    )
    usages = []
    if server_names:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        sans: list[x509.GeneralName] = []
        for n in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if client:
        usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
    builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def write(directory: Path, stem: str, issued: Issued, with_key: bool = True) -> None:
    """Write *stem*.pem (and *stem*.key, mode 0600) under *directory*."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{stem}.pem").write_bytes(
        issued.certificate.public_bytes(serialization.Encoding.PEM)
    )
    if with_key:
        path = directory / f"{stem}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(
                issued.key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )


def load(directory: Path, stem: str) -> Issued:
    cert = x509.load_pem_x509_certificate((directory / f"{stem}.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / f"{stem}.key").read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return Issued(cert, key)


def generate(directory: Path) -> None:
    """Write the whole development PKI under *directory*."""
    local = ("localhost", "127.0.0.1")
    ca = make_ca("PiANO Dev CA")
    write(directory, "ca", ca)
    write(directory, "rpn-server", issue(ca, "rpn.localhost", server_names=local))
    write(
        directory,
        "hospital-a",
        issue(
            ca,
            "CH Fictif A - ROC",
            client=True,
            finess=HOSPITAL_A["site"],
            organisation="Centre hospitalier fictif A",
        ),
    )
    write(
        directory,
        "hospital-b",
        issue(
            ca,
            "CH Fictif B - ROC",
            client=True,
            finess=HOSPITAL_B["site"],
            organisation="Centre hospitalier fictif B",
        ),
    )
    expired_at = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    write(
        directory,
        "hospital-a-expired",
        issue(
            ca,
            "CH Fictif A - ROC (expiré)",
            client=True,
            finess=HOSPITAL_A["site"],
            organisation="Centre hospitalier fictif A",
            not_before=expired_at - datetime.timedelta(days=365),
            not_after=expired_at,
        ),
    )
    rogue = make_ca("Untrusted Dev CA")
    write(directory, "untrusted-ca", rogue, with_key=False)
    write(
        directory,
        "untrusted-hospital",
        issue(rogue, "Clinique non reconnue", client=True, finess=UNTRUSTED_FINESS),
    )
    write(directory, "mutuelle-server", issue(ca, "mutuelle.localhost", server_names=local))
    write(directory, "rpn-client", issue(ca, "rpn-client", client=True))


def ensure(directory: Path, force: bool = False) -> bool:
    """Write the PKI under *directory* unless it is complete; whether it was written.

    A PKI written before a certificate was added to it is written again, whole.
    """
    complete = all((directory / f"{stem}.pem").exists() for stem in STEMS)
    if complete and not force:
        return False
    generate(directory)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default=".dev/pki", type=Path)
    parser.add_argument("--force", action="store_true", help="regenerate even if present")
    args = parser.parse_args(argv)
    if not ensure(args.directory, args.force):
        print(f"development PKI already in {args.directory} (use --force to regenerate)")
        return 0
    print(f"development PKI written to {args.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
