"""An exchange is sent again only when it provably never left the relay."""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.web._newclient import RequestNotSent, ResponseNeverReceived
from twisted.web.http_headers import Headers

from roc.errors import RpnError, RpnFailure
from rpn.breaker import BreakerPolicy
from rpn.testing import FakeAgent, FakeResponse
from rpn.upstream import AmcUpstream, UpstreamAnswer, UpstreamSettings

SETTINGS = UpstreamSettings(
    connect_timeout=1.0,
    request_timeout=5.0,
    max_active=2,
    max_queued=2,
    queue_timeout=1.0,
    idle_timeout=10.0,
    max_response_bytes=1 << 16,
    breaker=BreakerPolicy(failure_threshold=3),
)


def forward(agent: FakeAgent) -> tuple[AmcUpstream, UpstreamAnswer | Failure]:
    upstream = AmcUpstream(MemoryReactorClock(), "990000101", None, SETTINGS, agent=agent)  # type: ignore[arg-type]
    results: list[UpstreamAnswer | Failure] = []
    upstream.forward("https://amc.test/roc/IDB", b"<demande/>", Headers()).addBoth(results.append)
    assert len(results) == 1
    return upstream, results[0]


def test_a_request_not_sent_on_a_closed_pooled_connection_is_sent_once_more() -> None:
    agent = FakeAgent([RequestNotSent(), FakeResponse(200, b"<ok/>")])
    upstream, result = forward(agent)
    assert isinstance(result, UpstreamAnswer)
    assert (result.status, result.body) == (200, b"<ok/>")
    assert [r.body for r in agent.requests] == [b"<demande/>", b"<demande/>"]
    assert upstream.limiter.active == 0


def test_a_connection_lost_after_sending_is_not_retried() -> None:
    agent = FakeAgent([ResponseNeverReceived([Failure(ConnectionDone())]), FakeResponse(200)])
    upstream, result = forward(agent)
    assert isinstance(result, Failure) and isinstance(result.value, RpnFailure)
    assert result.value.error is RpnError.AMC_BAD_ANSWER
    assert len(agent.requests) == 1
    assert upstream.limiter.active == 0


def test_the_retry_happens_at_most_once() -> None:
    agent = FakeAgent([RequestNotSent(), RequestNotSent(), FakeResponse(200)])
    _, result = forward(agent)
    assert isinstance(result, Failure) and isinstance(result.value, RpnFailure)
    # Still provably not delivered: the client may send it again.
    assert result.value.error is RpnError.AMC_UNAVAILABLE
    assert len(agent.requests) == 2
