"""The relay's HTTP front, driven over a StringTransport: what an establishment receives.

Each test writes raw HTTP bytes into the relay's HTTP protocol whose transport presents a client
certificate from ``tools.devpki``, then reads the raw answer, the SOAP fault code, the stats
record and what reached the (fake) AMC upstream.
"""

from __future__ import annotations

import datetime
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import pytest
from lxml import etree
from OpenSSL import crypto
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from zope.interface import implementer

from piano.testing import StrictClock
from roc.identifiers import make_nir
from roc.model import ROUTING_NS, RPN_FAULT_NS, SOAP11_NS, SOAP12_NS, AmcKey
from rpn.annuaire import CachedAnnuaire
from rpn.errors import RpnError, RpnFailure
from rpn.http.server import HttpServerFactory
from rpn.interfaces import AmcEntry, IStatsSink
from rpn.lifecycle import Lifecycle, State
from rpn.registration import Registration
from rpn.relay import Relay, RelayPolicy, relay_factory
from rpn.routing import SoapHeaderExtractor
from rpn.stats import AccessLog, ExchangeRecord, StatsFanout
from rpn.testing import FakeAnnuaireSource
from rpn.upstream import UpstreamAnswer
from tools.devpki import issue, make_ca

REGISTERED = "990000028"  # hospital A's site, as in the development PKI
OTHER_REGISTERED = "990000044"  # hospital B's site
UNREGISTERED = "990000051"
LEGAL_A = "990000010"  # hospital A's legal entity
LEGAL_B = "990000036"  # hospital B's legal entity
AMC = "990000101"
AMC_URL = "https://amc.test/roc/IDB"
EXCHANGE_ID = "ex-2026-0001"
#: A fictitious beneficiary: born abroad (99), unassigned country 999.
NIR = make_nir("1850799999001")
MAX_BODY = 4096
READ_TIMEOUT = 5.0
IDLE_TIMEOUT = 60.0


# Messages


def routage(
    service: str = "IDB",
    amc: str = AMC,
    legal: str = "990000010",
    site: str = REGISTERED,
    exchange_id: str = EXCHANGE_ID,
) -> str:
    return (
        f'<rt:Routage xmlns:rt="{ROUTING_NS}"><rt:Service>{service}</rt:Service>'
        f"<rt:VersionROC>V1</rt:VersionROC><rt:AMC><rt:Numero>{amc}</rt:Numero>"
        "<rt:TypeConvention>TP</rt:TypeConvention><rt:CritereSecondaire>01</rt:CritereSecondaire>"
        f"</rt:AMC><rt:Emetteur><rt:FinessJuridique>{legal}</rt:FinessJuridique>"
        f"<rt:FinessGeographique>{site}</rt:FinessGeographique></rt:Emetteur>"
        f"<rt:IdentifiantEchange>{exchange_id}</rt:IdentifiantEchange></rt:Routage>"
    )


def envelope(header: str | None = None, ns: str = SOAP11_NS) -> bytes:
    """A SOAP message (odd spacing and a comment: the relay must pass it on byte for byte)."""
    header = routage() if header is None else header
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\r\n'
        f'<soap:Envelope xmlns:soap="{ns}">\r\n  <soap:Header>{header}</soap:Header>\r\n'
        f'  <soap:Body><!-- demande --><d:DemandeIDB xmlns:d="urn:piano:roc:idb:v1">'
        f"<d:NIR>{NIR}</d:NIR></d:DemandeIDB></soap:Body>\r\n</soap:Envelope>\r\n"
    ).encode()


# HTTP on the wire


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def fault(self) -> etree._Element:
        return etree.fromstring(self.body)

    @property
    def fault_code(self) -> str | None:
        return self.fault.findtext(f".//{{{RPN_FAULT_NS}}}Code")

    @property
    def text(self) -> str:
        """The fault's message, as the establishment reads it."""
        return self.fault.findtext(f".//{{{RPN_FAULT_NS}}}Message") or ""


def parse_responses(raw: bytes) -> list[HttpResponse]:
    """Every response in *raw* (bodies delimited by Content-Length, as the relay sends them)."""
    responses: list[HttpResponse] = []
    while raw:
        head, separator, rest = raw.partition(b"\r\n\r\n")
        assert separator, f"incomplete response head: {raw!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, list[str]] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        length = int(headers.get("content-length", ["0"])[0])
        responses.append(HttpResponse(int(status_line.split(" ")[1]), headers, rest[:length]))
        raw = rest[length:]
    return responses


def post(
    body: bytes,
    path: str = "/roc",
    content_type: str = "text/xml; charset=utf-8",
    headers: tuple[tuple[str, str], ...] = (),
    length: int | None = None,
) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: rpn.test", f"Content-Type: {content_type}"]
    lines.append(f"Content-Length: {len(body) if length is None else length}")
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(*chunks: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)


