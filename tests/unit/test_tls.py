"""Mutual TLS for the relay: which clients get in, which files are refused, the FINESS of a client.

Handshakes run in memory (``twisted.test.iosim``) with certificates from ``tools.devpki``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from OpenSSL._util import lib as _openssl
from twisted.internet import ssl
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.test.iosim import connectedServerAndClient
from zope.interface import implementer

from piano.testing import StrictClock
from piano.tls import (
    SwappableServerContext,
    TLSConfigError,
    TLSFiles,
    client_options,
    server_options,
)
from roc.certificates import finess_from_certificate
from roc.identifiers import make_finess
from tools.devpki import Issued, issue, make_ca, write

HOSPITAL_FINESS = "990000028"
SERVER_NAME = "rpn.test"


@dataclass(frozen=True)
class Pki:
    folder: Path
    issued: dict[str, Issued]

    def files(self, stem: str, *cas: str) -> TLSFiles:
        return TLSFiles(
            self.folder / f"{stem}.pem",
            self.folder / f"{stem}.key",
            tuple(self.folder / f"{ca}.pem" for ca in (cas or ("ca",))),
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.UTC)
    ca = make_ca("Test CA")
    rogue = make_ca("Rogue CA")
    issued = {
        "ca": ca,
        "rogue-ca": rogue,
        "server": issue(ca, "rpn server A", server_names=(SERVER_NAME,)),
        "server-b": issue(ca, "rpn server B", server_names=(SERVER_NAME,)),
        "hospital": issue(ca, "CH A", client=True, finess=HOSPITAL_FINESS),
        "rogue-hospital": issue(rogue, "Clinique X", client=True, finess="990000051"),
        "expired-hospital": issue(
            ca,
            "CH expired",
            client=True,
            finess=HOSPITAL_FINESS,
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        ),
    }
    for stem, item in issued.items():
        write(folder, stem, item)
    (folder / "bundle.pem").write_bytes(
        (folder / "ca.pem").read_bytes() + (folder / "rogue-ca.pem").read_bytes()
    )
    return Pki(folder, issued)


# In-memory handshakes


class Recorder(Protocol):
    """An application protocol remembering what it received and why it was disconnected."""

    def __init__(self) -> None:
        self.received = b""
        self.lost: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        self.lost = reason


@dataclass
class Connection:
    server_app: Recorder
    client_app: Recorder
    server_tls: TLSMemoryBIOProtocol
    client_tls: TLSMemoryBIOProtocol

    @property
    def established(self) -> bool:
        """The client's first bytes reached the server's application."""
        return self.server_app.received == b"ping" and self.server_app.lost is None


def connect(
    server: IOpenSSLServerConnectionCreator | ssl.CertificateOptions,
    client: IOpenSSLClientConnectionCreator,
) -> Connection:
    """Handshake *client* with *server* in memory; the client sends b"ping" once connected."""
    clock = StrictClock()
    apps: dict[str, Recorder] = {}

    def app(side: str) -> Callable[[], Recorder]:
        def build() -> Recorder:
            apps[side] = Recorder()
            return apps[side]

        return build

    server_factory = TLSMemoryBIOFactory(
        server, False, Factory.forProtocol(app("server")), clock=clock
    )
    client_factory = TLSMemoryBIOFactory(
        client, True, Factory.forProtocol(app("client")), clock=clock
    )
    client_tls, server_tls, pump = connectedServerAndClient(
        lambda: server_factory.buildProtocol(None),
        lambda: client_factory.buildProtocol(None),
        greet=False,
        clock=clock,
    )
    apps["client"].transport.write(b"ping")
    pump.flush()
    return Connection(apps["server"], apps["client"], server_tls, client_tls)


def ssl_reason(failure: Failure | None) -> str:
    assert failure is not None, "the connection was not closed"
    assert failure.check(SSL.Error), repr(failure)
    return str(failure.value)


def relay_server(pki: Pki, stem: str = "server") -> SwappableServerContext:
    return SwappableServerContext(server_options(pki.files(stem)))


def test_trusted_client_certificate_connects_and_its_finess_is_read(pki: Pki) -> None:
    connection = connect(relay_server(pki), client_options(pki.files("hospital"), SERVER_NAME))
    assert connection.established
    peer = connection.server_tls.getPeerCertificate()
    assert finess_from_certificate(peer.to_cryptography()) == HOSPITAL_FINESS


def test_client_certificate_from_an_untrusted_ca_is_refused(pki: Pki) -> None:
    client = client_options(pki.files("rogue-hospital"), SERVER_NAME)
    connection = connect(relay_server(pki), client)
    assert not connection.established
    assert "certificate verify failed" in ssl_reason(connection.server_app.lost)
    assert "unknown ca" in ssl_reason(connection.client_app.lost)


def test_expired_client_certificate_is_refused(pki: Pki) -> None:
    client = client_options(pki.files("expired-hospital"), SERVER_NAME)
    connection = connect(relay_server(pki), client)
    assert not connection.established
    assert "certificate verify failed" in ssl_reason(connection.server_app.lost)


def test_client_without_a_certificate_is_refused(pki: Pki) -> None:
    trust = ssl.trustRootFromCertificates(
        [ssl.Certificate.loadPEM((pki.folder / "ca.pem").read_bytes())]
    )
    connection = connect(relay_server(pki), ssl.optionsForClientTLS(SERVER_NAME, trust))
    assert not connection.established
    assert "certificate" in ssl_reason(connection.server_app.lost)


def test_a_ca_bundle_trusts_every_ca_it_holds(pki: Pki) -> None:
    server = SwappableServerContext(server_options(pki.files("server", "bundle")))
    client = client_options(pki.files("rogue-hospital"), SERVER_NAME)
    assert connect(server, client).established


@implementer(IOpenSSLClientConnectionCreator)
class RawClient:
    """A client context built by hand, to offer what the relay's own options never would."""

    def __init__(self, context: SSL.Context) -> None:
        self._context = context

    def clientConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_connect_state()
        return connection


