"""Configuration, ``twistd mutuelle`` options, and the built service (in-memory reactor and TLS)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.test.iosim import connectedServerAndClient

from mutuelle import tap
from mutuelle.catalogue import default_catalogue
from mutuelle.config import MutuelleConfig, load_config
from mutuelle.examples import case_request
from mutuelle.service import MutuelleService, build_service
from piano.config import ConfigError
from piano.testing import StrictMemoryReactorClock
from piano.tls import TLSFiles, client_options, load_pem_certificates
from tests.deferreds import success_result_of
from tools import devpki

REPO = Path(__file__).resolve().parents[2]
SERVER_NAME = "mutuelle.test"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    ca = devpki.make_ca("Test CA")
    devpki.write(directory, "ca", ca)
    devpki.write(directory, "server", devpki.issue(ca, SERVER_NAME, server_names=(SERVER_NAME,)))
    devpki.write(directory, "client", devpki.issue(ca, "relay", client=True))
    return directory


def write_config(directory: Path, body: str) -> Path:
    path = directory / "mutuelle.toml"
    path.write_text(body, "utf-8")
    return path


def valid_config(pki: Path, **overrides: str) -> str:
    values = {
        "public_url": '"https://mutuelle.test:8444"',
        "listen": '"tcp:8444:interface=127.0.0.1"',
        "admin": '"tcp:9181:interface=127.0.0.1"',
        "certificate": f'"{pki / "server.pem"}"',
        "extra": "",
        # Unit tests run no thread: the sandboxes stay in memory (integration tests use files).
        "storage": '"memory:"',
        **overrides,
    }
    return (
        f"public_url = {values['public_url']}\n{values['extra']}\n"
        f"[listen]\nendpoint = {values['listen']}\n"
        f"[admin]\nendpoint = {values['admin']}\n"
        f"[tls]\ncertificate = {values['certificate']}\n"
        f'private_key = "{pki / "server.key"}"\n'
        f'ca_certificates = ["{pki / "ca.pem"}"]\n'
        f"[storage]\nurl = {values['storage']}\n"
    )


# -- Configuration ------------------------------------------------------------------------------


def test_dev_config_resolves_paths_against_its_own_directory() -> None:
    config = load_config(REPO / "etc" / "dev" / "mutuelle.toml")
    assert config.public_url == "https://127.0.0.1:8444"
    assert config.listen.endpoint == "tcp:8444:interface=127.0.0.1"
    assert config.admin.endpoint == "tcp:9181:interface=127.0.0.1"
    assert config.tls.certificate == REPO / ".dev" / "pki" / "mutuelle-server.pem"
    assert config.tls.private_key == REPO / ".dev" / "pki" / "mutuelle-server.key"
    assert config.tls.ca_certificates == (REPO / ".dev" / "pki" / "ca.pem",)
    assert config.tls.require_client_certificate is True
    assert config.data_dir is None


def test_production_example_config_loads() -> None:
    config = load_config(REPO / "etc" / "mutuelle.toml")
    assert config.public_url.startswith("https://")
    assert config.tls.require_client_certificate is True
    assert config.storage.url == "sqlite:////var/lib/piano/mutuelle/sandboxes.sqlite3"


def test_a_relative_sqlite_file_is_next_to_the_configuration(pki: Path, tmp_path: Path) -> None:
    path = write_config(tmp_path, valid_config(pki, storage='"sqlite:///state/s.sqlite3"'))
    assert load_config(path).storage.url == f"sqlite:///{tmp_path}/state/s.sqlite3"
    default = valid_config(pki).replace('[storage]\nurl = "memory:"\n', "")
    assert load_config(write_config(tmp_path, default)).storage.url == (
        f"sqlite:///{tmp_path}/mutuelle-sandboxes.sqlite3"
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"public_url": '"http://mutuelle.test"'}, "public_url: must be an https:// URL"),
        ({"public_url": '"https://mutuelle.test/"'}, "public_url: must have no query"),
        ({"listen": '"ssl:8444"'}, "listen.endpoint: must not be an ssl: endpoint"),
        ({"extra": "max_body_bytes = 0"}, "max_body_bytes: must be > 0"),
        ({"extra": "colour = 1"}, "colour: unknown key"),
        ({"extra": "data_dir = 3"}, "data_dir: must be a file path"),
    ],
)
def test_config_errors_name_their_path(pki: Path, overrides: dict[str, str], message: str) -> None:
    path = write_config(pki.parent, valid_config(pki, **overrides))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(message)


def test_missing_tls_section_is_named(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'public_url = "https://mutuelle.test"\n')
    with pytest.raises(ConfigError, match=r"^tls\.certificate: required"):
        load_config(path)


# -- twistd options -----------------------------------------------------------------------------


def test_options_require_a_config_file() -> None:
    with pytest.raises(usage.UsageError, match="--config FILE is required"):
        tap.Options().parseOptions([])


def test_options_report_the_config_error_path(tmp_path: Path) -> None:
    path = write_config(tmp_path, 'public_url = "ftp://x"\n')
    with pytest.raises(usage.UsageError, match="invalid configuration: public_url: must be"):
        tap.Options().parseOptions(["--config", str(path)])


def test_options_report_an_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(usage.UsageError, match="cannot read"):
        tap.Options().parseOptions(["--config", str(tmp_path / "absent.toml")])


def test_options_parse_a_valid_file(pki: Path) -> None:
    options = tap.Options()
    options.parseOptions(["--config", str(write_config(pki.parent, valid_config(pki)))])
    assert isinstance(options.config, MutuelleConfig)


# -- The built service --------------------------------------------------------------------------


def built(pki: Path, **overrides: str) -> tuple[MutuelleService, StrictMemoryReactorClock]:
    reactor = StrictMemoryReactorClock()
    config = load_config(write_config(pki.parent, valid_config(pki, **overrides)))
    return build_service(config, reactor), reactor


def test_service_listens_with_tls_on_the_roc_port_and_plain_http_on_admin(pki: Path) -> None:
    service, reactor = built(pki)
    assert reactor.tcpServers == []  # nothing listens before start
    service.startService()
    try:
        ports = {(port, interface): factory for port, factory, _, interface in reactor.tcpServers}
        assert set(ports) == {(8444, "127.0.0.1"), (9181, "127.0.0.1")}
        assert isinstance(ports[(8444, "127.0.0.1")], TLSMemoryBIOFactory)
        assert not isinstance(ports[(9181, "127.0.0.1")], TLSMemoryBIOFactory)
    finally:
        service.stopService()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"certificate": '"/nonexistent/server.pem"'}, "tls: /nonexistent/server.pem"),
        ({"listen": '"nonsense:1"'}, "listen.endpoint: not a usable endpoint"),
        ({"admin": '"tcp:port"'}, "admin.endpoint: not a usable endpoint"),
        ({"extra": 'data_dir = "nowhere"'}, "data_dir: "),
        ({"storage": '"mysql://db"'}, "storage.url: must be memory:, sqlite:///FILE or"),
        ({"storage": '"sqlite://host/x"'}, "storage.url: sqlite URLs are sqlite:///relative"),
    ],
)
def test_unusable_settings_fail_before_listening_with_their_path(
    pki: Path, overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        built(pki, **overrides)
    assert str(caught.value).startswith(message)


def test_make_service_turns_a_start_up_error_into_a_usage_error(pki: Path) -> None:
    options = tap.Options()
    config = valid_config(pki, listen='"nonsense:1"')
    options.parseOptions(["--config", str(write_config(pki.parent, config))])
    with pytest.raises(usage.UsageError, match=r"cannot start: listen\.endpoint"):
        tap.makeService(options)


class _HttpClient(Protocol):
    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = b""
        self.lost: Failure | None = None

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.lost = reason


def _exchange(
    service: MutuelleService,
    reactor: StrictMemoryReactorClock,
    tls: IOpenSSLClientConnectionCreator,
) -> _HttpClient:
    case = default_catalogue().get("990000101", "IDB_OK_MCO_DROITS_OUVERTS")
    assert case is not None
    body = case_request(case, "tls-1")
    request = (
        b"POST /roc/IDB HTTP/1.1\r\nHost: mutuelle.test\r\nConnection: close\r\n"
        b"Content-Type: text/xml; charset=utf-8\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    service.startService()
    server_factory = next(f for port, f, _, _ in reactor.tcpServers if port == 8444)
    client = _HttpClient(request)
    client_factory = TLSMemoryBIOFactory(
        tls, True, Factory.forProtocol(lambda: client), clock=reactor
    )
    address = IPv4Address("TCP", "127.0.0.1", 8444)
    _, _, pump = connectedServerAndClient(
        lambda: server_factory.buildProtocol(address),
        lambda: client_factory.buildProtocol(address),
        greet=False,
        clock=reactor,
    )
    pump.flush()
    service.stopService()
    return client


def test_a_client_with_a_certificate_from_the_configured_ca_gets_its_answer(pki: Path) -> None:
    service, reactor = built(pki)
    files = TLSFiles(pki / "client.pem", pki / "client.key", (pki / "ca.pem",))
    client = _exchange(service, reactor, client_options(files, SERVER_NAME))
    assert client.received.startswith(b"HTTP/1.1 200 ")
    assert b"<idb:CodeRetour>00</idb:CodeRetour>" in client.received


def test_a_client_without_a_certificate_is_refused_during_the_handshake(pki: Path) -> None:
    service, reactor = built(pki)
    trust = ssl.trustRootFromCertificates(load_pem_certificates(pki / "ca.pem"))
    anonymous = ssl.optionsForClientTLS(SERVER_NAME, trustRoot=trust)
    client = _exchange(service, reactor, anonymous)
    assert client.received == b""
    assert client.lost is not None
    assert client.lost.check(SSL.Error)


def test_idle_sandboxes_are_purged_by_the_periodic_job(pki: Path) -> None:
    service, reactor = built(pki, storage='"memory:"\nidle_days = 1.0\npurge_interval = 60.0')
    service.startService()
    try:
        store = service.store
        assert store is not None
        success_result_of(store.transact("990000028", lambda sandbox: None))
        reactor.advance(86400)
        success_result_of(store.transact("990000036", lambda sandbox: None))
        reactor.advance(61)
        listed = success_result_of(store.summaries())
        assert [s["finess"] for s in listed] == ["990000036"]
    finally:
        service.stopService()


def test_a_database_written_by_a_newer_release_stops_the_start(pki: Path, tmp_path: Path) -> None:
    database = tmp_path / "newer.sqlite3"
    connection = sqlite3.connect(database)
    connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    connection.execute("INSERT INTO schema_version (version) VALUES (99)")
    connection.commit()
    connection.close()
    with pytest.raises(ConfigError) as caught:
        built(pki, storage=f'"sqlite:///{database}"')
    assert str(caught.value).startswith(
        "storage.url: the sandboxes database is at schema version 99, newer than this Mutuelle"
    )
