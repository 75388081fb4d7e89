"""Small HTTP-client pieces shared by the upstream forwarder and the annuaire client."""

from __future__ import annotations

from typing import cast

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IConsumer, IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

#: RFC 9110 ``tchar``: what method and header-field names are made of. ``name.translate(None,
#: TOKEN_CHARS)`` is empty exactly when *name* is all token characters.
TOKEN_CHARS = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
HEX_DIGITS = b"0123456789abcdefABCDEF"
DIGITS = b"0123456789"


@implementer(IBodyProducer)
class BytesProducer:
    """A request body already in memory, written at once (no cooperator, no global reactor)."""

    def __init__(self, body: bytes) -> None:
        self._body = body
        self.length = len(body)

    def startProducing(self, consumer: IConsumer) -> Deferred[None]:
        consumer.write(self._body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class BodyTooLarge(Exception):
    """An answer body went past the configured limit (its connection is dropped)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"answer larger than {limit} bytes")
        self.limit = limit


class _CappedBody(Protocol):
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self.finished: Deferred[bytes] = Deferred(self._cancel)

    def _stop(self) -> None:
        """Drop the connection: a half-read answer must never go back to the pool."""
        transport = self.transport
        if transport is None:
            return
        lose = getattr(transport, "loseConnection", None)
        if lose is not None:
            lose()
        else:
            cast(IPushProducer, transport).stopProducing()

    def _cancel(self, finished: Deferred[bytes]) -> None:
        # Fail first: stopping may report the lost connection at once, which is not the news.
        finished.errback(CancelledError())
        self._stop()

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self.finished.errback(BodyTooLarge(self._limit))
            self._stop()
            return
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:
            return
        if isinstance(reason.value, ResponseDone | PotentialDataLoss):
            self.finished.callback(b"".join(self._chunks))
        else:
            self.finished.errback(reason)


def read_capped_body(response: IResponse, limit: int) -> Deferred[bytes]:
    """The body of *response*; fails with ``BodyTooLarge`` past *limit* bytes.

    Cancelling the Deferred stops reading and drops the connection, so it is never reused.
    """
    protocol = _CappedBody(limit)
    response.deliverBody(protocol)
    return protocol.finished
