"""Hostile clients: each is refused with a precise fault or a TLS alert, and nobody else notices.

Refusals already proven in test_relay.py (body over the limit by Content-Length, DTD, missing or
contradictory routing block, unregistered establishment, FINESS different from the sender, DRE,
untrusted client certificate, TLS 1.1) are not repeated here.
"""

from __future__ import annotations

import datetime
import http.client
import os
import re
import select
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from roc.messages import Routing, envelope
from tests.integration.conftest import RelayProcess, StartRelay
from tests.integration.fake_amc import Behaviour, FakeAmc
from tests.integration.harness import SoapClient, Twistd, client_context, http_get
from tools import devpki
from tools.devpki import HOSPITAL_A

AMC = "990000101"
ANSWER = b"<ok/>"
IDB_BODY = (
    '<i:DemandeIDB xmlns:i="urn:piano:roc:idb:v1"><i:NIR>180059999900135</i:NIR></i:DemandeIDB>'
)


def idb(exchange_id: str = "e-1", amc: str = AMC) -> bytes:
    routing = Routing("IDB", amc, HOSPITAL_A["legal"], HOSPITAL_A["site"], exchange_id=exchange_id)
    return envelope(routing, IDB_BODY)


def fault_code(body: bytes) -> str:
    root = etree.fromstring(body)
    codes = root.xpath("//*[local-name()='ErreurRPN']/*[local-name()='Code']/text()")
    assert codes, body
    return str(codes[0])


