"""A per-AMC circuit breaker: stop sending to an AMC that keeps failing, then try it gently.

Pure logic with no timers and no I/O: time comes from an injected clock and randomness from an
injectable ``random.Random``, so tests drive it with ``piano.testing.StrictClock`` and a seed.

CLOSED
    Every request goes (except during the recovery ramp, below). ``failure_threshold``
    consecutive failures open the breaker; a success resets the count.
OPEN
    Every request is refused until the re-open time. The open time is ``open_base`` seconds,
    doubled after each re-open from HALF_OPEN up to ``open_max``, then multiplied by a random
    factor in ``[1 - jitter, 1 + jitter]`` so that the worker processes of every host do not
    probe a recovering AMC in step. Jitter is applied after the cap, so an open time may exceed
    ``open_max`` by at most the jitter fraction. The breaker turns HALF_OPEN lazily, the first
    time it is looked at after the re-open time.
HALF_OPEN
    At most ``half_open_probes`` requests are in flight at once. Any failure re-opens the
    breaker with a doubled back-off; ``half_open_probes`` successes close it, reset the back-off
    and start the recovery ramp.
Recovery ramp
    For ``recovery_ramp`` seconds after closing from HALF_OPEN, a request is admitted with a
    probability that grows linearly from 1/4 to 1, so the backlog of every establishment does
    not stampede an AMC that has just come back. ``recovery_ramp = 0`` disables it.

Each admitted request (``try_acquire()`` returned True) must be reported exactly once, with
``record_success``, ``record_failure`` or ``record_cancelled``. Results that arrive while OPEN,
or while HALF_OPEN with no probe in flight, come from requests sent before the breaker opened
and are ignored: the breaker already knows what they would tell it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import Enum

from twisted.internet.interfaces import IReactorTime

from piano.config import ConfigError, non_negative, positive, setting

__all__ = ["RAMP_START_FRACTION", "BreakerPolicy", "BreakerState", "CircuitBreaker"]

#: Fraction of requests admitted at the very start of the recovery ramp.
RAMP_START_FRACTION = 0.25


class BreakerState(Enum):
    """Where a breaker stands; the values are stable (logs and metrics labels use them)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def _below_one(value: float) -> str | None:
    return None if 0 <= value < 1 else "must be >= 0 and < 1"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """How eagerly a breaker opens and how cautiously it closes again (see the module doc).

    Also the ``[upstream.breaker]`` table of the relay's configuration: each field's help and
    check are the reference's (docs/configuration.md), so there is one definition of each.
    """

    failure_threshold: int = setting(
        "Consecutive failures that open an AMC's breaker.", 5, positive
    )
    open_base: float = setting(
        "Seconds the breaker first stays open (before jitter).", 1.0, positive
    )
    open_max: float = setting(
        "Longest open period, in seconds (the back-off doubles up to it, before jitter).",
        60.0,
        positive,
    )
    jitter: float = setting(
        "Random spread of open periods: the open time is multiplied by a factor in "
        "[1 - jitter, 1 + jitter] (below 1).",
        0.2,
        _below_one,
    )
    half_open_probes: int = setting(
        "Requests let through at once to test a recovering AMC; that many successes close it.",
        3,
        positive,
    )
    recovery_ramp: float = setting(
        "Seconds over which traffic returns progressively after recovery (0: at once).",
        10.0,
        non_negative,
    )

    def __post_init__(self) -> None:
        # The same checks when built directly (tests, tools) as when loaded from a file.
        for field in fields(self):
            check = field.metadata.get("check")
            problem = check(getattr(self, field.name)) if check is not None else None
            if problem:
                raise ConfigError(f"{field.name}: {problem}")
        if self.open_max < self.open_base:
            raise ConfigError("open_max: must be >= open_base")


