"""An exchange is sent again only when it provably never left the relay.

The AMC is a twisted.web ``Site`` behind in-memory mutual TLS (the harness of
``test_upstream``); it records every request it receives, so each test counts deliveries.
"""

from __future__ import annotations

from collections.abc import Callable

from rpn.errors import RpnError
from tests.deferreds import success_result_of
from tests.unit.test_upstream import Harness, harness_factory, pki, policy, rpn_failure_of

__all__ = ["harness_factory", "pki"]  # fixtures used by the tests below


def pooled_connections(h: Harness, count: int) -> None:
    """*count* connections to the AMC, each idle in the pool after one answered exchange."""
    sent = [h.forward() for _ in range(count)]
    for index in range(count):
        h.accept(index)
    for answer in sent:
        assert success_result_of(answer).status == 200
    assert len(h.amc.requests) == count


def amc_starts_closing(h: Harness, index: int) -> None:
    """The AMC closes idle connection *index*: its TLS close arrives, the TCP close not yet."""
    pump = h.pumps[index]
    pump.server.loseConnection()
    pump.pump()


def test_idle_connections_the_amc_closed_leave_the_pool_and_the_next_exchange_reconnects(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    pooled_connections(h, 2)
    for pump in h.pumps:
        pump.server.loseConnection()
    h.flush()
    # Two dead connections left in the pool would use up the one retry.
    sent = h.forward(b"<demande>3</demande>")
    assert h.connection_attempts == 3
    h.accept(2)
    assert success_result_of(sent).status == 200
    assert [r[3] for r in h.amc.requests][-1] == b"<demande>3</demande>"
    assert len(h.amc.requests) == 3


def test_an_exchange_finding_its_pooled_connection_closing_is_sent_once_on_a_new_one(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    pooled_connections(h, 1)
    amc_starts_closing(h, 0)
    sent = h.forward(b"<demande>2</demande>")
    assert h.connection_attempts == 2
    h.accept(1)
    assert success_result_of(sent).status == 200
    assert [r[3] for r in h.amc.requests] == [b"<demande/>", b"<demande>2</demande>"]
    assert h.upstream.limiter.active == 0


def test_the_retry_happens_at_most_once(harness_factory: Callable[..., Harness]) -> None:
    h = harness_factory(breaker=policy(failure_threshold=5))
    pooled_connections(h, 2)
    amc_starts_closing(h, 0)
    amc_starts_closing(h, 1)
    failure = rpn_failure_of(h.forward(b"<demande>3</demande>"))
    # Still provably not delivered: the client may send it again.
    assert failure.error is RpnError.AMC_UNAVAILABLE
    assert h.connection_attempts == 2, "no third attempt"
    assert len(h.amc.requests) == 2
    assert h.upstream.limiter.active == 0


def test_a_connection_lost_after_sending_is_not_retried(
    harness_factory: Callable[..., Harness],
) -> None:
    h = harness_factory()
    h.amc.silent = True
    sent = h.forward()
    h.accept(0)
    assert len(h.amc.requests) == 1
    h.pumps[0].server.abortConnection()
    h.flush()
    assert rpn_failure_of(sent).error is RpnError.AMC_BAD_ANSWER
    assert h.connection_attempts == 1
    assert len(h.amc.requests) == 1
    assert h.upstream.limiter.active == 0
