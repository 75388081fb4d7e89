"""Test doubles the three services share: clocks that refuse what the reactor refuses, and
fakes of twisted.web's ``Agent`` (the indicators query Prometheus through one).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionAborted, ConnectionLost
from twisted.internet.interfaces import (
    IConsumer,
    IDelayedCall,
    IProducer,
    IProtocol,
    IPushProducer,
    ITransport,
)
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactor
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone, ResponseFailed
from twisted.web.http_headers import Headers
from twisted.web.iweb import UNKNOWN_LENGTH, IAgent, IBodyProducer, IResponse
from zope.interface import implementer

from piano.reactors import IServiceReactor

__all__ = [
    "FakeAgent",
    "FakeBodyTransport",
    "FakeRequest",
    "FakeResponse",
    "StrictClock",
    "StrictMemoryReactorClock",
]


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


@implementer(IServiceReactor)
class StrictMemoryReactorClock(MemoryReactor, StrictClock):
    """``MemoryReactorClock`` with the strict clock: records connections, refuses bad delays.

    Declared an ``IServiceReactor`` so that services are built on it in unit tests; it starts
    no process and has no thread pool (tests that need those bring their own fakes)."""

    def __init__(self, drift: float = 0.0) -> None:
        MemoryReactor.__init__(self)
        StrictClock.__init__(self, drift)
        self._pool = InlineThreadPool()

    # IReactorThreads: "threads" run at once; what they hand back waits for the next advance,
    # as it waits for the reactor's next turn.
    def getThreadPool(self) -> InlineThreadPool:  # type: ignore[override]
        return self._pool

    def callInThread(self, callable: Callable[..., object], *args: object, **kw: object) -> None:
        callable(*args, **kw)

    def callFromThread(self, callable: Callable[..., object], *args: object, **kw: object) -> None:
        self.callLater(0, callable, *args, **kw)

    def suggestThreadPoolSize(self, size: int) -> None:
        pass

    def spawnProcess(self, *args: object, **kwargs: object) -> NoReturn:
        raise NotImplementedError("StrictMemoryReactorClock starts no process")


class InlineThreadPool:
    """A thread pool that runs work at once, in the caller: unit tests start no thread."""

    def callInThread(self, func: Callable[..., object], *args: object, **kw: object) -> None:
        func(*args, **kw)

    def callInThreadWithCallback(
        self,
        onResult: Callable[[bool, object], object],
        func: Callable[..., object],
        *args: object,
        **kw: object,
    ) -> None:
        try:
            result = func(*args, **kw)
        except Exception:  # noqa: BLE001 - handed to the callback, as the real pool does
            onResult(False, Failure())
        else:
            onResult(True, result)


# -- twisted.web's Agent (for services that query HTTP APIs through it) ----------------------


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
    looks. Request bodies must be produced synchronously.
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