def rss_kib(relay: RelayProcess) -> int:
    assert relay.twistd.process is not None
    status = Path(f"/proc/{relay.twistd.process.pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert found is not None
    return int(found.group(1))


@pytest.fixture
def hospital_a(pki: Path) -> ssl.SSLContext:
    return client_context(pki, "hospital-a")


@pytest.fixture
def amc(fake_amc: FakeAmc) -> FakeAmc:
    fake_amc.behaviour = Behaviour(body=ANSWER)
    return fake_amc


def raw_tls(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(sock, server_hostname="127.0.0.1")


def raw_exchange(port: int, context: ssl.SSLContext, request: bytes) -> bytes:
    """Send *request* as raw bytes; everything the relay answers until it closes (or 5 s)."""
    with raw_tls(port, context) as sock:
        sock.sendall(request)
        sock.settimeout(5)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
                    if length and len(rest) >= int(length.group(1)):
                        break
        except (TimeoutError, ConnectionResetError, ssl.SSLError):
            pass
        return b"".join(chunks)


# -- slowloris ---------------------------------------------------------------------------------

READ_TIMEOUT = 1.5
IDLE_TIMEOUT = 3.0
SLOW = {"http": {"read_timeout": READ_TIMEOUT, "idle_timeout": IDLE_TIMEOUT}}


def trickle(port: int, context: ssl.SSLContext, prefix: bytes, drip: bytes) -> tuple[float, bytes]:
    """Send *prefix*, then *drip* one byte every 0.3 s (well inside the idle timeout).

    Returns the seconds until the relay closed the connection (8.1 if it did not) and what
    it sent meanwhile.
    """
    with raw_tls(port, context) as sock:
        started = time.monotonic()
        sock.sendall(prefix)
        sock.setblocking(False)
        received = b""
        for k, byte in enumerate((drip * 100)[:27]):
            tick = started + 0.3 * (k + 1)
            while (left := tick - time.monotonic()) > 0:
                select.select([sock], [], [], left)
                try:
                    chunk = sock.recv(65536)
                except ssl.SSLWantReadError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    return time.monotonic() - started, received
                received += chunk
            try:
                sock.send(bytes([byte]))
            except ssl.SSLWantWriteError:
                pass
            except OSError:
                return time.monotonic() - started, received
        return 8.1, received


def served_meanwhile(port: int, context: ssl.SSLContext, seconds: float) -> list[float]:
    """Latencies of exchanges sent one after another for *seconds* by an honest client."""
    client = SoapClient(port, context)
    latencies = []
    deadline = time.monotonic() + seconds
    n = 0
    while time.monotonic() < deadline:
        n += 1
        started = time.monotonic()
        answer = client.post(idb(f"honest-{n}"))
        assert answer.status == 200
        latencies.append(time.monotonic() - started)
        time.sleep(0.2)
    client.close()
    return latencies


def _slowloris(
    relay: RelayProcess, context: ssl.SSLContext, prefix: bytes, drip: bytes
) -> tuple[float, bytes, list[float]]:
    outcome: list[tuple[float, bytes]] = []
    attacker = threading.Thread(
        target=lambda: outcome.append(trickle(relay.port, context, prefix, drip))
    )
    attacker.start()
    latencies = served_meanwhile(relay.port, context, 2 * READ_TIMEOUT)
    attacker.join(20)
    ((seconds, received),) = outcome
    return seconds, received, latencies


HEAD = b"POST /roc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"


def test_slow_headers_are_cut_at_the_read_timeout_while_others_are_served(
    start_relay: StartRelay, amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    relay = start_relay({AMC: amc.base_url()}, tables=SLOW)
    seconds, received, latencies = _slowloris(
        relay, hospital_a, HEAD, b"X-Slow-Header-Never-Ending: aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    )
    assert seconds < READ_TIMEOUT + 2.0, "a client dribbling headers is cut"
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"RPN-408-LECTURE" in received
    assert max(latencies) < 1.0
    assert len(amc.received) == len(latencies), "only the honest client's exchanges went out"


def test_slow_body_gets_408_at_the_read_timeout_while_others_are_served(
    start_relay: StartRelay, amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    relay = start_relay({AMC: amc.base_url()}, tables=SLOW)
    body = idb("slow-body")
    prefix = HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body[:40]
    seconds, received, latencies = _slowloris(relay, hospital_a, prefix, body[40:])
    assert seconds < READ_TIMEOUT + 2.0, "a client dribbling its body is cut"
    assert received.startswith(b"HTTP/1.1 408 ")
    assert fault_code(received.partition(b"\r\n\r\n")[2]) == "RPN-408-LECTURE"
    assert max(latencies) < 1.0
    assert amc.count("slow-body") == 0
    assert len(amc.received) == len(latencies)


def test_slow_request_line_is_cut_within_the_timeouts(
    start_relay: StartRelay, amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    relay = start_relay({AMC: amc.base_url()}, tables=SLOW)
    seconds, _received, latencies = _slowloris(relay, hospital_a, b"PO", b"ST /roc HTTP/1.1")
    assert max(latencies) < 1.0
    assert seconds < IDLE_TIMEOUT + 2.0, "a client dribbling its request line is cut"


# -- XML bombs and external entities -----------------------------------------------------------

SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"


class _Listener:
    """A TCP port that counts the connections it gets (an attacker's DTD server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    lis = _Listener()
    yield lis
    lis.close()


def _with_doctype(doctype: str, header_text: str) -> bytes:
    routing = idb().decode().split("?>", 1)[1]
    routing = routing.replace("<soap:Header>", f"<soap:Header><x>{header_text}</x>", 1)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}{routing}'.encode()


def test_xml_bombs_and_external_entities_are_refused_without_expansion_file_or_network(
    start_relay: StartRelay,
    amc: FakeAmc,
    hospital_a: ssl.SSLContext,
    tmp_path: Path,
    listener: _Listener,
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER")
    long_ago = time.time() - 3 * 86400
    os.utime(secret, (long_ago, long_ago))
    lol = '<!ENTITY lol0 "lol">' + "".join(
        '<!ENTITY lol{} "{}">'.format(i, f"&lol{i - 1};" * 10) for i in range(1, 10)
    )
    evil = f"http://127.0.0.1:{listener.port}"
    cases = {
        "billion laughs": _with_doctype(f"<!DOCTYPE soap:Envelope [{lol}]>", "&lol9;"),
        "quadratic blowup": _with_doctype(
            f'<!DOCTYPE soap:Envelope [<!ENTITY a "{"a" * 50000}">]>', "&a;" * 2000
        ),
        "XXE file": _with_doctype(
            f'<!DOCTYPE soap:Envelope [<!ENTITY xxe SYSTEM "file://{secret}">]>', "&xxe;"
        ),
        "XXE network": _with_doctype(
            f'<!DOCTYPE soap:Envelope [<!ENTITY xxe SYSTEM "{evil}/e">]>', "&xxe;"
        ),
        "external DTD": _with_doctype(f'<!DOCTYPE soap:Envelope SYSTEM "{evil}/x.dtd">', ""),
        "parameter entity": _with_doctype(
            f'<!DOCTYPE soap:Envelope [<!ENTITY % p SYSTEM "{evil}/p.dtd"> %p;]>', ""
        ),
        "undeclared entity": _with_doctype("", "&xxe;"),
        "XInclude": _with_doctype(
            "",
            f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file://{secret}"/>',
        ),
    }
    relay = start_relay({AMC: amc.base_url()})
    client = SoapClient(relay.port, hospital_a)
    for name, body in cases.items():
        started = time.monotonic()
        answer = client.post(body)
        elapsed = time.monotonic() - started
        if name == "XInclude":
            # Never processed: the header is parsed for routing only, XInclude is not run, and
            # the message goes to the AMC byte for byte (the AMC must not run it either).
            assert answer.status == 200, name
            continue
        assert (answer.status, fault_code(answer.body)) == (400, "RPN-400-XML"), name
        assert b"TOP-SECRET-MARKER" not in answer.body, name
        assert b"lollol" not in answer.body, name
        assert elapsed < 2.0, name
    assert listener.connections == 0, "the relay fetched an external DTD or entity"
    atime_after = secret.stat().st_atime
    assert atime_after == pytest.approx(long_ago, abs=1), "the relay read the file"
    assert [r.body for r in amc.received] == [cases["XInclude"]]
    assert SoapClient(relay.port, hospital_a).post(idb("after")).status == 200


def test_malformed_xml_is_refused_with_a_precise_fault(
    start_relay: StartRelay, amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    good = idb()
    cases = {
        "not XML": b"hello",
        "empty": b"",
        "cut in the header": good[: good.index(b"</soap:Header>") - 20],
        "mismatched tags": good.replace(b"</rt:Service>", b"</rt:Servise>"),
        "UTF-16": good.decode().replace("UTF-8", "UTF-16").encode("utf-16"),
        "NUL byte": good.replace(b"<rt:Service>", b"<rt:Service>\x00"),
        "two roots": b"<a/><b/>",
    }
    relay = start_relay({AMC: amc.base_url()})
    client = SoapClient(relay.port, hospital_a)
    for name, body in cases.items():
        answer = client.post(body)
        assert answer.status == 400, name
        assert fault_code(answer.body) in ("RPN-400-XML", "RPN-400-ROUTAGE"), name
    assert amc.received == []
    assert client.post(good).status == 200


def test_chunked_body_over_the_limit_is_refused_with_413(
    start_relay: StartRelay, amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    relay = start_relay({AMC: amc.base_url()}, tables={"http": {"max_body_bytes": 4096}})
    body = idb("too-big").replace(b"<soap:Body>", b"<soap:Body>" + b" " * 6000)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (body[:3000], body[3000:]))
    request = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    answer = raw_exchange(relay.port, hospital_a, request)
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert fault_code(answer.partition(b"\r\n\r\n")[2]) == "RPN-413-TAILLE"
    assert amc.received == []
    assert SoapClient(relay.port, hospital_a).post(idb("fine")).status == 200


def test_request_smuggling_shapes_are_refused_and_never_reach_the_amc(
    start_relay: StartRelay, amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    relay = start_relay({AMC: amc.base_url()})
    body = idb("smuggled")
    hidden = b"POST /roc HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    for framing in (
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(hidden),
        b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    ):
        answer = raw_exchange(relay.port, hospital_a, HEAD + framing + hidden)
        assert answer.startswith(b"HTTP/1.1 400 "), framing
        assert fault_code(answer.partition(b"\r\n\r\n")[2]) == "RPN-400-HTTP"
    assert amc.received == []
    assert SoapClient(relay.port, hospital_a).post(idb("fine")).status == 200


def test_oversized_and_numerous_headers_are_refused_and_the_relay_keeps_serving(
    start_relay: StartRelay, amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    relay = start_relay({AMC: amc.base_url()})
    body = idb("huge-headers")
    for extra in (
        b"X-Big: " + b"a" * 20000 + b"\r\n",
        b"".join(b"X-H%d: v\r\n" % i for i in range(600)),
    ):
        request = HEAD + extra + b"Content-Length: %d\r\n\r\n" % len(body) + body
        answer = raw_exchange(relay.port, hospital_a, request)
        assert answer.startswith(b"HTTP/1.1 431 ")
        assert fault_code(answer.partition(b"\r\n\r\n")[2]) == "RPN-431-ENTETES"
    assert amc.received == []
    assert SoapClient(relay.port, hospital_a).post(idb("fine")).status == 200


def _connections(port: int, context: ssl.SSLContext, count: int) -> None:
    """*count* new TLS connections, one small refused request each (no AMC involved)."""
    for _ in range(count):
        answer = SoapClient(port, context).post(b"", path="/nowhere", method="GET")
        assert answer.status == 404


def test_new_tls_connections_do_not_grow_the_relays_memory(
    start_relay: StartRelay, hospital_a: ssl.SSLContext
) -> None:
    relay = start_relay({})
    _connections(relay.port, hospital_a, 100)  # warm-up: imports, caches, allocator arenas
    before = rss_kib(relay)
    _connections(relay.port, hospital_a, 400)
    grown = rss_kib(relay) - before
    # About 4.5 MB for 400 connections with the session cache; a few hundred KB without.
    assert grown < 2 * 1024, f"{grown} KiB more after 400 connections"


# -- client certificates -----------------------------------------------------------------------


def test_expired_and_not_yet_valid_client_certificates_fail_the_handshake(
    start_relay: StartRelay, amc: FakeAmc, pki: Path, tmp_path: Path
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)
    ca = devpki.load(pki, "ca")
    dates = {
        "expired": (now - 30 * day, now - day),
        "not-yet-valid": (now + day, now + 30 * day),
        "valid": (now - day, now + 30 * day),  # the control: same CA, same FINESS
    }
    for stem, (not_before, not_after) in dates.items():
        issued = devpki.issue(
            ca,
            f"CH Fictif A - {stem}",
            client=True,
            finess=HOSPITAL_A["site"],
            not_before=not_before,
            not_after=not_after,
        )
        devpki.write(tmp_path, stem, issued)
    (tmp_path / "ca.pem").write_bytes((pki / "ca.pem").read_bytes())
    relay = start_relay({AMC: amc.base_url()})
    for stem in ("expired", "not-yet-valid"):
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            SoapClient(relay.port, client_context(tmp_path, stem)).post(idb(stem))
    assert amc.received == []
    answer = SoapClient(relay.port, client_context(tmp_path, "valid")).post(idb("valid"))
    assert (answer.status, answer.body) == (200, ANSWER)


# -- CR/LF injection ---------------------------------------------------------------------------


def _no_injection(amc: FakeAmc) -> None:
    for received in amc.received:
        assert "x-injected" not in received.headers
        for name, value in received.headers.items():
            assert "\r" not in value and "\n" not in value, name


def test_crlf_in_forwarded_values_never_reaches_the_amcs_headers(
    start_relay: StartRelay, amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    relay = start_relay({AMC: amc.base_url()})
    client = SoapClient(relay.port, hospital_a)
    for exchange_id in ("a&#13;&#10;X-Injected: 1", "a&#10;X-Injected: 1", "a%0d%0aX-Injected:1"):
        body = idb("placeholder").replace(b"placeholder", exchange_id.encode())
        answer = client.post(body)
        assert (answer.status, fault_code(answer.body)) == (400, "RPN-400-ROUTAGE"), exchange_id
    assert amc.received == []
    # Raw CR, LF and folded lines in the one client header the relay forwards (Content-Type).
    body = idb("raw-crlf")
    tail = b"Content-Length: %d\r\n\r\n" % len(body) + body
    for content_type in (
        b"Content-Type: text/xml; charset=utf-8\rX-Injected: 1\r\n",
        b"Content-Type: text/xml; charset=utf-8\nX-Injected: 1\r\n",
        b"Content-Type: text/xml;\r\n X-Injected: 1\r\n",
    ):
        request = b"POST /roc HTTP/1.1\r\nHost: 127.0.0.1\r\n" + content_type + tail
        answer = raw_exchange(relay.port, hospital_a, request)
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        assert fault_code(answer.partition(b"\r\n\r\n")[2]) == "RPN-400-HTTP"
    _no_injection(amc)
    assert client.post(idb("after")).status == 200


def test_crlf_in_routing_headers_is_refused(
    start_relay: StartRelay, amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    relay = start_relay({AMC: amc.base_url()}, tables={"routing": {"policy": "http-header"}})
    headers = {
        "x-roc-service": "IDB",
        "x-roc-version": "V1",
        "x-roc-amc": AMC,
        "x-roc-convention": "TP",
        "x-roc-critere": "01",
        "x-roc-finess-juridique": HOSPITAL_A["legal"],
        "x-roc-finess-geographique": HOSPITAL_A["site"],
    }
    client = SoapClient(relay.port, hospital_a)
    answer = client.post(b"<x/>", headers={**headers, "x-roc-echange": "a%0d%0aX-Injected:%201"})
    assert (answer.status, fault_code(answer.body)) == (400, "RPN-400-ROUTAGE")
    head = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
    for value in (b"a\rX-Injected: 1", b"a\nX-Injected: 1"):
        request = HEAD + head + b"x-roc-echange: " + value + b"\r\nContent-Length: 4\r\n\r\n<x/>"
        answer = raw_exchange(relay.port, hospital_a, request)
        assert answer.startswith(b"HTTP/1.1 400 "), answer
        assert fault_code(answer.partition(b"\r\n\r\n")[2]) == "RPN-400-HTTP"
    assert amc.received == []
    ok = client.post(b"<x/>", headers={**headers, "x-roc-echange": "fine"})
    assert ok.status == 200
    _no_injection(amc)


# -- admin endpoint ----------------------------------------------------------------------------


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the sockets listening on TCP *port* (IPv4 and IPv6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(port_hex, 16) == port:
                found.add(address)
    return found


def _non_loopback_addresses() -> list[str]:
    done = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=False)
    addresses = re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", done.stdout)
    return [a for a in addresses if not a.startswith("127.")]


def _get_from(source: str, address: str, port: int, path: str) -> tuple[int, bytes]:
    """GET /*path* on *address*:*port*, the connection coming from *source*."""
    conn = http.client.HTTPConnection(address, port, timeout=2, source_address=(source, 0))
    try:
        conn.request("GET", "/" + path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_admin_endpoint_on_loopback_cannot_be_reached_from_another_address(
    start_relay: StartRelay,
) -> None:
    relay = start_relay({})
    assert relay.metrics()  # reachable on loopback
    # 0100007F is 127.0.0.1 as /proc/net/tcp writes it; 00000000 would be every interface.
    assert _listening_addresses(relay.admin_port) == {"0100007F"}
    assert _listening_addresses(relay.port) == {"0100007F"}
    for address in _non_loopback_addresses():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, relay.admin_port), timeout=3).close()


def test_admin_endpoint_on_every_interface_refuses_addresses_outside_its_allow_list(
    start_relay: StartRelay,
) -> None:
    # The allow list is narrowed to 127.0.0.1 so that 127.0.0.2, a loopback address every
    # Linux machine has, is outside it; non-loopback addresses of this machine are tried too.
    relay = start_relay({}, tables={"admin": {"allowed_networks": ["127.0.0.1/32"]}})
    relay.twistd.stop()
    config = relay.twistd.config
    loopback_only = f"tcp:{relay.admin_port}:interface=127.0.0.1"
    assert loopback_only in config.read_text()
    config.write_text(
        config.read_text().replace(loopback_only, f"tcp:{relay.admin_port}:interface=0.0.0.0")
    )
    everywhere = Twistd("rpn", config, config.parent / "everywhere.log", relay.twistd.health_url)
    everywhere.start()
    try:
        assert _listening_addresses(relay.admin_port) == {"00000000"}
        assert http_get(f"http://127.0.0.1:{relay.admin_port}/metrics")[0] == 200
        # (address connected to, address it comes from): a local non-loopback address is
        # reached from itself.
        sources = [("127.0.0.1", "127.0.0.2")] + [(a, a) for a in _non_loopback_addresses()]
        for address, source in sources:
            for path in ("metrics", "healthz", "readyz", "nothing"):
                status, body = _get_from(source, address, relay.admin_port, path)
                assert status == 403, (source, path)
                assert b"rpn_" not in body
    finally:
        everywhere.stop()


# -- protocol versions and cipher suites -------------------------------------------------------


def s_client(port: int, pki: Path, *args: str) -> str:
    done = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-CAfile",
            str(pki / "ca.pem"),
            "-cert",
            str(pki / "hospital-a.pem"),
            "-key",
            str(pki / "hospital-a.key"),
            *args,
        ],
        input=b"",
        capture_output=True,
        timeout=20,
        check=False,
    )
    return (done.stdout + done.stderr).decode(errors="replace")


def _negotiated(output: str) -> str | None:
    found = re.search(r"Cipher is (\S+)", output)
    return None if found is None or found.group(1) == "(NONE)" else found.group(1)


SECLEVEL0 = "DEFAULT:@SECLEVEL=0"


def test_tls_1_0_1_1_null_and_anonymous_suites_are_refused_by_the_server(
    start_relay: StartRelay, pki: Path
) -> None:
    relay = start_relay({})
    # The control: the same command line negotiates when the relay allows it.
    assert _negotiated(s_client(relay.port, pki, "-tls1_2")) is not None
    for args in (
        ("-tls1", "-cipher", SECLEVEL0),
        ("-tls1_1", "-cipher", SECLEVEL0),
        ("-tls1_2", "-cipher", "NULL-SHA256:NULL-SHA:@SECLEVEL=0"),
        ("-tls1_2", "-cipher", "aNULL:@SECLEVEL=0"),
        ("-tls1_2", "-cipher", "EXPORT:LOW:@SECLEVEL=0"),
    ):
        output = s_client(relay.port, pki, *args)
        assert _negotiated(output) is None, (args, output)
        # Refused by the relay (an alert), not by the local client failing to offer it.
        if "no cipher match" not in output:
            assert "alert" in output, (args, output)


WEAK_TLS12_SUITES = (
    "AES128-SHA",  # static RSA key exchange: no forward secrecy; CBC with SHA-1
    "AES256-GCM-SHA384",  # static RSA key exchange: no forward secrecy
    "ECDHE-RSA-AES128-SHA",  # CBC with SHA-1 (Lucky13-class padding oracles)
)


def test_tls_1_2_suites_without_forward_secrecy_or_with_cbc_sha1_are_refused(
    start_relay: StartRelay, pki: Path
) -> None:
    relay = start_relay({})
    accepted = [
        suite
        for suite in WEAK_TLS12_SUITES
        if _negotiated(s_client(relay.port, pki, "-tls1_2", "-cipher", f"{suite}:@SECLEVEL=0"))
    ]
    assert accepted == []
    # The strong ones still work.
    assert _negotiated(
        s_client(relay.port, pki, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    )