@implementer(IOpenSSLServerConnectionCreator)
class RawServer:
    def __init__(self, context: SSL.Context) -> None:
        self._context = context

    def serverConnectionForTLS(self, tlsProtocol: TLSMemoryBIOProtocol) -> SSL.Connection:
        return SSL.Connection(self._context, None)


def _tls11_context(pki: Pki, stem: str, maximum: int) -> SSL.Context:
    context = SSL.Context(SSL.TLS_METHOD)
    context.set_min_proto_version(SSL.TLS1_1_VERSION)
    context.set_max_proto_version(maximum)
    context.set_cipher_list(b"DEFAULT:@SECLEVEL=0")
    context.use_certificate(pki.issued[stem].certificate)
    context.use_privatekey(pki.issued[stem].key)
    return context


def test_client_offering_only_tls_1_1_is_refused(pki: Pki) -> None:
    tls11_client = RawClient(_tls11_context(pki, "hospital", SSL.TLS1_1_VERSION))
    # Control: the same client does complete TLS 1.1 with a server that allows it, so the
    # refusal below is the relay's doing.
    control = connect(RawServer(_tls11_context(pki, "server", SSL.TLS1_3_VERSION)), tls11_client)
    if not control.established:
        pytest.skip("this OpenSSL build cannot speak TLS 1.1 at all")
    assert control.server_tls._tlsConnection.get_protocol_version_name() == "TLSv1.1"

    connection = connect(relay_server(pki), tls11_client)
    assert not connection.established
    assert "unsupported protocol" in ssl_reason(connection.server_app.lost)


def _server_serial(connection: Connection) -> int:
    peer = connection.client_tls.getPeerCertificate()
    return int(peer.to_cryptography().serial_number)


def test_swap_serves_the_new_certificate_to_new_connections(pki: Pki) -> None:
    server = relay_server(pki, "server")
    client = client_options(pki.files("hospital"), SERVER_NAME)
    before = connect(server, client)
    server.swap(server_options(pki.files("server-b")))
    after = connect(server, client)
    assert before.established and after.established
    assert _server_serial(before) == pki.issued["server"].certificate.serial_number
    assert _server_serial(after) == pki.issued["server-b"].certificate.serial_number


def test_swap_to_new_client_cas_refuses_clients_of_the_old_ones(pki: Pki) -> None:
    server = relay_server(pki)
    client = client_options(pki.files("hospital"), SERVER_NAME)
    assert connect(server, client).established
    server.swap(server_options(pki.files("server", "rogue-ca")))
    assert not connect(server, client).established


