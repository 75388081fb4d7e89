"""The relay's HTTP/1.1 server protocol: framing, limits and refusals a client would see.

A recording handler stands in for the relay: it keeps each request and answers when the test
says so. Bytes go in through ``dataReceived`` and come out of a ``StringTransport``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from lxml import etree
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from piano.testing import StrictClock
from roc.model import RPN_FAULT_NS
from rpn.errors import RpnError, RpnFailure
from rpn.exchange import Response, fault_response
from rpn.http.server import (
    MAX_HEADERS,
    MAX_REQUEST_HEAD_BYTES,
    HttpRequest,
    HttpServerFactory,
    HttpServerProtocol,
    soap_version_of_header,
)

READ_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0
MAX_BODY = 4096
BODY = b"<soap:Envelope>" + b"x" * 300 + b"</soap:Envelope>"


class Handler:
    """Keeps requests; answers them on demand (or at once with *auto*)."""

    def __init__(self, auto: bool = False) -> None:
        self.auto = auto
        self.requests: list[HttpRequest] = []
        self.refusals: list[tuple[RpnError, int, int]] = []

    def handle(self, request: HttpRequest) -> None:
        self.requests.append(request)
        if self.auto:
            answer(request)

    def refuse_early(
        self,
        connection: HttpServerProtocol,
        error: RpnError,
        detail: str,
        content_type: bytes | None,
    ) -> Response:
        response = fault_response(
            RpnFailure(error, detail), "", soap_version_of_header(content_type)
        )
        self.refusals.append((error, response.status, len(response.body)))
        return response


def answer(request: HttpRequest, body: bytes | None = None, close: bool = False) -> None:
    request.connection.respond(
        200, [(b"Content-Type", b"text/xml")], body if body is not None else request.body, close
    )


class Conn:
    def __init__(self, auto: bool = False, factory: HttpServerFactory | None = None) -> None:
        self.clock = StrictClock()
        self.handler = Handler(auto)
        if factory is None:
            factory = HttpServerFactory(
                lambda: self.handler,
                self.clock,
                lambda: READ_TIMEOUT,
                lambda: MAX_BODY,
                IDLE_TIMEOUT,
            )
        else:
            self.clock = factory.clock  # type: ignore[assignment]
            self.handler = factory.handler()  # type: ignore[assignment]
        self.factory = factory
        protocol = factory.buildProtocol(None)
        assert isinstance(protocol, HttpServerProtocol)
        self.protocol: HttpServerProtocol = protocol
        self.transport: StringTransport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def output(self) -> bytes:
        value: bytes = self.transport.value()
        return value

    @property
    def closing(self) -> bool:
        return bool(self.transport.disconnecting)

    def lose(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))


@pytest.fixture
def conn() -> Iterator[Conn]:
    c = Conn()
    yield c
    c.lose()


@pytest.fixture
def auto() -> Iterator[Conn]:
    c = Conn(auto=True)
    yield c
    c.lose()


def post(body: bytes = BODY, *headers: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    head = [b"POST /roc?x=1 " + version, b"Host: rpn.test", b"Content-Type: text/xml"]
    head += [b"Content-Length: %d" % len(body), *headers]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def chunked(body: bytes, size: int = 100) -> bytes:
    head = b"POST /roc HTTP/1.1\r\nContent-Type: text/xml\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    return head + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"


def responses(raw: bytes) -> list[tuple[int, dict[bytes, list[bytes]], bytes]]:
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.split(b"\r\n")
        headers: dict[bytes, list[bytes]] = {}
        for line in lines:
            name, _, value = line.partition(b":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        length = int(headers.get(b"content-length", [b"0"])[0])
        found.append((int(status_line.split(b" ")[1]), headers, rest[:length]))
        raw = rest[length:]
    return found


def fault_code(body: bytes) -> str | None:
    return etree.fromstring(body).findtext(f".//{{{RPN_FAULT_NS}}}Code")


def assert_refused(conn: Conn, error: RpnError) -> None:
    [(status, headers, body)] = responses(conn.output())
    assert status == error.http_status
    assert fault_code(body) == error.code
    assert headers[b"connection"] == [b"close"]
    assert conn.closing
    assert conn.handler.requests == []
    assert [r[0] for r in conn.handler.refusals] == [error]


# Requests as the handler sees them


def test_a_request_reaches_the_handler_with_its_body_path_and_headers(conn: Conn) -> None:
    conn.send(post(BODY, b'SOAPAction: "urn:x"'))
    [request] = conn.handler.requests
    assert (request.method, request.path, request.body) == (b"POST", b"/roc", BODY)
    assert request.headers[b"soapaction"] == b'"urn:x"'
    assert request.headers[b"content-type"] == b"text/xml"


def test_a_request_split_at_every_byte_is_read_the_same(conn: Conn) -> None:
    for byte in post():
        conn.send(bytes([byte]))
    [request] = conn.handler.requests
    assert request.body == BODY


def test_a_chunked_body_split_at_every_byte_is_decoded(conn: Conn) -> None:
    for byte in chunked(BODY, 37):
        conn.send(bytes([byte]))
    [request] = conn.handler.requests
    assert request.body == BODY


def test_an_absolute_form_target_is_read_as_its_path(conn: Conn) -> None:
    conn.send(post().replace(b"POST /roc?x=1", b"POST https://rpn.test/roc/IDB"))
    assert conn.handler.requests[0].path == b"/roc/IDB"


def test_empty_lines_before_a_request_are_ignored(conn: Conn) -> None:
    conn.send(b"\r\n\r\n" + post())
    assert conn.handler.requests[0].body == BODY


def test_the_answer_is_one_write_with_length_and_date(conn: Conn) -> None:
    conn.send(post())
    answer(conn.handler.requests[0], b"<ok/>")
    [(status, headers, body)] = responses(conn.output())
    assert (status, body) == (200, b"<ok/>")
    assert headers[b"content-length"] == [b"5"]
    assert len(headers[b"date"]) == 1
    assert b"connection" not in headers
    assert not conn.closing


# Persistence


def test_two_requests_on_one_connection_are_answered_in_order(auto: Conn) -> None:
    auto.send(post(b"<one/>"))
    auto.send(post(b"<two/>"))
    assert [body for _, _, body in responses(auto.output())] == [b"<one/>", b"<two/>"]
    assert not auto.closing


def test_pipelined_requests_wait_for_the_answer_before_them(conn: Conn) -> None:
    conn.send(post(b"<one/>") + post(b"<two/>") + post(b"<three/>"))
    assert [r.body for r in conn.handler.requests] == [b"<one/>"]
    answer(conn.handler.requests[0])
    assert [r.body for r in conn.handler.requests] == [b"<one/>", b"<two/>"]
    answer(conn.handler.requests[1])
    answer(conn.handler.requests[2])
    assert [body for _, _, body in responses(conn.output())] == [b"<one/>", b"<two/>", b"<three/>"]


def test_many_pipelined_requests_answered_at_once_do_not_exhaust_the_stack(auto: Conn) -> None:
    auto.send(post(b"<p/>") * 3000)
    assert len(responses(auto.output())) == 3000


def test_a_client_sending_far_ahead_of_its_answers_stops_being_read(conn: Conn) -> None:
    conn.send(post())
    conn.send(post(b"y" * MAX_BODY) * 6)
    assert conn.transport.producerState == "paused"
    # Reading resumes once what waits is back under one full request (head and body).
    states = []
    for served in range(7):
        answer(conn.handler.requests[served])
        states.append(conn.transport.producerState)
    assert states[0] == "paused"
    assert states[-1] == "producing"
    assert len(responses(conn.output())) == 7


def test_connection_close_from_the_client_closes_after_the_answer(conn: Conn) -> None:
    conn.send(post(BODY, b"Connection: close"))
    answer(conn.handler.requests[0])
    [(_status, headers, _)] = responses(conn.output())
    assert headers[b"connection"] == [b"close"]
    assert conn.closing


def test_an_http_1_0_client_gets_its_answer_then_the_close(conn: Conn) -> None:
    conn.send(post(version=b"HTTP/1.0"))
    answer(conn.handler.requests[0])
    assert conn.closing


def test_an_http_1_0_client_asking_for_keep_alive_keeps_its_connection(conn: Conn) -> None:
    conn.send(post(BODY, b"Connection: keep-alive", version=b"HTTP/1.0"))
    answer(conn.handler.requests[0])
    assert not conn.closing


def test_the_handler_can_close_after_its_answer(conn: Conn) -> None:
    conn.send(post())
    answer(conn.handler.requests[0], close=True)
    assert responses(conn.output())[0][1][b"connection"] == [b"close"]
    assert conn.closing


def test_an_answer_to_head_has_no_body(conn: Conn) -> None:
    conn.send(b"HEAD /roc HTTP/1.1\r\nHost: x\r\n\r\n")
    answer(conn.handler.requests[0], b"<ignored/>")
    head, _, rest = conn.output().partition(b"\r\n\r\n")
    assert b"Content-Length: 10" in head
    assert rest == b""


def test_an_answer_after_the_client_left_is_dropped(conn: Conn) -> None:
    conn.send(post())
    conn.lose()
    answer(conn.handler.requests[0])
    assert conn.output() == b""


def test_expect_100_continue_invites_the_body_of_an_acceptable_request(conn: Conn) -> None:
    request = post(BODY, b"Expect: 100-continue")
    head, _, body = request.partition(b"\r\n\r\n")
    conn.send(head + b"\r\n\r\n")
    assert conn.output() == b"HTTP/1.1 100 Continue\r\n\r\n"
    conn.send(body)
    assert conn.handler.requests[0].body == BODY


def test_a_body_declared_over_the_limit_is_refused_before_it_is_sent(conn: Conn) -> None:
    conn.send(post(b"", b"Expect: 100-continue").replace(b"Length: 0", b"Length: 5000"))
    assert b"100 Continue" not in conn.output()
    assert_refused(conn, RpnError.BODY_TOO_LARGE)


def test_after_a_size_refusal_the_rest_of_the_body_is_never_read(conn: Conn) -> None:
    conn.send(post(b"").replace(b"Length: 0", b"Length: 5000000"))
    assert_refused(conn, RpnError.BODY_TOO_LARGE)
    # The socket stops being read: what the client keeps pushing stays in its own buffers
    # until the connection is cut, instead of being received and thrown away.
    assert conn.transport.producerState == "paused"


def test_a_chunked_body_growing_over_the_limit_is_refused(conn: Conn) -> None:
    conn.send(chunked(b"z" * (MAX_BODY + 1), 1000))
    assert_refused(conn, RpnError.BODY_TOO_LARGE)


def test_a_body_of_exactly_the_limit_is_accepted(conn: Conn) -> None:
    conn.send(post(b"z" * MAX_BODY))
    assert len(conn.handler.requests[0].body) == MAX_BODY


# Timeouts


def test_a_request_not_complete_within_the_read_timeout_gets_408(conn: Conn) -> None:
    conn.send(b"PO")
    conn.clock.advance(READ_TIMEOUT - 0.1)
    conn.send(b"ST /roc HTTP/1.1\r\n")
    assert conn.output() == b""
    conn.clock.advance(0.1)
    assert_refused(conn, RpnError.REQUEST_TIMEOUT)


def test_a_refused_client_that_never_acknowledges_the_close_is_aborted(conn: Conn) -> None:
    conn.send(b"PO")
    conn.clock.advance(READ_TIMEOUT)
    assert conn.closing and not conn.transport.disconnected
    conn.clock.advance(2.0)
    assert conn.transport.disconnected


def test_the_read_timeout_starts_again_for_each_request(auto: Conn) -> None:
    auto.send(post())
    auto.clock.advance(READ_TIMEOUT * 0.9)
    auto.send(post()[:20])
    auto.clock.advance(READ_TIMEOUT * 0.9)
    auto.send(post()[20:])
    assert len(responses(auto.output())) == 2


def test_an_idle_connection_is_closed_after_the_idle_timeout(auto: Conn) -> None:
    auto.send(post())
    auto.clock.advance(IDLE_TIMEOUT - 1)
    assert not auto.closing
    auto.clock.advance(1)
    assert auto.closing


def test_a_request_waiting_for_its_answer_is_never_cut_by_a_timeout(conn: Conn) -> None:
    conn.send(post())
    conn.clock.advance(IDLE_TIMEOUT * 3)
    assert not conn.closing
    answer(conn.handler.requests[0])
    assert responses(conn.output())[0][0] == 200


# Malformed and hostile requests


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(b"POST /roc\r\n\r\n", id="two-part request line"),
        pytest.param(b"POST /roc HTTP/1.2\r\n\r\n", id="HTTP/1.2 version"),
        pytest.param(b"POST /roc HTTP/0.9\r\n\r\n", id="HTTP/0.9 version"),
        pytest.param(b"BREW /roc HTTP/1.1\r\n\r\n", id="unknown method"),
        pytest.param(b"POST /roc HTTP/2.0\r\n\r\n", id="HTTP/2 version"),
        pytest.param(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", id="HTTP/2 preface"),
        pytest.param(b"PO(ST /roc HTTP/1.1\r\n\r\n", id="method not a token"),
        pytest.param(b"POST roc HTTP/1.1\r\n\r\n", id="relative target"),
        pytest.param(b"POST /roc HTTP/1.1\r\nNo colon here\r\n\r\n", id="header without colon"),
        pytest.param(b"POST /roc HTTP/1.1\r\nBad Name: v\r\n\r\n", id="space in header name"),
        pytest.param(b"POST /roc HTTP/1.1\r\nName : v\r\n\r\n", id="space before colon"),
        pytest.param(b"POST /roc HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", id="obsolete line folding"),
        pytest.param(b"POST /roc HTTP/1.1\r\nA: b\rc\r\n\r\n", id="bare CR in a value"),
        pytest.param(b"POST /roc HTTP/1.1\r\nA: b\x00\r\n\r\n", id="NUL in a value"),
        pytest.param(b"POST /roc HTTP/1.1\nA: b\r\n\r\n", id="bare LF ending a line"),
        pytest.param(b"POST /roc HTTP/1.1\r\nA: b\nX-Injected: 1\r\n\r\n", id="bare LF in a value"),
        pytest.param(b"POST /roc HTTP/1.1\r\nContent-Length: -1\r\n\r\n", id="negative length"),
        pytest.param(b"POST /roc HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n", id="length not digits"),
        pytest.param(
            b"POST /roc HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            id="conflicting lengths",
        ),
        pytest.param(
            b"POST /roc HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            id="length and chunked",
        ),
        pytest.param(
            b"POST /roc HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            id="unsupported coding",
        ),
        pytest.param(
            b"POST /roc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            id="bad chunk size",
        ),
        pytest.param(
            b"POST /roc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
            id="chunk longer than declared",
        ),
        pytest.param(
            b"POST /roc HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\nab\r\n",
            id="chunk size ended by a bare LF",
        ),
    ],
)
def test_a_malformed_request_is_refused_with_400_and_the_connection_closed(
    conn: Conn, request_bytes: bytes
) -> None:
    conn.send(request_bytes)
    assert_refused(conn, RpnError.HTTP_MALFORMED)


def test_repeated_content_lengths_are_refused_even_when_equal(conn: Conn) -> None:
    # llhttp's rule (RFC 9112 section 6.3 allows either): one length, or a 400.
    conn.send(post(BODY, b"Content-Length: %d" % len(BODY)))
    assert_refused(conn, RpnError.HTTP_MALFORMED)


def test_two_spaces_in_the_request_line_are_read_as_one(conn: Conn) -> None:
    # llhttp parses on whitespace boundaries here (RFC 9112 section 3 allows it).
    conn.send(post().replace(b"POST /roc", b"POST  /roc", 1))
    assert conn.handler.requests[0].path == b"/roc"


def test_trailer_fields_are_never_taken_as_headers_of_the_request(conn: Conn) -> None:
    body = chunked(BODY).replace(b"0\r\n\r\n", b"0\r\nSOAPAction: urn:x\r\n\r\n")
    conn.send(body)
    [request] = conn.handler.requests
    assert request.body == BODY
    assert b"soapaction" not in request.headers


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /roc HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n",
        b"CONNECT rpn.test:443 HTTP/1.1\r\n\r\n",
    ],
    ids=["upgrade", "connect"],
)
def test_protocol_upgrades_and_connect_are_refused(conn: Conn, request_bytes: bytes) -> None:
    conn.send(request_bytes)
    assert_refused(conn, RpnError.HTTP_MALFORMED)


def test_pipelined_requests_past_a_malformed_one_answer_the_earlier_first(conn: Conn) -> None:
    conn.send(post() + b"GARBAGE\r\n\r\n")
    assert len(conn.handler.requests) == 1
    assert conn.output() == b""  # the refusal waits for the answer before it
    answer(conn.handler.requests[0])
    statuses = [status for status, _, _ in responses(conn.output())]
    assert statuses == [200, 400]
    assert conn.closing


def test_a_head_over_the_size_limit_is_refused_with_431(conn: Conn) -> None:
    conn.send(b"POST /roc HTTP/1.1\r\nX-Big: " + b"a" * MAX_REQUEST_HEAD_BYTES)
    assert_refused(conn, RpnError.HEADERS_TOO_LARGE)


def test_too_many_header_fields_are_refused_with_431(conn: Conn) -> None:
    fields = b"".join(b"X-H%d: v\r\n" % i for i in range(MAX_HEADERS + 1))
    conn.send(b"POST /roc HTTP/1.1\r\n" + fields + b"\r\n")
    assert_refused(conn, RpnError.HEADERS_TOO_LARGE)


def test_bytes_sent_after_a_refusal_are_ignored(conn: Conn) -> None:
    conn.send(b"GARBAGE\r\n\r\n")
    conn.send(post())
    assert_refused(conn, RpnError.HTTP_MALFORMED)


def test_a_refusal_is_a_soap_12_fault_for_a_soap_12_client(conn: Conn) -> None:
    conn.send(
        b"POST /roc HTTP/1.1\r\nContent-Type: application/soap+xml\r\nContent-Length: 9999\r\n\r\n"
    )
    [(_status, headers, body)] = responses(conn.output())
    assert headers[b"content-type"][0].startswith(b"application/soap+xml")
    assert b"http://www.w3.org/2003/05/soap-envelope" in body


def test_tls_clients_offering_alpn_are_told_http_1_1() -> None:
    factory = HttpServerFactory(lambda: Handler(), StrictClock(), lambda: 1.0, lambda: 1, 1.0)
    assert verifyObject(IProtocolNegotiationFactory, factory)
    assert factory.acceptableProtocols() == [b"http/1.1"]


def test_a_stop_closes_idle_connections_at_once_and_busy_ones_after_their_answer() -> None:
    idle = Conn()
    factory = idle.factory
    busy = Conn(factory=factory)  # one listener, two clients
    assert factory.connections == {idle.protocol, busy.protocol}
    busy.send(post())
    closed = factory.close_connections()
    assert idle.closing and not busy.closing
    idle.lose()
    assert not closed.called
    answer(busy.handler.requests[0], close=True)
    assert responses(busy.output())[0][0] == 200
    assert busy.closing
    busy.lose()
    assert closed.called
