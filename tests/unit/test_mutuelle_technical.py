"""Technical faults as cases: what goes wrong on the wire, played by the HTTP layer in memory."""

from __future__ import annotations

import pytest
from lxml import etree
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from mutuelle import testing
from mutuelle.catalogue import Case
from mutuelle.examples import case_request
from mutuelle.soap import request_headers
from mutuelle.technical import TechnicalFault
from piano.testing import StrictMemoryReactorClock
from roc.model import Service, SoapVersion

DATA, CATALOGUE = testing.shipped()
AMC = "990000101"


def fault_case(fault: TechnicalFault) -> Case:
    found = CATALOGUE.get(AMC, f"IDB_KO_MCO_FAUTE_{fault.value}")
    assert found is not None
    return found


class Connection:
    """One HTTP/1.1 exchange with the simulator's site over an in-memory transport."""

    def __init__(self, clock: StrictMemoryReactorClock, document: bytes, sender: str = "") -> None:
        self.site = testing.site(testing.simulator(clock=clock), clock)
        self.channel = self.site.buildProtocol(None)
        assert self.channel is not None
        self.transport = StringTransport()
        self.transport.abortConnection = self._abort  # type: ignore[method-assign]
        self.aborted = False
        self.channel.makeConnection(self.transport)
        headers = request_headers(Service.IDB, SoapVersion.SOAP11)
        head = [
            "POST /roc/IDB HTTP/1.1",
            "Host: mutuelle.test",
            f"Content-Length: {len(document)}",
        ]
        head += [f"{k}: {v}" for k, v in headers.items()]
        if sender:
            head.append(f"X-ROC-Emetteur-Finess: {sender}")
        self.channel.dataReceived(("\r\n".join(head) + "\r\n\r\n").encode() + document)

    def _abort(self) -> None:
        self.aborted = True

    @property
    def received(self) -> bytes:
        return self.transport.value()


def open_connection(fault: TechnicalFault, clock: StrictMemoryReactorClock) -> Connection:
    return Connection(clock, case_request(fault_case(fault), "t-fault"))


def test_late_answer_comes_after_the_configured_delay() -> None:
    clock = StrictMemoryReactorClock()
    connection = open_connection(TechnicalFault.LATE, clock)
    assert connection.received == b""
    clock.advance(2.9)
    assert connection.received == b""
    clock.advance(0.2)
    assert connection.received.startswith(b"HTTP/1.1 200")
    assert b"<idb:CodeRetour>00</idb:CodeRetour>" in connection.received


def test_timeout_closes_the_connection_without_an_answer() -> None:
    clock = StrictMemoryReactorClock()
    connection = open_connection(TechnicalFault.TIMEOUT, clock)
    clock.advance(64)
    assert connection.received == b"" and not connection.transport.disconnecting
    clock.advance(2)
    assert connection.received == b"" and connection.transport.disconnecting


def test_a_client_leaving_before_a_late_answer_cancels_it() -> None:
    clock = StrictMemoryReactorClock()
    connection = open_connection(TechnicalFault.LATE, clock)
    assert clock.getDelayedCalls()
    connection.channel.connectionLost(Failure(ConnectionDone()))
    assert not [c for c in clock.getDelayedCalls() if c.active()]


def test_reset_sends_part_of_the_answer_then_aborts() -> None:
    clock = StrictMemoryReactorClock()
    connection = open_connection(TechnicalFault.RESET, clock)
    head, _, body = connection.received.partition(b"\r\n\r\n")
    length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                 .split(b":")[1])  # fmt: skip
    assert head.startswith(b"HTTP/1.1 200") and 0 < len(body) < length
    clock.advance(0.1)
    assert connection.aborted


@pytest.mark.parametrize(
    ("fault", "status", "marker"),
    [
        (TechnicalFault.HTTP_500, 500, b"Internal Server Error"),
        (TechnicalFault.HTTP_503, 503, b"Service Unavailable"),
        (TechnicalFault.SOAP_FAULT, 500, b"MUT-500-SIMULE"),
        (TechnicalFault.WRONG_NAMESPACE, 200, b"urn:piano:roc:autre:v0"),
        (TechnicalFault.TRUNCATED, 200, b"<soap:Envelope"),
    ],
)
def test_immediate_faults(fault: TechnicalFault, status: int, marker: bytes) -> None:
    reply = testing.post(
        testing.site(testing.simulator()),
        "/roc/IDB",
        case_request(fault_case(fault), "t-fault"),
        request_headers(Service.IDB, SoapVersion.SOAP11),
    )
    assert reply.status == status
    assert marker in reply.body
    if fault is TechnicalFault.HTTP_503:
        assert reply.headers["retry-after"] == "30"
    if fault is TechnicalFault.TRUNCATED:
        with pytest.raises(etree.XMLSyntaxError):
            etree.fromstring(reply.body)
    if fault is TechnicalFault.WRONG_NAMESPACE:
        assert b"urn:piano:roc:idb:v1" not in reply.body


def test_the_relay_header_names_the_sandbox_without_a_certificate() -> None:
    clock = StrictMemoryReactorClock()
    document = case_request(fault_case(TechnicalFault.HTTP_500), "t-1")
    connection = Connection(clock, document, sender="990000028")
    assert connection.received.startswith(b"HTTP/1.1 500")
    sandboxes = connection.site.resource.simulator.sandboxes  # type: ignore[attr-defined]
    assert [s.finess for s in sandboxes] == ["990000028"]
    (entry,) = sandboxes.find("990000028").journal
    assert entry.technical_fault == "HTTP_500"
    Connection(clock, document, sender="not-a-finess")


def test_a_path_prefix_names_the_sandbox_when_nothing_else_does() -> None:
    simulator = testing.simulator()
    site = testing.site(simulator)
    headers = request_headers(Service.IDB, SoapVersion.SOAP11)
    idb = CATALOGUE.get(AMC, "IDB_OK_MCO_DROITS_OUVERTS")
    assert idb is not None
    document = case_request(idb, "t-prefix")
    assert testing.post(site, "/bac/990000036/roc/IDB", document, headers).status == 200
    assert testing.post(site, "/bac/nope/roc/IDB", document, headers).status == 200
    assert testing.post(site, "/bac/990000036/roc", document, headers).status == 404
    assert [s.finess for s in simulator.sandboxes] == ["990000036", "anonyme"]
