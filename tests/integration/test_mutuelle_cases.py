"""Every catalogue case through the relay, sandboxes isolated, admin API: real processes, TLS.

One ``twistd mutuelle`` and one ``twistd rpn`` in front of it (static annuaire pointing at the
simulator) for the whole module; hospital A and hospital B of the test PKI send exchanges.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from lxml import etree

from mutuelle.billing import Invoice
from mutuelle.billing_codec import invoice_element
from mutuelle.care import euros
from mutuelle.catalogue import Case, default_catalogue
from mutuelle.examples import billing_request, case_request
from mutuelle.soap import request_headers
from mutuelle.specs import CaseSpec
from mutuelle.technical import TechnicalFault
from roc.model import SERVICE_NS, Service, SoapVersion
from tests.integration.harness import (
    SoapClient,
    Twistd,
    client_context,
    free_port,
    http_get,
    write_toml,
)
from tools.devpki import HOSPITAL_A, HOSPITAL_B, registration

CATALOGUE = default_catalogue()
#: The relay gives up on the AMC after this; DELAI_DEPASSE waits longer.
RELAY_TIMEOUT = 2.0
MUTUELLE_TIMEOUT_DELAY = 4.0
MUTUELLE_LATE_DELAY = 0.3
AMCS = ("990000101", "990000202", "990000303", "990000505")


@dataclass
class Stack:
    """Mutuelle ANS and a relay in front of it."""

    mutuelle: Twistd
    mutuelle_port: int
    mutuelle_admin: int
    plain_port: int
    relay: Twistd
    relay_port: int

    def admin(self, method: str, path: str, body: object = None) -> tuple[int, dict[str, object]]:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.mutuelle_admin, timeout=5)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, "/__admin/" + path, body=data)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def stop(self) -> None:
        self.relay.stop()
        self.mutuelle.stop()


def start_stack(pki: Path, directory: Path, relay_timeout: float = RELAY_TIMEOUT) -> Stack:
    """``twistd mutuelle`` (TLS, plain and admin listeners) and ``twistd rpn`` in front."""
    port, admin, plain = free_port(), free_port(), free_port()
    mutuelle_config = write_toml(
        directory / "mutuelle.toml",
        {
            "": {"public_url": f"https://127.0.0.1:{port}"},
            "listen": {"endpoint": f"tcp:{port}:interface=127.0.0.1"},
            "plain": {"endpoint": f"tcp:{plain}:interface=127.0.0.1"},
            "tls": {
                "certificate": pki / "mutuelle-server.pem",
                "private_key": pki / "mutuelle-server.key",
                "ca_certificates": [pki / "ca.pem"],
            },
            "admin": {"endpoint": f"tcp:{admin}:interface=127.0.0.1"},
            "faults": {
                "timeout_delay": MUTUELLE_TIMEOUT_DELAY,
                "late_delay": MUTUELLE_LATE_DELAY,
            },
        },
    )
    mutuelle = Twistd(
        "mutuelle", mutuelle_config, directory / "mutuelle.log", f"http://127.0.0.1:{admin}/healthz"
    ).start()
    relay_port, relay_admin = free_port(), free_port()
    lines = []
    for number in AMCS:
        lines += ["[[amc]]", f'number = "{number}"', f'name = "AMC {number}"', "[amc.endpoints]"]
        lines += [f'{s} = "https://127.0.0.1:{port}/roc/{s}"' for s in ("IDB", "SIM", "CLC", "DEL")]
    (directory / "annuaire.toml").write_text("\n".join(lines) + "\n")
    relay_config = write_toml(
        directory / "rpn.toml",
        {
            "listen": {"endpoint": f"tcp:{relay_port}:interface=127.0.0.1"},
            "tls": {
                "certificate": pki / "rpn-server.pem",
                "private_key": pki / "rpn-server.key",
                "ca_certificates": [pki / "ca.pem"],
            },
            "establishments": {"legal_entities": registration(HOSPITAL_A, HOSPITAL_B)},
            "annuaire": {"static_file": "annuaire.toml"},
            "upstream": {
                "certificate": pki / "rpn-client.pem",
                "private_key": pki / "rpn-client.key",
                "ca_certificates": [pki / "ca.pem"],
                "request_timeout": relay_timeout,
            },
            "upstream.breaker": {"failure_threshold": 10_000},
            "admin": {"endpoint": f"tcp:{relay_admin}:interface=127.0.0.1"},
        },
    )
    try:
        relay = Twistd(
            "rpn", relay_config, directory / "rpn.log", f"http://127.0.0.1:{relay_admin}/readyz"
        ).start()
    except Exception:
        mutuelle.stop()
        raise
    return Stack(mutuelle, port, admin, plain, relay, relay_port)


@pytest.fixture(scope="module")
def stack(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(pki, tmp_path_factory.mktemp("mutuelle-stack"))
    yield started
    started.stop()


def _send(client: SoapClient, case: Case, sender: dict[str, str] = HOSPITAL_A) -> tuple[int, bytes]:
    document = case_request(case, str(uuid.uuid4()))
    document = document.replace(
        b"<rt:FinessJuridique>990000010<", f"<rt:FinessJuridique>{sender['legal']}<".encode()
    ).replace(
        b"<rt:FinessGeographique>990000028<", f"<rt:FinessGeographique>{sender['site']}<".encode()
    )
    headers = request_headers(case.service, SoapVersion.SOAP11)
    answer = client.post(document, "/roc", headers)
    return answer.status, answer.body


def _code(case: Case, body: bytes) -> str:
    root = etree.fromstring(body)
    return root.findtext(f".//{{{SERVICE_NS[case.service.value]}}}CodeRetour") or ""


def _amounts(case: Case, body: bytes) -> tuple[str | None, str | None]:
    """The total AMC share and the NumeroEngagement an answer carries."""
    ns = SERVICE_NS[case.service.value]
    root = etree.fromstring(body)
    return (
        root.findtext(f".//{{{ns}}}Total/{{{ns}}}PartAMC"),
        root.findtext(f".//{{{ns}}}NumeroEngagement"),
    )


def _expected_amounts(case: Case) -> tuple[str | None, str | None]:
    statement = case.expected_statement
    amc = None if statement is None else euros(statement.total.amc)
    number = case.expected_engagement_number
    if number is None and case.service is Service.CLC and statement is not None:
        return amc, None  # a new engagement: its number is the sandbox's next
    return amc, number


#: What a client of the relay sees for each technical fault of the AMC: status and a marker.
THROUGH_RELAY = {
    TechnicalFault.TIMEOUT: (504, b"RPN-504"),
    TechnicalFault.RESET: (502, b"RPN-502"),
    TechnicalFault.TRUNCATED: (200, b"<soap:Envelope"),
    TechnicalFault.WRONG_NAMESPACE: (200, b"urn:piano:roc:autre:v0"),
    TechnicalFault.HTTP_500: (500, b"Internal Server Error"),
    TechnicalFault.HTTP_503: (503, b"Service Unavailable"),
    TechnicalFault.SOAP_FAULT: (500, b"MUT-500-SIMULE"),
    TechnicalFault.LATE: (200, b"<idb:CodeRetour>00</idb:CodeRetour>"),
}


def send_invoice(
    direct: SoapClient,
    relay: SoapClient,
    case: Case,
    meanwhile: Callable[[str], object] | None = None,
) -> tuple[int, bytes, str | None]:
    """A DRE case, sent straight to the simulator (billing is never relayed): a whole stay's
    IDB, SIM and CLC first, through the relay, the invoice then quoting the CLC's engagement.
    *meanwhile* runs between the CLC and the invoice, given the engagement number. The status
    and body of the ARL, and the engagement billed."""
    assert isinstance(case.request, Invoice)
    invoice = case.request
    for service, step in case.steps:
        status, body = _send(
            relay, dataclasses.replace(case, spec=_as(case, service), request=step)
        )
        assert status == 200, body[:300]
        if service is Service.CLC:
            number = etree.fromstring(body).findtext(f".//{{{SERVICE_NS['CLC']}}}NumeroEngagement")
            assert number is not None, body[:300]
            invoice = dataclasses.replace(invoice, engagement_number=number)
    if meanwhile is not None:
        meanwhile(invoice.engagement_number)
    document = billing_request(
        invoice_element(invoice), case.amc_number, case.version, str(uuid.uuid4())
    )
    answer = direct.post(document, "/roc/DRE", request_headers(Service.DRE, SoapVersion.SOAP11))
    return answer.status, answer.body, invoice.engagement_number


def _as(case: Case, service: Service) -> CaseSpec:
    """*case*'s specification, for a step of another service (routing block only)."""
    return dataclasses.replace(case.spec, service=service)


