"""The relay as a real process: real TLS in and out, a real AMC behind it."""

from __future__ import annotations

import json
import signal
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest
from lxml import etree

from roc.messages import Routing, envelope
from roc.model import SoapVersion
from tests.integration.conftest import StartRelay
from tests.integration.fake_amc import FakeAmc
from tests.integration.harness import SoapClient, client_context, free_port
from tools.devpki import HOSPITAL_A, HOSPITAL_B

AMC_OK = "990000101"
AMC_DOWN = "990000404"
ANSWER = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<soap:Envelope xmlns:soap="http://schemas.xmlsoap.'
    b'org/soap/envelope/"><soap:Body><i:ReponseIDB xmlns:i="urn:piano:roc:idb:v1">'
    b"<i:CodeRetour>00</i:CodeRetour><i:LibelleRetour>Droits ouverts</i:LibelleRetour>"
    b"</i:ReponseIDB></soap:Body></soap:Envelope>"
)
IDB_BODY = (
    '<i:DemandeIDB xmlns:i="urn:piano:roc:idb:v1"><i:Beneficiaire><i:NIR>180059999900135</i:NIR>'
    "</i:Beneficiaire></i:DemandeIDB>"
)


def idb(amc: str = AMC_OK, sender: dict[str, str] = HOSPITAL_A, **kw: str) -> bytes:
    return envelope(Routing("IDB", amc, sender["legal"], sender["site"], **kw), IDB_BODY)


def fault_code(body: bytes) -> str:
    root = etree.fromstring(body)
    codes = root.xpath("//*[local-name()='ErreurRPN']/*[local-name()='Code']/text()")
    assert codes, body
    return str(codes[0])


@pytest.fixture
def hospital_a(pki: Path) -> ssl.SSLContext:
    return client_context(pki, "hospital-a")