# Fakes


@implementer(IStatsSink)
class RecordingStats:
    def __init__(self) -> None:
        self.records: list[ExchangeRecord] = []

    def record(self, exchange: ExchangeRecord) -> None:
        self.records.append(exchange)


@dataclass
class Forwarded:
    url: str
    body: bytes
    headers: Headers
    answer: Deferred[UpstreamAnswer]


@dataclass
class FakeUpstream:
    """One AMC's upstream: keeps every exchange waiting until the test answers it."""

    calls: list[Forwarded] = field(default_factory=list)

    def forward(
        self, url: str, body: bytes, headers: Sequence[tuple[bytes, bytes]]
    ) -> Deferred[UpstreamAnswer]:
        answer: Deferred[UpstreamAnswer] = Deferred()
        received = Headers()
        for name, value in headers:
            received.addRawHeader(name, value)
        self.calls.append(Forwarded(url, body, received, answer))
        return answer


@dataclass
class FakeUpstreams:
    by_amc: dict[str, FakeUpstream] = field(default_factory=dict)

    def for_amc(self, amc_number: str) -> FakeUpstream:
        return self.by_amc.setdefault(amc_number, FakeUpstream())

    @property
    def calls(self) -> list[Forwarded]:
        return [call for upstream in self.by_amc.values() for call in upstream.calls]


class TLSStringTransport(StringTransport):
    """A StringTransport whose peer presented *certificate* during the TLS handshake."""

    def __init__(self, certificate: crypto.X509 | None) -> None:
        super().__init__()
        self._certificate = certificate

    def getPeerCertificate(self) -> crypto.X509 | None:
        return self._certificate


@pytest.fixture(scope="module")
def certificates() -> dict[str, crypto.X509 | None]:
    ca = make_ca("Test CA")
    return {
        "hospital": crypto.X509.from_cryptography(
            issue(ca, "CH A", client=True, finess=REGISTERED).certificate
        ),
        "hospital-b": crypto.X509.from_cryptography(
            issue(ca, "CH B", client=True, finess=OTHER_REGISTERED).certificate
        ),
        "entity-a": crypto.X509.from_cryptography(
            issue(ca, "GH A", client=True, finess=LEGAL_A).certificate
        ),
        "entity-b": crypto.X509.from_cryptography(
            issue(ca, "GH B", client=True, finess=LEGAL_B).certificate
        ),
        "unregistered": crypto.X509.from_cryptography(
            issue(ca, "Clinique", client=True, finess=UNREGISTERED).certificate
        ),
        "no-finess": crypto.X509.from_cryptography(issue(ca, "Anonyme", client=True).certificate),
        "none": None,
    }


class Client:
    """One establishment connection to the relay."""

    def __init__(self, site: HttpServerFactory, certificate: crypto.X509 | None) -> None:
        self.protocol = site.buildProtocol(None)
        self.transport = TLSStringTransport(certificate)
        self.protocol.makeConnection(self.transport)
        self.lost = False

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def responses(self) -> list[HttpResponse]:
        return parse_responses(self.transport.value())

    def response(self) -> HttpResponse:
        [response] = self.responses()
        return response

    @property
    def closing(self) -> bool:
        return bool(self.transport.disconnecting)

    def disconnect(self) -> None:
        self.lost = True
        self.protocol.connectionLost(Failure(ConnectionDone()))


class RelayHarness:
    def __init__(
        self,
        certificates: dict[str, crypto.X509 | None],
        *,
        max_body_bytes: int = MAX_BODY,
        check_sender: bool = True,
        stats: IStatsSink | None = None,
        max_in_flight: int = 64,
        registration: Registration | None = None,
    ) -> None:
        self.certificates = certificates
        self.clock = StrictClock()
        self.stats = RecordingStats()
        self.upstreams = FakeUpstreams()
        self.source = FakeAnnuaireSource(
            {
                AmcKey(AMC, "TP", "01"): AmcEntry(
                    AMC, "Mutuelle Alpha", {"IDB": AMC_URL, "SIM": "https://amc.test/roc/SIM"}
                )
            }
        )
        policy = RelayPolicy(
            paths=("/roc",),
            registration=registration
            or Registration.of([(LEGAL_A, [REGISTERED]), (LEGAL_B, [OTHER_REGISTERED])]),
            check_sender=check_sender,
            finess_attribute="OU",
            max_body_bytes=max_body_bytes,
            read_timeout=READ_TIMEOUT,
            max_in_flight_per_establishment=max_in_flight,
        )
        self.relay = Relay(
            self.clock,
            policy,
            SoapHeaderExtractor(),
            CachedAnnuaire(self.source, self.clock),
            self.upstreams,  # type: ignore[arg-type]
            StatsFanout(self.stats, stats) if stats is not None else self.stats,
        )
        self.site = relay_factory(lambda: self.relay, self.clock, IDLE_TIMEOUT)
        self.clients: list[Client] = []

    def connect(self, certificate: str = "hospital") -> Client:
        client = Client(self.site, self.certificates[certificate])
        self.clients.append(client)
        return client

    def exchange(self, data: bytes, certificate: str = "hospital") -> Client:
        client = self.connect(certificate)
        client.send(data)
        return client

    @property
    def records(self) -> list[ExchangeRecord]:
        return self.stats.records

    def close(self) -> None:
        # Cancel each connection's timers.
        for client in self.clients:
            if not client.lost:
                client.disconnect()


