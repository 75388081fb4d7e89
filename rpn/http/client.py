"""The relay's one HTTP/1.1 client, for AMCs and the annuaire: one request at a time per
persistent connection.

twisted.web's ``Agent`` cost about a third of the relay's CPU per exchange (URI parsing, a
Deferred per step, a producer per body, ``Headers`` objects). The relay only ever POSTs a body
already in memory and reads an answer of bounded size, so this client does just that:
``H1Connection`` writes a request in one write and feeds its answer to
``rpn.http.answer.AnswerParser`` (sans I/O), ``ConnectionPool`` keeps idle connections per
address, and ``HttpClient`` sends a request (``request``, to a receiver of plain callbacks, or
``post``, for a Deferred), retrying once only when the request provably never left.
Deadlines are the caller's (``rpn.upstream``, ``rpn.annuaire_sources``): cancelling drops the
connection. Failures are ``rpn.http.common``'s types.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast
from typing import Protocol as TypingProtocol
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.endpoints import HostnameEndpoint, _WrapperEndpoint
from twisted.internet.interfaces import (
    IDelayedCall,
    IOpenSSLClientConnectionCreator,
    IReactorTime,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from piano.reactors import IServiceReactor
from piano.tls import TLSFiles, WholeMessageTLSFactory, client_options
from rpn.http.answer import AnswerParser, NotAnHttpAnswer
from rpn.http.common import (
    TOKEN_CHARS,
    AnswerCut,
    BadUrl,
    BodyTooLarge,
    NoAnswer,
    RequestNotSent,
)
from rpn.interfaces import IHttpClient

__all__ = [
    "Answer",
    "AnswerReceiver",
    "Call",
    "ClientTLSPolicy",
    "ConnectionPool",
    "H1Connection",
    "HttpClient",
    "Route",
    "Target",
]

#: Seconds ``ConnectionPool.close`` waits for an AMC to finish closing before cutting.
CLOSE_GRACE = 2.0
#: Seconds before the end of an AMC's announced keep-alive timeout (at most half of it) after
#: which its idle connection is no longer reused.
KEEP_ALIVE_MARGIN = 1.0
# -- connections ---------------------------------------------------------------------------------


class AnswerReceiver(TypingProtocol):
    """Who waits for the answer to a request sent on an ``H1Connection``; told exactly once."""

    def answer_received(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        """The whole answer (the connection is already back in its pool, or closing)."""

    def answer_failed(self, reason: Failure) -> None:
        """The answer will never come whole: cut, malformed, too large, or the TLS failed."""


def _closing(transport: Any) -> bool:
    """Whether *transport* will lose any byte written now.

    TLS answers the AMC's close_notify by closing the TCP connection under it before telling
    the application, hence the look one level down.
    """
    if transport.disconnecting:
        return True
    lower = getattr(transport, "transport", None)
    return lower is not None and bool(getattr(lower, "disconnecting", False))


class H1Connection(Protocol):
    """One persistent connection to an AMC: a request, its answer, then the next request."""

    def __init__(self, route: Route) -> None:
        self.route = route
        #: When the connection last went back to its pool (the pool's clock).
        self.idle_since = 0.0
        #: When it may no longer be reused: the AMC said how long it keeps it idle.
        self.reuse_before = math.inf
        self.lost = False
        self._dropped = False
        self._receiver: AnswerReceiver | None = None
        self._parser: AnswerParser | None = None
        self._on_lost: list[Deferred[None]] = []

    def send(self, data: bytes, receiver: AnswerReceiver, max_body: int) -> bool:
        """Write a whole request in one write; False, with nothing written, if the connection
        is closed or closing (so the request provably never left)."""
        transport = self.transport
        if self.lost or self._dropped or transport is None or _closing(transport):
            return False
        self._receiver = receiver
        self._parser = AnswerParser(max_body)
        transport.write(data)
        return True

    def abandon(self) -> None:
        """The caller gave up on the answer (deadline, cancelled): drop the connection."""
        self._receiver = self._parser = None
        self._abort()

    def close(self) -> Deferred[None]:
        """Close gracefully (TLS close_notify first); the Deferred fires once it is gone."""
        if self.lost:
            return succeed(None)
        done: Deferred[None] = Deferred()
        self._on_lost.append(done)
        self._lose()
        return done

    def _abort(self, force: bool = False) -> None:
        transport = self.transport
        if transport is not None and not self.lost and (force or not self._dropped):
            self._dropped = True
            cast(Any, transport).abortConnection()

    def _lose(self) -> None:
        """Close gracefully (an idle connection no longer wanted, or not reusable)."""
        transport = self.transport
        if transport is not None and not (self.lost or self._dropped):
            self._dropped = True
            transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:
            # Nothing was asked: bytes now could only be mistaken for the next answer.
            self._abort()
            return
        try:
            complete = parser.feed(data)
        except BodyTooLarge:
            self._fail(Failure())
        except NotAnHttpAnswer:
            self._fail(Failure(AnswerCut(Failure())))
        else:
            if complete:
                self._complete(parser)

    def _complete(self, parser: AnswerParser) -> None:
        receiver = self._receiver
        self._receiver = self._parser = None
        transport = self.transport
        if parser.leftover:
            self._abort()  # the AMC sent more than one answer: nothing it says can be trusted
        elif parser.reusable and transport is not None and not _closing(transport):
            self.route.pool._idle(self, parser.keep_alive_timeout)
        else:
            self._lose()
        assert receiver is not None
        receiver.answer_received(parser.status, parser.headers, parser.body)

    def _fail(self, reason: Failure) -> None:
        receiver = self._receiver
        self._receiver = self._parser = None
        self._abort()
        assert receiver is not None
        receiver.answer_failed(reason)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = True
        receiver, parser = self._receiver, self._parser
        self._receiver = self._parser = None
        if receiver is None or parser is None:
            self.route.pool._forget(self)
        elif parser.end():
            receiver.answer_received(parser.status, parser.headers, parser.body)
        elif parser.received_any:
            receiver.answer_failed(Failure(AnswerCut(reason)))
        else:
            receiver.answer_failed(Failure(NoAnswer(reason)))
        waiting, self._on_lost = self._on_lost, []
        for done in waiting:
            done.callback(None)


class _ConnectionFactory(Factory):
    noisy = False

    def __init__(self, route: Route) -> None:
        self._route = route

    def buildProtocol(self, addr: Any) -> H1Connection:
        return H1Connection(self._route)


class Route:
    """One AMC address (scheme, host, port): its endpoint and its idle connections."""

    __slots__ = ("_endpoint", "factory", "host", "idle", "pool", "port", "scheme")

    def __init__(self, pool: ConnectionPool, scheme: bytes, host: bytes, port: int) -> None:
        self.pool = pool
        self.scheme = scheme
        self.host = host
        self.port = port
        #: Idle connections, oldest first.
        self.idle: list[H1Connection] = []
        self.factory = _ConnectionFactory(self)
        self._endpoint: IStreamClientEndpoint | None = None

    def endpoint(self) -> IStreamClientEndpoint:
        """Built once per configuration (the TLS client context once per host)."""
        if self._endpoint is None:
            pool = self.pool
            endpoint: IStreamClientEndpoint = HostnameEndpoint(
                pool.reactor, self.host, self.port, timeout=pool.connect_timeout
            )
            if self.scheme == b"https":
                creator = pool.tls.creatorForNetloc(self.host, self.port)
                endpoint = _WrapperEndpoint(
                    endpoint,
                    lambda factory: WholeMessageTLSFactory(
                        creator, True, factory, clock=pool.reactor
                    ),
                )
            self._endpoint = endpoint
        return self._endpoint


class Target:
    """A URL ready to send to: its route and the start of every request's head."""

    __slots__ = ("head", "route")

    def __init__(self, route: Route, head: bytes) -> None:
        self.route = route
        self.head = head

    def request(self, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> bytes:
        """A whole POST request: head (Host, the given headers, Content-Length) and body.

        The caller's headers must not carry Host, Content-Length or hop-by-hop headers; a CR or
        LF in one is replaced by a space, so no value can start a header line of its own.
        """
        parts = [self.head]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"Content-Length: %d\r\n\r\n" % len(body))
        head = b"".join(parts)
        lines = len(headers) + 4
        if head.count(b"\n") != lines or head.count(b"\r") != lines:
            return self._sanitized(headers, body)
        return head + body

    def _sanitized(self, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> bytes:
        clean = []
        for name, value in headers:
            if name.translate(None, TOKEN_CHARS) or not name:
                raise ValueError(f"invalid header name {name!r}")
            clean.append((name, value.replace(b"\r", b" ").replace(b"\n", b" ")))
        return self.request(clean, body)


def _parse_url(url: str) -> tuple[bytes, bytes, int, bytes]:
    """(scheme, host, port, request target) of an http(s) URL; ValueError if it is not one."""
    raw = url.encode("ascii")
    if not raw or raw.translate(None, bytes(range(0x21, 0x7F))):
        raise BadUrl(f"invalid URL {url!r}")
    parts = urlsplit(raw)
    scheme = parts.scheme
    if scheme not in (b"http", b"https"):
        raise BadUrl(f"unsupported scheme {scheme!r}")
    default = 443 if scheme == b"https" else 80
    netloc = parts.netloc.rpartition(b"@")[2]
    if netloc.startswith(b"["):
        host, _, rest = netloc[1:].partition(b"]")
        port_text = rest[1:] if rest.startswith(b":") else b""
    else:
        host, _, port_text = netloc.partition(b":")
    port = int(port_text) if port_text else default
    if not host or not 0 < port < 65536 or (port_text and not port_text.isdigit()):
        raise BadUrl(f"invalid URL {url!r}")
    target = parts.path or b"/"
    if parts.query:
        target += b"?" + parts.query
    return scheme, host, port, target


class ConnectionPool:
    """Persistent connections to one AMC's addresses, idle ones kept for reuse.

    At most *max_idle* idle connections per address; one idle longer than *idle_timeout* is
    never reused, and one timer per pool (not per exchange) closes them.
    """

    def __init__(
        self,
        reactor: IServiceReactor,
        tls: IPolicyForHTTPS,
        connect_timeout: float,
        max_idle: int,
        idle_timeout: float,
    ) -> None:
        self.reactor = reactor
        self._clock: IReactorTime = reactor
        self.tls = tls
        self.connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._routes: dict[tuple[bytes, bytes, int], Route] = {}
        self._targets: dict[str, Target] = {}
        self._sweep: IDelayedCall | None = None
        self._closed = False

    def reconfigure(
        self, tls: IPolicyForHTTPS, connect_timeout: float, max_idle: int, idle_timeout: float
    ) -> None:
        """New connections use the new settings; idle ones stay (until their idle timeout)."""
        self.tls = tls
        self.connect_timeout = connect_timeout
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        for route in self._routes.values():
            route._endpoint = None

    def target(self, url: str) -> Target:
        """The parsed *url* (cached); ``BadUrl`` (a ValueError) if it cannot be used."""
        target = self._targets.get(url)
        if target is None:
            scheme, host, port, path = _parse_url(url)
            route = self._routes.get((scheme, host, port))
            if route is None:
                route = self._routes[(scheme, host, port)] = Route(self, scheme, host, port)
            host_value = b"[" + host + b"]" if b":" in host else host
            if port != (443 if scheme == b"https" else 80):
                host_value += b":%d" % port
            target = Target(route, b"POST " + path + b" HTTP/1.1\r\nHost: " + host_value + b"\r\n")
            if len(self._targets) >= 256:
                self._targets.clear()
            self._targets[url] = target
        return target

    def take(self, route: Route) -> H1Connection | None:
        """The most recently used idle connection to *route*, if one is fresh enough."""
        idle = route.idle
        if not idle:
            return None
        now = self._clock.seconds()
        while idle:
            connection = idle.pop()
            if now - connection.idle_since >= self._idle_timeout:
                # The newest is too old, so are the others.
                idle.append(connection)
                expired = idle[:]
                idle.clear()
                for old in expired:
                    old._lose()
                return None
            if now < connection.reuse_before:
                return connection
            connection._lose()  # the AMC is about to close it: never write on it
        return None

    def connect(self, route: Route) -> Deferred[H1Connection]:
        """A new connection to *route* (TCP, then TLS for https)."""
        connecting = route.endpoint().connect(route.factory)
        return cast("Deferred[H1Connection]", connecting)

    @property
    def idle_count(self) -> int:
        return sum(len(route.idle) for route in self._routes.values())

    def close(self) -> Deferred[None]:
        """Close every idle connection, and any released from now on; fires once they are gone.

        Closed gracefully, as an AMC expects; one that has not gone after ``CLOSE_GRACE``
        seconds is cut, so a stop never hangs on an AMC that does not finish the TLS close.
        """
        self._closed = True
        if self._sweep is not None and self._sweep.active():
            self._sweep.cancel()
        self._sweep = None
        connections = [connection for route in self._routes.values() for connection in route.idle]
        for route in self._routes.values():
            route.idle = []
        closed = gatherResults([connection.close() for connection in connections])
        done: Deferred[None] = closed.addCallback(lambda _: None)
        if done.called:
            return done

        def cut() -> None:
            for connection in connections:
                connection._abort(force=True)

        cutting = self._clock.callLater(CLOSE_GRACE, cut)

        def stop_cutting(result: None) -> None:
            if cutting.active():
                cutting.cancel()

        done.addCallback(stop_cutting)
        return done

    def _idle(self, connection: H1Connection, amc_timeout: float | None = None) -> None:
        """Keep *connection* for reuse; *amc_timeout*: how long the AMC said it keeps it.

        A connection the AMC announced it would close after *amc_timeout* idle seconds is not
        reused within ``KEEP_ALIVE_MARGIN`` of that moment: a request written as the AMC
        closes may have reached it or not, which nobody can tell (the idle-close race).
        """
        idle = connection.route.idle
        reuse_for = math.inf
        if amc_timeout is not None:
            reuse_for = amc_timeout - min(KEEP_ALIVE_MARGIN, amc_timeout / 2)
        if self._closed or len(idle) >= self._max_idle or reuse_for <= 0:
            connection._lose()
            return
        now = self._clock.seconds()
        connection.idle_since = now
        connection.reuse_before = now + reuse_for
        idle.append(connection)
        if self._sweep is None:
            self._sweep = self._clock.callLater(self._idle_timeout, self._close_expired)

    def _forget(self, connection: H1Connection) -> None:
        """A connection closed while idle leaves the pool at once."""
        try:
            connection.route.idle.remove(connection)
        except ValueError:
            pass

    def _close_expired(self) -> None:
        self._sweep = None
        now = self._clock.seconds()
        horizon = now - self._idle_timeout + 1e-9
        oldest: float | None = None
        for route in self._routes.values():
            idle = route.idle
            count = 0
            while count < len(idle) and idle[count].idle_since <= horizon:
                count += 1
            expired = idle[:count]
            del idle[:count]
            for connection in expired:
                connection._lose()
            if idle and (oldest is None or idle[0].idle_since < oldest):
                oldest = idle[0].idle_since
        if oldest is not None:
            self._sweep = self._clock.callLater(
                max(0.0, oldest + self._idle_timeout - now), self._close_expired
            )


# -- TLS towards servers -----------------------------------------------------------------------


@implementer(IPolicyForHTTPS)
class ClientTLSPolicy:
    """Mutual-TLS client options per server host, built once and reused for every connection."""

    def __init__(self, files: TLSFiles) -> None:
        self._files = files
        self._by_host: dict[bytes, IOpenSSLClientConnectionCreator] = {}

    def creatorForNetloc(self, hostname: bytes, port: int) -> IOpenSSLClientConnectionCreator:
        creator = self._by_host.get(hostname)
        if creator is None:
            creator = client_options(self._files, hostname.decode("ascii"))
            self._by_host[hostname] = creator
        return creator


# -- sending requests --------------------------------------------------------------------------


class Answer:
    """A server's whole answer: status, end-to-end headers as received, body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


class Call:
    """One request on its way: on a pooled or new connection, to an ``AnswerReceiver``.

    The receiver is told exactly once: the answer, or why there is none. ``written`` says
    whether a byte of the request may have reached the server. ``cancel`` drops the
    connection (or the attempt to open one) and tells the receiver nothing more.
    """

    __slots__ = (
        "_client",
        "_connecting",
        "_connection",
        "_data",
        "_max_body",
        "_receiver",
        "_retried",
        "_route",
        "done",
        "written",
    )

    def __init__(
        self,
        client: HttpClient,
        target: Target,
        data: bytes,
        max_body: int,
        receiver: AnswerReceiver,
    ) -> None:
        self._client = client
        self._route = target.route
        self._data = data
        self._max_body = max_body
        self._receiver = receiver
        self._connecting: Deferred[H1Connection] | None = None
        self._connection: H1Connection | None = None
        self._retried = False
        self.done = False
        self.written = False

    def _attempt(self) -> None:
        pool = self._client.pool
        connection = pool.take(self._route)
        if connection is not None:
            self._send(connection)
            return
        connecting = self._connecting = pool.connect(self._route)
        connecting.addCallbacks(self._connected, self._connect_failed)

    def _connected(self, connection: H1Connection) -> None:
        self._connecting = None
        if self.done:  # cancelled meanwhile: the new connection is not needed
            connection._lose()
            return
        self._send(connection)

    def _connect_failed(self, failure: Failure) -> None:
        self._connecting = None
        if not self.done:
            self._finish()
            self._receiver.answer_failed(failure)

    def _send(self, connection: H1Connection) -> None:
        if connection.send(self._data, self, self._max_body):
            self._connection = connection
            self.written = True
            self._client.written_total += 1
            return
        if not self._retried:
            # The connection was found closing before any byte left: the server provably
            # never saw this request, so one more attempt is safe.
            self._retried = True
            self._client.log.debug("pooled connection closed, request not sent; retrying once")
            self._attempt()
            return
        self._finish()
        self._receiver.answer_failed(Failure(RequestNotSent()))

    # AnswerReceiver (the connection tells this call, which tells its receiver)

    def answer_received(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self._connection = None
        if not self.done:
            self._finish()
            self._receiver.answer_received(status, headers, body)

    def answer_failed(self, reason: Failure) -> None:
        self._connection = None
        if not self.done:
            self._finish()
            self._receiver.answer_failed(reason)

    def _finish(self) -> None:
        self.done = True

    def cancel(self) -> None:
        """Give up: drop the connection or the attempt; the receiver is told nothing more."""
        if self.done:
            return
        self.done = True
        connecting, self._connecting = self._connecting, None
        if connecting is not None:
            connecting.cancel()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.abandon()


class _DeferredReceiver:
    """An ``AnswerReceiver`` firing a Deferred (``HttpClient.post``)."""

    __slots__ = ("result",)

    def __init__(self, result: Deferred[Answer]) -> None:
        self.result = result

    def answer_received(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.result.callback(Answer(status, headers, body))

    def answer_failed(self, reason: Failure) -> None:
        self.result.errback(reason)


@implementer(IHttpClient)
class HttpClient:
    """Requests to one set of servers (an AMC, the annuaire) over one ``ConnectionPool``."""

    log = Logger()

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool
        #: Requests written (each may have reached its server; retries of unsent ones once).
        self.written_total = 0

    def request(
        self,
        url: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        max_body: int,
        receiver: AnswerReceiver,
    ) -> Call:
        """POST *body* to *url*; *receiver* is told the answer or the failure, once.

        *headers* must not include Host, Content-Length or hop-by-hop headers. A URL the
        client cannot use fails at once with ``BadUrl``.
        """
        target = self.pool.target(url)  # BadUrl: raised to the caller, nothing sent
        call = Call(self, target, target.request(headers, body), max_body, receiver)
        call._attempt()
        return call

    def post(
        self, url: str, headers: Sequence[tuple[bytes, bytes]], body: bytes, max_body: int
    ) -> Deferred[Answer]:
        """``request``, for a Deferred; cancelling it cancels the call."""
        calls: list[Call] = []

        def cancel(_: Deferred[Answer]) -> None:
            if calls:
                calls[0].cancel()

        result: Deferred[Answer] = Deferred(cancel)
        try:
            calls.append(self.request(url, headers, body, max_body, _DeferredReceiver(result)))
        except BadUrl:
            result.errback(Failure())
        return result

    def close(self) -> Deferred[None]:
        """Close the idle connections (requests in flight keep theirs)."""
        return self.pool.close()
