"""The per-AMC circuit breaker, driven by a fake clock and a seeded random generator."""

from __future__ import annotations

import random

import pytest

from piano.testing import StrictClock
from rpn.breaker import RAMP_START_FRACTION, BreakerPolicy, BreakerState, CircuitBreaker

NO_JITTER_NO_RAMP = BreakerPolicy(
    failure_threshold=3, open_base=1.0, open_max=5.0, jitter=0.0, recovery_ramp=0.0
)


class Recorder:
    """Collects the (old, new) pairs a breaker reports."""

    def __init__(self) -> None:
        self.transitions: list[tuple[BreakerState, BreakerState]] = []

    def __call__(self, old: BreakerState, new: BreakerState) -> None:
        self.transitions.append((old, new))


def make(
    policy: BreakerPolicy = NO_JITTER_NO_RAMP, seed: int = 1
) -> tuple[StrictClock, CircuitBreaker, Recorder]:
    clock = StrictClock()
    recorder = Recorder()
    breaker = CircuitBreaker(clock, policy, rng=random.Random(seed), on_transition=recorder)
    return clock, breaker, recorder


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The state, read through a call so that mypy does not narrow it between reads."""
    return breaker.state


def fail_until_open(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.policy.failure_threshold):
        assert breaker.try_acquire()
        breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN


def reach_half_open(clock: StrictClock, breaker: CircuitBreaker) -> None:
    clock.advance(breaker.retry_after())
    assert state_of(breaker) is BreakerState.HALF_OPEN


def probe_until_closed(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.policy.half_open_probes):
        assert breaker.try_acquire()
        breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED


def test_state_values_are_the_stable_label_strings() -> None:
    assert [s.value for s in BreakerState] == ["closed", "open", "half_open"]


def test_new_breaker_is_closed_and_admits_every_request() -> None:
    _, breaker, recorder = make()
    assert state_of(breaker) is BreakerState.CLOSED
    assert all(breaker.try_acquire() for _ in range(100))
    assert breaker.retry_after() == 0.0
    assert breaker.rejected_total == 0
    assert recorder.transitions == []


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    _, breaker, recorder = make()
    for _ in range(2):
        assert breaker.try_acquire()
        breaker.record_failure()
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.try_acquire()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.opened_total == 1
    assert recorder.transitions == [(BreakerState.CLOSED, BreakerState.OPEN)]


def test_a_success_resets_the_consecutive_failure_count() -> None:
    _, breaker, _ = make()
    for _ in range(10):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.opened_total == 0


def test_open_breaker_refuses_requests_and_counts_them() -> None:
    clock, breaker, _ = make()
    fail_until_open(breaker)
    assert [breaker.try_acquire() for _ in range(4)] == [False] * 4
    assert breaker.rejected_total == 4
    assert breaker.retry_after() == pytest.approx(1.0)
    clock.advance(0.75)
    assert breaker.retry_after() == pytest.approx(0.25)
    assert not breaker.try_acquire()


def test_open_turns_half_open_lazily_when_looked_at_after_the_open_time() -> None:
    clock, breaker, recorder = make()
    fail_until_open(breaker)
    clock.advance(0.999)
    assert state_of(breaker) is BreakerState.OPEN
    clock.advance(0.001)
    assert recorder.transitions == [(BreakerState.CLOSED, BreakerState.OPEN)]
    assert clock.getDelayedCalls() == []
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert recorder.transitions[-1] == (BreakerState.OPEN, BreakerState.HALF_OPEN)
    assert breaker.retry_after() == 0.0


def test_try_acquire_itself_notices_the_end_of_the_open_time() -> None:
    clock, breaker, recorder = make()
    fail_until_open(breaker)
    clock.advance(1.0)
    assert breaker.try_acquire()
    assert recorder.transitions[-1] == (BreakerState.OPEN, BreakerState.HALF_OPEN)


def test_half_open_admits_at_most_the_configured_probes_at_once() -> None:
    clock, breaker, _ = make()
    fail_until_open(breaker)
    reach_half_open(clock, breaker)
    rejected_before = breaker.rejected_total
    assert [breaker.try_acquire() for _ in range(5)] == [True, True, True, False, False]
    assert breaker.rejected_total == rejected_before + 2
    breaker.record_success()
    assert breaker.try_acquire()
    assert not breaker.try_acquire()


def test_enough_probe_successes_close_the_breaker() -> None:
    clock, breaker, recorder = make()
    fail_until_open(breaker)
    reach_half_open(clock, breaker)
    for _ in range(3):
        assert breaker.try_acquire()
    breaker.record_success()
    breaker.record_success()
    assert state_of(breaker) is BreakerState.HALF_OPEN
    breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED
    assert recorder.transitions[-1] == (BreakerState.HALF_OPEN, BreakerState.CLOSED)
    assert all(breaker.try_acquire() for _ in range(50))


def test_a_cancelled_probe_frees_its_slot_without_counting_as_a_success() -> None:
    clock, breaker, _ = make()
    fail_until_open(breaker)
    reach_half_open(clock, breaker)
    for _ in range(3):
        assert breaker.try_acquire()
    assert not breaker.try_acquire()
    breaker.record_cancelled()
    assert breaker.try_acquire()
    breaker.record_success()
    breaker.record_success()
    breaker.record_cancelled()
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.try_acquire()
    breaker.record_success()
    assert state_of(breaker) is BreakerState.CLOSED


def test_cancelled_requests_while_closed_change_nothing() -> None:
    _, breaker, _ = make()
    for _ in range(2):
        breaker.record_failure()
    breaker.record_cancelled()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN


def test_any_probe_failure_reopens_the_breaker() -> None:
    clock, breaker, recorder = make()
    fail_until_open(breaker)
    reach_half_open(clock, breaker)
    assert breaker.try_acquire()
    assert breaker.try_acquire()
    breaker.record_success()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.opened_total == 2
    assert recorder.transitions[-1] == (BreakerState.HALF_OPEN, BreakerState.OPEN)


def test_back_off_doubles_on_each_reopen_up_to_the_cap() -> None:
    clock, breaker, _ = make()
    fail_until_open(breaker)
    open_times = [breaker.retry_after()]
    for _ in range(5):
        reach_half_open(clock, breaker)
        assert breaker.try_acquire()
        breaker.record_failure()
        open_times.append(breaker.retry_after())
    assert open_times == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]


def test_closing_resets_the_back_off_to_its_base() -> None:
    clock, breaker, _ = make()
    fail_until_open(breaker)
    reach_half_open(clock, breaker)
    assert breaker.try_acquire()
    breaker.record_failure()
    assert breaker.retry_after() == 2.0
    reach_half_open(clock, breaker)
    probe_until_closed(breaker)
    fail_until_open(breaker)
    assert breaker.retry_after() == 1.0


def test_open_time_is_jittered_within_bounds_and_actually_varies() -> None:
    policy = BreakerPolicy(failure_threshold=1, open_base=10.0, open_max=40.0, jitter=0.2)
    clock, breaker, _ = make(policy, seed=42)
    first_open_times = []
    for _ in range(200):
        fail_until_open(breaker)
        open_time = breaker.retry_after()
        assert 8.0 <= open_time <= 12.0
        first_open_times.append(open_time)
        reach_half_open(clock, breaker)
        probe_until_closed(breaker)
        clock.advance(policy.recovery_ramp)
    assert min(first_open_times) < 8.5
    assert max(first_open_times) > 11.5


def test_jitter_applies_around_the_doubled_and_capped_back_off() -> None:
    policy = BreakerPolicy(failure_threshold=1, open_base=10.0, open_max=40.0, jitter=0.2)
    clock, breaker, _ = make(policy, seed=7)
    fail_until_open(breaker)
    for nominal in [20.0, 40.0, 40.0, 40.0]:
        reach_half_open(clock, breaker)
        assert breaker.try_acquire()
        breaker.record_failure()
        assert nominal * 0.8 <= breaker.retry_after() <= nominal * 1.2


def test_same_seed_gives_the_same_open_times() -> None:
    policy = BreakerPolicy(failure_threshold=1, jitter=0.5)
    _, first, _ = make(policy, seed=3)
    _, second, _ = make(policy, seed=3)
    fail_until_open(first)
    fail_until_open(second)
    assert first.retry_after() == second.retry_after()


def admitted_share(breaker: CircuitBreaker, calls: int = 4000) -> float:
    return sum(breaker.try_acquire() for _ in range(calls)) / calls


def test_recovery_ramp_admits_a_growing_share_of_requests() -> None:
    policy = BreakerPolicy(failure_threshold=1, jitter=0.0, recovery_ramp=10.0)
    clock, breaker, _ = make(policy, seed=11)
    fail_until_open(breaker)
    reach_half_open(clock, breaker)
    probe_until_closed(breaker)
    rejected_before = breaker.rejected_total
    shares = []
    for _ in range(4):
        shares.append(admitted_share(breaker))
        clock.advance(2.5)
    shares.append(admitted_share(breaker))
    expected = [RAMP_START_FRACTION + (1 - RAMP_START_FRACTION) * k / 4 for k in range(5)]
    assert shares == pytest.approx(expected, abs=0.03)
    assert shares == sorted(shares)
    assert shares[-1] == 1.0
    assert breaker.rejected_total - rejected_before == round(sum(4000 * (1 - s) for s in shares))


def test_recovery_ramp_fraction_reaches_one_and_stays_there() -> None:
    policy = BreakerPolicy(failure_threshold=1, jitter=0.0, recovery_ramp=10.0)
    clock, breaker, _ = make(policy)
    fail_until_open(breaker)
    reach_half_open(clock, breaker)
    probe_until_closed(breaker)
    assert breaker.admission_fraction() == RAMP_START_FRACTION
    clock.advance(5.0)
    assert breaker.admission_fraction() == pytest.approx(0.625)
    clock.advance(5.0)
    assert breaker.admission_fraction() == 1.0
    clock.advance(100.0)
    assert breaker.admission_fraction() == 1.0


def test_zero_recovery_ramp_admits_everything_as_soon_as_closed() -> None:
    clock, breaker, _ = make()
    fail_until_open(breaker)
    reach_half_open(clock, breaker)
    probe_until_closed(breaker)
    assert breaker.admission_fraction() == 1.0
    assert all(breaker.try_acquire() for _ in range(1000))


def test_a_new_breaker_has_no_ramp() -> None:
    _, breaker, _ = make(BreakerPolicy(recovery_ramp=10.0))
    assert breaker.admission_fraction() == 1.0


def test_failures_during_the_ramp_reopen_the_breaker() -> None:
    policy = BreakerPolicy(failure_threshold=2, jitter=0.0, recovery_ramp=10.0)
    clock, breaker, _ = make(policy)
    fail_until_open(breaker)
    reach_half_open(clock, breaker)
    probe_until_closed(breaker)
    breaker.record_failure()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.retry_after() == 1.0


def test_late_results_of_requests_sent_before_opening_are_ignored() -> None:
    clock, breaker, _ = make()
    for _ in range(5):
        assert breaker.try_acquire()
    for _ in range(3):
        breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN
    breaker.record_success()
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.retry_after() == 1.0
    assert breaker.opened_total == 1
    reach_half_open(clock, breaker)
    breaker.record_failure()
    assert state_of(breaker) is BreakerState.HALF_OPEN


def test_callback_sees_every_transition_in_order() -> None:
    clock, breaker, recorder = make()
    fail_until_open(breaker)
    reach_half_open(clock, breaker)
    assert breaker.try_acquire()
    breaker.record_failure()
    reach_half_open(clock, breaker)
    probe_until_closed(breaker)
    closed, open_, half_open = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
    assert recorder.transitions == [
        (closed, open_),
        (open_, half_open),
        (half_open, open_),
        (open_, half_open),
        (half_open, closed),
    ]


def test_callback_sees_the_breaker_already_in_its_new_state() -> None:
    clock = StrictClock()
    seen: list[tuple[BreakerState, float]] = []
    breaker: CircuitBreaker

    def on_transition(old: BreakerState, new: BreakerState) -> None:
        seen.append((breaker.state, breaker.retry_after()))

    breaker = CircuitBreaker(clock, NO_JITTER_NO_RAMP, on_transition=on_transition)
    fail_until_open(breaker)
    assert seen == [(BreakerState.OPEN, 1.0)]


def test_default_policy_is_valid_and_documented_values() -> None:
    policy = BreakerPolicy()
    assert (policy.failure_threshold, policy.open_base, policy.open_max) == (5, 1.0, 60.0)
    assert (policy.jitter, policy.half_open_probes, policy.recovery_ramp) == (0.2, 3, 10.0)
    assert CircuitBreaker(StrictClock()).policy == policy


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("failure_threshold", 0),
        ("open_base", 0.0),
        ("open_base", -1.0),
        ("open_base", float("nan")),
        ("open_base", float("inf")),
        ("open_max", 0.5),
        ("open_max", float("inf")),
        ("jitter", -0.1),
        ("jitter", 1.0),
        ("jitter", float("nan")),
        ("half_open_probes", 0),
        ("recovery_ramp", -1.0),
        ("recovery_ramp", float("nan")),
    ],
)
def test_policy_rejects_bad_values_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        BreakerPolicy(**{field: value})  # type: ignore[arg-type]
