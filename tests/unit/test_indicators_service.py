"""Configuration, ``twistd indicators`` options, and the built service over in-memory TLS:
each establishment reads its own page by its certificate's FINESS, the agency reads all."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from twisted.application.service import IServiceMaker
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.internet.protocol import Factory, Protocol
from twisted.plugin import getPlugins
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python import usage
from twisted.python.failure import Failure
from twisted.test.iosim import connectedServerAndClient

from indicators import tap
from indicators.config import load_config
from indicators.service import IndicatorsService, build_service
from indicators.testing import (
    FakeProgress,
    FakePrometheus,
    lifecycle_sample,
    progress_document,
    sample,
)
from piano.config import ConfigError
from piano.testing import StrictMemoryReactorClock
from piano.tls import TLSFiles, client_options
from tools import devpki

REPO = Path(__file__).resolve().parents[2]
SERVER_NAME = "indicators.test"
A, B = devpki.HOSPITAL_A["site"], devpki.HOSPITAL_B["site"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pki")
    ca = devpki.make_ca("Test CA")
    devpki.write(directory, "ca", ca)
    devpki.write(directory, "server", devpki.issue(ca, SERVER_NAME, server_names=(SERVER_NAME,)))
    devpki.write(directory, "a", devpki.issue(ca, "A", client=True, finess=A))
    devpki.write(directory, "agency", devpki.issue(ca, "Agency", client=True))
    devpki.write(directory, "nobody", devpki.issue(ca, "No FINESS", client=True))
    return directory


def config_text(pki: Path, extra: str = "", agency: bool = True) -> str:
    return (
        f'[tls]\ncertificate = "{pki / "server.pem"}"\nprivate_key = "{pki / "server.key"}"\n'
        f'ca_certificates = ["{pki / "ca.pem"}"]\n'
        + (f'[access]\nagency_certificates = ["{pki / "agency.pem"}"]\n' if agency else "")
        + extra
    )


def write(directory: Path, text: str) -> Path:
    path = directory / "indicators.toml"
    path.write_text(text, "utf-8")
    return path


def test_the_twistd_plugin_is_found() -> None:
    assert "indicators" in {p.tapname for p in getPlugins(IServiceMaker)}


def test_dev_and_production_example_configs_load() -> None:
    assert load_config(REPO / "etc" / "dev" / "indicators.toml").tls.certificate == (
        REPO / ".dev" / "pki" / "rpn-server.pem"
    )
    example = load_config(REPO / "etc" / "indicators.toml")
    assert example.indicators.window_days == 30


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('[prometheus]\nurl = "prom:9090"\n', "prometheus.url: must be an http"),
        ("[indicators]\nwindow_days = 0\n", "indicators.window_days: must be between"),
        ("[indicators]\nwindow_days = 7\ndaily_days = 14\n", "indicators.daily_days: must be <="),
        ("[indicators]\nrefresh = 1\n", "indicators.refresh: unknown key"),
    ],
)
def test_config_errors_name_their_path(pki: Path, tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, config_text(pki, extra)))


def test_options_require_a_config_and_report_its_errors(pki: Path, tmp_path: Path) -> None:
    with pytest.raises(usage.UsageError, match="--config FILE is required"):
        tap.Options().parseOptions([])
    path = write(tmp_path, config_text(pki, "[indicators]\ntop_codes = -1\n"))
    with pytest.raises(usage.UsageError, match=r"indicators\.top_codes: must be > 0"):
        tap.Options().parseOptions(["--config", str(path)])


def test_make_service_turns_a_start_up_error_into_a_usage_error(pki: Path, tmp_path: Path) -> None:
    options = tap.Options()
    path = write(tmp_path, config_text(pki, '[listen]\nendpoint = "nonsense:1"\n'))
    options.parseOptions(["--config", str(path)])
    with pytest.raises(usage.UsageError, match=r"cannot start: listen\.endpoint"):
        tap.makeService(options)


def built(
    pki: Path, tmp_path: Path
) -> tuple[IndicatorsService, StrictMemoryReactorClock, FakePrometheus, CollectorRegistry]:
    reactor = StrictMemoryReactorClock()
    prometheus = FakePrometheus(
        {
            "by (finess, service, amc, outcome)": [
                sample(5, finess=A, service="IDB", amc="990000101", outcome="ok"),
                sample(2, finess=B, service="IDB", amc="990000101", outcome="refused"),
            ]
        }
    )
    registry = CollectorRegistry()
    config = load_config(write(tmp_path, config_text(pki)))
    return build_service(config, reactor, registry, prometheus), reactor, prometheus, registry


class _HttpClient(Protocol):
    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = b""

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        pass


def get(
    reactor: StrictMemoryReactorClock, tls: IOpenSSLClientConnectionCreator, path: str
) -> bytes:
    request = f"GET {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n\r\n"
    return exchange(reactor, tls, request.encode())


def exchange(
    reactor: StrictMemoryReactorClock, tls: IOpenSSLClientConnectionCreator, request: bytes
) -> bytes:
    server_factory = next(f for port, f, _, _ in reactor.tcpServers if port == 8445)
    client = _HttpClient(request)
    client_factory = TLSMemoryBIOFactory(
        tls, True, Factory.forProtocol(lambda: client), clock=reactor
    )
    address = IPv4Address("TCP", "127.0.0.1", 8445)
    _, _, pump = connectedServerAndClient(
        lambda: server_factory.buildProtocol(address),
        lambda: client_factory.buildProtocol(address),
        greet=False,
        clock=reactor,
    )
    pump.flush()
    return client.received


def identity(pki: Path, stem: str) -> IOpenSSLClientConnectionCreator:
    files = TLSFiles(pki / f"{stem}.pem", pki / f"{stem}.key", (pki / "ca.pem",))
    return client_options(files, SERVER_NAME)


def test_service_reads_prometheus_at_start_and_every_interval(pki: Path, tmp_path: Path) -> None:
    service, reactor, prometheus, registry = built(pki, tmp_path)
    assert reactor.tcpServers == [] and prometheus.queries == []
    service.startService()
    try:
        ports = {port for port, _, _, _ in reactor.tcpServers}
        assert ports == {8445, 9182}
        first = len(prometheus.queries)
        assert first > 0 and service.refresher.snapshot is not None
        reactor.advance(60)
        assert len(prometheus.queries) == 2 * first
        prometheus.error = "down"
        reactor.advance(60)
        assert service.refresher.snapshot is not None  # the last good reading is kept
        assert b"indicators_refresh_failures_total 1.0" in generate_latest(registry)
    finally:
        service.stopService()


def test_pages_say_their_figures_are_stale_while_prometheus_cannot_be_read(
    pki: Path, tmp_path: Path
) -> None:
    service, reactor, prometheus, _ = built(pki, tmp_path)
    service.startService()
    try:
        assert b'id="stale"' not in get(reactor, identity(pki, "a"), f"/establishments/{A}")
        prometheus.error = "down"
        reactor.advance(60)
        stale = get(reactor, identity(pki, "a"), f"/establishments/{A}")
        assert stale.startswith(b"HTTP/1.1 200 ") and b'id="stale"' in stale
        prometheus.error = None
        reactor.advance(60)
        assert b'id="stale"' not in get(reactor, identity(pki, "a"), f"/establishments/{A}")
    finally:
        service.stopService()


def test_an_establishment_reads_its_own_page_and_is_refused_another(
    pki: Path, tmp_path: Path
) -> None:
    service, reactor, _, _ = built(pki, tmp_path)
    service.startService()
    try:
        own = get(reactor, identity(pki, "a"), f"/establishments/{A}.json")
        assert own.startswith(b"HTTP/1.1 200 ")
        assert b'"finess": "990000028"' in own and b'"all": 5' in own
        other = get(reactor, identity(pki, "a"), f"/establishments/{B}.json")
        assert other.startswith(b"HTTP/1.1 403 ")
        assert B.encode() not in other.split(b"\r\n\r\n", 1)[1]
        assert get(reactor, identity(pki, "a"), "/agency").startswith(b"HTTP/1.1 403 ")
        home = get(reactor, identity(pki, "a"), "/")
        assert home.startswith(b"HTTP/1.1 302 ") and f"/establishments/{A}".encode() in home
    finally:
        service.stopService()


def test_the_agency_reads_every_page_and_a_certificate_without_finess_nothing(
    pki: Path, tmp_path: Path
) -> None:
    service, reactor, _, _ = built(pki, tmp_path)
    service.startService()
    try:
        agency = get(reactor, identity(pki, "agency"), "/agency")
        assert agency.startswith(b"HTTP/1.1 200 ")
        assert A.encode() in agency and B.encode() in agency
        assert get(reactor, identity(pki, "agency"), f"/establishments/{B}.csv").startswith(
            b"HTTP/1.1 200 "
        )
        nobody = get(reactor, identity(pki, "nobody"), f"/establishments/{A}")
        assert nobody.startswith(b"HTTP/1.1 403 ")
    finally:
        service.stopService()


def test_the_configuration_reference_in_the_docs_is_current() -> None:
    from indicators.config import Config
    from piano.config import describe

    docs = (REPO / "docs" / "indicators.md").read_text()
    for key, kind, default, help_text in describe(Config):
        assert f"| `{key}` | {kind} | {default} | {help_text} |" in docs, key


def test_the_promotion_page_names_the_agent_of_the_agency_certificate(
    pki: Path, tmp_path: Path
) -> None:
    reactor = StrictMemoryReactorClock()
    legal = devpki.HOSPITAL_B["legal"]
    prometheus = FakePrometheus(
        {
            "rpn_establishment_lifecycle_since_timestamp_seconds": [
                lifecycle_sample(legal, "qualification", 0)
            ]
        }
    )
    progress = FakeProgress({legal: progress_document(legal, ["passed"] * 3)})
    config = load_config(
        write(
            tmp_path,
            config_text(
                pki,
                '[qualification]\nmutuelle_admin_url = "http://127.0.0.1:9181/__admin"\n'
                'relay_config = "/srv/relay one/rpn.toml"\n',
            ),
        )
    )
    service = build_service(config, reactor, CollectorRegistry(), prometheus, progress)
    service.startService()
    try:
        form = f"finess={legal}&state=production_sous_surveillance&reason=Suite+r%C3%A9ussie"
        answer = post(reactor, identity(pki, "agency"), "/agency/promotion", form)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
        assert progress.asked == [(legal, ("MCO",))]
        command = (
            "python -m rpn.lifecycle set --config &#x27;/srv/relay one/rpn.toml&#x27; "
            f"--finess {legal} --state production_sous_surveillance --by Agency "
            "--reason &#x27;Suite réussie&#x27;"
        )
        assert command.encode() in answer
        refused = post(reactor, identity(pki, "a"), "/agency/promotion", form)
        assert refused.startswith(b"HTTP/1.1 403 ")
    finally:
        service.stopService()


def post(
    reactor: StrictMemoryReactorClock, tls: IOpenSSLClientConnectionCreator, path: str, form: str
) -> bytes:
    body = form.encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {SERVER_NAME}\r\nConnection: close\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    return exchange(reactor, tls, request)


def test_the_mutuelle_admin_url_is_checked(pki: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"qualification\.mutuelle_admin_url: must be an http"):
        load_config(
            write(tmp_path, config_text(pki, '[qualification]\nmutuelle_admin_url = "m:9181"\n'))
        )
