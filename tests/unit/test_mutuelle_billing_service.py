"""The billing service on the simulator (``/roc/DRE``): a stay from CLC to its 578R or 908R,
negative ARLs, returns after the sandbox's delay, acknowledgement, journal and DEL after."""

from __future__ import annotations

import dataclasses
import datetime

from lxml import etree

from mutuelle import testing
from mutuelle.admin import AdminApi
from mutuelle.billing import RETURN_DELAY, Invoice, invoice_for
from mutuelle.billing_codec import (
    DRE_NS,
    invoice_element,
    read_arl,
    read_returns,
    returns_request_element,
)
from mutuelle.care import CareRequest
from mutuelle.care_codec import read_care_answer
from mutuelle.catalogue import Case
from mutuelle.examples import billing_request, case_request
from mutuelle.sandbox import MemoryStore
from mutuelle.simulator import Simulator
from mutuelle.soap import request_headers
from piano.testing import StrictClock
from roc.model import SERVICE_NS, RocVersion, Service, SoapVersion
from tests.deferreds import success_result_of

DATA, CATALOGUE = testing.shipped()
AMC = "990000101"
HOSPITAL = "990000028"
CONTENT_TYPE = request_headers(Service.DRE, SoapVersion.SOAP11)["Content-Type"]


def case(name: str) -> Case:
    found = CATALOGUE.get(AMC, name)
    assert found is not None
    return found


def post(simulator: Simulator, service: str, body: bytes) -> tuple[int, etree._Element]:
    reply = simulator.handle(service, "POST", CONTENT_TYPE, None, body, HOSPITAL)
    root = etree.fromstring(reply.body)
    answer = root.find(".//{http://schemas.xmlsoap.org/soap/envelope/}Body")
    assert answer is not None
    return reply.status, answer[0]


def engaged(simulator: Simulator) -> tuple[CareRequest, Invoice]:
    """A CLC accepted in the sandbox, and the invoice matching it."""
    clc = case("CLC_OK_MCO_ENGAGEMENT")
    status, answer = post(simulator, "CLC", case_request(clc, "clc-1"))
    code, _label, statement, number = read_care_answer(answer, "CLC")
    assert (status, code) == (200, "00") and statement is not None and number is not None
    assert isinstance(clc.request, CareRequest)
    return clc.request, invoice_for(clc.request, statement, number, "FAC-2026-0001")


def send_invoice(simulator: Simulator, invoice: Invoice) -> tuple[str, str]:
    body = billing_request(invoice_element(invoice), AMC, RocVersion.V2, "dre-1")
    status, answer = post(simulator, "DRE", body)
    assert status == 200
    return read_arl(answer)


def poll(simulator: Simulator, *acknowledged: str) -> list:  # type: ignore[type-arg]
    body = billing_request(returns_request_element(acknowledged), AMC, RocVersion.V2, "ret-1")
    status, answer = post(simulator, "DRE", body)
    assert status == 200
    return read_returns(answer)


def at_stay_end(days: int) -> StrictClock:
    request = case("CLC_OK_MCO_ENGAGEMENT").request
    assert isinstance(request, CareRequest)
    clock = StrictClock()
    moment = datetime.datetime.combine(request.end, datetime.time(9), datetime.UTC)
    clock.advance(moment.timestamp() + days * 86400)
    return clock


def test_a_whole_stay_is_paid_in_full_after_the_delay_and_cannot_be_cancelled() -> None:
    clock = at_stay_end(5)
    simulator = testing.simulator(clock=clock)
    _request, invoice = engaged(simulator)
    assert send_invoice(simulator, invoice) == ("00", "Facture reçue et acceptée")
    assert poll(simulator) == []  # the AMC has not paid yet
    clock.advance(RETURN_DELAY.total_seconds())
    [paid] = poll(simulator)
    assert paid.kind == "578R" and paid.full and paid.paid_cents == invoice.total_cents
    assert paid.invoice_number == "FAC-2026-0001"
    sandbox = simulator.sandboxes.get(HOSPITAL)
    assert sandbox.engagement(invoice.engagement_number).state.value == "PAYE"  # type: ignore[union-attr]
    assert [r.invoice_number for r in poll(simulator)] == ["FAC-2026-0001"]  # until acknowledged
    assert poll(simulator, "FAC-2026-0001") == []
    # DEL on a paid engagement: 12, as on a billed one
    del_case = dataclasses.replace(
        case("DEL_OK_MCO_ANNULATION"),
        request=dataclasses.replace(
            case("DEL_OK_MCO_ANNULATION").request,  # type: ignore[arg-type]
            beneficiary=invoice.beneficiary,
            member_number=None,
            engagement_number=invoice.engagement_number,
        ),
    )
    _status, answer = post(simulator, "DEL", case_request(del_case, "del-1"))
    assert answer.findtext(f"{{{SERVICE_NS['DEL']}}}CodeRetour") == "12"
    journal = [(e.service, e.outcome) for e in sandbox.journal]
    assert journal[:3] == [("CLC", "00"), ("DRE", "00"), ("DRE", "00")]