def test_every_catalogue_case_plays_through_the_relay(stack: Stack, pki: Path) -> None:
    """Business cases give their CodeRetour, technical ones their fault, on a fresh sandbox;
    billing cases (DRE) straight to the simulator, as billing never goes through the relay."""
    stack.admin("POST", f"sandboxes/{HOSPITAL_A['site']}/reset")
    client = SoapClient(stack.relay_port, client_context(pki, "hospital-a"))
    direct = SoapClient(stack.mutuelle_port, client_context(pki, "hospital-a"))
    wrong: list[tuple[object, ...]] = []
    for case in CATALOGUE:
        if case.service is Service.DRE:
            status, body, _ = send_invoice(direct, client, case)
        else:
            status, body = _send(client, case)
        if status != 200 or _code(case, body) != case.expected_code:
            wrong.append((case.amc_number, case.name, status, body[:300]))
        elif _expected_amounts(case) not in (_amounts(case, body), (_amounts(case, body)[0], None)):
            wrong.append((case.amc_number, case.name, status, _amounts(case, body)))
    assert wrong == []
    # One technical case per AMC with third-party payment, so each fault is played.
    for case in CATALOGUE.technical:
        if case.amc_number != "990000202":
            continue
        assert case.technical_fault is not None
        client.close()
        client = SoapClient(stack.relay_port, client_context(pki, "hospital-a"))
        started = time.monotonic()
        status, body = _send(client, case)
        elapsed = time.monotonic() - started
        expected_status, marker = THROUGH_RELAY[case.technical_fault]
        assert (status, marker in body) == (expected_status, True), (case.name, body[:300])
        if case.technical_fault is TechnicalFault.LATE:
            assert elapsed >= MUTUELLE_LATE_DELAY
        if case.technical_fault is TechnicalFault.TIMEOUT:
            assert RELAY_TIMEOUT - 0.5 <= elapsed < MUTUELLE_TIMEOUT_DELAY
    client.close()
    direct.close()
    status, journal = stack.admin("GET", f"sandboxes/{HOSPITAL_A['site']}/journal?limit=10000")
    assert status == 200
    entries = journal["entries"]
    assert isinstance(entries, list)
    assert {e["case"] for e in entries} >= {c.name for c in CATALOGUE}


