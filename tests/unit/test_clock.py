"""The project's test clock behaves like the reactor, and every unit test uses it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from piano.testing import StrictClock, StrictMemoryReactorClock

_TESTS = Path(__file__).resolve().parents[1]
_PROJECT = _TESTS.parent


def test_a_negative_delay_is_refused_as_the_reactor_refuses_it() -> None:
    clock = StrictClock()
    with pytest.raises(AssertionError, match="is not greater than or equal to 0 seconds"):
        clock.callLater(-1e-6, lambda: None)
    with pytest.raises(AssertionError):
        clock.callLater(float("nan"), lambda: None)


def test_a_zero_delay_runs_at_the_next_advance() -> None:
    clock = StrictClock()
    fired: list[float] = []
    clock.callLater(0, lambda: fired.append(clock.seconds()))
    clock.advance(0)
    assert fired == [0.0]


def test_time_does_not_go_back() -> None:
    with pytest.raises(ValueError, match="does not go back"):
        StrictClock().advance(-1)


def test_drift_moves_time_between_two_readings() -> None:
    clock = StrictClock(drift=1e-6)
    first = clock.seconds()
    assert clock.seconds() > first


def test_the_memory_reactor_refuses_negative_delays_too() -> None:
    reactor = StrictMemoryReactorClock()
    with pytest.raises(AssertionError):
        reactor.callLater(-0.5, lambda: None)
    reactor.listenTCP(0, None)  # type: ignore[arg-type]
    assert reactor.tcpServers


def test_no_test_or_fake_uses_twisteds_lenient_clocks() -> None:
    lenient = re.compile(r"\btask\.Clock\(|import Clock\b|import .*\bMemoryReactorClock\b")
    offenders = [
        str(path.relative_to(_PROJECT))
        for folder in (_TESTS, _PROJECT / "rpn", _PROJECT / "mutuelle", _PROJECT / "indicators")
        for path in folder.rglob("*.py")
        if "test" in path.name
        if path.name != "test_clock.py" and lenient.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_memory_reactor_provides_the_service_reactor_and_runs_threads_inline() -> None:
    from twisted.internet.threads import deferToThreadPool

    from piano.reactors import IServiceReactor

    reactor = StrictMemoryReactorClock()
    assert IServiceReactor.providedBy(reactor)
    results: list[int] = []
    done = deferToThreadPool(reactor, reactor.getThreadPool(), lambda: 6 * 7)
    done.addCallback(results.append)
    assert results == []  # handed back through callFromThread: on the reactor's next turn
    reactor.advance(0)
    assert results == [42]
    with pytest.raises(NotImplementedError):
        reactor.spawnProcess()
