"""Test helpers: talk HTTP to the simulator's site in memory, without sockets or a reactor.

``post`` feeds a real ``twisted.web`` channel through a ``StringTransport``, so header
parsing, status codes and content types are the ones a client would see.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime
from twisted.internet.testing import StringTransport
from twisted.web.server import Site

from mutuelle.catalogue import Catalogue, build_catalogue
from mutuelle.datafiles import SimulatorData, load_data
from mutuelle.server import roc_site
from mutuelle.signatures import SignaturePolicy
from mutuelle.simulator import Simulator
from piano.testing import StrictClock, StrictMemoryReactorClock
from roc.signature import Trust

PUBLIC_URL = "https://mutuelle.test:8444"


@dataclass(frozen=True, slots=True)
class HttpReply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def simulator(
    data: SimulatorData | None = None,
    max_body_bytes: int = 1 << 20,
    clock: IReactorTime | None = None,
) -> Simulator:
    """A simulator over *data* (default: the shipped data) answering as ``PUBLIC_URL``.

    Each simulator has its own sandboxes; the shipped data and its catalogue are immutable,
    so they are loaded once per test run.
    """
    if data is None or data is shipped()[0]:
        data, catalogue = shipped()
    else:
        catalogue = build_catalogue(data)
    return Simulator(data, catalogue, PUBLIC_URL, max_body_bytes, clock=clock)


def checking_simulator(trust: Trust, policy: SignaturePolicy, now: float) -> Simulator:
    """A simulator over the shipped data checking signatures against *trust* under *policy*,
    its clock at *now* (unix seconds: certificates are checked at that time)."""
    clock = StrictClock()
    clock.advance(now)
    data, catalogue = shipped()
    return Simulator(
        data,
        catalogue,
        PUBLIC_URL,
        clock=clock,
        signature_policy=policy,
        signature_trust=trust,
    )


@functools.cache
def shipped() -> tuple[SimulatorData, Catalogue]:
    data = load_data()
    return data, build_catalogue(data)


def site(sim: Simulator | None = None, clock: StrictMemoryReactorClock | None = None) -> Site:
    """The public site of *sim*, its timeouts on a memory clock."""
    return roc_site(sim or simulator(), clock or StrictMemoryReactorClock())


def request(
    target: Site,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
) -> HttpReply:
    """Send one HTTP/1.1 request to *target* in memory and parse the whole answer."""
    channel = target.buildProtocol(None)
    assert channel is not None
    transport = StringTransport()
    channel.makeConnection(transport)
    lines = [f"{method} {path} HTTP/1.1", "Host: mutuelle.test", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    channel.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    raw = transport.value()
    channel.connectionLost(None)
    head, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    length = int(parsed.get("content-length", len(payload)))
    return HttpReply(int(status_line.split()[1]), parsed, payload[:length])


def post(
    target: Site, path: str, body: bytes, headers: Mapping[str, str] | None = None
) -> HttpReply:
    return request(target, path, body, headers)
