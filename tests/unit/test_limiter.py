"""The connection-slot limiter, driven by a fake clock: no sockets, no sleeping."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from twisted.internet.defer import CancelledError, Deferred
from twisted.python.failure import Failure

from piano.testing import StrictClock
from rpn.limiter import ConcurrencyLimiter, QueueFull, QueueTimeout, Slot
from tests.deferreds import assert_no_result, failure_result_of, success_result_of


def test_free_slot_is_granted_at_once() -> None:
    clock = StrictClock()
    limiter = ConcurrencyLimiter(clock, 2, 2)
    first = success_result_of(limiter.acquire(1.0))
    second = success_result_of(limiter.acquire(1.0))
    assert isinstance(first, Slot)
    assert first is not second
    assert (limiter.active, limiter.queued) == (2, 0)
    assert clock.getDelayedCalls() == []


def test_waiters_are_served_in_arrival_order() -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 1, 3)
    held = success_result_of(limiter.acquire(5.0))
    waiting = [limiter.acquire(5.0) for _ in range(3)]
    for d in waiting:
        assert_no_result(d)
    assert (limiter.active, limiter.queued) == (1, 3)
    for i, d in enumerate(waiting):
        held.release()
        held = success_result_of(d)
        for later in waiting[i + 1 :]:
            assert_no_result(later)
    assert (limiter.active, limiter.queued) == (1, 0)


def test_release_hands_the_slot_over_without_freeing_it() -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 1, 1)
    held = success_result_of(limiter.acquire(5.0))
    active_when_served: list[int] = []

    def served(slot: Slot) -> Slot:
        active_when_served.append(limiter.active)
        return slot

    waiting = limiter.acquire(5.0).addCallback(served)
    held.release()
    success_result_of(waiting)
    assert active_when_served == [1]
    assert limiter.active == 1
    assert_no_result(limiter.acquire(5.0))
    assert limiter.queued == 1


def test_release_without_waiters_frees_the_slot() -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 1, 2)
    success_result_of(limiter.acquire(1.0)).release()
    assert limiter.active == 0
    success_result_of(limiter.acquire(1.0))


def test_full_queue_sheds_at_once() -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 1, 1)
    success_result_of(limiter.acquire(1.0))
    queued = limiter.acquire(1.0)
    failure = failure_result_of(limiter.acquire(1.0), QueueFull)
    assert str(failure.value) == "upstream busy: 1 requests in flight and 1 waiting already"
    assert limiter.shed_total == 1
    assert limiter.queued == 1
    assert_no_result(queued)


def test_zero_queue_sheds_whatever_cannot_go_at_once() -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 1, 0)
    success_result_of(limiter.acquire(1.0))
    failure_result_of(limiter.acquire(1.0), QueueFull)
    assert (limiter.shed_total, limiter.queued) == (1, 0)


def test_zero_active_queues_everything() -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 0, 1)
    assert_no_result(limiter.acquire(1.0))
    failure_result_of(limiter.acquire(1.0), QueueFull)


def test_waiter_times_out_after_its_timeout() -> None:
    clock = StrictClock()
    limiter = ConcurrencyLimiter(clock, 1, 2)
    success_result_of(limiter.acquire(1.0))
    waiting = limiter.acquire(2.0)
    clock.advance(1.999)
    assert_no_result(waiting)
    clock.advance(0.001)
    failure = failure_result_of(waiting, QueueTimeout)
    assert str(failure.value) == "no upstream slot became free within 2 seconds"
    assert (limiter.timed_out_total, limiter.queued, limiter.active) == (1, 0, 1)


def test_a_timed_out_waiter_is_not_served_later() -> None:
    clock = StrictClock()
    limiter = ConcurrencyLimiter(clock, 1, 2)
    held = success_result_of(limiter.acquire(1.0))
    timed_out = limiter.acquire(1.0)
    clock.advance(1.0)
    failure_result_of(timed_out, QueueTimeout)
    served = limiter.acquire(10.0)
    held.release()
    success_result_of(served)
    assert limiter.active == 1


def test_served_waiter_timer_is_cancelled() -> None:
    clock = StrictClock()
    limiter = ConcurrencyLimiter(clock, 1, 2)
    held = success_result_of(limiter.acquire(1.0))
    waiting = limiter.acquire(1.0)
    assert len(clock.getDelayedCalls()) == 1
    held.release()
    assert clock.getDelayedCalls() == []
    clock.advance(10.0)
    success_result_of(waiting)
    assert limiter.timed_out_total == 0


def test_cancel_while_queued_leaves_the_queue_and_takes_no_slot() -> None:
    clock = StrictClock()
    limiter = ConcurrencyLimiter(clock, 1, 2)
    held = success_result_of(limiter.acquire(1.0))
    cancelled = limiter.acquire(1.0)
    behind = limiter.acquire(1.0)
    cancelled.cancel()
    failure_result_of(cancelled, CancelledError)
    assert limiter.queued == 1
    assert len(clock.getDelayedCalls()) == 1
    held.release()
    success_result_of(behind).release()
    assert (limiter.active, limiter.queued) == (0, 0)
    assert clock.getDelayedCalls() == []
    assert limiter.timed_out_total == 0


def test_cancel_after_being_served_changes_nothing() -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 1, 2)
    d = limiter.acquire(1.0)
    d.cancel()
    slot = success_result_of(d)
    assert limiter.active == 1
    slot.release()
    assert limiter.active == 0


def test_release_is_idempotent() -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 1, 2)
    held = success_result_of(limiter.acquire(1.0))
    first, second = limiter.acquire(1.0), limiter.acquire(1.0)
    assert not held.released
    held.release()
    held.release()
    assert held.released
    assert_no_result(second)
    success_result_of(first).release()
    last = success_result_of(second)
    last.release()
    last.release()
    assert limiter.active == 0


def test_raising_the_cap_serves_waiters_at_once() -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 1, 3)
    success_result_of(limiter.acquire(1.0))
    waiting = [limiter.acquire(1.0) for _ in range(3)]
    limiter.set_limits(3, 3)
    success_result_of(waiting[0])
    success_result_of(waiting[1])
    assert_no_result(waiting[2])
    assert (limiter.active, limiter.queued, limiter.max_active) == (3, 1, 3)


def test_lowering_the_cap_lets_active_slots_drain() -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 3, 2)
    held = [success_result_of(limiter.acquire(1.0)) for _ in range(3)]
    limiter.set_limits(1, 2)
    assert limiter.active == 3
    waiting = limiter.acquire(10.0)
    held[0].release()
    held[1].release()
    assert_no_result(waiting)
    assert limiter.active == 1
    held[2].release()
    success_result_of(waiting)
    assert limiter.active == 1


def test_lowering_the_queue_keeps_those_already_waiting() -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 1, 2)
    held = success_result_of(limiter.acquire(1.0))
    waiting = [limiter.acquire(1.0), limiter.acquire(1.0)]
    limiter.set_limits(1, 0)
    assert (limiter.queued, limiter.max_queued) == (2, 0)
    failure_result_of(limiter.acquire(1.0), QueueFull)
    held.release()
    success_result_of(waiting[0])
    assert_no_result(waiting[1])


def test_newcomers_do_not_overtake_waiters() -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 1, 2)
    held = success_result_of(limiter.acquire(1.0))
    first, second = limiter.acquire(1.0), limiter.acquire(1.0)
    newcomers: list[Deferred[Slot]] = []

    def release_and_come_back(slot: Slot) -> Slot:
        slot.release()
        newcomers.append(limiter.acquire(1.0))
        return slot

    first.addCallback(release_and_come_back)
    held.release()
    success_result_of(first)
    success_result_of(second)
    assert_no_result(newcomers[0])
    assert (limiter.active, limiter.queued) == (1, 1)


def test_a_long_queue_of_waiters_releasing_at_once_is_served_without_deep_recursion() -> None:
    clock = StrictClock()
    limiter = ConcurrencyLimiter(clock, 1, 5000)
    held = success_result_of(limiter.acquire(1.0))
    waiting = [limiter.acquire(1.0) for _ in range(5000)]
    for d in waiting:
        d.addCallback(Slot.release)
    held.release()
    for d in waiting:
        assert success_result_of(d) is None
    assert (limiter.active, limiter.queued) == (0, 0)
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize(
    ("max_active", "max_queued", "field"), [(-1, 0, "max_active"), (0, -1, "max_queued")]
)
def test_limits_must_not_be_negative(max_active: int, max_queued: int, field: str) -> None:
    with pytest.raises(ValueError, match=f"^{field}: must be >= 0"):
        ConcurrencyLimiter(StrictClock(), max_active, max_queued)
    limiter = ConcurrencyLimiter(StrictClock(), 1, 1)
    with pytest.raises(ValueError, match=f"^{field}: must be >= 0"):
        limiter.set_limits(max_active, max_queued)
    assert (limiter.max_active, limiter.max_queued) == (1, 1)


@pytest.mark.parametrize("timeout", [-1.0, float("nan"), float("inf")])
def test_timeout_must_be_a_finite_non_negative_number(timeout: float) -> None:
    limiter = ConcurrencyLimiter(StrictClock(), 0, 1)
    with pytest.raises(ValueError, match=r"^timeout: "):
        limiter.acquire(timeout)
    assert (limiter.active, limiter.queued) == (0, 0)


class LimiterMachine(RuleBasedStateMachine):
    """Random sequences of acquire, release, cancel, time and reload never leak a slot."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = StrictClock()
        self.limiter = ConcurrencyLimiter(self.clock, 0, 0)
        self.held: list[Slot] = []
        self.released: list[Slot] = []
        self.pending: list[Deferred[Slot]] = []
        self.shed = 0
        self.timed_out = 0
        # Assertions inside Deferred callbacks would only turn into failures nobody sees:
        # callbacks note what is wrong here and an invariant checks it.
        self.problems: list[str] = []

    @initialize(max_active=st.integers(0, 4), max_queued=st.integers(0, 4))
    def start(self, max_active: int, max_queued: int) -> None:
        self.limiter.set_limits(max_active, max_queued)

    def _granted(self, slot: Slot, d: Deferred[Slot]) -> None:
        if self.limiter.active > self.limiter.max_active:
            self.problems.append(f"granted beyond the cap: {self.limiter.active}")
        self.held.append(slot)
        if d in self.pending:
            self.pending.remove(d)

    def _failed(self, failure: Failure, d: Deferred[Slot]) -> None:
        if isinstance(failure.value, QueueFull):
            self.shed += 1
        elif isinstance(failure.value, QueueTimeout):
            self.timed_out += 1
        elif not isinstance(failure.value, CancelledError):
            self.problems.append(f"unexpected failure: {failure.value!r}")
        if d in self.pending:
            self.pending.remove(d)

    @rule(timeout=st.sampled_from([0.0, 0.5, 1.0, 3.0]))
    def acquire(self, timeout: float) -> None:
        d = self.limiter.acquire(timeout)
        self.pending.append(d)
        d.addCallbacks(self._granted, self._failed, callbackArgs=(d,), errbackArgs=(d,))

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release(self, data: Any) -> None:
        slot = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        slot.release()
        self.released.append(slot)

    @precondition(lambda self: bool(self.released))
    @rule(data=st.data())
    def release_again(self, data: Any) -> None:
        data.draw(st.sampled_from(self.released)).release()

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data())
    def cancel(self, data: Any) -> None:
        data.draw(st.sampled_from(self.pending)).cancel()

    @rule(seconds=st.sampled_from([0.25, 0.5, 1.0, 2.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(max_active=st.integers(0, 4), max_queued=st.integers(0, 4))
    def set_limits(self, max_active: int, max_queued: int) -> None:
        self.limiter.set_limits(max_active, max_queued)

    @invariant()
    def callbacks_saw_nothing_wrong(self) -> None:
        assert self.problems == []

    @invariant()
    def active_counts_exactly_the_slots_held(self) -> None:
        assert self.limiter.active == len(self.held)

    @invariant()
    def queued_counts_exactly_the_unanswered_requests(self) -> None:
        assert self.limiter.queued == len(self.pending)
        assert len(self.clock.getDelayedCalls()) == len(self.pending)

    @invariant()
    def nobody_waits_while_a_slot_is_free(self) -> None:
        free = max(self.limiter.max_active - self.limiter.active, 0)
        assert self.limiter.queued == 0 or free == 0

    @invariant()
    def counters_match_what_callers_saw(self) -> None:
        assert self.limiter.shed_total == self.shed
        assert self.limiter.timed_out_total == self.timed_out

    def teardown(self) -> None:
        while self.held:
            self.held.pop().release()
        self.clock.advance(10.0)
        assert (self.limiter.active, self.limiter.queued) == (0, 0)
        assert self.clock.getDelayedCalls() == []
        assert self.pending == []
        assert self.problems == []


TestLimiterMachine = LimiterMachine.TestCase
TestLimiterMachine.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