@pytest.fixture
def make_relay(
    certificates: dict[str, crypto.X509 | None],
) -> Iterator[Callable[..., RelayHarness]]:
    made: list[RelayHarness] = []

    def make(**options: object) -> RelayHarness:
        harness = RelayHarness(certificates, **options)  # type: ignore[arg-type]
        made.append(harness)
        return harness

    yield make
    for harness in made:
        harness.close()


@pytest.fixture
def relay(make_relay: Callable[..., RelayHarness]) -> RelayHarness:
    return make_relay()


def answer(
    status: int = 200,
    body: bytes = b"<reponse/>",
    headers: list[tuple[bytes, bytes]] | None = None,
    seconds: float = 0.25,
) -> UpstreamAnswer:
    return UpstreamAnswer(
        status, headers if headers is not None else [(b"Content-Type", b"text/xml")], body, seconds
    )


def assert_refused(
    response: HttpResponse, records: list[ExchangeRecord], error: RpnError
) -> ExchangeRecord:
    """The response is *error*'s fault and exactly one record says so."""
    assert response.status == error.http_status
    assert response.fault_code == error.code
    [record] = records
    assert (record.code, record.status) == (error.code, error.http_status)
    assert record.bytes_out == len(response.body)
    return record


# Accepted exchanges


def test_an_accepted_request_reaches_the_amc_with_its_body_unchanged(relay: RelayHarness) -> None:
    body = envelope()
    relay.exchange(post(body))
    [call] = relay.upstreams.by_amc[AMC].calls
    assert call.url == AMC_URL
    assert call.body == body


def test_the_amc_receives_the_roc_headers_set_by_the_relay(relay: RelayHarness) -> None:
    relay.exchange(post(envelope()))
    [call] = relay.upstreams.calls
    headers = call.headers
    assert headers.getRawHeaders(b"X-ROC-Echange") == [EXCHANGE_ID.encode()]
    assert headers.getRawHeaders(b"X-ROC-Emetteur-Finess") == [REGISTERED.encode()]
    assert headers.getRawHeaders(b"SOAPAction") == [b'"urn:piano:roc:IDB"']
    assert headers.getRawHeaders(b"Content-Type") == [b"text/xml; charset=utf-8"]


def test_headers_sent_by_the_establishment_are_not_passed_to_the_amc(
    relay: RelayHarness,
) -> None:
    spoofed = (
        ("X-ROC-Emetteur-Finess", OTHER_REGISTERED),
        ("Cookie", "session=1"),
        ("Authorization", "Basic eDp5"),
    )
    relay.exchange(post(envelope(), headers=spoofed))
    [call] = relay.upstreams.calls
    assert call.headers.getRawHeaders(b"X-ROC-Emetteur-Finess") == [REGISTERED.encode()]
    assert not call.headers.hasHeader(b"Cookie")
    assert not call.headers.hasHeader(b"Authorization")


def test_the_amc_answer_is_relayed_with_the_exchange_id_added(relay: RelayHarness) -> None:
    client = relay.exchange(post(envelope()))
    assert client.responses() == []
    amc_headers = [
        (b"Content-Type", b"text/xml; charset=utf-8"),
        (b"X-AMC-Trace", b"trace-7"),
        (b"X-ROC-Echange", b"forged-by-amc"),
    ]
    relay.upstreams.calls[0].answer.callback(answer(200, b"<reponse>ok</reponse>", amc_headers))
    response = client.response()
    assert response.status == 200
    assert response.body == b"<reponse>ok</reponse>"
    assert response.header("Content-Type") == "text/xml; charset=utf-8"
    assert response.header("X-AMC-Trace") == "trace-7"
    assert response.headers["x-roc-echange"] == [EXCHANGE_ID]
    assert not client.closing


