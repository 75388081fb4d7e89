"""The relay's HTTP/1.1 server, parsing with ``httptools`` (llhttp, Node.js's parser).

Request parsing at a trust boundary is where request smuggling lives, so the parsing is
llhttp's, strict (no leniency enabled): bare CR or LF, obsolete folding, invalid or
duplicated ``Content-Length``, ``Content-Length`` with ``Transfer-Encoding``, bad chunk
framing, unknown methods and malformed targets are all refused by it. Around it, this module
keeps what the relay needs and llhttp does not do:

- one request at a time per connection, the whole body in memory, one write per answer;
  requests sent before the previous answer (pipelining) wait, parsed, in order, and the
  socket stops being read once they hold more than one full request;
- the request (head and body) must arrive within ``read_timeout`` of its first byte, and a
  connection with no request under way is closed after ``idle_timeout``;
- a head over ``MAX_REQUEST_HEAD_BYTES`` or with more than ``MAX_HEADERS`` fields is refused
  (431), a body over ``max_body_bytes`` too (413), as soon as it is known (a declared length
  before the body is read, without inviting it with "100 Continue");
- HTTP/1.1 and HTTP/1.0 only; ``Transfer-Encoding`` other than ``chunked`` refused; trailer
  fields never taken as headers; protocol upgrades and CONNECT refused;
- each refusal is a fault the handler builds (``refuse_early``), after which nothing more is
  read and the connection is closed.

A complete request becomes an ``HttpRequest`` handed to the handler, which answers it once
through ``HttpServerProtocol.respond``.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable, Sequence
from email.utils import formatdate
from typing import Protocol as TypingProtocol

import httptools
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IProtocolNegotiationFactory, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES
from zope.interface import implementer

from roc.model import SoapVersion
from roc.reasons import Reason
from roc.routing import soap_version_of
from rpn.errors import RpnError

#: Largest request head (request line and header fields) accepted, in bytes.
MAX_REQUEST_HEAD_BYTES = 16384
#: Most header fields accepted in one request.
MAX_HEADERS = 100
#: Seconds a refused or timed-out client has to acknowledge the close before it is aborted.
ABORT_AFTER = 2.0

#: Reason phrases RFC 9110 names and twisted.web's table lacks or spells the old way.
_REASONS = {
    413: b"Content Too Large",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
}
_STATUS_LINES: dict[int, bytes] = {}
_VERSIONS = {"1.1": True, "1.0": False}  # version: keep-alive by default
#: Bytes counted for each waiting request beyond its head and body (the objects holding it).
_REQUEST_OVERHEAD = 256


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <reason>`` and its CRLF, built once per status."""
    line = _STATUS_LINES.get(status)
    if line is None:
        reason = _REASONS.get(status) or RESPONSES.get(status, b"Unknown")
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        _STATUS_LINES[status] = line
    return line


class _DateCache:
    """The ``Date`` header value, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def value(self, now: float) -> bytes:
        second = int(now)
        if second != self._second:
            self._second = second
            self._value = formatdate(second, usegmt=True).encode("ascii")
        return self._value


_DATE = _DateCache()


class HttpRequest:
    """One complete request: header names lower-case, first value of each kept."""

    __slots__ = ("body", "connection", "head_only", "headers", "keep_alive", "method", "path")

    def __init__(
        self,
        method: bytes,
        path: bytes,
        headers: dict[bytes, bytes],
        body: bytes,
        connection: HttpServerProtocol,
        keep_alive: bool = True,
        head_only: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.connection = connection
        self.keep_alive = keep_alive
        self.head_only = head_only


class EarlyAnswer(TypingProtocol):
    """The answer to a request refused before it was complete: status, headers, body."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> list[tuple[bytes, bytes]]: ...

    @property
    def body(self) -> bytes: ...


