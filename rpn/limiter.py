"""A connection-slot limiter: at most N requests in flight to one AMC, a bounded FIFO wait.

The relay must not open more connections to an AMC than it can bear, nor let an unbounded
queue build up in front of a slow one: a request that finds the queue full is shed at once (the
relay answers 503), and one that waits too long fails with ``QueueTimeout``. Pure logic: the
only time source is the injected clock, so tests drive it with ``piano.testing.StrictClock``.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

__all__ = ["ConcurrencyLimiter", "QueueFull", "QueueTimeout", "Slot"]


class QueueFull(Exception):
    """Every slot is taken and the wait queue is full: the request is shed without waiting."""

    def __init__(self, max_active: int, max_queued: int) -> None:
        super().__init__(
            f"upstream busy: {max_active} requests in flight and {max_queued} waiting already"
        )
        self.max_active = max_active
        self.max_queued = max_queued


class QueueTimeout(Exception):
    """The request waited its whole timeout in the queue without getting a slot."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"no upstream slot became free within {timeout:g} seconds")
        self.timeout = timeout


class Slot:
    """The right to have one request in flight; give it back with ``release()``."""

    def __init__(self, limiter: ConcurrencyLimiter) -> None:
        self._limiter: ConcurrencyLimiter | None = limiter

    @property
    def released(self) -> bool:
        return self._limiter is None

    def release(self) -> None:
        """Give the slot back (to the next waiter, if any). Releasing twice does nothing."""
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._release()


class _Waiter:
    """One queued ``acquire``: its Deferred and its timeout call."""

    __slots__ = ("deferred", "timeout_call")

    def __init__(self, deferred: Deferred[Slot]) -> None:
        self.deferred = deferred
        self.timeout_call: IDelayedCall | None = None


def _check_limit(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name}: must be >= 0, got {value!r}")


class ConcurrencyLimiter:
    """Hands out at most *max_active* slots and queues at most *max_queued* waiters, FIFO.

    ``max_queued = 0`` means no queue: a request that cannot go at once is shed.
    """

    def __init__(self, clock: IReactorTime, max_active: int, max_queued: int) -> None:
        _check_limit("max_active", max_active)
        _check_limit("max_queued", max_queued)
        self._clock = clock
        self._max_active = max_active
        self._max_queued = max_queued
        self._active = 0
        self._waiters: OrderedDict[_Waiter, None] = OrderedDict()
        self._granting = False
        #: Requests refused at once because the queue was full.
        self.shed_total = 0
        #: Requests that waited their whole timeout without getting a slot.
        self.timed_out_total = 0

    @property
    def active(self) -> int:
        """Slots handed out and not yet released."""
        return self._active

    @property
    def queued(self) -> int:
        """Requests waiting for a slot."""
        return len(self._waiters)

    @property
    def max_active(self) -> int:
        return self._max_active

    @property
    def max_queued(self) -> int:
        return self._max_queued

    def try_acquire(self) -> Slot | None:
        """A slot at once if one is free and nobody waits for one (as ``acquire``), else None."""
        if self._active < self._max_active and not self._waiters:
            self._active += 1
            return Slot(self)
        return None

    def acquire(self, timeout: float) -> Deferred[Slot]:
        """A slot: at once if one is free, after waiting up to *timeout* seconds otherwise.

        Fails with ``QueueFull`` at once when the queue is full, with ``QueueTimeout`` after
        *timeout* seconds in the queue. Cancelling the Deferred while it waits leaves the queue
        without taking a slot. Once it has fired, cancelling does nothing: the caller holds the
        ``Slot`` and must release it.
        """
        if not (math.isfinite(timeout) and timeout >= 0):
            raise ValueError(f"timeout: must be a finite number >= 0, got {timeout!r}")
        if self._active < self._max_active and not self._waiters:
            self._active += 1
            return succeed(Slot(self))
        if len(self._waiters) >= self._max_queued:
            self.shed_total += 1
            return fail(QueueFull(self._max_active, self._max_queued))

        def cancel(_: Deferred[Slot]) -> None:
            self._forget(waiter)

        waiter = _Waiter(Deferred(cancel))
        self._waiters[waiter] = None
        waiter.timeout_call = self._clock.callLater(timeout, self._expire, waiter, timeout)
        return waiter.deferred

    def set_limits(self, max_active: int, max_queued: int) -> None:
        """Apply new limits (configuration reload).

        Raising *max_active* serves waiters at once. Lowering it takes no slot back: the
        surplus drains as requests finish. Lowering *max_queued* keeps those already waiting;
        only new requests are shed.
        """
        _check_limit("max_active", max_active)
        _check_limit("max_queued", max_queued)
        self._max_active = max_active
        self._max_queued = max_queued
        self._grant()

    def _release(self) -> None:
        self._active -= 1
        self._grant()

    def _grant(self) -> None:
        """Serve waiters, oldest first, while slots are free."""
        # A waiter's callbacks may release or acquire synchronously; the outer loop serves
        # whatever that frees, instead of recursing once per waiter.
        if self._granting:
            return
        self._granting = True
        try:
            while self._waiters and self._active < self._max_active:
                waiter, _ = self._waiters.popitem(last=False)
                self._cancel_timeout(waiter)
                self._active += 1
                waiter.deferred.callback(Slot(self))
        finally:
            self._granting = False

    def _expire(self, waiter: _Waiter, timeout: float) -> None:
        waiter.timeout_call = None
        if waiter in self._waiters:
            del self._waiters[waiter]
            self.timed_out_total += 1
            waiter.deferred.errback(QueueTimeout(timeout))

    def _forget(self, waiter: _Waiter) -> None:
        self._waiters.pop(waiter, None)
        self._cancel_timeout(waiter)

    @staticmethod
    def _cancel_timeout(waiter: _Waiter) -> None:
        call, waiter.timeout_call = waiter.timeout_call, None
        if call is not None and call.active():
            call.cancel()