def test_an_amc_error_status_is_relayed_as_is(relay: RelayHarness) -> None:
    client = relay.exchange(post(envelope()))
    relay.upstreams.calls[0].answer.callback(answer(500, b"<soap:Fault/>"))
    response = client.response()
    assert (response.status, response.body) == (500, b"<soap:Fault/>")
    assert relay.records[0].outcome == "amc_fault"


def test_an_answered_exchange_is_recorded_once_with_its_identifiers_and_timings(
    relay: RelayHarness,
) -> None:
    body = envelope()
    relay.exchange(post(body))
    relay.clock.advance(0.75)
    relay.upstreams.calls[0].answer.callback(answer(body=b"<reponse/>", seconds=0.5))
    [record] = relay.records
    assert record == ExchangeRecord(
        exchange_id=EXCHANGE_ID,
        finess=REGISTERED,
        amc=AMC,
        service="IDB",
        version="V1",
        outcome="amc_fault",  # an answer without a business return code
        code="",
        amc_code="AMC-REPONSE-ILLISIBLE",
        amc_name="Mutuelle Alpha",
        status=200,
        upstream_seconds=0.5,
        total_seconds=0.75,
        bytes_in=len(body),
        bytes_out=len(b"<reponse/>"),
        registered=True,
        certificate_expiry=record.certificate_expiry,
    )
    assert record.certificate_expiry is not None


def test_a_path_below_a_published_path_is_accepted(relay: RelayHarness) -> None:
    relay.exchange(post(envelope(), path="/roc/IDB"))
    assert len(relay.upstreams.calls) == 1


def test_a_body_of_exactly_the_limit_is_accepted(make_relay: Callable[..., RelayHarness]) -> None:
    body = envelope()
    relay = make_relay(max_body_bytes=len(body))
    relay.exchange(post(body))
    assert [call.body for call in relay.upstreams.calls] == [body]


def test_two_exchanges_on_one_kept_alive_connection_are_both_answered(
    relay: RelayHarness,
) -> None:
    client = relay.connect()
    client.send(post(envelope()))
    relay.upstreams.calls[0].answer.callback(answer(body=b"<un/>"))
    relay.clock.advance(READ_TIMEOUT * 3)  # idle between requests: not a slow request
    client.send(post(envelope(routage(exchange_id="ex-2")), path="/roc/IDB"))
    relay.upstreams.calls[1].answer.callback(answer(body=b"<deux/>"))
    assert [r.body for r in client.responses()] == [b"<un/>", b"<deux/>"]
    assert [r.exchange_id for r in relay.records] == [EXCHANGE_ID, "ex-2"]


def test_the_access_log_line_of_an_exchange_carries_no_message_content(
    make_relay: Callable[..., RelayHarness],
) -> None:
    stream = io.StringIO()
    relay = make_relay(stats=AccessLog(stream))
    relay.exchange(post(envelope()))
    relay.upstreams.calls[0].answer.callback(answer(body=f"<r>{NIR}</r>".encode()))
    line = stream.getvalue()
    assert NIR not in line
    assert NIR[:13] not in line
    assert json.loads(line)["exchange_id"] == EXCHANGE_ID


# Early refusals: answered before the body is read


def test_a_declared_length_over_the_limit_is_refused_at_once_without_reading_the_body(
    relay: RelayHarness,
) -> None:
    client = relay.connect()
    client.send(post(b"", length=MAX_BODY + 1))
    response = client.response()
    assert response.status == 413
    assert response.fault_code == "RPN-413-TAILLE"
    assert response.header("Connection") == "close"
    assert client.closing
    # Counted for the establishment whose certificate it is, although refused so early.
    [record] = relay.records
    assert (record.code, record.status, record.outcome) == ("RPN-413-TAILLE", 413, "rejected")
    assert (record.finess, record.registered) == (REGISTERED, True)
    assert record.bytes_out == len(response.body)
    assert f"limite de {MAX_BODY} octets" in response.text
    client.send(b"x" * (MAX_BODY + 1))  # the client sends its body anyway
    assert len(client.responses()) == 1
    assert len(relay.records) == 1
    assert relay.upstreams.calls == []