class IRequestHandler(TypingProtocol):
    """What the protocol hands requests and early refusals to (the relay)."""

    def handle(self, request: HttpRequest) -> None: ...

    def refuse_early(
        self,
        connection: HttpServerProtocol,
        error: RpnError,
        detail: str,
        content_type: bytes | None,
    ) -> EarlyAnswer:
        """The fault to answer (and record) for a request this protocol refuses."""
        ...


class _Refused(Exception):
    def __init__(self, error: RpnError, detail: Reason) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


def _over_limit(size: int, limit: int) -> Reason:
    return Reason(
        f"body of {size} bytes or more, over the limit of {limit} bytes",
        f"corps d'au moins {size} octets, au-delà de la limite de {limit} octets",
    )


_HEAD_TOO_LARGE = Reason(
    f"request head over {MAX_REQUEST_HEAD_BYTES} bytes",
    f"en-tête de requête de plus de {MAX_REQUEST_HEAD_BYTES} octets",
)
_TOO_MANY_FIELDS = Reason(
    f"more than {MAX_HEADERS} header fields", f"plus de {MAX_HEADERS} champs d'en-tête"
)


def _malformed(what: str) -> Reason:
    # llhttp's messages are fixed texts naming the rule broken, never the request's bytes.
    return Reason(f"malformed HTTP: {what}", f"HTTP mal formé : {what}")


