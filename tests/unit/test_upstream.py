"""Forwarding to an AMC: how failures are answered, body limits, the breaker and the slot queue.

Connections go through a ``StrictMemoryReactorClock``; an AMC that answers is a twisted.web ``Site``
behind in-memory mutual TLS (``twisted.test.iosim``), so the real ``Agent`` does the HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import error as net_error
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.protocols import tls as tls_module
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import IOPump, connect, makeFakeClient, makeFakeServer
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from piano.testing import StrictClock, StrictMemoryReactorClock
from piano.tls import TLSFiles, server_options
from rpn.breaker import BreakerPolicy, BreakerState
from rpn.errors import RpnError, RpnFailure
from rpn.http.client import ClientTLSPolicy
from rpn.http.common import AnswerCut, BadUrl, BodyTooLarge, NoAnswer, RequestNotSent
from rpn.upstream import (
    AmcUpstream,
    UpstreamSettings,
    _Deadlines,
    classify,
)
from tests.deferreds import assert_no_result, failure_result_of, success_result_of
from tools.devpki import issue, make_ca, write

AMC_URL = "https://127.0.0.1:8444/roc/IDB"


def rpn_failure_of(d: Deferred[Any]) -> RpnFailure:
    value = failure_result_of(d, RpnFailure).value
    assert isinstance(value, RpnFailure)
    return value


# classify


def _never_received(inner: BaseException) -> Failure:
    return Failure(NoAnswer(Failure(inner)))


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        (Failure(TimeoutError()), RpnError.AMC_TIMEOUT),
        (Failure(CancelledError()), RpnError.AMC_TIMEOUT),
        (Failure(net_error.ConnectionRefusedError()), RpnError.AMC_UNAVAILABLE),
        (Failure(net_error.ConnectError()), RpnError.AMC_UNAVAILABLE),
        (Failure(net_error.NoRouteError()), RpnError.AMC_UNAVAILABLE),
        (Failure(net_error.TimeoutError()), RpnError.AMC_UNAVAILABLE),  # connect timeout
        (Failure(net_error.DNSLookupError()), RpnError.AMC_UNAVAILABLE),
        (_never_received(SSL.Error([("SSL routines", "", "bad certificate")])), RpnError.AMC_TLS),
        (_never_received(VerificationError(errors=[])), RpnError.AMC_TLS),
        (_never_received(CancelledError()), RpnError.AMC_TIMEOUT),
        (_never_received(net_error.ConnectionLost()), RpnError.AMC_BAD_ANSWER),
        (Failure(AnswerCut(Failure(net_error.ConnectionLost()))), RpnError.AMC_BAD_ANSWER),
        (Failure(RequestNotSent()), RpnError.AMC_UNAVAILABLE),
        (Failure(BadUrl("ftp://x")), RpnError.AMC_UNAVAILABLE),
        (Failure(BodyTooLarge(10)), RpnError.AMC_BAD_ANSWER),
        (Failure(ValueError("unexpected")), RpnError.AMC_BAD_ANSWER),
    ],
    ids=lambda value: type(value.value).__name__ if isinstance(value, Failure) else value.name,
)
def test_each_forwarding_failure_is_answered_with_its_relay_error(
    failure: Failure, error: RpnError
) -> None:
    assert classify(failure) is error


# AmcUpstream through the lean client


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca("Test CA")
    rogue = make_ca("Rogue CA")
    write(folder, "ca", ca)
    write(folder, "amc", issue(ca, "amc", server_names=("127.0.0.1",)))
    write(folder, "rogue-amc", issue(rogue, "amc", server_names=("127.0.0.1",)))
    write(folder, "rpn-client", issue(ca, "rpn-client", client=True))
    return folder


def policy(**changes: Any) -> BreakerPolicy:
    values: dict[str, Any] = dict(
        failure_threshold=1,
        open_base=1.0,
        open_max=4.0,
        jitter=0.0,
        half_open_probes=2,
        recovery_ramp=0.0,
    )
    values.update(changes)
    return BreakerPolicy(**values)


def settings(**changes: Any) -> UpstreamSettings:
    values: dict[str, Any] = dict(
        connect_timeout=3.0,
        request_timeout=10.0,
        max_active=2,
        max_queued=1,
        queue_timeout=2.0,
        idle_timeout=20.0,
        max_response_bytes=1000,
        breaker=policy(),
    )
    values.update(changes)
    return UpstreamSettings(**values)


class AmcResource(Resource):
    """The AMC's service: records each request and answers with what the test set."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[bytes, bytes, Headers, bytes]] = []
        self.status = 200
        self.headers: list[tuple[bytes, bytes]] = [(b"Content-Type", b"text/xml")]
        self.body = b"<reponse/>"
        self.silent = False

    def render_POST(self, request: Request) -> bytes | int:
        content = request.content.read() if request.content is not None else b""
        self.requests.append((request.method, request.uri, request.requestHeaders, content))
        if self.silent:
            return NOT_DONE_YET
        request.setResponseCode(self.status)
        for name, value in self.headers:
            request.responseHeaders.addRawHeader(name, value)
        return self.body


