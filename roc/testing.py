"""Test clocks that refuse what the reactor refuses.

``twisted.internet.task.Clock`` accepts a negative delay; the real reactor raises
``AssertionError`` for one. Code that arms a timer from a computed deadline can therefore pass
every unit test and fail in production (the relay's deadline timer did: issue 12). Every unit
test of the project uses these clocks instead, so that class of bug fails a test.

``drift`` makes time move a little on every reading, as the real clock does between two calls
of ``seconds()`` in the same function: code that reads the clock twice and assumes the same
answer is caught too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor

__all__ = ["StrictClock", "StrictMemoryReactorClock"]


def _check_delay(delay: float) -> None:
    # The reactor's own message (twisted.internet.base.ReactorBase.callLater).
    if not delay >= 0:  # NaN too
        raise AssertionError(f"{delay} is not greater than or equal to 0 seconds")
    if math.isinf(delay):
        raise AssertionError(f"{delay} is not a finite delay")


class StrictClock(Clock):
    """A ``task.Clock`` that raises on a negative delay or a step back in time.

    *drift* seconds are added to the time after each ``seconds()`` reading (0 by default).
    """

    def __init__(self, drift: float = 0.0) -> None:
        super().__init__()
        if drift < 0:
            raise ValueError("drift: must be >= 0")
        self.drift = drift

    def seconds(self) -> float:
        now = self.rightNow
        if self.drift:
            self.rightNow += self.drift
        return now

    def callLater(
        self, delay: float, callable: Callable[..., object], *args: object, **kw: object
    ) -> IDelayedCall:
        _check_delay(delay)
        return super().callLater(delay, callable, *args, **kw)

    def advance(self, amount: float) -> None:
        if not amount >= 0:
            raise ValueError(f"time does not go back: advance({amount!r})")
        super().advance(amount)


class StrictMemoryReactorClock(MemoryReactor, StrictClock):
    """``MemoryReactorClock`` with the strict clock: records connections, refuses bad delays."""

    def __init__(self, drift: float = 0.0) -> None:
        MemoryReactor.__init__(self)
        StrictClock.__init__(self, drift)
