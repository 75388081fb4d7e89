"""A lean HTTP/1.1 server for the relay's exchange path.

twisted.web's ``HTTPChannel``/``Request``/``Site`` serve any web application; the relay needs
one request at a time per connection, whole bodies in memory, and one answer written at once.
This protocol does just that, with the relay's limits built in:

- the request (head and body) must arrive within ``read_timeout`` of its first byte, and a
  connection with no request under way is closed after ``idle_timeout``;
- a head larger than ``MAX_HEAD_BYTES`` or with more than ``MAX_HEADERS`` fields is refused
  (431), a body over ``max_body_bytes`` too (413), as soon as it is known (a declared
  ``Content-Length`` over the limit is refused before the body is read, without inviting it
  with "100 Continue");
- malformed requests (request line, header syntax, conflicting lengths, unknown transfer
  codings: the request-smuggling shapes) are refused with 400;
- each early refusal is a SOAP fault, after which the connection is closed;
- requests sent before the previous answer (pipelining) wait in the buffer, and the socket
  stops being read when that buffer grows past one full request.

A complete request becomes an ``HttpRequest`` handed to the handler, which answers it once
through ``HttpServerProtocol.respond``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from email.utils import formatdate
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IProtocolNegotiationFactory, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES
from zope.interface import implementer

from roc.errors import RpnError
from roc.model import SoapVersion
from roc.reasons import Reason
from roc.routing import soap_version_of
from rpn._http import DIGITS, HEX_DIGITS, TOKEN_CHARS

#: Largest request head (request line and header fields) accepted, in bytes.
MAX_HEAD_BYTES = 16384
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

    __slots__ = ("body", "connection", "headers", "method", "path")

    def __init__(
        self,
        method: bytes,
        path: bytes,
        headers: dict[bytes, bytes],
        body: bytes,
        connection: HttpServerProtocol,
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.connection = connection


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


def _over_limit(size: int, limit: int) -> Reason:
    return Reason(
        f"body of {size} bytes or more, over the limit of {limit} bytes",
        f"corps d'au moins {size} octets, au-delà de la limite de {limit} octets",
    )


class _Refused(Exception):
    def __init__(self, error: RpnError, detail: str) -> None:
        super().__init__(detail)
        self.error = error
        self.detail = detail


# Parsing states
_HEAD, _BODY, _CHUNKED, _BUSY, _CLOSING = range(5)


class HttpServerProtocol(Protocol):
    """One client connection (under TLS): requests in, one answer each, in order."""

    factory: HttpServerFactory

    def __init__(self) -> None:
        self._buffer = b""
        self._state = _HEAD
        self._scanned = 0  # bytes of the head already searched for its end
        self._method = b""
        self._path = b""
        self._headers: dict[bytes, bytes] = {}
        self._length = 0  # remaining Content-Length, or body limit when chunked
        self._chunks: list[bytes] = []
        self._parts: list[bytes] = []  # body records received so far (Content-Length)
        self._pending = 0
        self._received = 0
        self._keep_alive = True
        self._head_only = False
        self._read_deadline: IDelayedCall | None = None
        self._idle_timer: IDelayedCall | None = None
        self._abort_call: IDelayedCall | None = None
        self._paused = False
        self._parsing = False
        self.disconnected = False
        #: Set by the handler: (FINESS, certificate expiry) of this connection's client.
        self.identity: tuple[str | None, float | None] | None = None

    # -- connection life -------------------------------------------------------------------

    def connectionMade(self) -> None:
        self.factory.connections.add(self)
        self._idle_timer = self.factory.clock.callLater(
            self.factory.idle_timeout, self._idle_timed_out
        )

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.factory.connection_lost(self)
        self.disconnected = True
        self._state = _CLOSING
        self._buffer = b""
        for call in (self._read_deadline, self._idle_timer, self._abort_call):
            if call is not None and call.active():
                call.cancel()
        self._read_deadline = self._idle_timer = self._abort_call = None

    def _idle_timed_out(self) -> None:
        self._idle_timer = None
        self.close_if_idle()

    def close_if_idle(self) -> None:
        """Close now unless a request is being received or served (stop, idle timeout)."""
        if self._state == _HEAD and not self._buffer:
            self._close()

    def _close(self, stop_reading: bool = False) -> None:
        """Close now; abort if the client does not acknowledge the TLS close in time.

        With *stop_reading* (a refused request), nothing more is read from the client: what
        it keeps sending is never received, only cut with the connection.
        """
        self._state = _CLOSING
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
        state = self._state
        if state == _BODY:
            # A body arriving in several records is joined once, when complete.
            self._parts.append(data)
            self._pending += len(data)
            if self._pending < self._length:
                return
            self._buffer = b"".join(self._parts)
            self._parts = []
        elif state == _CLOSING:
            return
        elif state == _BUSY:
            self._buffer += data
            if not self._paused and len(self._buffer) > self.factory.pipeline_limit():
                self._paused = True
                self.transport.pauseProducing()  # type: ignore[union-attr]
            return
        else:
            if self._read_deadline is None:
                self._start_request()
            self._buffer += data
        self._parse_safely()

    def _parse_safely(self) -> None:
        """Parse what is buffered; an answer given meanwhile does not parse again (no recursion)."""
        self._parsing = True
        try:
            self._parse()
        except _Refused as refused:
            self.refuse(refused.error, refused.detail)
        finally:
            self._parsing = False

    def _start_request(self) -> None:
        """First byte of a request: the read deadline starts, the idle timer stops."""
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        self._read_deadline = self.factory.clock.callLater(
            self.factory.policy_read_timeout(), self._too_slow
        )

    def _too_slow(self) -> None:
        self._read_deadline = None
        if self._state in (_HEAD, _BODY, _CHUNKED):
            self.refuse(
                RpnError.REQUEST_TIMEOUT,
                Reason(
                    "request not received within the read timeout",
                    "requête non reçue dans le délai de lecture",
                ),
            )

    def _parse(self) -> None:
        while True:
            state = self._state
            if state == _HEAD:
                if not self._parse_head():
                    return
            elif state == _BODY:
                if len(self._buffer) < self._length:
                    self._parts = [self._buffer]
                    self._pending = len(self._buffer)
                    self._buffer = b""
                    return
                body = self._buffer[: self._length]
                self._buffer = self._buffer[self._length :]
                self._dispatch(body)
            elif state == _CHUNKED:
                if not self._parse_chunks():
                    return
            else:
                return

    def _parse_head(self) -> bool:
        buffer = self._buffer
        # Tolerate empty lines before a request line (RFC 9112 section 2.2).
        if buffer[:1] in (b"\r", b"\n"):
            buffer = self._buffer = buffer.lstrip(b"\r\n")
            self._scanned = 0
            if not buffer:
                return False
        end = buffer.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0:
            if len(buffer) > MAX_HEAD_BYTES:
                raise _Refused(
                    RpnError.HEADERS_TOO_LARGE,
                    Reason("request head over the limit", "en-tête de requête au-delà de 16 Kio"),
                )
            self._scanned = len(buffer)
            return False
        if end > MAX_HEAD_BYTES:
            raise _Refused(
                RpnError.HEADERS_TOO_LARGE,
                Reason("request head over the limit", "en-tête de requête au-delà de 16 Kio"),
            )
        self._scanned = 0
        head = buffer[:end]
        self._buffer = buffer[end + 4 :]
        self._read_head(head)
        return True

    def _read_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        unterminated = head.replace(b"\r\n", b"")
        if b"\n" in unterminated or b"\r" in unterminated:
            # Lines end with CRLF only: a bare CR or LF is how requests are smuggled.
            raise _Refused(
                RpnError.HTTP_MALFORMED,
                Reason(
                    "bare CR or LF in the request head",
                    "CR ou LF isolé dans l'en-tête de la requête",
                ),
            )
        if b"\x00" in head:
            raise _Refused(
                RpnError.HTTP_MALFORMED,
                Reason("NUL in the request head", "caractère NUL dans l'en-tête de la requête"),
            )
        if len(lines) > MAX_HEADERS + 1:
            raise _Refused(
                RpnError.HEADERS_TOO_LARGE,
                Reason("too many header fields", "plus de 100 champs d'en-tête"),
            )
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            raise _Refused(
                RpnError.HTTP_MALFORMED,
                Reason(
                    "request line is not METHOD TARGET VERSION",
                    "la ligne de requête n'est pas MÉTHODE CIBLE VERSION",
                ),
            )
        method, target, version = parts
        if not method or method.translate(None, TOKEN_CHARS):
            raise _Refused(RpnError.HTTP_MALFORMED, Reason("invalid method", "méthode invalide"))
        if version == b"HTTP/1.1":
            keep_alive = True
        elif version == b"HTTP/1.0":
            keep_alive = False
        else:
            raise _Refused(
                RpnError.HTTP_MALFORMED,
                Reason("HTTP version not supported", "version HTTP non prise en charge"),
            )
        self._method = method
        self._head_only = method == b"HEAD"
        self._path = _path_of(target)
        headers: dict[bytes, bytes] = {}
        lengths: set[bytes] = set()
        codings: list[bytes] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name.translate(None, TOKEN_CHARS):
                raise _Refused(
                    RpnError.HTTP_MALFORMED,
                    Reason("invalid header field", "champ d'en-tête invalide"),
                )
            value = value.strip(b" \t")
            name = name.lower()
            if name == b"content-length":
                lengths.add(value)
            elif name == b"transfer-encoding":
                codings.extend(c.strip(b" \t").lower() for c in value.split(b","))
            if name not in headers:
                headers[name] = value
        self._headers = headers
        connection = headers.get(b"connection", b"").lower()
        if b"close" in connection:
            keep_alive = False
        elif not keep_alive and b"keep-alive" in connection:
            keep_alive = True
        self._keep_alive = keep_alive
        limit = self.factory.policy_max_body()
        if codings:
            if lengths:
                raise _Refused(
                    RpnError.HTTP_MALFORMED,
                    Reason(
                        "both Content-Length and Transfer-Encoding",
                        "Content-Length et Transfer-Encoding à la fois",
                    ),
                )
            if codings != [b"chunked"]:
                raise _Refused(
                    RpnError.HTTP_MALFORMED,
                    Reason("unsupported Transfer-Encoding", "Transfer-Encoding non pris en charge"),
                )
            self._state = _CHUNKED
            self._chunks = []
            self._received = 0
            self._length = -1  # reading a chunk-size line
            self._continue_if_expected()
            return
        if len(lengths) > 1:
            raise _Refused(
                RpnError.HTTP_MALFORMED,
                Reason(
                    "conflicting Content-Length values", "valeurs de Content-Length contradictoires"
                ),
            )
        length = 0
        if lengths:
            (declared,) = lengths
            if not declared or declared.translate(None, DIGITS) or len(declared) > 18:
                raise _Refused(
                    RpnError.HTTP_MALFORMED,
                    Reason("invalid Content-Length", "Content-Length invalide"),
                )
            length = int(declared)
        if length > limit:
            raise _Refused(RpnError.BODY_TOO_LARGE, _over_limit(length, limit))
        self._length = length
        self._state = _BODY
        if length > len(self._buffer):
            self._continue_if_expected()

    def _continue_if_expected(self) -> None:
        expect = self._headers.get(b"expect")
        if expect is not None and expect.lower() == b"100-continue" and not self._buffer:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]

    def _parse_chunks(self) -> bool:
        """Decode what the buffer holds of a chunked body; True once the body is complete."""
        limit = self.factory.policy_max_body()
        while True:
            buffer = self._buffer
            if self._length == -1:  # chunk-size line
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > 1024:
                        raise _Refused(
                            RpnError.HTTP_MALFORMED,
                            Reason(
                                "chunk size line too long", "ligne de taille de segment trop longue"
                            ),
                        )
                    return False
                size_field = buffer[:end].split(b";", 1)[0].strip(b" \t")
                if not size_field or len(size_field) > 16 or size_field.translate(None, HEX_DIGITS):
                    raise _Refused(
                        RpnError.HTTP_MALFORMED,
                        Reason("invalid chunk size", "taille de segment invalide"),
                    )
                size = int(size_field, 16)
                self._buffer = buffer[end + 2 :]
                if size == 0:
                    self._length = -2  # trailers
                    continue
                if self._received + size > limit:
                    raise _Refused(
                        RpnError.BODY_TOO_LARGE, _over_limit(self._received + size, limit)
                    )
                self._length = size
            elif self._length == -2:  # trailer fields, up to an empty line
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_HEAD_BYTES:
                        raise _Refused(
                            RpnError.HEADERS_TOO_LARGE,
                            Reason(
                                "trailer fields over the limit",
                                "champs de fin (trailers) au-delà de 16 Kio",
                            ),
                        )
                    return False
                self._buffer = buffer[end + 2 :]
                if end == 0:
                    body = b"".join(self._chunks)
                    self._chunks = []
                    self._dispatch(body)
                    return True
            else:  # chunk data and its CRLF
                size = self._length
                if len(buffer) < size + 2:
                    return False
                if buffer[size : size + 2] != b"\r\n":
                    raise _Refused(
                        RpnError.HTTP_MALFORMED,
                        Reason("chunk not followed by CRLF", "segment non suivi de CRLF"),
                    )
                self._chunks.append(buffer[:size])
                self._received += size
                self._buffer = buffer[size + 2 :]
                self._length = -1

    def _dispatch(self, body: bytes) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None
        self._state = _BUSY
        request = HttpRequest(self._method, self._path, self._headers, body, self)
        self.factory.handler().handle(request)

    # -- output ----------------------------------------------------------------------------

    def respond(
        self,
        status: int,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        close: bool = False,
        date: bool = True,
    ) -> None:
        """Answer the request under way: one write; then the next request, or the close."""
        if self._state != _BUSY or self.disconnected:
            return
        keep_alive = self._keep_alive and not close
        parts = [status_line(status)]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if date:
            parts += (b"Date: ", _DATE.value(time.time()), b"\r\n")
        parts += (b"Content-Length: %d\r\n" % len(body),)
        if not keep_alive:
            parts.append(b"Connection: close\r\n")
        parts.append(b"\r\n")
        if not self._head_only:
            parts.append(body)
        self.transport.write(b"".join(parts))  # type: ignore[union-attr]
        if not keep_alive:
            self._close()
            return
        self._state = _HEAD
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()  # type: ignore[union-attr]
        if self._buffer:
            self._start_request()
            if not self._parsing:
                self._parse_safely()
        else:
            self._idle_timer = self.factory.clock.callLater(
                self.factory.idle_timeout, self._idle_timed_out
            )

    def refuse(self, error: RpnError, detail: str) -> None:
        """Answer *error* at once and close, whatever the client sends meanwhile."""
        if self._state == _CLOSING or self.disconnected:
            return
        if self._read_deadline is not None and self._read_deadline.active():
            self._read_deadline.cancel()
        self._read_deadline = None
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
    """The path of a request target (origin or absolute form), without its query."""
    if target.startswith(b"/"):
        path = target
    elif target[:7].lower() == b"http://" or target[:8].lower() == b"https://":
        rest = target.split(b"//", 1)[1]
        slash = rest.find(b"/")
        path = rest[slash:] if slash >= 0 else b"/"
    else:
        raise _Refused(
            RpnError.HTTP_MALFORMED, Reason("invalid request target", "cible de requête invalide")
        )
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
        """Bytes buffered from a client while its request is served before reading pauses."""
        return MAX_HEAD_BYTES + self.policy_max_body()
