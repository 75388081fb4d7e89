"""A returning client resumes its TLS session on whichever worker takes its connection.

With ``listen.workers = 2`` the workers are forked from one zygote that holds the TLS context
worker 0 built (``rpn/workers.py``), so they share its session-ticket keys: a ticket one
worker issued opens on the other, in TLS 1.2 and 1.3, after a worker is killed and respawned,
and after a reload that re-reads the certificates.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest

from roc.messages import Routing, envelope
from tests.integration.conftest import RelayProcess, StartRelay
from tests.integration.fake_amc import FakeAmc
from tests.integration.harness import client_context, http_get
from tools.devpki import HOSPITAL_A

AMC = "990000101"
CONNECTIONS = 30


def idb(exchange_id: str) -> bytes:
    routing = Routing("IDB", AMC, HOSPITAL_A["legal"], HOSPITAL_A["site"], exchange_id=exchange_id)
    return envelope(routing, "<x/>")


def one_exchange(
    port: int, context: ssl.SSLContext, session: ssl.SSLSession | None, exchange_id: str
) -> tuple[bytes, bool, ssl.SSLSession | None, str | None]:
    """A new connection, one request, closed: (status, resumed, session, TLS version)."""
    body = idb(exchange_id)
    head = (
        "POST /roc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as tls,
    ):
        tls.sendall(head + body)
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer.split(b" ", 2)[1], tls.session_reused, tls.session, tls.version()


def exchanges_served(admin_port: int) -> float:
    text = http_get(f"http://127.0.0.1:{admin_port}/metrics")[1].decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("rpn_exchanges_total{")
    )


def wait_ready(admin_port: int, relay: RelayProcess, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if http_get(f"http://127.0.0.1:{admin_port}/readyz")[0] == 200:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, relay.twistd.log_text()
        time.sleep(0.1)


def returning_client(relay: RelayProcess, context: ssl.SSLContext, label: str) -> list[bool]:
    """One full handshake, then CONNECTIONS new connections each resuming the last session."""
    status, resumed, session, _ = one_exchange(relay.port, context, None, f"{label}-0")
    assert (status, resumed) == (b"200", False)
    flags = []
    for i in range(1, CONNECTIONS + 1):
        status, resumed, session, _ = one_exchange(relay.port, context, session, f"{label}-{i}")
        assert status == b"200"
        flags.append(resumed)
    return flags


def worker_pid(relay: RelayProcess, index: int, occurrence: int = 1) -> int:
    found = re.findall(rf"worker {index} started \(pid (\d+)\)", relay.twistd.log_text())
    assert len(found) >= occurrence, relay.twistd.log_text()
    return int(found[occurrence - 1])


@pytest.fixture(params=[False, True], ids=["own-socket", "socket-activated"])
def two_workers(
    start_relay: StartRelay, fake_amc: FakeAmc, request: pytest.FixtureRequest
) -> RelayProcess:
    fake_amc.behaviour.body = b"<ok/>"
    relay = start_relay(
        {AMC: f"https://127.0.0.1:{fake_amc.port}"},
        tables={"listen": {"workers": 2}},
        socket_activated=request.param,
    )
    wait_ready(relay.admin_port + 1, relay)
    return relay


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_every_new_connection_resumes_whichever_worker_takes_it(
    two_workers: RelayProcess, pki: Path, version: ssl.TLSVersion
) -> None:
    context = client_context(pki, "hospital-a")
    context.minimum_version = context.maximum_version = version
    flags = returning_client(two_workers, context, f"r{version.name}")
    served = [exchanges_served(two_workers.admin_port + i) for i in (0, 1)]
    assert sum(served) == CONNECTIONS + 1
    assert all(s > 0 for s in served), served  # both workers took connections...
    assert all(flags), f"{flags.count(False)} of {len(flags)} connections did a full handshake"


def test_sessions_still_resume_after_a_respawn_and_a_reload(
    two_workers: RelayProcess, pki: Path
) -> None:
    context = client_context(pki, "hospital-a")
    _, _, session, _ = one_exchange(two_workers.port, context, None, "before-0")
    os.kill(worker_pid(two_workers, 1), signal.SIGKILL)
    deadline = time.monotonic() + 20
    while "worker 1 started" not in two_workers.twistd.log_text().split("worker 1 died")[-1]:
        assert time.monotonic() < deadline, two_workers.twistd.log_text()
        time.sleep(0.1)
    wait_ready(two_workers.admin_port + 1, two_workers)
    assert worker_pid(two_workers, 1, 2) != worker_pid(two_workers, 1, 1)
    flags = []
    for i in range(CONNECTIONS):
        _, resumed, session, _ = one_exchange(two_workers.port, context, session, f"after-{i}")
        flags.append(resumed)
    assert all(flags), f"after a respawn: {flags.count(False)} full handshakes"
    assert exchanges_served(two_workers.admin_port + 1) > 0  # the respawned worker served

    assert two_workers.twistd.process is not None
    two_workers.twistd.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while two_workers.twistd.log_count("configuration reloaded") < 2:
        assert time.monotonic() < deadline, two_workers.twistd.log_text()
        time.sleep(0.05)
    flags = []
    for i in range(CONNECTIONS):
        _, resumed, session, _ = one_exchange(two_workers.port, context, session, f"reload-{i}")
        flags.append(resumed)
    assert all(flags), f"after a reload: {flags.count(False)} full handshakes"


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to read its status has ended)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_workers_and_their_zygote_end_when_worker_0_is_killed(
    two_workers: RelayProcess,
) -> None:
    assert two_workers.twistd.process is not None
    worker_0 = two_workers.twistd.process.pid
    forked = [
        int(pid) for pid in Path(f"/proc/{worker_0}/task/{worker_0}/children").read_text().split()
    ]
    assert len(forked) == 1  # the zygote, parent of worker 1
    worker_1 = worker_pid(two_workers, 1)
    two_workers.twistd.process.kill()
    two_workers.twistd.process.wait()
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in (*forked, worker_1)):
        assert time.monotonic() < deadline, "the zygote or worker 1 outlived worker 0"
        time.sleep(0.1)