def test_relay_client_refuses_a_server_with_another_name(pki: Pki) -> None:
    connection = connect(relay_server(pki), client_options(pki.files("hospital"), "amc.test"))
    assert not connection.established
    assert connection.client_app.lost is not None


def test_relay_client_refuses_a_server_from_an_untrusted_ca(pki: Pki) -> None:
    client = client_options(pki.files("hospital", "rogue-ca"), SERVER_NAME)
    connection = connect(relay_server(pki), client)
    assert not connection.established
    assert "certificate verify failed" in ssl_reason(connection.client_app.lost)


# Files


def test_a_missing_certificate_file_is_named(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "absent.pem"
    files = TLSFiles(missing, pki.folder / "server.key", (pki.folder / "ca.pem",))
    with pytest.raises(TLSConfigError) as caught:
        server_options(files)
    assert f"{missing}: cannot read (No such file or directory)" in str(caught.value)


def test_a_missing_key_file_is_named(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "absent.key"
    files = TLSFiles(pki.folder / "hospital.pem", missing, (pki.folder / "ca.pem",))
    with pytest.raises(TLSConfigError) as caught:
        client_options(files, SERVER_NAME)
    assert f"{missing}: cannot read" in str(caught.value)


def test_a_missing_ca_file_is_named(pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "absent-ca.pem"
    files = TLSFiles(pki.folder / "server.pem", pki.folder / "server.key", (missing,))
    with pytest.raises(TLSConfigError) as caught:
        server_options(files)
    assert str(caught.value).startswith(f"{missing}: cannot read")


def test_a_ca_file_without_certificates_is_named(pki: Pki, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    files = TLSFiles(pki.folder / "server.pem", pki.folder / "server.key", (garbage,))
    with pytest.raises(TLSConfigError) as caught:
        server_options(files)
    assert str(caught.value).startswith(f"{garbage}: not a PEM certificate")


def test_a_key_that_does_not_match_the_certificate_is_refused_naming_both(pki: Pki) -> None:
    cert, key = pki.folder / "server.pem", pki.folder / "hospital.key"
    with pytest.raises(TLSConfigError) as caught:
        server_options(TLSFiles(cert, key, (pki.folder / "ca.pem",)))
    assert str(caught.value).startswith(f"{cert} / {key}: unusable certificate or key")


def test_server_requiring_client_certificates_needs_a_ca(pki: Pki) -> None:
    files = TLSFiles(pki.folder / "server.pem", pki.folder / "server.key", ())
    with pytest.raises(TLSConfigError) as caught:
        server_options(files)
    assert "no CA file is configured" in str(caught.value)


def test_server_without_client_certificates_needs_no_ca(pki: Pki) -> None:
    files = TLSFiles(pki.folder / "server.pem", pki.folder / "server.key", ())
    options = server_options(files, require_client_certificate=False)
    trust = ssl.trustRootFromCertificates(
        [ssl.Certificate.loadPEM((pki.folder / "ca.pem").read_bytes())]
    )
    connection = connect(options, ssl.optionsForClientTLS(SERVER_NAME, trust))
    assert connection.established
    assert connection.server_tls.getPeerCertificate() is None


def test_client_needs_a_ca_to_verify_the_server(pki: Pki) -> None:
    files = TLSFiles(pki.folder / "hospital.pem", pki.folder / "hospital.key", ())
    with pytest.raises(TLSConfigError) as caught:
        client_options(files, SERVER_NAME)
    assert str(caught.value) == "no CA file configured to verify the server"


# The FINESS named in a certificate

_KEY = ec.generate_private_key(ec.SECP256R1())


def certificate(*attributes: tuple[x509.ObjectIdentifier, str]) -> x509.Certificate:
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "test")]
        + [x509.NameAttribute(oid, value) for oid, value in attributes]
    )
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(_KEY.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(_KEY, hashes.SHA256())
    )


OU = NameOID.ORGANIZATIONAL_UNIT_NAME


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3990000028", "990000028"),  # health-PKI structure identifier: type 3 + FINESS
        ("990000028", "990000028"),  # a bare FINESS
        ("3990000029", None),  # wrong check digit
        ("990000029", None),
        ("1990000028", None),  # type 1 is not a FINESS
        ("39900000280", None),
        ("Service des admissions", None),
        (f"3{make_finess('2A000123')}", make_finess("2A000123")),
    ],
)
def test_finess_is_read_from_the_subject_ou(value: str, expected: str | None) -> None:
    assert finess_from_certificate(certificate((OU, value))) == expected