def test_an_invoice_asking_more_is_paid_partially_line_by_line() -> None:
    clock = at_stay_end(5)
    simulator = testing.simulator(clock=clock)
    _request, invoice = engaged(simulator)
    more = dataclasses.replace(
        invoice,
        lines=(
            dataclasses.replace(
                invoice.lines[0], amount_cents=invoice.lines[0].amount_cents + 1234
            ),
            *invoice.lines[1:],
        ),
    )
    assert send_invoice(simulator, more)[0] == "00"
    sandbox = simulator.sandboxes.get(HOSPITAL)
    assert sandbox.engagement(invoice.engagement_number).state.value == "FACTURE"  # type: ignore[union-attr]
    assert poll(simulator) == []
    api = AdminApi(MemoryStore(simulator.sandboxes))  # "produce returns now"
    status, answer = success_result_of(
        api.handle("POST", ["sandboxes", HOSPITAL, "returns"], {}, None)
    )
    assert status == 200 and answer["released"] == 1
    assert (answer["billing_returns"]["pending"], answer["billing_returns"]["due"]) == (0, 1)
    [paid] = poll(simulator)
    assert paid.kind == "578R" and not paid.full
    assert paid.asked_cents - paid.paid_cents == 1234
    assert paid.lines[0][2] == "E1" and all(line[2] == "" for line in paid.lines[1:])


def test_negative_arls_name_the_reason_and_keep_nothing() -> None:
    simulator = testing.simulator(clock=at_stay_end(5))
    _request, invoice = engaged(simulator)
    unknown = dataclasses.replace(invoice, engagement_number="ENG-990000101-999999")
    assert send_invoice(simulator, unknown)[0] == "31"
    assert send_invoice(simulator, invoice)[0] == "00"
    assert send_invoice(simulator, invoice)[0] == "32"  # same invoice number
    again = dataclasses.replace(invoice, invoice_number="FAC-2026-0002")
    assert send_invoice(simulator, again)[0] == "33"  # the engagement is billed already
    broken = invoice_element(invoice)
    amount = broken.find(f".//{{{DRE_NS}}}MontantAMC")
    assert amount is not None
    amount.text = "12.345"
    status, answer = post(simulator, "DRE", billing_request(broken, AMC, RocVersion.V2, "x"))
    assert status == 200 and read_arl(answer)[0] == "30"
    anomaly = answer.findtext(f"{{{DRE_NS}}}Anomalie") or ""
    assert "MontantAMC" in anomaly and "12.345" not in anomaly
    sandbox = simulator.sandboxes.get(HOSPITAL)
    entry = list(sandbox.journal)[-1]
    assert entry.service == "DRE" and entry.outcome == "30" and entry.violations
    assert sandbox.conformance_summary()["non_conforming"] == 1


def test_an_invoice_after_the_deadline_is_rejected_by_a_908r() -> None:
    clock = at_stay_end(10)
    simulator = testing.simulator(clock=clock)
    _request, invoice = engaged(simulator)
    clock.advance(90 * 86400 + 1)  # 90 days after the CLC, and a second
    assert send_invoice(simulator, invoice)[0] == "00"
    clock.advance(RETURN_DELAY.total_seconds())
    [rejected] = poll(simulator)
    assert (rejected.kind, rejected.rejection_code) == ("908R", "R03")
    assert rejected.rejection_label == "Facture reçue après le délai de facturation"
    sandbox = simulator.sandboxes.get(HOSPITAL)
    assert sandbox.engagement(invoice.engagement_number).state.value == "REJETE"  # type: ignore[union-attr]


def test_an_invoice_breaking_a_format_rule_gets_a_negative_arl_naming_it() -> None:
    simulator = testing.simulator(clock=at_stay_end(5))
    _request, invoice = engaged(simulator)
    twice = dataclasses.replace(
        invoice, end=invoice.start - datetime.timedelta(days=1), lines=invoice.lines[:1] * 2
    )
    body = billing_request(invoice_element(twice), AMC, RocVersion.V2, "x")
    status, answer = post(simulator, "DRE", body)
    assert status == 200 and read_arl(answer)[0] == "30"
    anomalies = [a.text or "" for a in answer.iterfind(f"{{{DRE_NS}}}Anomalie")]
    assert [a.split("[")[1].split("]")[0] for a in anomalies] == ["PERIODE", "LIGNES_UNIQUES"]
    sandbox = simulator.sandboxes.get(HOSPITAL)
    assert sandbox.engagement(invoice.engagement_number).state.value == "ACTIF"  # type: ignore[union-attr]
    assert {v.rule for v in list(sandbox.journal)[-1].violations} == {"PERIODE", "LIGNES_UNIQUES"}
