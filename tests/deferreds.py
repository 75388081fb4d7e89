"""Trial's successResultOf / failureResultOf / assertNoResult for pytest tests, typed and pure."""

from __future__ import annotations

from typing import Any, TypeVar, cast

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

T = TypeVar("T")


def _seen(d: Deferred[Any]) -> list[object]:
    """What *d* has fired with so far, without changing what its later callbacks see."""
    seen: list[object] = []

    def look(result: object) -> object:
        seen.append(result)
        return result

    d.addBoth(look)
    return seen


def success_result_of(d: Deferred[T]) -> T:
    """The result *d* has already succeeded with."""
    seen = _seen(d)
    assert seen, "the Deferred has not fired yet"
    assert not isinstance(seen[0], Failure), f"the Deferred failed: {seen[0]!r}"
    return cast(T, seen[0])


def failure_result_of(d: Deferred[Any], expected: type[BaseException]) -> Failure:
    """The failure *d* has already failed with, which must be an *expected*; consumes it."""
    seen: list[Failure] = []
    d.addErrback(seen.append)
    assert seen, "the Deferred has not failed (yet)"
    assert isinstance(seen[0].value, expected), repr(seen[0].value)
    return seen[0]


def assert_no_result(d: Deferred[Any]) -> None:
    """*d* has not fired yet."""
    assert _seen(d) == [], "the Deferred has already fired"