class CircuitBreaker:
    """The breaker of one AMC, in one process (breakers are not shared between processes).

    *on_transition* is called with ``(old, new)`` after every change of state, once the
    breaker is consistent again, so it may read ``state`` or ``retry_after()``.
    """

    def __init__(
        self,
        clock: IReactorTime,
        policy: BreakerPolicy | None = None,
        rng: random.Random | None = None,
        on_transition: Callable[[BreakerState, BreakerState], None] | None = None,
    ) -> None:
        self._clock = clock
        self._policy = policy if policy is not None else BreakerPolicy()
        # Jitter and load shedding, not secrets: a non-cryptographic generator is right.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._backoff = self._policy.open_base
        self._reopen_at = 0.0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._ramp_started_at: float | None = None
        #: Times the breaker went to OPEN (from CLOSED or HALF_OPEN).
        self.opened_total = 0
        #: Requests refused by ``try_acquire`` (open, probes busy, or held back by the ramp).
        self.rejected_total = 0

    @property
    def policy(self) -> BreakerPolicy:
        return self._policy

    @property
    def state(self) -> BreakerState:
        """The current state; reading it turns OPEN into HALF_OPEN once the open time is over."""
        if self._state is BreakerState.OPEN and self._clock.seconds() >= self._reopen_at:
            self._probes_in_flight = 0
            self._probe_successes = 0
            self._transition(BreakerState.HALF_OPEN)
        return self._state

    def admission_fraction(self) -> float:
        """The share of requests admitted while CLOSED: below 1 only during the recovery ramp."""
        if self._ramp_started_at is None:
            return 1.0
        elapsed = self._clock.seconds() - self._ramp_started_at
        ramp = self._policy.recovery_ramp
        if elapsed >= ramp:
            self._ramp_started_at = None
            return 1.0
        return RAMP_START_FRACTION + (1.0 - RAMP_START_FRACTION) * max(elapsed, 0.0) / ramp

    def try_acquire(self) -> bool:
        """Whether one request may go to the AMC now; if True, report its outcome once."""
        state = self.state
        if state is BreakerState.CLOSED:
            fraction = self.admission_fraction()
            admitted = fraction >= 1.0 or self._rng.random() < fraction
        elif state is BreakerState.HALF_OPEN:
            admitted = self._probes_in_flight < self._policy.half_open_probes
            if admitted:
                self._probes_in_flight += 1
        else:
            admitted = False
        if not admitted:
            self.rejected_total += 1
        return admitted

    def record_success(self) -> None:
        """The AMC answered: whatever it said, it is alive."""
        state = self.state
        if state is BreakerState.CLOSED:
            self._consecutive_failures = 0
        elif state is BreakerState.HALF_OPEN and self._probes_in_flight > 0:
            self._probes_in_flight -= 1
            self._probe_successes += 1
            if self._probe_successes >= self._policy.half_open_probes:
                self._close()

    def record_failure(self) -> None:
        """The AMC failed (refused, reset, timed out, answered 5xx)."""
        state = self.state
        if state is BreakerState.CLOSED:
            self._consecutive_failures += 1
            if self._consecutive_failures >= self._policy.failure_threshold:
                self._open()
        elif state is BreakerState.HALF_OPEN and self._probes_in_flight > 0:
            self._open()

    def record_cancelled(self) -> None:
        """The request ended without telling anything about the AMC (the client went away)."""
        if self.state is BreakerState.HALF_OPEN and self._probes_in_flight > 0:
            self._probes_in_flight -= 1

    def retry_after(self) -> float:
        """Seconds until the next probe may go: 0 unless OPEN (e.g. for a Retry-After header)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(self._reopen_at - self._clock.seconds(), 0.0)

    def _open(self) -> None:
        policy = self._policy
        factor = 1.0
        if policy.jitter:
            factor = self._rng.uniform(1.0 - policy.jitter, 1.0 + policy.jitter)
        self._reopen_at = self._clock.seconds() + self._backoff * factor
        self._backoff = min(self._backoff * 2, policy.open_max)
        self._consecutive_failures = 0
        self._probes_in_flight = 0
        self._probe_successes = 0
        self._ramp_started_at = None
        self.opened_total += 1
        self._transition(BreakerState.OPEN)

    def _close(self) -> None:
        self._backoff = self._policy.open_base
        self._consecutive_failures = 0
        self._probes_in_flight = 0
        self._probe_successes = 0
        if self._policy.recovery_ramp > 0:
            self._ramp_started_at = self._clock.seconds()
        self._transition(BreakerState.CLOSED)

    def _transition(self, new: BreakerState) -> None:
        old, self._state = self._state, new
        if self._on_transition is not None:
            self._on_transition(old, new)