def test_forwarded_body_and_answer_are_byte_identical(
    start_relay: StartRelay, fake_amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    fake_amc.behaviour.body = ANSWER
    relay = start_relay({AMC_OK: f"https://127.0.0.1:{fake_amc.port}"})
    # Odd but legal bytes the relay must not touch: comments, CRLF, entities, odd spacing.
    request = idb().replace(b"<soap:Body>", b"<soap:Body>\r\n<!-- c\xc3\xa9 -->  &#x41;\n")
    client = SoapClient(relay.port, hospital_a)
    answer = client.post(request, headers={"SOAPAction": '"urn:piano:roc:IDB"'})
    assert answer.status == 200
    assert answer.body == ANSWER
    assert "TwistedWeb" not in answer.headers.get("server", "")  # no version disclosure
    assert len(fake_amc.received) == 1
    received = fake_amc.received[0]
    assert received.body == request
    assert received.path == "/roc/IDB"
    assert received.headers["x-roc-emetteur-finess"] == HOSPITAL_A["site"]
    assert received.headers["soapaction"] == '"urn:piano:roc:IDB"'
    client.close()


def test_keep_alive_connection_serves_many_exchanges(
    start_relay: StartRelay, fake_amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    fake_amc.behaviour.body = ANSWER
    relay = start_relay({AMC_OK: f"https://127.0.0.1:{fake_amc.port}"})
    client = SoapClient(relay.port, hospital_a)
    for i in range(20):
        answer = client.post(idb(exchange_id=f"ka-{i}"))
        assert answer.status == 200
        assert answer.headers["x-roc-echange"] == f"ka-{i}"
    assert [r.body for r in fake_amc.received] == [idb(exchange_id=f"ka-{i}") for i in range(20)]
    client.close()
    lines = [json.loads(x) for x in relay.access_log.read_text().splitlines()]
    assert len(lines) == 20
    assert {x["outcome"] for x in lines} == {"ok"}
    assert {x["business_code"] for x in lines} == {"00"}
    assert all(x["finess"] == HOSPITAL_A["site"] and x["amc"] == AMC_OK for x in lines)
    assert "180059999900135" not in relay.access_log.read_text()


def test_failing_amc_opens_only_its_own_breaker(
    start_relay: StartRelay, fake_amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    fake_amc.behaviour.body = ANSWER
    relay = start_relay(
        {
            AMC_OK: f"https://127.0.0.1:{fake_amc.port}",
            AMC_DOWN: f"https://127.0.0.1:{free_port()}",
        },
        tables={"upstream.breaker": {"failure_threshold": 3, "open_base": 30.0}},
    )
    client = SoapClient(relay.port, hospital_a)
    codes = []
    for _ in range(6):
        down = client.post(idb(AMC_DOWN))
        codes.append((down.status, fault_code(down.body)))
        ok = client.post(idb(AMC_OK))
        assert ok.status == 200 and ok.body == ANSWER
    assert codes[:3] == [(503, "RPN-503-AMC-INDISPONIBLE")] * 3
    assert codes[3:] == [(503, "RPN-503-AMC-SUSPENDUE")] * 3
    assert relay.metric("rpn_breaker_state", amc=AMC_DOWN, state="open") == 1.0
    assert relay.metric("rpn_breaker_state", amc=AMC_OK, state="closed") == 1.0
    assert relay.metric("rpn_exchanges_total", amc=AMC_OK, outcome="ok") == 6.0
    assert len(fake_amc.received) == 6
    client.close()


def test_amc_answer_statuses_and_faults_are_relayed_as_received(
    start_relay: StartRelay, fake_amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    fault = (
        b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
        b"<soap:Fault><faultcode>soap:Server</faultcode><faultstring>AMC fault</faultstring>"
        b"</soap:Fault></soap:Body></soap:Envelope>"
    )
    fake_amc.behaviour.status = 500
    fake_amc.behaviour.body = fault
    relay = start_relay({AMC_OK: f"https://127.0.0.1:{fake_amc.port}"})
    answer = SoapClient(relay.port, hospital_a).post(idb())
    assert (answer.status, answer.body) == (500, fault)


@pytest.mark.parametrize(
    ("mode", "code", "status"),
    [("reset", "RPN-502-AMC-REPONSE", 502), ("garbage", "RPN-502-AMC-REPONSE", 502)],
)
def test_broken_amc_answers_become_502_faults_and_are_sent_once(
    start_relay: StartRelay,
    fake_amc: FakeAmc,
    hospital_a: ssl.SSLContext,
    mode: str,
    code: str,
    status: int,
) -> None:
    fake_amc.behaviour.mode = mode
    relay = start_relay({AMC_OK: f"https://127.0.0.1:{fake_amc.port}"})
    answer = SoapClient(relay.port, hospital_a).post(idb())
    assert answer.status == status
    assert fault_code(answer.body) == code
    assert len(fake_amc.received) == 1


def test_slow_amc_gets_504_at_the_deadline_without_retry(
    start_relay: StartRelay, fake_amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    fake_amc.behaviour.delay = 3.0
    fake_amc.behaviour.body = ANSWER
    relay = start_relay(
        {AMC_OK: f"https://127.0.0.1:{fake_amc.port}"},
        tables={"upstream": {"request_timeout": 1.0}},
    )
    started = time.monotonic()
    answer = SoapClient(relay.port, hospital_a).post(idb())
    elapsed = time.monotonic() - started
    assert answer.status == 504
    assert fault_code(answer.body) == "RPN-504-AMC-DELAI"
    assert 0.9 < elapsed < 2.5
    time.sleep(2.5)
    assert len(fake_amc.received) == 1


def test_refusals_each_get_their_own_fault(
    start_relay: StartRelay, fake_amc: FakeAmc, pki: Path, hospital_a: ssl.SSLContext
) -> None:
    fake_amc.behaviour.body = ANSWER
    relay = start_relay(
        {AMC_OK: f"https://127.0.0.1:{fake_amc.port}"},
        registered=(HOSPITAL_A,),
        tables={"http": {"max_body_bytes": 4096}},
    )
    a = SoapClient(relay.port, hospital_a)
    cases = [
        ("wrong sender", idb(sender=HOSPITAL_B), {}, "/roc", "POST", 403, "RPN-403-EMETTEUR"),
        ("unknown AMC", idb("990000999"), {}, "/roc", "POST", 400, "RPN-400-AMC-INCONNUE"),
        (
            "DRE",
            envelope(Routing("DRE", AMC_OK, "990000010", "990000028"), "<x/>"),
            {},
            "/roc",
            "POST",
            400,
            "RPN-400-DRE",
        ),
        (
            "no routing",
            b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            b"<soap:Body/></soap:Envelope>",
            {},
            "/roc",
            "POST",
            400,
            "RPN-400-ROUTAGE",
        ),
        (
            "DTD",
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>',
            {},
            "/roc",
            "POST",
            400,
            "RPN-400-XML",
        ),
        (
            "contradictory action",
            idb(),
            {"SOAPAction": '"urn:piano:roc:CLC"'},
            "/roc",
            "POST",
            400,
            "RPN-400-INCOHERENT",
        ),
        (
            "not SOAP",
            idb(),
            {"Content-Type": "application/json"},
            "/roc",
            "POST",
            415,
            "RPN-415-TYPE",
        ),
        ("wrong path", idb(), {}, "/other", "POST", 404, "RPN-404-CHEMIN"),
        ("wrong method", b"", {}, "/roc", "GET", 405, "RPN-405-METHODE"),
        (
            "too large",
            idb().replace(b"<soap:Body>", b"<soap:Body>" + b" " * 5000),
            {},
            "/roc",
            "POST",
            413,
            "RPN-413-TAILLE",
        ),
    ]
    for name, body, headers, path, method, status, code in cases:
        client = a if status != 413 else SoapClient(relay.port, hospital_a)
        answer = client.post(body, path=path, headers=headers, method=method)
        assert (answer.status, fault_code(answer.body)) == (status, code), name
        assert answer.headers["content-type"].startswith("text/xml"), name
    assert fake_amc.received == []
    b = SoapClient(relay.port, client_context(pki, "hospital-b"))
    answer = b.post(idb(sender=HOSPITAL_B))
    assert (answer.status, fault_code(answer.body)) == (403, "RPN-403-NON-INSCRIT")
    # The relay kept serving through all of it.
    assert SoapClient(relay.port, hospital_a).post(idb()).status == 200
    assert relay.twistd.log_count("180059999900135") == 0


def test_soap12_requests_get_soap12_faults(
    start_relay: StartRelay, hospital_a: ssl.SSLContext
) -> None:
    relay = start_relay({})
    body = envelope(
        Routing("IDB", "990000999", "990000010", "990000028"), IDB_BODY, SoapVersion.SOAP12
    )
    answer = SoapClient(relay.port, hospital_a).post(
        body,
        headers={"Content-Type": 'application/soap+xml; charset=utf-8; action="urn:piano:roc:IDB"'},
    )
    assert answer.status == 400
    assert answer.headers["content-type"].startswith("application/soap+xml")
    assert b"http://www.w3.org/2003/05/soap-envelope" in answer.body
    assert fault_code(answer.body) == "RPN-400-AMC-INCONNUE"


def test_untrusted_or_missing_client_certificates_fail_the_handshake(
    start_relay: StartRelay, pki: Path
) -> None:
    relay = start_relay({})
    for identity in ("untrusted-hospital", None):
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
            client = SoapClient(relay.port, client_context(pki, identity))
            client.post(idb())
    # TLS 1.1 is refused outright (checked with a real client, openssl s_client).
    done = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{relay.port}",
            "-tls1_1",
            "-CAfile",
            str(pki / "ca.pem"),
        ],
        input=b"",
        capture_output=True,
        timeout=20,
    )
    assert done.returncode != 0
    assert SoapClient(relay.port, client_context(pki, "hospital-a")).post(idb()).status == 400


def test_curl_with_a_client_certificate_gets_the_answer(
    start_relay: StartRelay, fake_amc: FakeAmc, pki: Path, tmp_path: Path
) -> None:
    fake_amc.behaviour.body = ANSWER
    relay = start_relay({AMC_OK: f"https://127.0.0.1:{fake_amc.port}"})
    request = tmp_path / "idb.xml"
    request.write_bytes(idb())
    done = subprocess.run(
        [
            "curl",
            "-sS",
            "--cacert",
            str(pki / "ca.pem"),
            "--cert",
            str(pki / "hospital-a.pem"),
            "--key",
            str(pki / "hospital-a.key"),
            "-H",
            "Content-Type: text/xml; charset=utf-8",
            "--data-binary",
            f"@{request}",
            f"https://127.0.0.1:{relay.port}/roc",
        ],
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert done.stdout == ANSWER


def test_health_and_metrics_on_the_admin_endpoint(start_relay: StartRelay) -> None:
    relay = start_relay({})
    text = relay.metrics()
    assert "# HELP rpn_exchanges_total" in text
    assert "rpn_annuaire_entries" in text


def test_sigterm_under_load_fails_no_exchange(
    start_relay: StartRelay, fake_amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    """Stop while clients keep sending: every exchange sent is answered 200 (those in flight
    finish, answers during the drain close their connection), then connections are refused."""
    fake_amc.behaviour.body = ANSWER
    fake_amc.behaviour.delay = 0.3
    relay = start_relay({AMC_OK: f"https://127.0.0.1:{fake_amc.port}"})
    statuses: list[int] = []
    closing: list[str] = []
    refused: list[int] = []
    failures: list[str] = []

    def client(worker: int) -> None:
        n = 0
        while True:
            try:
                connection = SoapClient(relay.port, hospital_a)
            except OSError:
                refused.append(worker)
                return
            while True:
                n += 1
                try:
                    answer = connection.post(idb(exchange_id=f"drain-{worker}-{n}"))
                except ConnectionRefusedError:  # http.client connects on first use
                    refused.append(worker)
                    return
                except OSError as exc:  # sent on an open connection and not answered
                    failures.append(repr(exc))
                    return
                statuses.append(answer.status)
                if answer.headers.get("connection") == "close":
                    closing.append(answer.headers["x-roc-echange"])
                    connection.close()
                    break

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(fake_amc.received) < 8 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert relay.twistd.process is not None
    relay.twistd.process.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(30)
    assert relay.twistd.process.wait(10) in (0, -signal.SIGTERM)
    assert failures == []
    assert statuses and set(statuses) == {200}, statuses
    assert len(fake_amc.received) == len(statuses)  # nothing lost, nothing sent twice
    assert closing, "answers during the drain should close their connection"
    assert sorted(refused) == [0, 1, 2, 3]
    assert "draining" in relay.twistd.log_text()


def test_a_resumed_tls_session_keeps_the_establishment_identity(
    start_relay: StartRelay, fake_amc: FakeAmc, hospital_a: ssl.SSLContext
) -> None:
    """Stateless session tickets: a returning client skips the full handshake, and the relay
    still knows its FINESS (from the certificate kept in the ticket)."""
    import http.client
    import socket

    fake_amc.behaviour.body = ANSWER
    relay = start_relay({AMC_OK: f"https://127.0.0.1:{fake_amc.port}"})

    def exchange(session: ssl.SSLSession | None) -> tuple[int, ssl.SSLSession | None, bool]:
        raw = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
        tls = hospital_a.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
        conn = http.client.HTTPSConnection("127.0.0.1", relay.port, context=hospital_a)
        conn.sock = tls
        conn.request("POST", "/roc", body=idb(), headers={"Content-Type": "text/xml"})
        status = conn.getresponse().status
        reused, kept = tls.session_reused, tls.session
        conn.close()
        return status, kept, reused

    status, session, reused = exchange(None)
    assert (status, reused) == (200, False)
    status, _, reused = exchange(session)
    assert (status, reused) == (200, True)
    assert len(fake_amc.received) == 2