class Harness:
    """One AmcUpstream on a StrictMemoryReactorClock, and the AMC it may be connected to."""

    def __init__(
        self, pki: Path, monkeypatch: pytest.MonkeyPatch, amc_stem: str = "amc", **changes: Any
    ) -> None:
        self.reactor = StrictMemoryReactorClock()
        # wrapClientTLS builds its TLS factory without a clock: give it this reactor.
        monkeypatch.setattr(tls_module, "_get_default_clock", lambda: self.reactor)
        client_files = TLSFiles(pki / "rpn-client.pem", pki / "rpn-client.key", (pki / "ca.pem",))
        self.transitions: list[tuple[str, BreakerState, BreakerState]] = []
        self.upstream = AmcUpstream(
            self.reactor,
            "990000101",
            ClientTLSPolicy(client_files),
            settings(**changes),
            on_breaker_transition=lambda amc, old, new: self.transitions.append((amc, old, new)),
        )
        self.amc = AmcResource()
        amc_files = TLSFiles(pki / f"{amc_stem}.pem", pki / f"{amc_stem}.key", (pki / "ca.pem",))
        self._amc_tls = TLSMemoryBIOFactory(
            server_options(amc_files),
            False,
            Site(self.amc, reactor=self.reactor),
            clock=self.reactor,
        )
        self.pumps: list[IOPump] = []

    def forward(
        self, body: bytes = b"<demande/>", headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> Deferred[Any]:
        sent = self.upstream.forward(AMC_URL, body, headers)
        self.flush()
        return sent

    @property
    def connection_attempts(self) -> int:
        return len(self.reactor.tcpClients)

    def fail_connection(self, index: int, reason: BaseException) -> None:
        factory = self.reactor.tcpClients[index][2]
        factory.clientConnectionFailed(self.reactor.connectors[index], Failure(reason))
        # HostnameEndpoint reports the failure on its next attempt tick.
        self.reactor.advance(0.3)

    def accept(self, index: int) -> None:
        """The AMC accepts connection attempt *index*; bytes flow until nothing moves."""
        host, port, factory, _, _ = self.reactor.tcpClients[index]
        address = IPv4Address("TCP", host, port)
        client = factory.buildProtocol(address)
        server = self._amc_tls.buildProtocol(address)
        self.pumps.append(
            connect(
                server,
                makeFakeServer(server),
                client,
                makeFakeClient(client),
                greet=False,
                clock=self.reactor,
            )
        )
        self.flush()

    def flush(self) -> None:
        for pump in self.pumps:
            pump.flush()


@pytest.fixture
def harness_factory(pki: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Harness]:
    return lambda **changes: Harness(pki, monkeypatch, **changes)


def test_an_exchange_reaches_the_amc_with_its_body_and_headers(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    headers = [(b"Content-Type", b"text/xml"), (b"X-ROC-Echange", b"ex-1")]
    sent = h.forward(b"<demande>1</demande>", headers)
    h.accept(0)
    answer = success_result_of(sent)
    assert answer.status == 200
    assert answer.body == b"<reponse/>"
    [(method, uri, received, content)] = h.amc.requests
    assert (method, uri, content) == (b"POST", b"/roc/IDB", b"<demande>1</demande>")
    assert received.getRawHeaders(b"X-ROC-Echange") == [b"ex-1"]
    assert received.getRawHeaders(b"Content-Type") == [b"text/xml"]


def test_hop_by_hop_headers_of_the_answer_are_not_relayed(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    h.amc.headers = [
        (b"Content-Type", b"text/xml"),
        (b"X-AMC-Trace", b"t-1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Proxy-Connection", b"keep-alive"),
        (b"Upgrade", b"h2c"),
    ]
    sent = h.forward()
    h.accept(0)
    names = {name.lower() for name, _ in success_result_of(sent).headers}
    assert {b"content-type", b"x-amc-trace"} <= names
    assert not names & {b"keep-alive", b"proxy-connection", b"upgrade", b"content-length"}


def test_a_healthy_amc_connection_is_reused_for_the_next_exchange(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    first = h.forward()
    h.accept(0)
    success_result_of(first)
    second = h.forward()
    assert success_result_of(second).status == 200
    assert h.connection_attempts == 1
    assert len(h.amc.requests) == 2


def test_an_answer_over_the_size_limit_is_a_bad_answer_and_its_connection_is_dropped(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(max_response_bytes=100, breaker=policy(failure_threshold=2))
    h.amc.body = b"x" * 101
    first = h.forward()
    h.accept(0)
    assert rpn_failure_of(first).error is RpnError.AMC_BAD_ANSWER
    h.amc.body = b"<ok/>"
    second = h.forward()
    assert h.connection_attempts == 2, "the cut connection must not be reused"
    h.accept(1)
    assert success_result_of(second).body == b"<ok/>"


def test_an_amc_answering_5xx_is_relayed_and_counts_as_a_failure(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    h.amc.status = 503
    sent = h.forward()
    h.accept(0)
    assert success_result_of(sent).status == 503
    assert h.upstream.breaker.state is BreakerState.OPEN
    assert h.transitions == [("990000101", BreakerState.CLOSED, BreakerState.OPEN)]


def test_an_amc_with_an_untrusted_certificate_is_a_tls_failure(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(pki, monkeypatch, amc_stem="rogue-amc")
    sent = h.forward()
    h.accept(0)
    assert rpn_failure_of(sent).error is RpnError.AMC_TLS
    assert h.amc.requests == []


def test_an_amc_that_never_answers_times_out_after_the_request_timeout(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(request_timeout=10.0)
    h.amc.silent = True
    sent = h.forward()
    h.accept(0)
    assert len(h.amc.requests) == 1
    h.reactor.advance(9.9)
    assert_no_result(sent)
    h.reactor.advance(0.1)
    assert rpn_failure_of(sent).error is RpnError.AMC_TIMEOUT
    assert h.upstream.breaker.state is BreakerState.OPEN
    assert h.upstream.limiter.active == 0


def test_a_refused_connection_is_unavailable_and_frees_the_slot(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(breaker=policy(failure_threshold=2))
    sent = h.forward()
    h.fail_connection(0, net_error.ConnectionRefusedError())
    failure = rpn_failure_of(sent)
    assert failure.error is RpnError.AMC_UNAVAILABLE
    assert h.upstream.limiter.active == 0
    assert h.upstream.breaker.state is BreakerState.CLOSED


def test_an_open_breaker_answers_at_once_without_connecting(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    first = h.forward()
    h.fail_connection(0, net_error.ConnectionRefusedError())
    rpn_failure_of(first)
    second = h.forward()
    failure = rpn_failure_of(second)
    assert failure.error is RpnError.AMC_CIRCUIT_OPEN
    assert "next attempt in" in failure.detail
    assert h.connection_attempts == 1


def test_after_the_open_period_a_probe_goes_through(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    first = h.forward()
    h.fail_connection(0, net_error.ConnectionRefusedError())
    rpn_failure_of(first)
    h.reactor.advance(1.0)
    probe = h.forward()
    assert h.connection_attempts == 2
    h.accept(1)
    assert success_result_of(probe).status == 200


def test_a_full_queue_is_overloaded_without_connecting_or_opening_the_breaker(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(max_active=1, max_queued=0)
    holding = h.forward()
    shed = h.forward()
    failure = rpn_failure_of(shed)
    assert failure.error is RpnError.OVERLOADED
    assert failure.detail == "1 exchanges in flight and 0 waiting"
    assert failure.detail_fr == "1 échanges en cours et 0 en attente"
    assert h.connection_attempts == 1
    assert h.upstream.breaker.state is BreakerState.CLOSED
    assert_no_result(holding)


def test_waiting_too_long_for_a_slot_is_overloaded(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(max_active=1, max_queued=1, queue_timeout=2.0)
    h.forward()
    queued = h.forward()
    h.reactor.advance(1.9)
    assert_no_result(queued)
    h.reactor.advance(0.1)
    failure = rpn_failure_of(queued)
    assert (failure.error, failure.detail) == (RpnError.OVERLOADED, "no connection slot within 2 s")
    assert h.connection_attempts == 1


def test_cancelling_an_exchange_waiting_for_a_slot_gives_its_breaker_probe_back(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(max_active=2, max_queued=2, breaker=policy(half_open_probes=2))
    h.forward()  # holds slot 1 (still connecting)
    failing = h.forward()  # slot 2: refused, the breaker opens
    h.fail_connection(1, net_error.ConnectionRefusedError())
    rpn_failure_of(failing)
    h.reactor.advance(1.0)  # half open: two probes allowed
    h.forward()  # probe 1 takes slot 2
    queued_probe = h.forward()  # probe 2 waits for a slot
    assert_no_result(queued_probe)
    refused = rpn_failure_of(h.forward())
    assert refused.error is RpnError.AMC_CIRCUIT_OPEN
    queued_probe.cancel()
    failure_result_of(queued_probe, CancelledError)
    next_probe = h.forward()
    assert_no_result(next_probe)  # admitted as a probe, waiting for a slot
    assert h.upstream.limiter.queued == 1


def test_a_connection_attempt_that_times_out_is_answered_amc_unavailable(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    sent = h.forward()
    h.fail_connection(0, net_error.TimeoutError())
    assert rpn_failure_of(sent).error is RpnError.AMC_UNAVAILABLE


def test_the_amc_gets_the_host_and_length_of_the_exchange(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    sent = h.forward(b"<demande>12</demande>")
    h.accept(0)
    success_result_of(sent)
    [(_, _, received, _)] = h.amc.requests
    assert received.getRawHeaders(b"Host") == [b"127.0.0.1:8444"]
    assert received.getRawHeaders(b"Content-Length") == [b"21"]


def test_the_deadline_covers_a_connection_that_never_completes_and_says_nothing_was_sent(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(request_timeout=2.0, connect_timeout=3.0)
    sent = h.forward()
    h.reactor.advance(1.9)
    assert_no_result(sent)
    h.reactor.advance(0.1)
    assert rpn_failure_of(sent).error is RpnError.AMC_UNAVAILABLE
    assert h.upstream.limiter.active == 0
    h.reactor.advance(5.0)  # the abandoned attempt reports nothing more


def test_a_connection_whose_answer_timed_out_is_never_reused(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory(breaker=policy(failure_threshold=2))
    h.amc.silent = True
    late = h.forward()
    h.accept(0)
    h.reactor.advance(10.0)
    assert rpn_failure_of(late).error is RpnError.AMC_TIMEOUT
    h.amc.silent = False
    sent = h.forward()
    assert h.connection_attempts == 2
    h.accept(1)
    assert success_result_of(sent).status == 200


def test_cancelling_an_exchange_in_flight_frees_its_slot_and_drops_its_connection(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    h.amc.silent = True
    sent = h.forward()
    h.accept(0)
    sent.cancel()
    failure_result_of(sent, CancelledError)
    assert h.upstream.limiter.active == 0
    assert h.upstream.breaker.state is BreakerState.CLOSED
    h.amc.silent = False
    again = h.forward()
    assert h.connection_attempts == 2, "the abandoned connection is not reused"
    h.accept(1)
    assert success_result_of(again).status == 200


def test_cancelling_an_exchange_while_it_connects_abandons_the_attempt(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    sent = h.forward()
    sent.cancel()
    failure_result_of(sent, CancelledError)
    assert h.upstream.limiter.active == 0
    assert h.reactor.connectors[0].stoppedConnecting


def test_closing_the_upstream_closes_its_idle_connections(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    sent = h.forward()
    h.accept(0)
    success_result_of(sent)
    closed = h.upstream.close()
    h.flush()
    assert success_result_of(closed) is None
    assert h.upstream.pool.idle_count == 0
    assert h.pumps[0].serverIO.disconnected, "the AMC saw the connection close"


def test_after_a_reconfiguration_pooled_connections_are_reused_with_the_new_limits(
    harness_factory: Callable[..., Harness], pki: Path
) -> None:
    h = harness_factory()
    first = h.forward()
    h.accept(0)
    success_result_of(first)
    client_files = TLSFiles(pki / "rpn-client.pem", pki / "rpn-client.key", (pki / "ca.pem",))
    h.upstream.reconfigure(ClientTLSPolicy(client_files), settings(request_timeout=2.0))
    h.amc.silent = True
    sent = h.forward()
    assert h.connection_attempts == 1
    h.reactor.advance(2.0)
    assert rpn_failure_of(sent).error is RpnError.AMC_TIMEOUT


def test_a_bug_on_the_way_fails_the_exchange_with_the_bug_itself_and_frees_the_slot(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    not_pairs = cast(Sequence[tuple[bytes, bytes]], [b"X-Oops"])
    sent = h.upstream.forward(AMC_URL, b"<demande/>", not_pairs)
    failure_result_of(sent, ValueError)  # not an RpnFailure: the relay logs it as a bug
    assert h.upstream.limiter.active == 0
    assert h.upstream.breaker.state is BreakerState.CLOSED
    assert h.connection_attempts == 0


# deadlines (one timer per AMC)


class _Expiring:
    """Stands for an exchange: a deadline, and what happens when it passes."""

    def __init__(self, deadline: float, broken: bool = False) -> None:
        self.deadline = deadline
        self.broken = broken
        self.expired = 0

    def expire(self) -> None:
        self.expired += 1
        if self.broken:
            raise RuntimeError("a bug while expiring")


def test_deadlines_a_few_microseconds_apart_all_expire_on_a_clock_that_moves_between_readings() -> (
    None
):
    # The real clock moves between two readings in one function: the second deadline falls
    # between _expire's readings, and a timer armed from it must not be armed in the past.
    clock = StrictClock(drift=1e-6)
    deadlines = _Deadlines(clock)
    exchanges = [_Expiring(1.0 + index * 0.3e-6) for index in range(50)]
    for exchange in exchanges:
        deadlines.add(cast(Any, exchange))
    clock.advance(1.0)
    clock.advance(1e-3)
    assert [exchange.expired for exchange in exchanges] == [1] * 50
    assert deadlines.pending == 0
    assert clock.getDelayedCalls() == []


def test_a_deadline_already_past_when_added_expires_at_the_next_tick() -> None:
    clock = StrictClock()
    clock.advance(5.0)
    deadlines = _Deadlines(clock)
    late = _Expiring(4.0)
    deadlines.add(cast(Any, late))
    sooner = _Expiring(3.0)
    deadlines.add(cast(Any, sooner))  # resets the timer to a deadline in the past: clamped
    clock.advance(0)
    assert (late.expired, sooner.expired) == (1, 1)


def test_one_exchange_failing_to_expire_does_not_stop_the_others() -> None:
    clock = StrictClock()
    deadlines = _Deadlines(clock)
    broken = _Expiring(1.0, broken=True)
    same_time = _Expiring(1.0)
    later = _Expiring(2.0)
    for exchange in (broken, same_time, later):
        deadlines.add(cast(Any, exchange))
    clock.advance(1.0)
    assert (broken.expired, same_time.expired, later.expired) == (1, 1, 0)
    clock.advance(1.0)
    assert later.expired == 1
    assert deadlines.pending == 0


def test_a_burst_of_exchanges_to_a_silent_amc_all_time_out_and_free_every_slot(
    pki: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(
        pki,
        monkeypatch,
        max_active=64,
        max_queued=0,
        request_timeout=1.0,
        breaker=policy(failure_threshold=10_000),
    )
    h.reactor.drift = 1e-6  # time moves between readings, as on the real reactor
    h.amc.silent = True
    sent = []
    for _ in range(15):
        attempts = h.connection_attempts
        for _ in range(40):
            sent.append(h.upstream.forward(AMC_URL, b"<demande/>", ()))
            h.reactor.advance(1e-5)  # written back to back: deadlines microseconds apart
        for index in range(attempts, h.connection_attempts):
            h.accept(index)
        h.reactor.advance(1.0)
        h.flush()
    assert len(h.amc.requests) == 600
    assert [rpn_failure_of(d).error for d in sent] == [RpnError.AMC_TIMEOUT] * 600
    assert h.upstream.limiter.active == 0
    assert h.upstream.limiter.queued == 0
    assert h.upstream.deadlines.pending == 0
