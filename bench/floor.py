"""The floor: the least a TLS-terminating relay on Twisted and pyOpenSSL spends per exchange.

``bench/run.py`` starts this next to the relay (peer ``floor``) to tell what the relay's own
work costs from what the platform costs. It terminates mutual TLS with the relay's own TLS
settings (``piano.tls``: same certificates, ciphers, TLS versions, TLS transport without write
aggregation), takes an idle upstream connection from a pool (or opens one, mutual TLS towards
the back-end, as the relay does), and copies bytes both ways. No HTTP parsing, no routing, no
admission, no breaker, no metrics, no log; only a client's ``Connection: close`` is dropped so
that upstream connections stay pooled. No relay can do less per exchange on this stack: its
throughput bounds any Twisted relay's on the machine, and the relay's distance to it is the
cost of everything the relay does for an exchange.

It relies on the load generator writing a request only after the previous answer is read, and
closing only once its answer is read: an upstream connection goes back to the pool when its
client connection closes.

    python bench/floor.py --listen 9443 --backend 9444 --pki DIR
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Any

from twisted.internet import epollreactor

epollreactor.install()

from twisted.internet import reactor  # noqa: E402
from twisted.internet.interfaces import IProtocolNegotiationFactory  # noqa: E402
from twisted.internet.protocol import ClientFactory, Factory, Protocol  # noqa: E402
from twisted.python import log  # noqa: E402
from zope.interface import implementer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from piano.tls import (  # noqa: E402
    SwappableServerContext,
    TLSFiles,
    WholeMessageTLSFactory,
    client_options,
    server_options,
)


class Upstream(Protocol):
    """A connection to the back-end, lent to one client connection at a time."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.client: Client | None = None

    def connectionMade(self) -> None:
        self.pool.connected(self)

    def dataReceived(self, data: bytes) -> None:
        if self.client is not None:
            self.client.transport.write(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.pool.lost(self)
        if self.client is not None:
            self.client.upstream = None
            self.client.transport.loseConnection()
            self.client = None


class Pool(ClientFactory):
    noisy = False

    def __init__(self, port: int, files: TLSFiles) -> None:
        self.port = port
        self.idle: list[Upstream] = []
        self.waiting: list[Client] = []
        self.tls = WholeMessageTLSFactory(client_options(files, "localhost"), True, self)

    def buildProtocol(self, addr: Any) -> Upstream:
        return Upstream(self)

    def lend(self, client: Client) -> None:
        if self.idle:
            client.attach(self.idle.pop())
        else:
            self.waiting.append(client)
            reactor.connectTCP("127.0.0.1", self.port, self.tls)

    def give_back(self, upstream: Upstream) -> None:
        upstream.client = None
        self.idle.append(upstream)

    def connected(self, upstream: Upstream) -> None:
        if self.waiting:
            self.waiting.pop(0).attach(upstream)
        else:
            self.idle.append(upstream)

    def lost(self, upstream: Upstream) -> None:
        if upstream in self.idle:
            self.idle.remove(upstream)

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        if self.waiting:
            self.waiting.pop(0).transport.loseConnection()


class Client(Protocol):
    """One client connection: bytes to its upstream connection and back."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.upstream: Upstream | None = None
        self.early: list[bytes] = []
        self.closed = False

    def connectionMade(self) -> None:
        self.pool.lend(self)

    def attach(self, upstream: Upstream) -> None:
        if self.closed:
            self.pool.give_back(upstream)
            return
        self.upstream = upstream
        upstream.client = self
        if self.early:
            upstream.transport.write(b"".join(self.early))
            self.early = []

    def dataReceived(self, data: bytes) -> None:
        # The one HTTP-aware line: a client's "Connection: close" is not passed on (as the
        # relay, HAProxy and nginx do), so upstream connections stay pooled in both modes.
        data = data.replace(b"\r\nConnection: close\r\n", b"\r\n")
        if self.upstream is not None:
            self.upstream.transport.write(data)
        else:
            self.early.append(data)

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        if self.upstream is not None:
            self.pool.give_back(self.upstream)
            self.upstream = None


@implementer(IProtocolNegotiationFactory)
class Clients(Factory):
    noisy = False

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    def buildProtocol(self, addr: Any) -> Client:
        return Client(self.pool)

    def acceptableProtocols(self) -> list[bytes]:
        """ALPN as the relay: HTTP/1.1 only."""
        return [b"http/1.1"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--backend", type=int, required=True)
    parser.add_argument("--pki", type=Path, required=True)
    args = parser.parse_args(argv)
    log.startLogging(sys.stderr)  # errors only: the factories are not noisy
    ca = (args.pki / "ca.pem",)
    server = TLSFiles(args.pki / "rpn-server.pem", args.pki / "rpn-server.key", ca)
    client = TLSFiles(args.pki / "rpn-client.pem", args.pki / "rpn-client.key", ca)
    pool = Pool(args.backend, client)
    context = SwappableServerContext(server_options(server))
    factory = WholeMessageTLSFactory(context, False, Clients(pool))
    reactor.listenTCP(args.listen, factory, backlog=4096, interface="127.0.0.1")
    gc.collect()
    gc.freeze()
    reactor.run()


if __name__ == "__main__":
    main()
