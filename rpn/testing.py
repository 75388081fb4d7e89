"""In-memory fakes for the relay's seams; each passes ``verifyObject`` for its interface.

Tests drive them by hand: no sockets, no reactor, no sleeping.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionAborted, ConnectionLost
from twisted.internet.interfaces import IConsumer, IProducer, IProtocol, IPushProducer, ITransport
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer, IResponse
from zope.interface import implementer

from roc.model import AmcKey
from rpn.annuaire import ISnapshotStore
from rpn.interfaces import AmcEntry, IAnnuaireSource

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


@implementer(IPushProducer)
class FakeBodyTransport:
    """The producer a response body is delivered through; records whether it was stopped."""

    def __init__(self) -> None:
        self.stopped = False
        self.paused = False
        self._protocol: IProtocol | None = None
        self._lost = False

    def attach(self, protocol: IProtocol) -> None:
        self._protocol = protocol

    def lose(self, reason: Failure) -> None:
        if not self._lost and self._protocol is not None:
            self._lost = True
            self._protocol.connectionLost(reason)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        """Like Twisted's client: the connection is aborted and the body fails."""
        self.stopped = True
        aborted = Failure(ConnectionAborted())
        self.lose(Failure(ResponseFailed([aborted])))


@implementer(IResponse)
class FakeResponse:
    """A canned response: *body* delivered in *chunks*, completed unless *complete* is False."""

    def __init__(
        self,
        code: int = 200,
        body: bytes = b"",
        *,
        phrase: bytes = b"OK",
        headers: Headers | None = None,
        chunk_size: int = 65536,
        complete: bool = True,
    ) -> None:
        self.version = (b"HTTP", 1, 1)
        self.code = code
        self.phrase = phrase
        self.headers = headers if headers is not None else Headers()
        self.length: int | str = len(body) if complete else UNKNOWN_LENGTH
        self.request = None
        self.previousResponse: IResponse | None = None
        self.body = body
        self.chunk_size = chunk_size
        self.complete = complete
        self.transport = FakeBodyTransport()

    def deliverBody(self, protocol: IProtocol) -> None:
        self.transport.attach(protocol)
        protocol.makeConnection(cast(ITransport, self.transport))
        for start in range(0, len(self.body), self.chunk_size):
            if self.transport.stopped:
                return
            protocol.dataReceived(self.body[start : start + self.chunk_size])
        if self.complete and not self.transport.stopped:
            self.transport.lose(Failure(ResponseDone()))

    def cut(self) -> None:
        """The connection drops before the body is complete (``ResponseFailed``)."""
        lost = Failure(ConnectionLost())
        self.transport.lose(Failure(ResponseFailed([lost])))

    def setPreviousResponse(self, response: IResponse) -> None:
        self.previousResponse = response


@dataclass(frozen=True, slots=True)
class FakeRequest:
    """One request a ``FakeAgent`` received, with its body already read."""

    method: bytes
    uri: bytes
    headers: Headers
    body: bytes


@implementer(IConsumer)
class _BodyCollector:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.chunks.append(data)


@implementer(IAgent)
class FakeAgent:
    """An HTTP agent answering queued responses (or failures) in order.

    With nothing queued a request never answers (until cancelled), which is how a timeout
    looks. Request bodies must be produced synchronously (``BytesProducer`` does).
    """

    def __init__(self, responses: Sequence[FakeResponse | Exception] = ()) -> None:
        self.queued: list[FakeResponse | Exception] = list(responses)
        self.requests: list[FakeRequest] = []
        #: How many requests were cancelled while waiting for their response.
        self.cancelled = 0

    def respond(
        self,
        code: int = 200,
        body: bytes = b"",
        *,
        chunk_size: int = 65536,
        complete: bool = True,
    ) -> FakeResponse:
        """Queue a response (see ``FakeResponse``) and return it."""
        response = FakeResponse(code, body, chunk_size=chunk_size, complete=complete)
        self.queued.append(response)
        return response

    def request(
        self,
        method: bytes,
        uri: bytes,
        headers: Headers | None = None,
        bodyProducer: IBodyProducer | None = None,
    ) -> Deferred[IResponse]:
        collector = _BodyCollector()
        if bodyProducer is not None:
            bodyProducer.startProducing(collector)
        self.requests.append(
            FakeRequest(
                method,
                uri,
                headers if headers is not None else Headers(),
                b"".join(collector.chunks),
            )
        )
        if not self.queued:

            def cancel(_: Deferred[IResponse]) -> None:
                self.cancelled += 1

            return Deferred(cancel)
        answer = self.queued.pop(0)
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed(cast(IResponse, answer))
