"""Running the relay like a national service: reload without restart, version, JSON logs."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from roc.messages import Routing, envelope
from tests.integration.conftest import RelayProcess, StartRelay
from tests.integration.fake_amc import FakeAmc
from tests.integration.harness import ROOT, TWISTD, SoapClient, client_context, http_get
from tools import devpki
from tools.devpki import HOSPITAL_A, HOSPITAL_B

AMC = "990000101"


def idb(sender: dict[str, str], exchange_id: str) -> bytes:
    routing = Routing("IDB", AMC, sender["legal"], sender["site"], exchange_id=exchange_id)
    return envelope(routing, "<x/>")


def wait_for_log(relay: RelayProcess, text: str, count: int = 1, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while relay.twistd.log_count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{relay.twistd.log_text()}"
        time.sleep(0.05)


def hup(relay: RelayProcess) -> None:
    assert relay.twistd.process is not None
    relay.twistd.process.send_signal(signal.SIGHUP)


def served_certificate_serial(port: int, pki: Path) -> int:
    ctx = client_context(pki, "hospital-a")
    import socket

    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_sighup_reloads_allow_list_and_certificate_under_load_without_losing_an_exchange(
    start_relay: StartRelay, fake_amc: FakeAmc, pki: Path
) -> None:
    fake_amc.behaviour.body = b"<ok/>"
    fake_amc.behaviour.delay = 0.05
    relay = start_relay({AMC: f"https://127.0.0.1:{fake_amc.port}"}, registered=(HOSPITAL_A,))
    hospital_a = client_context(pki, "hospital-a")
    hospital_b = client_context(pki, "hospital-b")
    assert SoapClient(relay.port, hospital_b).post(idb(HOSPITAL_B, "b-before")).status == 403

    statuses: list[int] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        n = 0
        client = SoapClient(relay.port, hospital_a)
        while not stop.is_set():
            n += 1
            if n % 5 == 0:  # a fresh TLS connection now and then, across the swap
                client.close()
                client = SoapClient(relay.port, hospital_a)
            statuses.append(client.post(idb(HOSPITAL_A, f"load-{worker}-{n}")).status)
        client.close()

    workers = [threading.Thread(target=load, args=(i,)) for i in range(3)]
    for w in workers:
        w.start()
    try:
        time.sleep(0.5)
        serial_before = served_certificate_serial(relay.port, pki)
        # A new server certificate and hospital B registered, by editing the files only.
        ca = devpki.load(pki, "ca")
        renewed = devpki.issue(ca, "rpn.localhost", server_names=("localhost", "127.0.0.1"))
        devpki.write(relay.twistd.config.parent, "renewed-server", renewed)
        text = relay.twistd.config.read_text()
        text = text.replace(str(pki / "rpn-server.pem"), "renewed-server.pem")
        text = text.replace(str(pki / "rpn-server.key"), "renewed-server.key")
        registered_a = f'{{finess = "{HOSPITAL_A["legal"]}", sites = ["{HOSPITAL_A["site"]}"]}}'
        registered_b = f'{{finess = "{HOSPITAL_B["legal"]}", sites = ["{HOSPITAL_B["site"]}"]}}'
        assert registered_a in text
        text = text.replace(registered_a, f"{registered_a}, {registered_b}")
        relay.twistd.config.write_text(text)
        hup(relay)
        wait_for_log(relay, "configuration reloaded")
        assert SoapClient(relay.port, hospital_b).post(idb(HOSPITAL_B, "b-after")).status == 200
        serial_after = served_certificate_serial(relay.port, pki)
        assert serial_after == renewed.certificate.serial_number != serial_before
        # A broken configuration is refused; the running one keeps serving.
        relay.twistd.config.write_text(
            text.replace("request_timeout = 5.0", "request_timeout = -1")
        )
        hup(relay)
        wait_for_log(relay, "reload refused")
        assert "upstream.request_timeout: must be > 0" in relay.twistd.log_text()
        assert SoapClient(relay.port, hospital_b).post(idb(HOSPITAL_B, "b-kept")).status == 200
        time.sleep(0.5)
    finally:
        stop.set()
        for w in workers:
            w.join(30)
    assert len(statuses) > 20
    assert set(statuses) == {200}, statuses
    bodies = [r.body for r in fake_amc.received]
    assert len(bodies) == len(set(bodies)) == len(statuses) + 2  # each exchange exactly once


def test_version_is_printed() -> None:
    done = subprocess.run(
        [str(TWISTD), "rpn", "--version"], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0
    assert done.stdout.startswith("PiANO rpn ")


def test_json_logs_carry_the_exchange_id_and_no_personal_data(
    start_relay: StartRelay, fake_amc: FakeAmc, pki: Path, tmp_path: Path
) -> None:
    fake_amc.behaviour.body = b"<ok/>"
    log_file = tmp_path / "rpn.jsonl"
    relay = start_relay(
        {AMC: f"https://127.0.0.1:{fake_amc.port}"},
        access_log=False,
        env={"PIANO_LOG_FILE": str(log_file)},
        logger="piano.logs.json_file",
    )
    body = envelope(
        Routing("IDB", AMC, HOSPITAL_A["legal"], HOSPITAL_A["site"], exchange_id="json-1"),
        "<i:NIR xmlns:i='urn:x'>180059999900135</i:NIR>",
    )
    SoapClient(relay.port, client_context(pki, "hospital-a")).post(body)
    relay.twistd.stop()
    events = [json.loads(line) for line in log_file.read_text().splitlines()]
    exchanges = [e for e in events if e.get("exchange_id") == "json-1"]
    assert len(exchanges) == 1
    assert exchanges[0]["outcome"] == "amc_fault"  # the fake AMC's answer has no CodeRetour
    assert (exchanges[0]["finess"], exchanges[0]["amc"]) == (HOSPITAL_A["site"], AMC)
    assert any(e.get("log_format", "").startswith("relay started") for e in events)
    assert "180059999900135" not in log_file.read_text()


def test_socket_activation_serves_on_the_socket_systemd_passes(
    start_relay: StartRelay, fake_amc: FakeAmc, pki: Path
) -> None:
    fake_amc.behaviour.body = b"<ok/>"
    relay = start_relay({AMC: f"https://127.0.0.1:{fake_amc.port}"}, socket_activated=True)
    answer = SoapClient(relay.port, client_context(pki, "hospital-a")).post(
        idb(HOSPITAL_A, "activated-1")
    )
    assert (answer.status, answer.body) == (200, b"<ok/>")


def test_two_workers_share_the_socket_and_their_metrics_add_up(
    start_relay: StartRelay, fake_amc: FakeAmc, pki: Path
) -> None:
    fake_amc.behaviour.body = b"<ok/>"
    relay = start_relay(
        {AMC: f"https://127.0.0.1:{fake_amc.port}"}, tables={"listen": {"workers": 2}}
    )
    second_admin = f"http://127.0.0.1:{relay.admin_port + 1}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if http_get(second_admin + "/readyz")[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, relay.twistd.log_text()
        time.sleep(0.1)
    context = client_context(pki, "hospital-a")
    sent = 40
    for i in range(sent):  # a fresh connection each time: the kernel spreads them
        client = SoapClient(relay.port, context)
        assert client.post(idb(HOSPITAL_A, f"w-{i}")).status == 200
        client.close()

    def exchanges(base: str) -> float:
        text = http_get(base + "/metrics")[1].decode()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("rpn_exchanges_total{")
        )

    counts = [exchanges(f"http://127.0.0.1:{relay.admin_port}"), exchanges(second_admin)]
    assert sum(counts) == sent == len(fake_amc.received)
    assert all(c > 0 for c in counts), counts
    # Stopping worker 0 stops the other one too.
    relay.twistd.stop()
    with pytest.raises(OSError):
        http_get(second_admin + "/healthz")