def test_a_certificate_without_the_attribute_names_no_finess() -> None:
    assert finess_from_certificate(certificate()) is None


def test_the_first_ou_holding_a_valid_finess_wins() -> None:
    cert = certificate((OU, "Urgences"), (OU, "3990000044"), (OU, "3990000028"))
    assert finess_from_certificate(cert) == "990000044"


@pytest.mark.parametrize(
    ("attribute", "oid"),
    [
        ("O", NameOID.ORGANIZATION_NAME),
        ("CN", NameOID.COMMON_NAME),
        ("serialNumber", NameOID.SERIAL_NUMBER),
        ("organizationIdentifier", NameOID.ORGANIZATION_IDENTIFIER),
    ],
)
def test_the_configured_attribute_is_read_and_the_ou_ignored(
    attribute: str, oid: x509.ObjectIdentifier
) -> None:
    cert = certificate((OU, "3990000044"), (oid, "3990000028"))
    assert finess_from_certificate(cert, attribute) == "990000028"


def test_the_ou_is_not_read_when_another_attribute_is_configured() -> None:
    assert finess_from_certificate(certificate((OU, "3990000028")), "O") is None


def test_an_unknown_attribute_name_is_refused() -> None:
    with pytest.raises(ValueError) as caught:
        finess_from_certificate(certificate((OU, "3990000028")), "DC")
    assert "'DC'" in str(caught.value)


def test_devpki_client_certificates_carry_their_finess(pki: Pki) -> None:
    cert = pki.issued["hospital"].certificate
    assert finess_from_certificate(cert) == HOSPITAL_FINESS


def _resumed(
    server: SwappableServerContext, client: SSL.Context, session: SSL.Session | None
) -> tuple[bool, SSL.Session]:
    """One in-memory connection; the client offers *session*: (resumed, its new session)."""
    server_side = server.serverConnectionForTLS(None)  # type: ignore[arg-type]
    server_side.set_accept_state()
    client_side = SSL.Connection(client, None)
    client_side.set_connect_state()
    if session is not None:
        client_side.set_session(session)
    sent = handshaken = False
    for _ in range(20):  # pump both ways; the server answers so that TLS 1.3 tickets arrive
        for one, other in ((client_side, server_side), (server_side, client_side)):
            try:
                one.do_handshake()
                handshaken = handshaken or one is client_side
            except SSL.WantReadError:
                pass
            try:
                data = one.bio_read(65536)
            except SSL.WantReadError:
                data = b""
            if data:
                other.bio_write(data)
        if handshaken and not sent:
            client_side.sendall(b"ping")
            sent = True
            continue
        try:
            if server_side.recv(4) == b"ping":
                server_side.sendall(b"pong")
        except SSL.WantReadError:
            pass
        try:
            if client_side.recv(4) == b"pong":
                break
        except SSL.WantReadError:
            pass
    else:
        raise AssertionError("no answer")
    client_side.shutdown()  # else OpenSSL marks the session not resumable when it is freed
    new_session = client_side.get_session()
    assert new_session is not None
    # pyOpenSSL has no session_reused(): its binding of OpenSSL's SSL_session_reused.
    return bool(_openssl.SSL_session_reused(client_side._ssl)), new_session


@pytest.mark.parametrize("version", [SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION])
def test_a_session_resumes_after_a_swap_of_certificate_and_cas(pki: Pki, version: int) -> None:
    server = relay_server(pki, "server")
    client = SSL.Context(SSL.TLS_METHOD)
    client.use_certificate_file(str(pki.folder / "hospital.pem"))
    client.use_privatekey_file(str(pki.folder / "hospital.key"))
    client.set_min_proto_version(version)
    client.set_max_proto_version(version)
    resumed, session = _resumed(server, client, None)
    assert not resumed
    resumed, session = _resumed(server, client, session)
    assert resumed
    server.swap(server_options(pki.files("server-b")))
    resumed, session = _resumed(server, client, session)
    assert resumed  # the ticket keys did not change with the certificate
    fresh = relay_server(pki, "server")  # another process: other keys
    assert not _resumed(fresh, client, session)[0]