class HttpServerProtocol(Protocol):
    """One client connection (under TLS): requests in, one answer each, in order."""

    factory: HttpServerFactory

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        #: Complete requests not handed to the handler yet (pipelining), oldest first, with
        #: what each holds in memory (head and body).
        self._waiting: deque[tuple[HttpRequest, int]] = deque()
        #: Bytes the waiting requests, and the body being received, hold.
        self._waiting_bytes = 0
        #: The request handed to the handler and not answered yet.
        self._serving: HttpRequest | None = None
        self._dispatching = False
        #: A refusal decided while earlier requests are still to be answered.
        self._refusal: tuple[RpnError, str] | None = None
        self._closing = False
        self._paused = False
        # The request being received.
        self._receiving = False
        self._in_head = False
        self._head_received = 0
        self._head_bytes = 0
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._fields = 0
        self._codings: list[bytes] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._limit = 0
        self._began = self._completed = False
        # Timers are lazy: a request or an idle spell sets its deadline, and the timer armed
        # for an earlier one, when it fires, waits on for the current deadline (or for none).
        # So an exchange on a kept-alive connection arms and cancels no timer.
        self._read_deadline: IDelayedCall | None = None
        #: When the request being received must be complete (None: none is being received).
        self._read_by: float | None = None
        self._idle_timer: IDelayedCall | None = None
        #: When the connection, idle since its last answer, is closed (None: not idle).
        self._idle_until: float | None = None
        self._abort_call: IDelayedCall | None = None
        self.disconnected = False
        #: Set by the handler: (FINESS, certificate expiry) of this connection's client.
        self.identity: tuple[str | None, float | None] | None = None

    # -- connection life -------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.factory.connections.add(self)
        self._become_idle()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.connection_lost(self)
        self.disconnected = True
        self._closing = True
        self._waiting.clear()
        self._body = []
        for call in (self._read_deadline, self._idle_timer, self._abort_call):
            if call is not None and call.active():
                call.cancel()
        self._read_deadline = self._idle_timer = self._abort_call = None

    def _become_idle(self) -> None:
        clock = self.factory.clock
        timeout = self.factory.idle_timeout
        self._idle_until = clock.seconds() + timeout
        if self._idle_timer is None:
            self._idle_timer = clock.callLater(timeout, self._idle_timed_out)

    def _idle_timed_out(self) -> None:
        self._idle_timer = None
        until = self._idle_until
        if until is None:
            return  # busy: armed again when idle again
        clock = self.factory.clock
        now = clock.seconds()
        if now < until:
            self._idle_timer = clock.callLater(until - now, self._idle_timed_out)
            return
        self.close_if_idle()

    def close_if_idle(self) -> None:
        """Close now unless a request is being received or served (stop, idle timeout)."""
        if not (self._receiving or self._serving or self._waiting or self._closing):
            self._close()

    def _close(self, stop_reading: bool = False) -> None:
        """Close now; abort if the client does not acknowledge the TLS close in time.

        With *stop_reading* (a refused request), nothing more is read from the client: what
        it keeps sending is never received, only cut with the connection.
        """
        self._closing = True
        if stop_reading:
            if not self._paused and self.transport is not None:
                self._paused = True
                self.transport.pauseProducing()  # type: ignore[attr-defined]
        elif self._paused:
            self._paused = False
            self.transport.resumeProducing()  # type: ignore[union-attr]
        if self.transport is not None and self._abort_call is None and not self.disconnected:
            self.transport.loseConnection()
            abort = getattr(self.transport, "abortConnection", None)
            if abort is not None:
                self._abort_call = self.factory.clock.callLater(ABORT_AFTER, abort)

    # -- input -----------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing or self._refusal is not None:
            return
        self._began = self._completed = False
        try:
            self._parser.feed_data(data)
        except _Refused as refused:  # raised by a callback, outside the parser
            self._refuse_or_defer(refused.error, refused.detail)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, _Refused):  # pragma: no cover - a bug in a callback
                raise
            self._refuse_or_defer(cause.error, cause.detail)
        except httptools.HttpParserUpgrade:
            if self._completed and self._waiting:
                # llhttp stops after the upgrade request, which it has just completed.
                _, held = self._waiting.pop()
                self._waiting_bytes -= held
            self._refuse_or_defer(
                RpnError.HTTP_MALFORMED,
                _malformed("protocol upgrades and CONNECT are not supported"),
            )
        except httptools.HttpParserError as exc:
            self._refuse_or_defer(RpnError.HTTP_MALFORMED, _malformed(str(exc)))
        else:
            if self._in_head:
                # Every byte fed since the head began is the head's, but when a previous
                # request ended in this same read: then the count may include its tail.
                self._head_received += len(data)
                limit = MAX_REQUEST_HEAD_BYTES * (2 if self._began and self._completed else 1)
                if self._head_received > limit:
                    self._refuse_or_defer(RpnError.HEADERS_TOO_LARGE, _HEAD_TOO_LARGE)
        self._dispatch()
        self._apply_back_pressure()

    # httptools callbacks (named by httptools)

    def on_message_begin(self) -> None:
        self._began = True
        self._receiving = True
        self._in_head = True
        self._head_received = 0
        self._head_bytes = 0
        self._url = b""
        self._headers = {}
        self._fields = 0
        self._codings = []
        self._body = []
        self._body_size = 0
        self._idle_until = None
        clock = self.factory.clock
        timeout = self.factory.policy_read_timeout()
        by = self._read_by = clock.seconds() + timeout
        call = self._read_deadline
        if call is None:
            self._read_deadline = clock.callLater(timeout, self._too_slow)
        elif call.getTime() > by:  # a shorter read timeout since it was armed (a reload)
            call.reset(timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a trailer field: never taken as a header of the request
        self._fields += 1
        self._head_bytes += len(name) + len(value) + 4
        if self._fields > MAX_HEADERS:
            raise _Refused(RpnError.HEADERS_TOO_LARGE, _TOO_MANY_FIELDS)
        if self._head_bytes > MAX_REQUEST_HEAD_BYTES:
            raise _Refused(RpnError.HEADERS_TOO_LARGE, _HEAD_TOO_LARGE)
        lowered = name.lower()
        if lowered == b"transfer-encoding":
            self._codings.extend(c.strip(b" \t").lower() for c in value.split(b","))
        if lowered not in self._headers:
            self._headers[lowered] = value

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        if parser.get_http_version() not in _VERSIONS:
            raise _Refused(
                RpnError.HTTP_MALFORMED, _malformed("only HTTP/1.1 and HTTP/1.0 are served")
            )
        if self._codings and self._codings != [b"chunked"]:
            raise _Refused(
                RpnError.HTTP_MALFORMED, _malformed("Transfer-Encoding other than chunked")
            )
        self._path_of_target()
        limit = self._limit = self.factory.policy_max_body()
        declared = self._headers.get(b"content-length")
        if declared is not None and int(declared) > limit:
            raise _Refused(RpnError.BODY_TOO_LARGE, _over_limit(int(declared), limit))
        expect = self._headers.get(b"expect")
        if (
            expect is not None
            and expect.lower() == b"100-continue"
            and (self._codings or (declared is not None and int(declared) > 0))
            and self._serving is None
            and not self._waiting
        ):
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]

    def _path_of_target(self) -> None:
        try:
            self._path = _path_of(self._url)
        except ValueError:
            raise _Refused(RpnError.HTTP_MALFORMED, _malformed("invalid request target")) from None

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._limit:
            raise _Refused(RpnError.BODY_TOO_LARGE, _over_limit(self._body_size, self._limit))
        self._body.append(body)
        self._waiting_bytes += len(body)

    def on_message_complete(self) -> None:
        self._completed = True
        self._receiving = False
        self._read_by = None
        parser = self._parser
        method = parser.get_method()
        body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
        self._body = []
        request = HttpRequest(
            method,
            self._path,
            self._headers,
            body,
            self,
            keep_alive=parser.should_keep_alive(),
            head_only=method == b"HEAD",
        )
        # The body is counted already (on_body); the head, and a little for the request.
        held = self._head_bytes + _REQUEST_OVERHEAD
        self._waiting_bytes += held
        self._waiting.append((request, held + len(body)))

    # -- timers ----------------------------------------------------------------------------

    def _too_slow(self) -> None:
        self._read_deadline = None
        by = self._read_by
        if by is None or not self._receiving:
            return  # armed again by the next request
        clock = self.factory.clock
        now = clock.seconds()
        if now < by:
            self._read_deadline = clock.callLater(by - now, self._too_slow)
            return
        if self._receiving:
            self._refuse_or_defer(
                RpnError.REQUEST_TIMEOUT,
                Reason(
                    "request not received within the read timeout",
                    f"requête non reçue en {self.factory.policy_read_timeout():g} s",
                ),
            )

    # -- dispatch and output ---------------------------------------------------------------

    def _dispatch(self) -> None:
        """Hand waiting requests to the handler, one at a time; answers given at once loop."""
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._serving is None and self._waiting and not self._closing:
                request, held = self._waiting.popleft()
                self._waiting_bytes -= held
                self._serving = request
                self.factory.handler().handle(request)
            if self._serving is None and not self._waiting and not self._closing:
                if self._refusal is not None:
                    error, detail = self._refusal
                    self._refuse_now(error, detail)
                elif not self._receiving and self._idle_until is None:
                    self._become_idle()
        finally:
            self._dispatching = False

    def _apply_back_pressure(self) -> None:
        if self._closing or self.transport is None:
            return
        if not self._paused and self._waiting_bytes > self.factory.pipeline_limit():
            self._paused = True
            self.transport.pauseProducing()  # type: ignore[attr-defined]
        elif self._paused and self._waiting_bytes <= self.factory.pipeline_limit():
            self._paused = False
            self.transport.resumeProducing()  # type: ignore[attr-defined]

    def respond(
        self,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        close: bool = False,
        date: bool = True,
    ) -> None:
        """Answer the request under way: one write; then the next request, or the close."""
        request = self._serving
        if request is None or self.disconnected:
            return
        self._serving = None
        keep_alive = request.keep_alive and not close
        parts = [status_line(status)]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if date:
            parts += (b"Date: ", _DATE.value(time.time()), b"\r\n")
        parts += (b"Content-Length: %d\r\n" % len(body),)
        if not keep_alive:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        if not request.head_only:
            parts.append(body)
        self.transport.write(b"".join(parts))  # type: ignore[union-attr]
        if not keep_alive:
            self._close()
            return
        self._dispatch()
        self._apply_back_pressure()

    def _refuse_or_defer(self, error: RpnError, detail: str) -> None:
        """Refuse now, or once the requests received before this one are answered."""
        if self._closing or self._refusal is not None:
            return
        self._receiving = self._in_head = False
        if self._read_deadline is not None and self._read_deadline.active():
            self._read_deadline.cancel()
        self._read_deadline = None
        self._read_by = None
        self._refusal = (error, detail)
        if self._serving is None and not self._waiting:
            self._refuse_now(error, detail)

    def refuse(self, error: RpnError, detail: str) -> None:
        """Answer *error* and close (after the answers already due), whatever comes next."""
        self._refuse_or_defer(error, detail)

    def _refuse_now(self, error: RpnError, detail: str) -> None:
        if self.disconnected:
            return
        response = self.factory.handler().refuse_early(
            self, error, detail, self._headers.get(b"content-type")
        )
        parts = [status_line(response.status)]
        for name, value in response.headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(
            b"Date: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (_DATE.value(time.time()), len(response.body))
        )
        parts.append(response.body)
        self.transport.write(b"".join(parts))  # type: ignore[union-attr]
        self._close(stop_reading=True)


