"""The exchange path's HTTP/1.1 client: what it sends, what answers it accepts, what it reuses.

The parser is fed bytes directly (every split of an answer must parse the same); connections
and the pool run on ``StringTransport`` and the strict test clock (``piano.testing``).
"""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.defer import CancelledError
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from piano.testing import StrictClock
from rpn.http.answer import MAX_ANSWER_HEAD_BYTES, AnswerParser, NotAnHttpAnswer, keep_alive_timeout
from rpn.http.client import CLOSE_GRACE, ConnectionPool, H1Connection, HttpClient
from rpn.http.common import AnswerCut, BadUrl, BodyTooLarge, NoAnswer
from tests.deferreds import failure_result_of, success_result_of

LIMIT = 1000

# -- the parser --------------------------------------------------------------------------------


def parse(*pieces: bytes, limit: int = LIMIT, close: bool = False) -> AnswerParser:
    """An answer fed in *pieces*, which must complete it (or the close must, with *close*)."""
    parser = AnswerParser(limit)
    complete = False
    for piece in pieces:
        assert not complete, "bytes fed after the answer was complete"
        complete = parser.feed(piece)
    if close:
        assert not complete
        assert parser.end(), "the close did not complete the answer"
    else:
        assert complete, "the answer is not complete"
    return parser


def summary(parser: AnswerParser) -> tuple[Any, ...]:
    return parser.status, parser.headers, parser.body, parser.reusable, parser.leftover


def splits(data: bytes) -> list[tuple[bytes, ...]]:
    """*data* cut in two at every byte boundary, and a byte at a time."""
    cuts: list[tuple[bytes, ...]] = [(data[:i], data[i:]) for i in range(1, len(data))]
    cuts.append(tuple(data[i : i + 1] for i in range(len(data))))
    return cuts


WITH_LENGTH = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/xml\r\n"
    b"X-AMC-Trace: t-1\r\n"
    b"Content-Length: 10\r\n"
    b"x-amc-trace: t-2\r\n"
    b"\r\n"
    b"<reponse/>"
)

CHUNKED = (
    b"HTTP/1.1 200 OK\r\n"
    b"Transfer-Encoding: chunked\r\n"
    b"Content-Type: text/xml\r\n"
    b"\r\n"
    b"4;name=value\r\n<rep\r\n"
    b"6 \r\nonse/>\r\n"
    b"0\r\n"
    b"X-Checksum: 1234\r\n"
    b"\r\n"
)

INTERIM_THEN_FINAL = (
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n"
    b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
)


def test_an_answer_with_a_length_gives_its_status_headers_as_received_and_body() -> None:
    parser = parse(WITH_LENGTH)
    assert parser.status == 200
    # Order and name case as received; Content-Length is not an end-to-end header.
    assert parser.headers == [
        (b"Content-Type", b"text/xml"),
        (b"X-AMC-Trace", b"t-1"),
        (b"x-amc-trace", b"t-2"),
    ]
    assert parser.body == b"<reponse/>"
    assert parser.reusable
    assert parser.leftover == b""


@pytest.mark.parametrize("answer", [WITH_LENGTH, CHUNKED, INTERIM_THEN_FINAL])
def test_an_answer_parses_the_same_however_its_bytes_are_split(answer: bytes) -> None:
    whole = summary(parse(answer))
    for pieces in splits(answer):
        assert summary(parse(*pieces)) == whole, pieces


def test_a_chunked_body_is_reassembled_and_its_trailers_are_not_relayed() -> None:
    parser = parse(CHUNKED)
    assert parser.body == b"<reponse/>"
    assert parser.headers == [(b"Content-Type", b"text/xml")]
    assert parser.reusable


def test_interim_answers_are_skipped_for_the_final_one() -> None:
    parser = parse(INTERIM_THEN_FINAL)
    assert (parser.status, parser.headers, parser.body) == (201, [], b"ok")


