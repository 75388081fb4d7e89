"""The services' shared plain-HTTP pieces: a request body is bounded before it is read."""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource
from twisted.web.server import Request

from piano.web import BoundedRequest, QuietSite


class Echo(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.called = 0

    def render_POST(self, request: Request) -> bytes:
        self.called += 1
        assert request.content is not None
        return b"got %d" % len(request.content.read())


def exchange(data: bytes) -> tuple[Echo, StringTransport]:
    resource = Echo()
    site = QuietSite(resource)  # type: ignore[no-untyped-call]
    site.requestFactory = BoundedRequest
    protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(data)
    return resource, transport


def post(body: bytes, length: int | None = None, chunked: bool = False) -> bytes:
    head = b"POST /x HTTP/1.1\r\nHost: t\r\n"
    if chunked:
        return head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    return head + b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body


def test_a_small_body_reaches_the_resource() -> None:
    resource, transport = exchange(post(b"finess=990000010&state=production"))
    assert resource.called == 1
    assert transport.value().startswith(b"HTTP/1.1 200") and b"got 33" in transport.value()


def test_a_body_over_the_limit_is_413_and_never_reaches_the_resource() -> None:
    body = b"x" * (BoundedRequest.max_body_bytes + 1)
    resource, transport = exchange(post(body))
    assert resource.called == 0
    assert transport.value().startswith(b"HTTP/1.1 413 ")
    assert transport.disconnecting


def test_a_chunked_body_of_unknown_size_is_413() -> None:
    resource, transport = exchange(post(b"finess=1", chunked=True))
    assert resource.called == 0 and transport.value().startswith(b"HTTP/1.1 413 ")


def test_a_body_of_exactly_the_limit_is_accepted() -> None:
    resource, transport = exchange(post(b"x" * BoundedRequest.max_body_bytes))
    assert resource.called == 1 and transport.value().startswith(b"HTTP/1.1 200")