@functools.lru_cache(maxsize=256)
def soap_version_of_header(content_type: bytes | None) -> SoapVersion:
    """The SOAP version a request's raw ``Content-Type`` value says (1.1 when absent).

    Cached: clients send a handful of distinct values, and parsing one is a few microseconds
    per exchange; the bound keeps a client sending ever new values from growing the cache.
    """
    return soap_version_of(content_type.decode("latin-1") if content_type is not None else None)


def _path_of(target: bytes) -> bytes:
    """The path of a request target (origin or absolute form), without its query.

    ValueError for any other form (llhttp has checked the characters).
    """
    if target.startswith(b"/"):
        path = target
    elif target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
        rest = target.split(b"//", 1)[1]
        slash = rest.find(b"/")
        path = rest[slash:] if slash >= 0 else b"/"
    else:
        raise ValueError("not an origin-form or absolute-form target")
    return path.split(b"?", 1)[0].split(b"#", 1)[0]


@implementer(IProtocolNegotiationFactory)
class HttpServerFactory(Factory):
    """Builds ``HttpServerProtocol``s that hand their requests to ``handler()``."""

    protocol = HttpServerProtocol  # type: ignore[assignment]
    noisy = False

    def __init__(
        self,
        handler: Callable[[], IRequestHandler],
        clock: IReactorTime,
        read_timeout: Callable[[], float],
        max_body_bytes: Callable[[], int],
        idle_timeout: float,
    ) -> None:
        self.handler = handler
        self.clock = clock
        self.policy_read_timeout = read_timeout
        self.policy_max_body = max_body_bytes
        self.idle_timeout = idle_timeout
        #: Open client connections (for a graceful stop).
        self.connections: set[HttpServerProtocol] = set()
        self._all_closed: list[Deferred[None]] = []

    def connection_lost(self, connection: HttpServerProtocol) -> None:
        self.connections.discard(connection)
        if not self.connections and self._all_closed:
            waiters, self._all_closed = self._all_closed, []
            for waiter in waiters:
                waiter.callback(None)

    def close_connections(self) -> Deferred[None]:
        """Close idle connections now, busy ones after their answer; fires once all are gone.

        Each answer written before carries its bytes out: the TLS close follows them, so a
        stopping relay never cuts an answer it already gave.
        """
        done: Deferred[None] = Deferred()
        if not self.connections:
            done.callback(None)
            return done
        self._all_closed.append(done)
        for connection in list(self.connections):
            connection.close_if_idle()
        return done

    def acceptableProtocols(self) -> list[bytes]:
        """ALPN: HTTP/1.1 only (a TLS server with no answer to a client's offer fails it)."""
        return [b"http/1.1"]

    def pipeline_limit(self) -> int:
        """Bytes held from a client while its request is served before reading pauses."""
        return MAX_REQUEST_HEAD_BYTES + self.policy_max_body()
