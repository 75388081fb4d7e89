"""Billing against the simulator as a real process: whole stays to a 578R and to a 908R, the
relay refusing the same invoice, and zeep and node-soap calling the billing service.

``twistd mutuelle`` and ``twistd rpn`` in front of it (``start_stack``); IDB, SIM, CLC and DEL
go through the relay, billing (``/roc/DRE``) straight to the simulator with hospital A's
certificate, as it reaches a real AMC outside the relay.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep
from lxml import etree

from mutuelle.billing import Invoice
from mutuelle.billing_codec import (
    invoice_element,
    read_arl,
    read_returns,
    returns_request_element,
)
from mutuelle.catalogue import Case, default_catalogue
from mutuelle.examples import billing_request, case_request, routing_for
from mutuelle.soap import read_envelope, request_headers
from roc.model import SERVICE_NS, Service, SoapVersion
from roc.routing import routing_block
from tests.integration.harness import SoapClient, client_context
from tests.integration.test_mutuelle_cases import Stack, _send, send_invoice, start_stack
from tests.integration.test_mutuelle_node_soap import CLIENTS, NODE, beneficiaire
from tools.devpki import HOSPITAL_A

CATALOGUE = default_catalogue()
AMC = "990000101"
SANDBOX = HOSPITAL_A["site"]
BILLING_WSDL = Path(__file__).resolve().parents[2] / "roc" / "schemas" / "roc-facturation.wsdl"
HEADERS = request_headers(Service.DRE, SoapVersion.SOAP11)


@pytest.fixture(scope="module")
def stack(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(pki, tmp_path_factory.mktemp("billing-stack"))
    yield started
    started.stop()


@pytest.fixture
def clients(stack: Stack, pki: Path) -> Iterator[tuple[SoapClient, SoapClient]]:
    """A client of the simulator itself and one of the relay, both hospital A."""
    stack.admin("POST", f"sandboxes/{SANDBOX}/reset")
    direct = SoapClient(stack.mutuelle_port, client_context(pki, "hospital-a"))
    relay = SoapClient(stack.relay_port, client_context(pki, "hospital-a"))
    yield direct, relay
    direct.close()
    relay.close()


def case(name: str, amc: str = AMC) -> Case:
    found = CATALOGUE.get(amc, name)
    assert found is not None
    return found


def body_of(answer: bytes) -> etree._Element:
    return read_envelope(answer, 1 << 20).body


def poll(direct: SoapClient, *acknowledged: str) -> list[Any]:
    document = billing_request(
        returns_request_element(acknowledged), AMC, case("DRE_OK_MCO_SEJOUR_COMPLET").version,
        str(uuid.uuid4()),
    )  # fmt: skip
    answer = direct.post(document, "/roc/DRE", HEADERS)
    assert answer.status == 200, answer.body[:300]
    return read_returns(body_of(answer.body))


def engagement_state(stack: Stack, number: str) -> dict[str, object]:
    status, summary = stack.admin("GET", f"sandboxes/{SANDBOX}")
    assert status == 200
    engagements = summary["engagements"]
    assert isinstance(engagements, dict)
    return engagements


def test_a_whole_stay_reaches_its_578r_and_the_engagement_is_paid(
    stack: Stack, clients: tuple[SoapClient, SoapClient]
) -> None:
    direct, relay = clients
    whole = case("DRE_OK_MCO_SEJOUR_COMPLET")
    status, body, number = send_invoice(direct, relay, whole)  # IDB, SIM, CLC, then DRE
    assert status == 200 and read_arl(body_of(body)) == ("00", "Facture reçue et acceptée")
    assert number is not None and number.startswith(f"ENG-{AMC}-")
    assert poll(direct) == []  # the AMC pays later
    assert engagement_state(stack, number).get("FACTURE", 0) >= 1
    # Two days later in the sandbox's time: the 578R.
    assert stack.admin("PUT", f"sandboxes/{SANDBOX}/clock", {"offset_days": 2})[0] == 200
    [paid] = poll(direct)
    expected = whole.expected_return
    assert expected is not None
    assert (paid.kind, paid.invoice_number, paid.engagement_number) == (
        "578R",
        whole.request.invoice_number,  # type: ignore[union-attr]
        number,
    )
    assert paid.full and paid.paid_cents == expected.paid_cents > 0
    assert poll(direct, paid.invoice_number) == []  # acknowledged: no longer listed
    assert engagement_state(stack, number).get("PAYE") == 1
    # A paid engagement cannot be cancelled: DEL through the relay answers 12.
    delete = case("DEL_OK_MCO_ANNULATION")
    assert isinstance(whole.request, Invoice)
    request = delete.request
    cancel = type(request)(whole.request.beneficiary, None, number, "ANNULATION_SEJOUR")  # type: ignore[call-arg]
    status, answer = _send(relay, type(delete)(delete.spec, AMC, None, cancel))
    root = etree.fromstring(answer)
    assert root.findtext(f".//{{{SERVICE_NS['DEL']}}}CodeRetour") == "12"
    # The journal holds the billing exchanges, with their conformance and the case played.
    status, journal = stack.admin("GET", f"sandboxes/{SANDBOX}/journal?limit=20")
    entries = journal["entries"]
    assert isinstance(entries, list)
    billing = [(e["service"], e["outcome"], e["case"]) for e in entries if e["service"] == "DRE"]
    assert billing[0] == ("DRE", "00", "DRE_OK_MCO_SEJOUR_COMPLET")
    assert all(e["conformance"]["conforming"] for e in entries if e["service"] == "DRE")


def test_a_whole_stay_billed_too_late_reaches_its_908r(
    stack: Stack, clients: tuple[SoapClient, SoapClient]
) -> None:
    """IDB, SIM and CLC through the relay; 91 days pass in the sandbox; the invoice is
    accepted (ARL 00), then rejected by a 908R: after the billing deadline."""
    direct, relay = clients
    whole = case("DRE_OK_MCO_SEJOUR_COMPLET")

    def later(number: str) -> None:
        assert stack.admin("PUT", f"sandboxes/{SANDBOX}/clock", {"offset_days": 91})[0] == 200

    status, body, number = send_invoice(direct, relay, whole, later)
    assert (status, read_arl(body_of(body))[0]) == (200, "00")
    assert poll(direct) == []
    status, released = stack.admin("POST", f"sandboxes/{SANDBOX}/returns")  # produce now
    assert status == 200 and released["released"] == 1
    [rejected] = poll(direct)
    assert (rejected.kind, rejected.rejection_code, rejected.engagement_number) == (
        "908R",
        "R03",
        number,
    )
    assert rejected.rejection_label == "Facture reçue après le délai de facturation"
    assert engagement_state(stack, str(number)).get("REJETE") == 1
    # The same invoice number again: a negative ARL.
    invoice = whole.request
    assert isinstance(invoice, Invoice) and number is not None
    again = billing_request(
        invoice_element(dataclasses.replace(invoice, engagement_number=number)),
        AMC,
        whole.version,
        str(uuid.uuid4()),
    )
    answer = direct.post(again, "/roc/DRE", HEADERS)
    assert read_arl(body_of(answer.body)) == ("32", "Facture refusée : numéro de facture déjà reçu")


def test_a_cancelled_engagement_is_rejected_and_a_bad_invoice_gets_a_negative_arl(
    stack: Stack, clients: tuple[SoapClient, SoapClient]
) -> None:
    direct, relay = clients
    cancelled = case("DRE_KO_MCO_ENGAGEMENT_ANNULE")
    status, body, _ = send_invoice(direct, relay, cancelled)
    assert (status, read_arl(body_of(body))[0]) == (200, "00")
    stack.admin("POST", f"sandboxes/{SANDBOX}/returns")
    [rejected] = poll(direct)
    assert (rejected.kind, rejected.rejection_code) == ("908R", "R01")
    assert isinstance(cancelled.request, Invoice)
    broken = invoice_element(cancelled.request)
    broken.remove(broken[1])  # no NumeroEngagement
    document = billing_request(broken, AMC, cancelled.version, str(uuid.uuid4()))
    answer = direct.post(document, "/roc/DRE", HEADERS)
    assert answer.status == 200
    code, _label = read_arl(body_of(answer.body))
    assert code == "30" and b"NumeroEngagement" in answer.body
    status, conformance = stack.admin("GET", f"sandboxes/{SANDBOX}/conformance")
    assert conformance["non_conforming"] == 1


def test_the_relay_refuses_the_same_invoice_with_its_documented_code(
    clients: tuple[SoapClient, SoapClient],
) -> None:
    _direct, relay = clients
    paid = case("DRE_OK_MCO_PAIEMENT_INTEGRAL")
    document = case_request(paid, str(uuid.uuid4()))
    answer = relay.post(document, "/roc", HEADERS)
    assert answer.status == 400
    codes = etree.fromstring(answer.body).xpath(
        "//*[local-name()='ErreurRPN']/*[local-name()='Code']/text()"
    )
    assert codes == ["RPN-400-DRE"]
    assert paid.request.beneficiary.nir.encode() not in answer.body


def _routage(played: Case) -> dict[str, Any]:
    return {
        "Service": "DRE",
        "VersionROC": played.version.value,
        "AMC": {"Numero": played.amc_number, "TypeConvention": "TP", "CritereSecondaire": "01"},
        "Emetteur": {
            "FinessJuridique": HOSPITAL_A["legal"],
            "FinessGeographique": HOSPITAL_A["site"],
        },
        "IdentifiantEchange": str(uuid.uuid4()),
    }


def _invoice_arguments(invoice: Invoice) -> dict[str, Any]:
    return {
        "NumeroFacture": invoice.invoice_number,
        "NumeroEngagement": invoice.engagement_number,
        "Beneficiaire": beneficiaire(invoice),  # type: ignore[arg-type]
        "Sejour": {
            "ReferenceSejour": invoice.reference,
            "DateDebut": invoice.start.isoformat(),
            "DateFin": invoice.end.isoformat(),
        },
        "Lignes": {
            "Ligne": [
                {
                    "NumeroLigne": line.number,
                    "Code": line.code.value,
                    "MontantAMC": f"{line.amount_cents // 100}.{line.amount_cents % 100:02d}",
                }
                for line in invoice.lines
            ]
        },
    }


def test_zeep_calls_the_billing_service_from_its_wsdl(
    stack: Stack, pki: Path, clients: tuple[SoapClient, SoapClient]
) -> None:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pki / "ca.pem")
    session.cert = (str(pki / "hospital-a.pem"), str(pki / "hospital-a.key"))
    client = zeep.Client(str(BILLING_WSDL), transport=zeep.Transport(session=session))
    service = client.create_service(
        "{urn:piano:roc:facturation:wsdl:v1}FacturationSoap12Binding",
        f"https://127.0.0.1:{stack.mutuelle_port}/roc/DRE",
    )
    partial = case("DRE_OK_MCO_PAIEMENT_PARTIEL")
    assert isinstance(partial.request, Invoice)
    arguments = _invoice_arguments(partial.request)
    arguments["Beneficiaire"]["DateNaissance"] = partial.request.beneficiary.birth_date
    arl = service.DRE(**arguments, _soapheaders={"routage": _routage(partial)})
    assert (arl.CodeRetour, arl.NumeroFacture) == ("00", partial.request.invoice_number)
    assert stack.admin("POST", f"sandboxes/{SANDBOX}/returns")[0] == 200
    answer = service.Retours(_soapheaders={"routage": _routage(partial)})
    [paid] = answer.Retour
    expected = partial.expected_return
    assert expected is not None
    assert paid.Type == "578R" and paid.Paiement.Integral is False
    assert str(paid.Paiement.MontantPaye) == f"{expected.paid_cents / 100:.2f}"
    assert paid.Paiement.LignePayee[0].Motif == "E1"
    acknowledged = service.Retours(
        Acquitter={"NumeroFacture": [paid.NumeroFacture]},
        _soapheaders={"routage": _routage(partial)},
    )
    assert acknowledged.Acquittes == 1 and not acknowledged.Retour


def test_node_soap_calls_the_billing_service_from_its_wsdl(
    stack: Stack, pki: Path, clients: tuple[SoapClient, SoapClient]
) -> None:
    if NODE is None:
        pytest.fail("node is required (the Node.js SOAP client; make test-integration runs npm ci)")
    if not (CLIENTS / "node_modules" / "soap").is_dir():
        pytest.fail("node-soap missing: run `npm ci --prefix tests/integration/soap_clients`")
    played = case("DRE_OK_PSY_PAIEMENT_INTEGRAL")
    unknown = case("DRE_KO_MCO_ENGAGEMENT_INCONNU")
    assert isinstance(played.request, Invoice) and isinstance(unknown.request, Invoice)
    url = f"https://127.0.0.1:{stack.mutuelle_port}/roc/DRE"

    def routage(c: Case) -> str:
        return etree.tostring(routing_block(routing_for(c, str(uuid.uuid4())))).decode()

    def call(operation: str, c: Case, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "operation": operation,
            "port": "DRE_Soap11",
            "url": url,
            "routage": routage(c),
            "args": args,
        }

    spec = {
        "wsdl": str(BILLING_WSDL),
        "ca": str(pki / "ca.pem"),
        "cert": str(pki / "hospital-a.pem"),
        "key": str(pki / "hospital-a.key"),
        "calls": [
            call("DRE", played, _invoice_arguments(played.request)),
            call("DRE", unknown, _invoice_arguments(unknown.request)),
        ],
    }
    done = subprocess.run(
        [NODE, str(CLIENTS / "roc_client.js")],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=CLIENTS,
    )
    assert done.returncode == 0, done.stderr
    accepted, refused = (json.loads(line) for line in done.stdout.splitlines())
    assert accepted["ok"] and accepted["result"]["CodeRetour"] == "00", accepted
    assert refused["ok"] and refused["result"]["CodeRetour"] == "31", refused
    assert stack.admin("POST", f"sandboxes/{SANDBOX}/returns")[1]["released"] == 1
    spec["calls"] = [call("Retours", played, {})]
    done = subprocess.run(
        [NODE, str(CLIENTS / "roc_client.js")],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=CLIENTS,
    )
    assert done.returncode == 0, done.stderr
    (listed,) = (json.loads(line) for line in done.stdout.splitlines())
    assert listed["ok"], listed
    retour = listed["result"]["Retour"]
    retour = retour[0] if isinstance(retour, list) else retour
    assert retour["Type"] == "578R" and retour["Paiement"]["Integral"] in (True, "true")