def test_a_chunked_body_growing_over_the_limit_is_refused(relay: RelayHarness) -> None:
    client = relay.connect()
    head = (
        b"POST /roc HTTP/1.1\r\nHost: rpn.test\r\nContent-Type: text/xml\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    client.send(head + chunked(b"a" * (MAX_BODY - 10)))
    assert client.responses() == []
    client.send(chunked(b"b" * 11))
    response = client.response()
    assert response.status == 413
    assert response.fault_code == "RPN-413-TAILLE"
    assert client.closing
    client.send(chunked(b"c" * 100) + b"0\r\n\r\n")
    assert len(client.responses()) == 1
    assert [r.code for r in relay.records] == ["RPN-413-TAILLE"]
    assert relay.upstreams.calls == []


def test_a_request_not_complete_within_the_read_timeout_is_cut_with_408(
    relay: RelayHarness,
) -> None:
    body = envelope()
    client = relay.connect()
    client.send(post(body)[:-20])
    relay.clock.advance(READ_TIMEOUT - 0.01)
    assert client.responses() == []
    relay.clock.advance(0.01)
    response = client.response()
    assert response.status == 408
    assert response.fault_code == "RPN-408-LECTURE"
    assert response.fault.findtext(f".//{{{RPN_FAULT_NS}}}Rejouable") == "true"
    assert client.closing
    assert [(r.code, r.status) for r in relay.records] == [("RPN-408-LECTURE", 408)]
    assert relay.upstreams.calls == []


def test_a_slow_request_completed_in_time_is_relayed_and_never_cut(relay: RelayHarness) -> None:
    data = post(envelope())
    client = relay.connect()
    client.send(data[:50])
    relay.clock.advance(READ_TIMEOUT - 1)
    client.send(data[50:])
    assert len(relay.upstreams.calls) == 1
    relay.clock.advance(READ_TIMEOUT * 2)  # the AMC is slow: that is not the client's fault
    assert client.responses() == []
    relay.upstreams.calls[0].answer.callback(answer())
    assert client.response().status == 200


def test_a_refused_request_expecting_100_continue_is_not_invited_to_send_its_body(
    relay: RelayHarness,
) -> None:
    client = relay.connect()
    client.send(post(b"", length=MAX_BODY + 1, headers=(("Expect", "100-continue"),)))
    assert [response.status for response in client.responses()] == [413]


def test_an_idle_connection_is_closed_after_the_idle_timeout(relay: RelayHarness) -> None:
    client = relay.connect()
    relay.clock.advance(IDLE_TIMEOUT + 1)
    assert client.closing


# Refusals of complete requests


def test_get_is_refused_with_405_and_an_allow_header(relay: RelayHarness) -> None:
    client = relay.exchange(b"GET /roc HTTP/1.1\r\nHost: rpn.test\r\n\r\n")
    response = client.response()
    assert response.header("Allow") == "POST"
    record = assert_refused(response, relay.records, RpnError.METHOD_NOT_ALLOWED)
    assert record.outcome == "rejected"


@pytest.mark.parametrize(
    "request_bytes",
    [
        post(envelope(), path="/autre"),
        post(envelope(), path="/rocket"),
        b"GET /autre HTTP/1.1\r\nHost: rpn.test\r\n\r\n",
    ],
    ids=["post-elsewhere", "post-prefix-lookalike", "get-elsewhere"],
)
def test_a_path_where_no_service_is_published_is_404(
    relay: RelayHarness, request_bytes: bytes
) -> None:
    response = relay.exchange(request_bytes).response()
    assert response.header("Allow") is None
    assert_refused(response, relay.records, RpnError.NOT_FOUND)
    assert relay.upstreams.calls == []


def test_a_request_that_is_not_soap_is_415(relay: RelayHarness) -> None:
    client = relay.exchange(post(b'{"nir": 1}', content_type="application/json"))
    assert_refused(client.response(), relay.records, RpnError.CONTENT_TYPE)
    assert relay.upstreams.calls == []


@pytest.mark.parametrize(
    ("request_bytes", "error"),
    [
        (b"GET /roc HTTP/1.1\r\nHost: rpn.test\r\n\r\n", RpnError.METHOD_NOT_ALLOWED),
        (post(envelope(), path="/autre"), RpnError.NOT_FOUND),
        (post(b'{"nir": 1}', content_type="application/json"), RpnError.CONTENT_TYPE),
    ],
    ids=["405", "404", "415"],
)
def test_a_refusal_before_routing_is_counted_for_the_registered_establishment(
    relay: RelayHarness, request_bytes: bytes, error: RpnError
) -> None:
    record = assert_refused(relay.exchange(request_bytes).response(), relay.records, error)
    assert (record.finess, record.registered, record.outcome) == (REGISTERED, True, "rejected")


def test_an_unregistered_certificate_still_gets_the_http_refusal_first(
    relay: RelayHarness,
) -> None:
    client = relay.exchange(b"GET /roc HTTP/1.1\r\nHost: rpn.test\r\n\r\n", "unregistered")
    record = assert_refused(client.response(), relay.records, RpnError.METHOD_NOT_ALLOWED)
    assert not record.registered


@pytest.mark.parametrize(
    ("certificate", "finess"),
    [("unregistered", UNREGISTERED), ("no-finess", ""), ("none", "")],
)
def test_an_establishment_that_is_not_registered_is_403(
    relay: RelayHarness, certificate: str, finess: str
) -> None:
    client = relay.exchange(post(envelope()), certificate)
    record = assert_refused(client.response(), relay.records, RpnError.SENDER_NOT_REGISTERED)
    assert record.finess == finess
    assert relay.upstreams.calls == []


def test_a_message_naming_another_sender_than_the_certificate_is_403(
    relay: RelayHarness,
) -> None:
    message = envelope(routage(legal="990000036", site=OTHER_REGISTERED))
    client = relay.exchange(post(message), "hospital")
    response = client.response()
    record = assert_refused(response, relay.records, RpnError.SENDER_MISMATCH)
    assert record.finess == REGISTERED
    assert record.exchange_id == EXCHANGE_ID
    assert response.header("X-ROC-Echange") == EXCHANGE_ID
    assert relay.upstreams.calls == []


@pytest.mark.parametrize(
    ("certificate", "legal", "site"),
    [
        # Hospital B's site names itself as a legal entity owning hospital A's site.
        ("hospital-b", OTHER_REGISTERED, REGISTERED),
        # Hospital B's legal entity claims hospital A's site.
        ("entity-b", LEGAL_B, REGISTERED),
        # Hospital B's legal entity names hospital A's registered pair.
        ("entity-b", LEGAL_A, REGISTERED),
        # Hospital A's site under a legal entity that is not its own.
        ("hospital", LEGAL_B, REGISTERED),
        # A site that is not registered at all.
        ("hospital", LEGAL_A, UNREGISTERED),
    ],
)
def test_no_establishment_may_speak_for_another_s_site(
    relay: RelayHarness, certificate: str, legal: str, site: str
) -> None:
    client = relay.exchange(post(envelope(routage(legal=legal, site=site))), certificate)
    response = client.response()
    assert_refused(response, relay.records, RpnError.SENDER_MISMATCH)
    assert relay.upstreams.calls == []


@pytest.mark.parametrize("missing", ["legal", "site"])
def test_a_message_must_name_both_its_legal_entity_and_its_site(
    relay: RelayHarness, missing: str
) -> None:
    # Both sender FINESS are routing fields (one rule for the relay and the simulator).
    header = routage().replace(
        f"<rt:FinessJuridique>{LEGAL_A}</rt:FinessJuridique>"
        if missing == "legal"
        else (f"<rt:FinessGeographique>{REGISTERED}</rt:FinessGeographique>"),
        "",
    )
    client = relay.exchange(post(envelope(header)))
    assert_refused(client.response(), relay.records, RpnError.ROUTING_UNREADABLE)
    assert relay.upstreams.calls == []


def test_a_legal_entity_certificate_speaks_for_its_own_site(relay: RelayHarness) -> None:
    relay.exchange(post(envelope(routage(legal=LEGAL_A, site=REGISTERED))), "entity-a")
    assert len(relay.upstreams.calls) == 1
    headers = relay.upstreams.calls[0].headers
    assert headers.getRawHeaders(b"X-ROC-Emetteur-Finess") == [LEGAL_A.encode()]


def test_the_spoofing_fault_names_the_certificate_s_finess_and_the_message_s(
    relay: RelayHarness,
) -> None:
    client = relay.exchange(
        post(envelope(routage(legal=OTHER_REGISTERED, site=REGISTERED))), "hospital-b"
    )
    text = client.response().body.decode()
    assert OTHER_REGISTERED in text and REGISTERED in text


def test_sender_check_can_be_turned_off(make_relay: Callable[..., RelayHarness]) -> None:
    relay = make_relay(check_sender=False)
    relay.exchange(post(envelope(routage(legal="990000036", site=OTHER_REGISTERED))))
    assert len(relay.upstreams.calls) == 1


def _in_state(state: State, simulated: tuple[str, ...]) -> Registration:
    """Hospital A in *state*, hospital B in production; *simulated*: Mutuelle ANS's AMCs."""
    return Registration.of(
        [(LEGAL_A, [REGISTERED]), (LEGAL_B, [OTHER_REGISTERED])],
        {LEGAL_A: Lifecycle(state, datetime.date(2026, 12, 1))},
        simulated,
    )


@pytest.mark.parametrize(
    ("state", "error", "words"),
    [
        (State.QUALIFICATION, RpnError.IN_QUALIFICATION, "est en qualification"),
        (State.SUSPENDED, RpnError.SUSPENDED, "est suspendue"),
    ],
)
@pytest.mark.parametrize("certificate", ["hospital", "entity-a"])
def test_an_establishment_in_qualification_or_suspended_does_not_reach_a_real_amc(
    make_relay: Callable[..., RelayHarness],
    state: State,
    error: RpnError,
    words: str,
    certificate: str,
) -> None:
    relay = make_relay(registration=_in_state(state, ("990000202",)))
    response = relay.exchange(post(envelope()), certificate).response()
    record = assert_refused(response, relay.records, error)
    assert relay.upstreams.calls == []
    assert record.outcome == "rejected" and record.exchange_id == EXCHANGE_ID
    # The fault says, in French, what the state allows and which AMC was refused.
    assert words in response.text and AMC in response.text and "990000202" in response.text
    # Hospital B, in production, still reaches the same AMC.
    relay.exchange(post(envelope(routage(legal=LEGAL_B, site=OTHER_REGISTERED))), "hospital-b")
    assert len(relay.upstreams.calls) == 1


@pytest.mark.parametrize("state", [State.QUALIFICATION, State.SUSPENDED])
def test_an_establishment_in_qualification_reaches_mutuelle_ans_s_amcs(
    make_relay: Callable[..., RelayHarness], state: State
) -> None:
    relay = make_relay(registration=_in_state(state, (AMC,)))
    relay.exchange(post(envelope()))
    assert len(relay.upstreams.calls) == 1


@pytest.mark.parametrize("state", [State.UNDER_WATCH, State.PRODUCTION])
def test_an_establishment_live_reaches_every_amc(
    make_relay: Callable[..., RelayHarness], state: State
) -> None:
    relay = make_relay(registration=_in_state(state, ("990000202",)))
    relay.exchange(post(envelope()))
    assert len(relay.upstreams.calls) == 1


def test_a_dre_invoice_is_refused_with_400(relay: RelayHarness) -> None:
    client = relay.exchange(post(envelope(routage(service="DRE"))))
    record = assert_refused(client.response(), relay.records, RpnError.DRE_NOT_RELAYED)
    assert record.service == "DRE"
    assert relay.upstreams.calls == []


def test_a_message_without_a_readable_routing_block_is_400(relay: RelayHarness) -> None:
    client = relay.exchange(post(envelope(header="")))
    assert_refused(client.response(), relay.records, RpnError.ROUTING_UNREADABLE)
    assert relay.upstreams.calls == []


def test_an_amc_unknown_to_the_annuaire_is_400(relay: RelayHarness) -> None:
    client = relay.exchange(post(envelope(routage(amc="990000909"))))
    response = client.response()
    record = assert_refused(response, relay.records, RpnError.AMC_UNKNOWN)
    assert record.outcome == "rejected"
    assert response.header("X-ROC-Echange") == EXCHANGE_ID
    assert relay.upstreams.calls == []


def test_a_service_the_amc_does_not_offer_is_400(relay: RelayHarness) -> None:
    client = relay.exchange(post(envelope(routage(service="CLC"))))
    record = assert_refused(client.response(), relay.records, RpnError.SERVICE_NOT_OFFERED)
    assert record.amc == AMC
    assert relay.upstreams.calls == []


def test_a_stopping_relay_refuses_new_exchanges_with_a_retry_after(relay: RelayHarness) -> None:
    relay.relay.accepting = False
    response = relay.exchange(post(envelope())).response()
    assert response.header("Retry-After") == "1"
    assert_refused(response, relay.records, RpnError.SHUTTING_DOWN)


def test_a_soap12_request_refused_by_the_relay_gets_a_soap12_fault(relay: RelayHarness) -> None:
    message = envelope(routage(legal="990000036", site=OTHER_REGISTERED), ns=SOAP12_NS)
    client = relay.exchange(post(message, content_type="application/soap+xml; charset=utf-8"))
    response = client.response()
    assert response.status == 403
    assert response.header("Content-Type") == "application/soap+xml; charset=utf-8"
    assert response.fault.tag == f"{{{SOAP12_NS}}}Envelope"


# Failures after forwarding


def test_an_unreachable_amc_is_503_with_retry_after_and_counted_as_such(
    relay: RelayHarness,
) -> None:
    client = relay.exchange(post(envelope()))
    relay.upstreams.calls[0].answer.errback(
        RpnFailure(RpnError.AMC_UNAVAILABLE, "ConnectionRefusedError")
    )
    response = client.response()
    assert response.header("Retry-After") == "1"
    assert response.header("X-ROC-Echange") == EXCHANGE_ID
    record = assert_refused(response, relay.records, RpnError.AMC_UNAVAILABLE)
    assert (record.outcome, record.amc) == ("amc_unavailable", AMC)


def test_a_soap12_exchange_failing_at_the_amc_gets_a_soap12_fault(relay: RelayHarness) -> None:
    message = envelope(ns=SOAP12_NS)
    client = relay.exchange(post(message, content_type="application/soap+xml; charset=utf-8"))
    relay.upstreams.calls[0].answer.errback(RpnFailure(RpnError.AMC_TIMEOUT, "TimeoutError"))
    response = client.response()
    assert response.status == 504
    assert response.header("Content-Type") == "application/soap+xml; charset=utf-8"
    assert response.fault.tag == f"{{{SOAP12_NS}}}Envelope"
    assert response.header("Retry-After") is None
    assert relay.records[0].outcome == "timeout"


def test_an_unexpected_failure_is_a_500_fault_and_is_logged(relay: RelayHarness) -> None:
    client = relay.exchange(post(envelope()))
    with capturedLogs() as events:
        relay.upstreams.calls[0].answer.errback(KeyError("bug"))
    assert_refused(client.response(), relay.records, RpnError.INTERNAL)
    assert any(
        event["log_level"] is LogLevel.critical and event.get("exchange_id") == EXCHANGE_ID
        for event in events
    )


def test_an_establishment_gone_before_the_answer_is_recorded_as_client_gone(
    relay: RelayHarness,
) -> None:
    client = relay.exchange(post(envelope()))
    client.disconnect()
    written = client.transport.value()
    relay.upstreams.calls[0].answer.callback(answer())
    assert client.transport.value() == written
    [record] = relay.records
    assert (record.outcome, record.status) == ("client_gone", 200)
    assert relay.relay.in_flight == 0


def test_an_establishment_over_its_in_flight_cap_gets_429_and_others_are_unaffected(
    make_relay: Callable[..., RelayHarness],
) -> None:
    relay = make_relay(max_in_flight=2)
    first, second = relay.exchange(post(envelope())), relay.exchange(post(envelope()))
    third = relay.exchange(post(envelope()))
    assert (third.response().status, third.response().fault_code) == (429, "RPN-429-DEBIT")
    assert third.response().header("Retry-After") == "1"
    assert len(relay.upstreams.calls) == 2
    other = relay.exchange(
        post(envelope(routage(legal="990000036", site=OTHER_REGISTERED))), certificate="hospital-b"
    )
    assert len(relay.upstreams.calls) == 3
    relay.upstreams.calls[0].answer.callback(answer())
    assert first.response().status == 200
    again = relay.exchange(post(envelope()))
    assert len(relay.upstreams.calls) == 4
    for call in relay.upstreams.calls[1:]:
        call.answer.callback(answer())
    assert [c.response().status for c in (second, other, again)] == [200, 200, 200]
    assert relay.relay.in_flight_by_establishment == {}


def test_a_certificate_already_seen_is_read_again_under_a_reloaded_policy(
    relay: RelayHarness,
) -> None:
    relay.exchange(post(envelope()))
    assert len(relay.upstreams.calls) == 1
    relay.relay.policy = replace(relay.relay.policy, finess_attribute="CN")
    client = relay.exchange(post(envelope()))
    assert_refused(client.response(), relay.records, RpnError.SENDER_NOT_REGISTERED)
    assert len(relay.upstreams.calls) == 1


def test_exchanges_cut_by_a_forced_stop_are_answered_and_recorded_once_each(
    relay: RelayHarness,
) -> None:
    relay.relay.draining = True
    clients = [relay.exchange(post(envelope())) for _ in range(2)]
    assert len(relay.upstreams.calls) == 2
    assert relay.relay.cut_in_flight() == 2
    for client in clients:
        response = client.response()
        assert (response.status, response.fault_code) == (503, "RPN-503-ARRET-COUPE")
        assert response.header("Retry-After") is None  # it may have reached the AMC
    assert [r.outcome for r in relay.records] == ["cut_by_shutdown", "cut_by_shutdown"]
    assert relay.relay.in_flight == 0
    assert relay.relay.in_flight_by_establishment == {}
    assert relay.relay.cut_in_flight() == 0
    # The AMC's answer arriving after the cut changes nothing.
    for call in relay.upstreams.calls:
        assert call.answer.called
    assert len(relay.records) == 2


def test_the_registration_is_exported_for_the_indicators_and_follows_a_reload(
    relay: RelayHarness,
) -> None:
    from rpn.admin import RelayCollector

    def registered() -> set[tuple[str, str]]:
        (family,) = [
            m
            for m in RelayCollector(relay.relay).collect()
            if m.name == "rpn_establishment_registered"
        ]
        return {(s.labels["finess"], s.labels["role"]) for s in family.samples if s.value == 1}

    assert {(LEGAL_A, "legal_entity"), (REGISTERED, "site")} <= registered()
    relay.relay.policy = replace(
        relay.relay.policy, registration=Registration.of([(LEGAL_B, [OTHER_REGISTERED])])
    )
    assert registered() == {(LEGAL_B, "legal_entity"), (OTHER_REGISTERED, "site")}