def test_two_establishments_have_isolated_sandboxes(stack: Stack, pki: Path) -> None:
    delete = CATALOGUE.get("990000303", "DEL_OK_MCO_ANNULATION")
    assert delete is not None
    a = SoapClient(stack.relay_port, client_context(pki, "hospital-a"))
    b = SoapClient(stack.relay_port, client_context(pki, "hospital-b"))
    for finess in (HOSPITAL_A["site"], HOSPITAL_B["site"]):
        assert stack.admin("POST", f"sandboxes/{finess}/reset")[0] == 200
    assert _code(delete, _send(a, delete)[1]) == "00"
    assert _code(delete, _send(a, delete)[1]) == "11"  # A cancelled it
    assert _code(delete, _send(b, delete, HOSPITAL_B)[1]) == "00"  # B's own copy
    # A switches a fault on for itself: B does not see it.
    status, _ = stack.admin("PUT", f"sandboxes/{HOSPITAL_A['site']}/fault", {"fault": "HTTP_503"})
    assert status == 200
    assert _send(a, delete)[0] == 503
    assert _code(delete, _send(b, delete, HOSPITAL_B)[1]) == "11"
    stack.admin("DELETE", f"sandboxes/{HOSPITAL_A['site']}/fault")
    journals = {
        f: stack.admin("GET", f"sandboxes/{f}/journal")[1]["entries"]
        for f in (HOSPITAL_A["site"], HOSPITAL_B["site"])
    }
    assert [e["outcome"] for e in journals[HOSPITAL_A["site"]]] == ["00", "11", "FAUTE-HTTP_503"]
    assert [e["outcome"] for e in journals[HOSPITAL_B["site"]]] == ["00", "11"]
    a.close()
    b.close()
    # A hospital calling the simulator directly lands in its certificate's sandbox, whatever
    # header it sends.
    direct = SoapClient(stack.mutuelle_port, client_context(pki, "hospital-b"))
    headers = {"X-ROC-Emetteur-Finess": HOSPITAL_A["site"]}
    headers.update(request_headers(delete.service, SoapVersion.SOAP11))
    answer = direct.post(case_request(delete, "direct-1"), "/roc/DEL", headers)
    assert _code(delete, answer.body) == "11"
    direct.close()
    listing = stack.admin("GET", "sandboxes")[1]["sandboxes"]
    assert isinstance(listing, list)
    names = {s["finess"] for s in listing}
    assert {HOSPITAL_A["site"], HOSPITAL_B["site"]} <= names
    text = json.dumps(listing)
    assert delete.beneficiary is not None and delete.beneficiary.nir not in text


