"""TLS contexts for both ends: mutual TLS 1.2+ servers and clients, and the FINESS in a cert.

Contexts are built once from files and swapped whole on reload, never per connection.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.error import VerifyError
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.ssl import TLSVersion
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from zope.interface import implementer

from piano.config import one_of, setting


class TLSConfigError(ValueError):
    """A certificate, key or CA file is missing or unusable; the message names the file."""


@dataclass(frozen=True, slots=True)
class ServerTLSConfig:
    """The ``[tls]`` table of a service that establishments reach with their certificate."""

    certificate: Path = setting("PEM server certificate (leaf first, then intermediates).")
    private_key: Path = setting("PEM private key of the server certificate.")
    ca_certificates: tuple[Path, ...] = setting(
        "PEM files of the CAs whose client certificates are accepted (health PKIs)."
    )
    finess_attribute: str = setting(
        "Subject attribute carrying the establishment FINESS.",
        "OU",
        one_of("OU", "O", "CN", "serialNumber", "organizationIdentifier"),
    )


@dataclass(frozen=True, slots=True)
class TLSFiles:
    certificate: Path
    private_key: Path
    ca_certificates: tuple[Path, ...]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TLSConfigError(f"{path}: cannot read ({exc.strerror})") from None


def load_pem_certificates(path: Path) -> list[ssl.Certificate]:
    """Every certificate in the PEM file at *path* (a CA bundle may hold several)."""
    data = _read(path)
    try:
        return [
            ssl.Certificate.loadPEM(c.public_bytes(encoding=Encoding.PEM))
            for c in x509.load_pem_x509_certificates(data)
        ]
    except ValueError as exc:
        raise TLSConfigError(f"{path}: not a PEM certificate ({exc})") from None


def load_private_certificate(cert: Path, key: Path) -> ssl.PrivateCertificate:
    """The certificate at *cert* with its private key at *key*, checked to match."""
    pem = _read(cert) + b"\n" + _read(key)
    try:
        loaded: ssl.PrivateCertificate = ssl.PrivateCertificate.loadPEM(pem)
        return loaded
    except (SSL.Error, crypto.Error, ValueError, VerifyError) as exc:
        raise TLSConfigError(f"{cert} / {key}: unusable certificate or key ({exc})") from None


def _chain(cert: Path) -> list[crypto.X509]:
    """Intermediate certificates that follow the leaf in *cert*, if any."""
    return [c.original for c in load_pem_certificates(cert)[1:]]


#: TLS 1.2 suites of Mozilla's "intermediate" profile: forward secrecy and AEAD only (TLS 1.3
#: suites are all acceptable and not affected by this list).
INTERMEDIATE_TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
)


def server_options(
    files: TLSFiles, require_client_certificate: bool = True
) -> ssl.CertificateOptions:
    """TLS 1.2+ server options; with client certificates verified against the CA files.

    Sessions resume through stateless tickets only (a returning client skips the full
    handshake); no server-side session cache, which would hold two TLS 1.3 sessions, about
    11 KB with the client certificate, per connection, up to 20,480 sessions.
    """
    private = load_private_certificate(files.certificate, files.private_key)
    cas = [c.original for path in files.ca_certificates for c in load_pem_certificates(path)]
    if require_client_certificate and not cas:
        raise TLSConfigError("client certificates are required but no CA file is configured")
    return ssl.CertificateOptions(
        privateKey=private.privateKey.original,
        certificate=private.original,
        extraCertChain=_chain(files.certificate),
        verify=require_client_certificate,
        caCerts=cas if require_client_certificate else None,
        requireCertificate=require_client_certificate,
        raiseMinimumTo=TLSVersion.TLSv1_2,
        acceptableCiphers=ssl.AcceptableCiphers.fromOpenSSLCipherString(INTERMEDIATE_TLS12_CIPHERS),
        # Resumption through stateless tickets only: the client keeps its session, the
        # server keeps no per-session state (no cache to grow with connections).
        enableSessions=False,
        enableSessionTickets=True,
    )


@implementer(IOpenSSLServerConnectionCreator)
class SwappableServerContext:
    """Hands each new connection the current context; ``swap`` replaces it for new ones.

    Session tickets are sealed with the keys of the *first* context, kept for the process's
    lifetime: each connection starts on that context (OpenSSL takes the ticket keys from the
    context an ``SSL`` object was created with) and is then moved onto the current one
    (certificate, key, CAs). So a reload that changes certificates does not make returning
    clients pay a full handshake, and processes forked after this object was built (the
    relay's workers, ``rpn.workers``) all seal and open each other's tickets. Every context
    gets the same session ID context (Twisted draws a random one per context, and OpenSSL
    refuses a ticket sealed under another).
    """

    def __init__(self, options: ssl.CertificateOptions) -> None:
        self._session_id_context = secrets.token_hex(8).encode("ascii")
        self._sessions: SSL.Context = self._prepared(options)
        self._context: SSL.Context = self._sessions

    def _prepared(self, options: ssl.CertificateOptions) -> SSL.Context:
        context: SSL.Context = options.getContext()
        context.set_session_id(self._session_id_context)
        return context

    def swap(self, options: ssl.CertificateOptions) -> None:
        self._context = self._prepared(options)

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        connection = SSL.Connection(self._sessions, None)
        if self._context is not self._sessions:
            connection.set_context(self._context)
        return connection


def client_options(files: TLSFiles, hostname: str) -> IOpenSSLClientConnectionCreator:
    """Mutual-TLS client options for *hostname*, trusting only the configured CAs."""
    private = load_private_certificate(files.certificate, files.private_key)
    cas = [c for path in files.ca_certificates for c in load_pem_certificates(path)]
    if not cas:
        raise TLSConfigError("no CA file configured to verify the server")
    return ssl.optionsForClientTLS(
        hostname,
        trustRoot=ssl.trustRootFromCertificates(cas),
        clientCertificate=private,
        extraCertificateOptions={
            "raiseMinimumTo": TLSVersion.TLSv1_2,
            "acceptableCiphers": ssl.AcceptableCiphers.fromOpenSSLCipherString(
                INTERMEDIATE_TLS12_CIPHERS
            ),
        },
    )


class WholeMessageTLSFactory(TLSMemoryBIOFactory):
    """TLS for protocols that write each message at once: no write aggregation.

    Twisted's default TLS transport buffers every write until the next reactor iteration (a
    ``callLater(0)`` per burst) so that many small writes make one TLS record. The relay's HTTP
    protocols already write a whole head and body in one call: the buffering only adds a
    timer and a reactor turn of latency to each message.
    """

    protocol = TLSMemoryBIOProtocol
