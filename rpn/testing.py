"""In-memory fakes for the relay's seams; each passes ``verifyObject`` for its interface.

Tests drive them by hand: no sockets, no reactor, no sleeping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionLost
from twisted.python.failure import Failure
from zope.interface import implementer

from roc.model import AmcKey
from rpn.http.client import Answer
from rpn.http.common import AnswerCut, BodyTooLarge
from rpn.interfaces import AmcEntry, IAnnuaireSource, IHttpClient, ISnapshotStore

# -- Annuaire ----------------------------------------------------------------------------------


@implementer(IAnnuaireSource)
class FakeAnnuaireSource:
    """An annuaire source answering from *entries*, or failing with ``error`` when it is set.

    With ``manual=True`` every lookup waits until the test calls ``answer_next`` or
    ``fail_next``, so concurrent lookups and cancellation can be observed.
    """

    def __init__(
        self, entries: Mapping[AmcKey, AmcEntry] | None = None, *, manual: bool = False
    ) -> None:
        self.entries: dict[AmcKey, AmcEntry] = dict(entries or {})
        self.manual = manual
        self.error: Exception | None = None
        #: Every key asked for, in order: ``len(calls)`` is the number of source calls.
        self.calls: list[AmcKey] = []
        #: Lookups waiting for ``answer_next``/``fail_next`` (manual mode).
        self.pending: list[tuple[AmcKey, Deferred[AmcEntry | None]]] = []
        #: Keys whose lookup was cancelled by the caller.
        self.cancelled: list[AmcKey] = []

    def lookup(self, key: AmcKey) -> Deferred[AmcEntry | None]:
        self.calls.append(key)
        if self.manual:

            def cancel(deferred: Deferred[AmcEntry | None]) -> None:
                self.cancelled.append(key)
                self.pending.remove((key, deferred))

            waiting: Deferred[AmcEntry | None] = Deferred(cancel)
            self.pending.append((key, waiting))
            return waiting
        if self.error is not None:
            return fail(self.error)
        return succeed(self.entries.get(key))

    def answer_next(self, entry: AmcEntry | None = None) -> None:
        """Answer the oldest pending lookup with *entry* (None: unknown AMC)."""
        _, waiting = self.pending.pop(0)
        waiting.callback(entry)

    def fail_next(self, error: Exception) -> None:
        """Fail the oldest pending lookup with *error*."""
        _, waiting = self.pending.pop(0)
        waiting.errback(error)


@implementer(ISnapshotStore)
class MemorySnapshotStore:
    """A snapshot kept in memory; counts saves and can be told to fail them."""

    def __init__(self, entries: Mapping[AmcKey, AmcEntry] | None = None) -> None:
        self.entries: dict[AmcKey, AmcEntry] = dict(entries or {})
        self.saves = 0
        self.fail_saves = False

    def load(self) -> dict[AmcKey, AmcEntry]:
        return dict(self.entries)

    def save(self, entries: dict[AmcKey, AmcEntry]) -> None:
        if self.fail_saves:
            raise OSError(28, "No space left on device")
        self.saves += 1
        self.entries = dict(entries)


# -- HTTP client (for SoapAnnuaireSource) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FakeAnswer:
    """A canned answer; with *cut*, the connection drops before it is complete."""

    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    cut: bool = False


@dataclass(frozen=True, slots=True)
class PostedRequest:
    """One request a ``FakeHttpClient`` received."""

    url: str
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes


@implementer(IHttpClient)
class FakeHttpClient:
    """An HTTP client answering queued answers (or failures) in order, as the real one would.

    With nothing queued a request never answers (until cancelled), which is how a timeout
    looks. An answer over the request's *max_body* fails with ``BodyTooLarge`` and counts as
    a dropped connection, as with the real client.
    """

    def __init__(self, answers: Sequence[FakeAnswer | Exception] = ()) -> None:
        self.queued: list[FakeAnswer | Exception] = list(answers)
        self.requests: list[PostedRequest] = []
        #: Requests cancelled (the caller gave up: the real client drops the connection).
        self.cancelled = 0
        #: Connections dropped because an answer was too large or cut.
        self.dropped = 0

    def post(
        self, url: str, headers: Sequence[tuple[bytes, bytes]], body: bytes, max_body: int
    ) -> Deferred[Answer]:
        self.requests.append(PostedRequest(url, tuple(headers), body))
        if not self.queued:

            def cancel(_: Deferred[Answer]) -> None:
                self.cancelled += 1

            return Deferred(cancel)
        queued = self.queued.pop(0)
        if isinstance(queued, Exception):
            return fail(queued)
        if len(queued.body) > max_body:
            self.dropped += 1
            return fail(BodyTooLarge(max_body))
        if queued.cut:
            self.dropped += 1
            return fail(AnswerCut(Failure(ConnectionLost())))
        return succeed(Answer(queued.status, list(queued.headers), queued.body))