def test_the_logs_hold_no_personal_data(stack: Stack) -> None:
    log = stack.mutuelle.log_text() + stack.relay.log_text()
    status, _ = http_get(f"http://127.0.0.1:{stack.mutuelle_admin}/healthz")
    assert status == 200
    for case in CATALOGUE.all_cases[:30]:
        if case.beneficiary is not None:
            assert case.beneficiary.nir not in log
            assert case.beneficiary.last_name not in log


def test_a_clc_whose_answer_was_lost_is_sent_again_and_gets_the_same_engagement(
    stack: Stack, pki: Path
) -> None:
    """The connection drops mid-answer after the AMC recorded the engagement; the hospital
    retries and carries on with the same engagement, then cancels it."""
    site = HOSPITAL_A["site"]
    stack.admin("POST", f"sandboxes/{site}/reset")
    clc = CATALOGUE.get("990000101", "CLC_OK_MCO_ENGAGEMENT")
    assert clc is not None and clc.expected_statement is not None
    client = SoapClient(stack.relay_port, client_context(pki, "hospital-a"))
    before = stack.admin("GET", f"sandboxes/{site}")[1]["engagements"]
    assert stack.admin("PUT", f"sandboxes/{site}/fault", {"fault": "CONNEXION_COUPEE"})[0] == 200
    assert _send(client, clc)[0] == 502  # the relay saw the AMC's answer cut
    stack.admin("DELETE", f"sandboxes/{site}/fault")
    client.close()
    client = SoapClient(stack.relay_port, client_context(pki, "hospital-a"))
    status, body = _send(client, clc)
    amc, number = _amounts(clc, body)
    assert (status, _code(clc, body)) == (200, "00")
    assert amc == euros(clc.expected_statement.total.amc) and number is not None
    status, again = _send(client, clc)
    assert _amounts(clc, again) == (amc, number)  # still the same one
    after = stack.admin("GET", f"sandboxes/{site}")[1]["engagements"]
    assert isinstance(before, dict) and isinstance(after, dict)
    assert after.get("ACTIF", 0) == before.get("ACTIF", 0) + 1  # one engagement, not three
    overlapping = CATALOGUE.get("990000101", "CLC_KO_MCO_CHEVAUCHEMENT")
    assert overlapping is not None
    assert _code(overlapping, _send(client, overlapping)[1]) == "13"
    client.close()