def test_an_interim_answer_alone_is_not_an_answer() -> None:
    parser = AnswerParser(LIMIT)
    assert not parser.feed(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert not parser.end()
    assert parser.received_any


def test_a_switch_of_protocol_nobody_asked_for_is_refused() -> None:
    with pytest.raises(NotAnHttpAnswer):
        parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n")


def test_a_body_delimited_by_the_close_is_complete_at_the_close_and_never_reused() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\n\r\n<rep"
    parser = parse(answer, b"onse/>", close=True)
    assert parser.body == b"<reponse/>"
    assert not parser.reusable


def test_an_answer_cut_before_its_length_is_not_complete_at_the_close() -> None:
    parser = AnswerParser(LIMIT)
    assert not parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n<rep")
    assert not parser.end()


def test_a_chunked_answer_cut_before_its_last_chunk_is_not_complete_at_the_close() -> None:
    parser = AnswerParser(LIMIT)
    assert not parser.feed(CHUNKED[: CHUNKED.index(b"0\r\n")])
    assert not parser.end()


@pytest.mark.parametrize("status", [204, 304])
def test_no_content_and_not_modified_have_no_body(status: int) -> None:
    parser = parse(b"HTTP/1.1 %d Whatever\r\nETag: x\r\n\r\n" % status)
    assert (parser.status, parser.body, parser.reusable) == (status, b"", True)


def test_bytes_after_the_answer_are_kept_apart() -> None:
    parser = parse(WITH_LENGTH + b"HTTP/1.1 200 OK\r\n")
    assert parser.body == b"<reponse/>"
    assert parser.leftover == b"HTTP/1.1 200 OK\r\n"


def test_heads_with_bare_line_feeds_are_read() -> None:
    parser = parse(b"HTTP/1.1 200 OK\nContent-Type: text/xml\nContent-Length: 2\n\nok")
    assert (parser.status, parser.headers, parser.body) == (
        200,
        [(b"Content-Type", b"text/xml")],
        b"ok",
    )


def test_a_folded_header_line_joins_the_header_it_continues() -> None:
    parser = parse(b"HTTP/1.1 200 OK\r\nX-Long: one\r\n\ttwo\r\nContent-Length: 0\r\n\r\n")
    assert parser.headers == [(b"X-Long", b"one\ttwo")]


def test_a_lone_carriage_return_in_a_value_cannot_reach_the_client_as_a_line_break() -> None:
    parser = parse(b"HTTP/1.1 200 OK\r\nX-Odd: a\rb\r\nContent-Length: 0\r\n\r\n")
    assert parser.headers == [(b"X-Odd", b"a b")]


@pytest.mark.parametrize(
    ("head", "reusable"),
    [
        (b"HTTP/1.1 200 OK\r\n", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n", False),
        (b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\n", False),
        (b"HTTP/1.0 200 OK\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n", True),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n", False),
    ],
    ids=["1.1", "1.1-close", "1.1-close-listed", "1.0", "1.0-keep-alive", "chunked-and-length"],
)
def test_which_answers_leave_their_connection_reusable(head: bytes, reusable: bool) -> None:
    if b"chunked" in head:
        parser = parse(head + b"\r\n3\r\nabc\r\n0\r\n\r\n")
        assert parser.body == b"abc"  # chunked wins over the length, as RFC 9112 says
    else:
        parser = parse(head + b"Content-Length: 2\r\n\r\nok")
    assert parser.reusable is reusable


def test_a_body_of_exactly_the_limit_is_accepted() -> None:
    assert parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n12345", limit=5).body == b"12345"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\n",
        b"HTTP/1.1 200 OK\r\n\r\n123456",
        b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    ],
    ids=["declared-length", "chunks", "until-close", "declared-length-absurd"],
)
def test_a_body_over_the_limit_fails_as_soon_as_it_is_known(answer: bytes) -> None:
    with pytest.raises(BodyTooLarge):
        AnswerParser(5).feed(answer)


def test_a_head_over_the_limit_is_malformed_even_without_its_end() -> None:
    parser = AnswerParser(LIMIT)
    parser.feed(b"HTTP/1.1 200 OK\r\n")
    line = b"X-Filler: " + b"x" * 1000 + b"\r\n"
    with pytest.raises(NotAnHttpAnswer):
        for _ in range(MAX_ANSWER_HEAD_BYTES // len(line) + 1):
            parser.feed(line)


def test_endless_interim_answers_count_against_the_head_limit() -> None:
    parser = AnswerParser(LIMIT)
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"
    with pytest.raises(NotAnHttpAnswer):
        for _ in range(MAX_ANSWER_HEAD_BYTES // len(interim) + 1):
            parser.feed(interim)


@pytest.mark.parametrize(
    "answer",
    [
        b"this is not HTTP at all\r\n\r\n",
        b"HTTP/1.1 OK! 200\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n: no name\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n folded status\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n 5\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1" * 17 + b"\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"3;" + b"x" * 2000,
    ],
    ids=[
        "not-http",
        "status-not-a-number",
        "status-two-digits",
        "http-2",
        "other-protocol",
        "header-without-colon",
        "header-name-with-space",
        "header-without-name",
        "folded-status-line",
        "length-not-a-number",
        "length-negative",
        "length-with-sign",
        "lengths-conflicting-in-one-header",
        "lengths-conflicting-in-two-headers",
        "unknown-coding",
        "coding-before-chunked",
        "chunk-size-not-hex",
        "chunk-size-with-prefix",
        "chunk-size-negative",
        "chunk-size-with-leading-space",
        "chunk-size-huge",
        "chunk-without-crlf",
        "chunk-size-line-endless",
    ],
)
def test_a_malformed_answer_is_refused(answer: bytes) -> None:
    with pytest.raises(NotAnHttpAnswer):
        AnswerParser(1 << 20).feed(answer)


def test_repeated_equal_lengths_are_one_length() -> None:
    parser = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2, 02\r\nContent-Length: 2\r\n\r\nok")
    assert parser.body == b"ok"


# -- connections and the pool ----------------------------------------------------------------

URL = "https://amc.test:8444/roc/IDB?v=2#fragment"


class Receiver:
    """Records what a connection tells it."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, list[tuple[bytes, bytes]], bytes]] = []
        self.failures: list[Failure] = []

    def answer_received(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.answers.append((status, headers, body))

    def answer_failed(self, reason: Failure) -> None:
        self.failures.append(reason)


class CountingTransport(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)


class Setup:
    """A pool on a clock, with connections the test opens by hand."""

    def __init__(self, max_idle: int = 2, idle_timeout: float = 20.0) -> None:
        self.clock = StrictClock()
        self.pool = ConnectionPool(self.clock, None, 3.0, max_idle, idle_timeout)  # type: ignore[arg-type]
        self.target = self.pool.target(URL)

    def connection(self) -> tuple[H1Connection, CountingTransport]:
        connection = H1Connection(self.target.route)
        transport = CountingTransport()
        connection.makeConnection(transport)
        return connection, transport

    def exchange(self, connection: H1Connection, answer: bytes = WITH_LENGTH) -> Receiver:
        receiver = Receiver()
        assert connection.send(self.target.request([], b"<demande/>"), receiver, LIMIT)
        connection.dataReceived(answer)
        return receiver


def test_a_request_is_one_write_with_host_the_given_headers_and_its_length() -> None:
    s = Setup()
    connection, transport = s.connection()
    headers = [(b"Content-Type", b"text/xml"), (b"X-ROC-Echange", b"ex-1")]
    assert connection.send(s.target.request(headers, b"<demande/>"), Receiver(), LIMIT)
    assert transport.writes == 1
    assert transport.value() == (
        b"POST /roc/IDB?v=2 HTTP/1.1\r\n"
        b"Host: amc.test:8444\r\n"
        b"Content-Type: text/xml\r\n"
        b"X-ROC-Echange: ex-1\r\n"
        b"Content-Length: 10\r\n"
        b"\r\n"
        b"<demande/>"
    )


def test_a_line_break_in_a_header_value_cannot_start_a_header_line() -> None:
    s = Setup()
    sent = s.target.request([(b"X-Odd", b"a\r\nInjected: 1")], b"")
    assert b"\r\nInjected" not in sent
    assert b"X-Odd: a  Injected: 1\r\n" in sent


@pytest.mark.parametrize(
    ("url", "first_line", "host"),
    [
        ("https://amc.test/roc/IDB", b"POST /roc/IDB HTTP/1.1", b"amc.test"),
        ("http://amc.test:80", b"POST / HTTP/1.1", b"amc.test"),
        ("https://[::1]:8444/x", b"POST /x HTTP/1.1", b"[::1]:8444"),
        ("https://AMC.test:443/x;p?q=1", b"POST /x;p?q=1 HTTP/1.1", b"AMC.test"),
    ],
)
def test_the_request_line_and_host_come_from_the_url(
    url: str, first_line: bytes, host: bytes
) -> None:
    sent = Setup().pool.target(url).request([], b"")
    assert sent.startswith(first_line + b"\r\nHost: " + host + b"\r\n")


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://amc.test/x", BadUrl),
        ("https://amc.test/a b", ValueError),
        ("https://amc.test/a\r\nX: y", ValueError),
        ("https://amc.test/é", ValueError),
        ("https://amc.test:99999/x", ValueError),
        ("https://amc.test:https/x", ValueError),
        ("https:///x", ValueError),
    ],
)
def test_a_url_the_client_cannot_use_is_refused(url: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        Setup().pool.target(url)


def test_a_connection_goes_back_to_the_pool_after_a_keep_alive_answer() -> None:
    s = Setup()
    connection, transport = s.connection()
    receiver = s.exchange(connection)
    assert receiver.answers == [
        (
            200,
            [(b"Content-Type", b"text/xml"), (b"X-AMC-Trace", b"t-1"), (b"x-amc-trace", b"t-2")],
            b"<reponse/>",
        )
    ]
    assert s.pool.take(s.target.route) is connection
    transport.clear()
    assert s.exchange(connection).answers[0][2] == b"<reponse/>"
    assert transport.writes == 2
    assert not transport.disconnecting


def test_a_connection_whose_answer_said_close_is_closed_not_pooled() -> None:
    s = Setup()
    connection, transport = s.connection()
    answer = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
    assert s.exchange(connection, answer).answers[0][2] == b"ok"
    assert transport.disconnecting
    assert s.pool.take(s.target.route) is None


def test_bytes_after_an_answer_are_delivered_but_the_connection_is_dropped() -> None:
    s = Setup()
    connection, transport = s.connection()
    receiver = s.exchange(connection, WITH_LENGTH + b"HTTP/1.1 200 OK\r\n\r\n")
    assert receiver.answers[0][2] == b"<reponse/>"
    assert transport.disconnecting
    assert s.pool.take(s.target.route) is None


def test_bytes_arriving_on_an_idle_connection_drop_it_and_it_leaves_the_pool() -> None:
    s = Setup()
    connection, transport = s.connection()
    s.exchange(connection)
    connection.dataReceived(b"HTTP/1.1 200 OK\r\n")
    assert transport.disconnecting
    connection.connectionLost(Failure(ConnectionDone()))
    assert s.pool.take(s.target.route) is None


def test_an_idle_connection_closed_by_the_amc_leaves_the_pool_at_once() -> None:
    s = Setup()
    connection, _ = s.connection()
    s.exchange(connection)
    assert s.pool.idle_count == 1
    connection.connectionLost(Failure(ConnectionDone()))
    assert s.pool.idle_count == 0


def test_a_closing_connection_writes_nothing_and_says_so() -> None:
    s = Setup()
    connection, transport = s.connection()
    transport.loseConnection()
    assert not connection.send(b"POST / HTTP/1.1\r\n\r\n", Receiver(), LIMIT)
    assert transport.value() == b""


def test_a_connection_whose_tls_layer_is_closing_under_it_writes_nothing() -> None:
    s = Setup()
    connection, transport = s.connection()
    lower = StringTransport()
    lower.loseConnection()
    transport.transport = lower  # type: ignore[attr-defined]  # what TLS wraps
    assert not connection.send(b"POST / HTTP/1.1\r\n\r\n", Receiver(), LIMIT)
    assert transport.value() == b""


@pytest.mark.parametrize(
    ("received", "error"),
    [
        (b"", NoAnswer),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nab", AnswerCut),
    ],
    ids=["before-any-byte", "mid-answer"],
)
def test_a_connection_lost_during_an_exchange_fails_it(received: bytes, error: type) -> None:
    s = Setup()
    connection, _ = s.connection()
    receiver = Receiver()
    connection.send(s.target.request([], b""), receiver, LIMIT)
    if received:
        connection.dataReceived(received)
    connection.connectionLost(Failure(ConnectionLost()))
    [failure] = receiver.failures
    assert isinstance(failure.value, error)
    assert receiver.answers == []


def test_a_body_ended_by_the_close_is_delivered_at_the_close() -> None:
    s = Setup()
    connection, _ = s.connection()
    receiver = s.exchange(connection, b"HTTP/1.0 200 OK\r\n\r\n<rep")
    connection.dataReceived(b"onse/>")
    assert receiver.answers == []
    connection.connectionLost(Failure(ConnectionDone()))
    assert receiver.answers == [(200, [], b"<reponse/>")]


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"garbage\r\n\r\n", AnswerCut),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1001\r\n\r\n", BodyTooLarge),
    ],
)
def test_a_bad_answer_fails_the_exchange_and_drops_the_connection(
    answer: bytes, error: type
) -> None:
    s = Setup()
    connection, transport = s.connection()
    receiver = s.exchange(connection, answer)
    [failure] = receiver.failures
    assert isinstance(failure.value, error)
    assert transport.disconnecting
    connection.connectionLost(Failure(ConnectionDone()))
    assert len(receiver.failures) == 1, "told once"
    assert s.pool.take(s.target.route) is None


def test_abandoning_an_exchange_drops_its_connection_and_tells_nobody() -> None:
    s = Setup()
    connection, transport = s.connection()
    receiver = Receiver()
    connection.send(s.target.request([], b""), receiver, LIMIT)
    connection.abandon()
    assert transport.disconnecting
    connection.dataReceived(WITH_LENGTH)
    connection.connectionLost(Failure(ConnectionDone()))
    assert (receiver.answers, receiver.failures) == ([], [])


def test_at_most_max_idle_connections_are_kept() -> None:
    s = Setup(max_idle=1)
    (first, first_transport), (second, second_transport) = s.connection(), s.connection()
    s.exchange(first)
    s.exchange(second)
    assert s.pool.idle_count == 1
    assert not first_transport.disconnecting
    assert second_transport.disconnecting


def test_a_connection_idle_too_long_is_not_reused_even_before_its_timer_runs() -> None:
    s = Setup(idle_timeout=20.0)
    connection, transport = s.connection()
    s.exchange(connection)
    s.clock.advance(19.9)
    assert s.pool.take(s.target.route) is connection
    s.exchange(connection)  # idle again since 19.9
    s.clock.rightNow += 20.0  # a busy reactor: the pool's timer has not run yet
    assert s.pool.take(s.target.route) is None
    assert transport.disconnecting


def test_idle_connections_are_closed_by_one_timer_for_the_whole_pool() -> None:
    s = Setup(max_idle=10, idle_timeout=20.0)
    pairs = [s.connection() for _ in range(3)]
    for (connection, _), idle_at in zip(pairs, [0.0, 5.0, 15.0], strict=True):
        s.clock.advance(idle_at - s.clock.seconds())
        s.exchange(connection)
        assert len(s.clock.getDelayedCalls()) == 1
    closed_at: dict[int, float] = {}
    while len(closed_at) < 3:
        s.clock.advance(0.5)
        for i, (_, transport) in enumerate(pairs):
            if transport.disconnecting:
                closed_at.setdefault(i, s.clock.seconds())
    assert closed_at == {0: 20.0, 1: 25.0, 2: 35.0}
    assert s.clock.getDelayedCalls() == []


def test_closing_the_pool_drops_idle_connections_and_those_released_later() -> None:
    s = Setup()
    idle, idle_transport = s.connection()
    busy, busy_transport = s.connection()
    s.exchange(idle)
    receiver = Receiver()
    busy.send(s.target.request([], b""), receiver, LIMIT)
    closed = s.pool.close()
    assert idle_transport.disconnecting
    assert not closed.called
    idle.connectionLost(Failure(ConnectionDone()))
    assert closed.called
    busy.dataReceived(WITH_LENGTH)
    assert receiver.answers
    assert busy_transport.disconnecting
    assert s.clock.getDelayedCalls() == []


def test_closing_the_pool_cuts_a_connection_the_amc_does_not_finish_closing() -> None:
    s = Setup()
    connection, transport = s.connection()
    s.exchange(connection)
    closed = s.pool.close()
    assert transport.disconnecting and not transport.disconnected, "closed gracefully first"
    s.clock.advance(CLOSE_GRACE)
    assert transport.disconnected, "then cut"
    connection.connectionLost(Failure(ConnectionLost()))
    assert closed.called


# The AMC's own keep-alive timeout (the idle-close race)

KEEP_ALIVE_5 = WITH_LENGTH.replace(b"\r\n\r\n", b"\r\nKeep-Alive: timeout=5, max=100\r\n\r\n", 1)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (b"timeout=5, max=100", 5.0),
        (b"max=100, timeout=15", 15.0),
        (b" Timeout = 2 ", 2.0),
        (b"max=3", None),
        (b"timeout=-1", None),
        (b"timeout=abc", None),
        (b"timeout=99999999", None),
        (b"", None),
    ],
)
def test_the_amc_s_keep_alive_timeout_is_read_from_its_header(
    value: bytes, seconds: float | None
) -> None:
    assert keep_alive_timeout(value) == seconds


def test_an_amc_announcing_its_keep_alive_timeout_has_its_connection_closed_before_it_would() -> (
    None
):
    s = Setup(idle_timeout=20.0)
    connection, transport = s.connection()
    s.exchange(connection, KEEP_ALIVE_5)
    s.clock.advance(3.9)  # within timeout - 1 s
    assert s.pool.take(s.target.route) is connection
    s.exchange(connection, KEEP_ALIVE_5)
    s.clock.advance(4.0)  # the AMC closes at 5 s: too close to write on it
    assert s.pool.take(s.target.route) is None
    assert transport.disconnecting
    assert transport.writes == 2


def test_a_keep_alive_timeout_of_one_second_leaves_half_of_it_for_reuse() -> None:
    s = Setup()
    connection, _ = s.connection()
    s.exchange(connection, KEEP_ALIVE_5.replace(b"timeout=5", b"timeout=1"))
    s.clock.advance(0.4)
    assert s.pool.take(s.target.route) is connection


def test_an_amc_keeping_connections_zero_seconds_is_never_reused() -> None:
    s = Setup()
    connection, transport = s.connection()
    s.exchange(connection, KEEP_ALIVE_5.replace(b"timeout=5", b"timeout=0"))
    assert s.pool.take(s.target.route) is None
    assert transport.disconnecting


# HttpClient: one request on a pooled connection (the annuaire's path, and each AMC's)


def test_the_client_posts_on_a_pooled_connection_and_gives_the_whole_answer() -> None:
    s = Setup()
    connection, transport = s.connection()
    s.exchange(connection)  # now idle in the pool
    client = HttpClient(s.pool)
    transport.clear()
    d = client.post(URL, [(b"SOAPAction", b'"urn:x"')], b"<q/>", LIMIT)
    assert transport.value().startswith(b"POST /roc/IDB?v=2 HTTP/1.1\r\nHost: amc.test:8444\r\n")
    assert transport.value().endswith(b"\r\n\r\n<q/>")
    connection.dataReceived(WITH_LENGTH)
    answer = success_result_of(d)
    assert (answer.status, answer.body) == (200, b"<reponse/>")
    assert client.written_total == 1


def test_cancelling_a_post_drops_its_connection() -> None:
    s = Setup()
    connection, transport = s.connection()
    s.exchange(connection)
    d = HttpClient(s.pool).post(URL, [], b"<q/>", LIMIT)
    d.cancel()
    failure_result_of(d, CancelledError)
    assert transport.disconnecting or connection._dropped
    connection.dataReceived(WITH_LENGTH)  # a late answer is never taken for another request
    assert s.pool.take(s.target.route) is None


def test_a_url_the_client_cannot_use_fails_the_post_at_once() -> None:
    s = Setup()
    failure_result_of(HttpClient(s.pool).post("ftp://amc.test/x", [], b"", LIMIT), BadUrl)


def test_a_post_on_a_connection_found_closing_is_sent_again_once_on_another() -> None:
    s = Setup()
    first, first_transport = s.connection()
    s.exchange(first)
    second, second_transport = s.connection()
    s.exchange(second)  # two idle; the newest is taken first
    second_transport.loseConnection()  # closing: nothing can be written on it
    first_transport.clear()
    client = HttpClient(s.pool)
    d = client.post(URL, [], b"<q/>", LIMIT)
    assert first_transport.value().endswith(b"<q/>")
    first.dataReceived(WITH_LENGTH)
    assert success_result_of(d).status == 200
    assert client.written_total == 1
