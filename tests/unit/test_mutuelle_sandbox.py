"""Sandboxes: coherence across calls (IDB -> CLC -> DEL), isolation, clock, journal, admin API."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pytest
from lxml import etree

from mutuelle import sandbox as sandbox_module
from mutuelle import testing
from mutuelle.admin import AdminApi
from mutuelle.care import CareLine, CareRequest, LineCode
from mutuelle.catalogue import Case
from mutuelle.decisions import DelRequest
from mutuelle.engagements import Engagement
from mutuelle.examples import case_request
from mutuelle.idb import IdbRequest
from mutuelle.sandbox import (
    CANCELLATION_WINDOW,
    DelOutcome,
    Identification,
    MemoryStore,
    Sandbox,
    Sandboxes,
    cancellation,
)
from mutuelle.server import admin_site
from mutuelle.simulator import Simulator
from mutuelle.soap import request_headers
from piano.testing import StrictClock, StrictMemoryReactorClock
from roc.model import SERVICE_NS, Service, SoapVersion
from tests.deferreds import success_result_of

DATA, CATALOGUE = testing.shipped()
D = datetime.date
AMC = "990000101"
HOSPITAL_A = "990000028"
HOSPITAL_B = "990000036"


def case(name: str) -> Case:
    found = CATALOGUE.get(AMC, name)
    assert found is not None
    return found


def send(
    simulator: Simulator,
    played: Case,
    establishment: str | None = HOSPITAL_A,
    request: IdbRequest | CareRequest | DelRequest | None = None,
) -> tuple[int, str, etree._Element]:
    """Play *played* (optionally with another request) as *establishment*; status, code, body."""
    if request is not None:
        played = dataclasses.replace(played, request=request)
    service = played.service
    reply = simulator.handle(
        service.value,
        "POST",
        request_headers(service, SoapVersion.SOAP11)["Content-Type"],
        None,
        case_request(played, "t-1"),
        establishment,
    )
    root = etree.fromstring(reply.body)
    code = root.findtext(f".//{{{SERVICE_NS[service.value]}}}CodeRetour") or ""
    return reply.status, code, root


def fresh(clock: StrictClock | None = None) -> Simulator:
    return testing.simulator(clock=clock or StrictClock())


def test_idb_then_clc_then_del_then_del_again() -> None:
    simulator = fresh()
    clc = case("CLC_KO_MCO_SANS_IDB_PREALABLE")
    assert send(simulator, clc)[1] == "07"  # no IDB yet
    assert isinstance(clc.request, CareRequest)
    idb_request = clc.request.rights_question
    idb = case("IDB_OK_MCO_DROITS_OUVERTS")
    assert send(simulator, idb, request=idb_request)[1] == "00"
    status, code, body = send(simulator, clc)
    assert (status, code) == (200, "00")
    number = body.findtext(f".//{{{SERVICE_NS['CLC']}}}NumeroEngagement")
    assert number and number.startswith(f"ENG-{AMC}-")
    # Sent again as is (a retry after a lost answer): the same engagement, not a second one.
    status, code, again = send(simulator, clc)
    assert (code, again.findtext(f".//{{{SERVICE_NS['CLC']}}}NumeroEngagement")) == ("00", number)
    # Another request for the same stay: 09, with the engagement to carry on with or cancel.
    changed = dataclasses.replace(clc.request, lines=clc.request.lines[:2])
    status, code, existing = send(simulator, clc, request=changed)
    assert (code, existing.findtext(f".//{{{SERVICE_NS['CLC']}}}NumeroEngagement")) == (
        "09",
        number,
    )
    assert existing.findtext(f".//{{{SERVICE_NS['CLC']}}}Total/{{{SERVICE_NS['CLC']}}}PartAMC") == (
        body.findtext(f".//{{{SERVICE_NS['CLC']}}}Total/{{{SERVICE_NS['CLC']}}}PartAMC")
    )
    cancel = DelRequest(clc.request.beneficiary, None, number, "ERREUR_SAISIE")
    delete = case("DEL_OK_MCO_ANNULATION")
    assert send(simulator, delete, request=cancel)[1] == "00"
    assert send(simulator, delete, request=cancel)[1] == "11"
    status, code, renewed = send(simulator, clc, request=changed)  # cancelled: a new CLC
    assert code == "00"
    assert renewed.findtext(f".//{{{SERVICE_NS['CLC']}}}NumeroEngagement") not in (None, number)


def test_an_engagement_overlapping_another_stay_is_refused_with_its_own_code() -> None:
    simulator = fresh()
    clc = case("CLC_OK_MCO_ENGAGEMENT")
    assert isinstance(clc.request, CareRequest)
    assert send(simulator, clc)[1] == "00"
    later = dataclasses.replace(clc.request, reference="SEJ-2026-000124")
    assert send(simulator, clc, request=later)[1] == "13"  # same days, another stay
    sandbox = simulator.sandboxes.find(HOSPITAL_A)
    assert sandbox is not None
    sandbox.identify(
        Identification(AMC, later.beneficiary, later.start, D(2026, 3, 10), later.sector)
    )
    transfer = dataclasses.replace(
        later,
        start=clc.request.end,
        end=D(2026, 3, 10),
        lines=(CareLine(1, LineCode.PJ, 4, 100000, 100000),),
    )
    assert send(simulator, clc, request=transfer)[1] == "00"  # starts the day the other ends


def test_an_engagement_is_only_cancellable_by_its_beneficiary() -> None:
    simulator = fresh()
    engaged = case("CLC_KO_MCO_ENGAGEMENT_EXISTANT")
    other = case("DEL_OK_MCO_ANNULATION")
    assert other.beneficiary is not None and engaged.engagement_number is not None
    stolen = DelRequest(
        other.request.beneficiary, None, engaged.engagement_number, "CHANGEMENT_AMC"
    )
    assert send(simulator, other, request=stolen)[1] == "10"


def test_an_engagement_older_than_the_window_is_no_longer_cancellable() -> None:
    clock = StrictClock()
    sandbox = Sandbox(HOSPITAL_A, clock, CATALOGUE.sandbox_seed())
    key = case("CLC_OK_MCO_ENGAGEMENT").request.beneficiary
    engagement = sandbox.engage(Engagement("", AMC, key, "SEJ-9", 1000, None))
    clock.advance(CANCELLATION_WINDOW.total_seconds() + 1)
    assert sandbox.cancel(AMC, key, engagement.number).code == "12"
    sandbox.clock_offset = -2.0
    assert sandbox.cancel(AMC, key, engagement.number).code == "00"


def test_two_establishments_never_see_each_others_state() -> None:
    simulator = fresh()
    delete = case("DEL_OK_MCO_ANNULATION")
    assert send(simulator, delete, HOSPITAL_A)[1] == "00"
    assert send(simulator, delete, HOSPITAL_A)[1] == "11"
    assert send(simulator, delete, HOSPITAL_B)[1] == "00"  # B's seeded engagement untouched
    a = simulator.sandboxes.find(HOSPITAL_A)
    b = simulator.sandboxes.find(HOSPITAL_B)
    assert a is not None and b is not None
    assert len(a.journal) == 2 and len(b.journal) == 1
    a.reset()
    assert send(simulator, delete, HOSPITAL_A)[1] == "00"


def test_the_journal_holds_codes_and_conformance_never_personal_data() -> None:
    simulator = fresh()
    played = case("SIM_OK_MCO_PRISE_EN_CHARGE_TOTALE")
    send(simulator, played)
    sandbox = simulator.sandboxes.find(HOSPITAL_A)
    assert sandbox is not None
    (entry,) = [e.as_dict() for e in sandbox.journal]
    assert entry["service"] == "SIM" and entry["outcome"] == "00"
    assert entry["case"] == "SIM_OK_MCO_PRISE_EN_CHARGE_TOTALE"
    assert entry["conformance"] == {"conforming": True, "violations": []}
    text = json.dumps(sandbox.summary()) + json.dumps(entry)
    assert played.beneficiary is not None
    assert played.beneficiary.nir not in text and played.beneficiary.last_name not in text


def test_sandboxes_are_bounded() -> None:
    sandboxes = Sandboxes(StrictClock(), CATALOGUE.sandbox_seed(), max_sandboxes=2)
    for finess in ("990000010", "990000028", "990000036"):
        sandboxes.get(finess)
    assert [s.finess for s in sandboxes] == ["990000028", "990000036"]


# -- Admin API ---------------------------------------------------------------------------------


class _Admin:
    """The admin API over the simulator's sandboxes in memory, its answers read at once."""

    def __init__(self, simulator: Simulator) -> None:
        self.api = AdminApi(MemoryStore(simulator.sandboxes))

    def handle(self, method: str, segments: list[str], query: dict[str, str], body: Any) -> Any:
        return success_result_of(self.api.handle(method, segments, query, body))


def admin(simulator: Simulator) -> _Admin:
    return _Admin(simulator)


def test_admin_lists_reads_and_resets_a_sandbox() -> None:
    simulator = fresh()
    api = admin(simulator)
    send(simulator, case("DEL_OK_MCO_ANNULATION"))
    status, listing = api.handle("GET", ["sandboxes"], {}, None)
    assert status == 200 and [s["finess"] for s in listing["sandboxes"]] == [HOSPITAL_A]
    status, journal = api.handle("GET", ["sandboxes", HOSPITAL_A, "journal"], {}, None)
    assert [e["outcome"] for e in journal["entries"]] == ["00"]
    assert api.handle("POST", ["sandboxes", HOSPITAL_A, "reset"], {}, None)[0] == 200
    assert api.handle("GET", ["sandboxes", HOSPITAL_A, "journal"], {}, None)[1]["entries"] == []
    assert send(simulator, case("DEL_OK_MCO_ANNULATION"))[1] == "00"
    assert api.handle("GET", ["sandboxes", "990000044"], {}, None)[0] == 404
    assert api.handle("GET", ["sandboxes", "not-finess"], {}, None)[0] == 400


def test_admin_seeds_identifications_and_engagements() -> None:
    simulator = fresh()
    api = admin(simulator)
    clc = case("CLC_KO_MCO_SANS_IDB_PREALABLE")
    assert isinstance(clc.request, CareRequest)
    key = clc.request.beneficiary
    person = {
        "amc": AMC,
        "nir": key.nir,
        "birth_date": key.birth_date.isoformat(),
        "birth_rank": key.birth_rank,
    }
    body = {
        "identifications": [
            {**person, "start": "2026-03-01", "end": "2026-03-31", "sector": "MCO"}
        ],
        "engagements": [{**person, "number": "ENG-SEED-1", "state": "FACTURE"}],
    }
    status, summary = api.handle("POST", ["sandboxes", HOSPITAL_A, "seed"], {}, body)
    assert status == 200 and summary["engagements"]["FACTURE"] >= 1
    assert key.nir not in json.dumps(summary)
    assert send(simulator, clc)[1] == "00"
    cancel = DelRequest(key, None, "ENG-SEED-1", "ERREUR_SAISIE")
    assert send(simulator, case("DEL_OK_MCO_ANNULATION"), request=cancel)[1] == "12"
    bad = {"identifications": [{**person, "nir": "123"}]}
    status, error = api.handle("POST", ["sandboxes", HOSPITAL_A, "seed"], {}, bad)
    assert status == 400 and error["error"].startswith("identifications[0].nir")


def test_admin_switches_a_fault_and_moves_the_clock() -> None:
    simulator = fresh()
    api = admin(simulator)
    status, _ = api.handle("PUT", ["sandboxes", HOSPITAL_A, "fault"], {}, {"fault": "HTTP_503"})
    assert status == 200
    assert send(simulator, case("IDB_OK_MCO_DROITS_OUVERTS"), HOSPITAL_A)[0] == 503
    assert send(simulator, case("IDB_OK_MCO_DROITS_OUVERTS"), HOSPITAL_B)[0] == 200
    api.handle("DELETE", ["sandboxes", HOSPITAL_A, "fault"], {}, None)
    assert send(simulator, case("IDB_OK_MCO_DROITS_OUVERTS"), HOSPITAL_A)[0] == 200
    assert api.handle("PUT", ["sandboxes", HOSPITAL_A, "fault"], {}, {"fault": "X"})[0] == 400
    status, summary = api.handle("PUT", ["sandboxes", HOSPITAL_A, "clock"], {}, {"offset_days": 31})
    assert status == 200 and summary["clock_offset_seconds"] == 31 * 86400
    assert send(simulator, case("DEL_OK_MCO_ANNULATION"))[1] == "12"  # beyond the window


@pytest.mark.parametrize("service", [Service.SIM, Service.CLC, Service.DEL])
def test_a_technical_fault_case_changes_no_state(service: Service) -> None:
    simulator = fresh()
    fault_case = case("IDB_KO_MCO_FAUTE_HTTP_500")
    template = {
        Service.SIM: "SIM_OK_MCO_PRISE_EN_CHARGE_TOTALE",
        Service.CLC: "CLC_OK_MCO_ENGAGEMENT",
        Service.DEL: "DEL_OK_MCO_ANNULATION",
    }[service]
    played = case(template)
    request = dataclasses.replace(played.request, beneficiary=fault_case.request.beneficiary)
    reply_status = send(simulator, played, request=request)[0]
    assert reply_status == 500
    sandbox = simulator.sandboxes.find(HOSPITAL_A)
    assert sandbox is not None
    assert sandbox.engagements == {e.number: e for e in CATALOGUE.sandbox_seed().engagements}


def test_admin_api_is_served_as_json_on_the_admin_site() -> None:
    simulator = fresh()
    send(simulator, case("DEL_OK_MCO_ANNULATION"))
    site = admin_site(StrictMemoryReactorClock(), admin(simulator).api)
    reply = testing.request(site, f"/__admin/sandboxes/{HOSPITAL_A}/journal?limit=1", method="GET")
    assert reply.status == 200 and reply.content_type == "application/json"
    assert json.loads(reply.body)["entries"][0]["outcome"] == "00"
    body = b'{"fault": "SOAP_FAULT"}'
    reply = testing.request(site, f"/__admin/sandboxes/{HOSPITAL_A}/fault", body, method="PUT")
    assert json.loads(reply.body)["technical_fault"] == "SOAP_FAULT"
    reply = testing.request(site, f"/__admin/sandboxes/{HOSPITAL_A}/seed", b"{", method="POST")
    assert reply.status == 400
    assert testing.request(site, "/__admin/nothing", method="GET").status == 404
    assert testing.request(site, "/healthz", method="GET").status == 200


def test_a_sandbox_keeps_a_bounded_number_of_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_module, "MAX_RECORDS", 50)
    sandbox = Sandbox(HOSPITAL_A, StrictClock(), CATALOGUE.sandbox_seed())
    key = case("CLC_OK_MCO_ENGAGEMENT").request.beneficiary
    for index in range(200):
        sandbox.engage(Engagement("", AMC, key, f"SEJ-{index}", 100, None))
    assert len(sandbox.engagements) == 50
    assert f"ENG-{AMC}-000200" in sandbox.engagements


def test_a_lost_clc_answer_still_recorded_the_engagement() -> None:
    """CONNEXION_COUPEE comes after processing: the retry gets the same engagement back."""
    simulator = fresh()
    lost = case("IDB_KO_MCO_FAUTE_CONNEXION_COUPEE")
    template = case("CLC_OK_MCO_ENGAGEMENT")
    assert isinstance(template.request, CareRequest)
    request = dataclasses.replace(
        template.request, beneficiary=lost.request.beneficiary, member_number=None
    )
    idb = dataclasses.replace(lost.request, start=request.start, end=request.end)
    assert send(simulator, lost, request=idb)[1] == "00"  # answer cut, rights recorded
    assert send(simulator, template, request=request)[1] == "00"  # engagement recorded
    sandbox = simulator.sandboxes.find(HOSPITAL_A)
    assert sandbox is not None
    recorded = sandbox.active_engagement_for(AMC, request.beneficiary, request.reference)
    assert recorded is not None
    _status, code, body = send(simulator, template, request=request)
    assert (code, body.findtext(f".//{{{SERVICE_NS['CLC']}}}NumeroEngagement")) == (
        "00",
        recorded.number,
    )
    assert len(sandbox.engagements) == len(CATALOGUE.sandbox_seed().engagements) + 1


def _journal_of_raw(document: bytes, service: Service = Service.IDB) -> dict[str, object]:
    simulator = fresh()
    reply = simulator.handle(
        service.value,
        "POST",
        request_headers(service, SoapVersion.SOAP11)["Content-Type"],
        None,
        document,
        HOSPITAL_A,
    )
    assert reply.status == 400, reply.body
    sandbox = simulator.sandboxes.find(HOSPITAL_A)
    assert sandbox is not None
    (entry,) = [e.as_dict() for e in sandbox.journal]
    summary = sandbox.conformance_summary()
    assert summary["conforming"] == 0 and summary["non_conforming"] == 1, summary
    return entry


def test_every_refused_request_is_journaled_non_conforming_with_its_rule() -> None:
    played = case("IDB_OK_MCO_DROITS_OUVERTS")
    assert played.beneficiary is not None
    nir = played.beneficiary.nir.encode()
    document = case_request(played, "t-1")
    wrong_key = nir[:13] + (b"01" if nir[13:] != b"01" else b"02")
    entry = _journal_of_raw(document.replace(nir, wrong_key))
    assert entry["outcome"] == "MUT-400-DEMANDE"
    assert entry["conformance"] == {
        "conforming": False,
        "violations": [
            {
                "champ": "DemandeIDB/Beneficiaire/NIR",
                "regle": "MUT-400-DEMANDE",
                "raison": "la clé du NIR est fausse",
            }
        ],
    }
    assert nir.decode() not in json.dumps(entry) and wrong_key.decode() not in json.dumps(entry)


@pytest.mark.parametrize(
    ("old", "new", "rule", "field"),
    [
        (b"<rt:VersionROC>V1<", b"<rt:VersionROC>V9<", "MUT-400-ROUTAGE", "Routage/VersionROC"),
        (b"<soap:Body>", b"<soap:Body><x/>", "MUT-400-SOAP", "message"),
    ],
)
def test_refusals_at_every_stage_are_journaled_non_conforming(
    old: bytes, new: bytes, rule: str, field: str
) -> None:
    document = case_request(case("IDB_OK_MCO_DROITS_OUVERTS"), "t-1")
    assert old in document
    entry = _journal_of_raw(document.replace(old, new))
    conformance = entry["conformance"]
    assert isinstance(conformance, dict) and conformance["conforming"] is False
    (violation,) = conformance["violations"]
    assert violation["regle"] == rule and violation["champ"] == field


def test_del_decides_the_same_way_for_every_store() -> None:
    from mutuelle.engagements import Engagement, EngagementState
    from mutuelle.model import BeneficiaryKey

    person = BeneficiaryKey("185079999900189", D(1985, 7, 1), 1)
    other = BeneficiaryKey("185079999900189", D(1990, 1, 1), 1)
    window = CANCELLATION_WINDOW.total_seconds()
    made = Engagement("E1", AMC, person, "SEJ-1", 1000, created=1_000.0)
    assert cancellation(None, AMC, person, 1_000.0, 0.0) is DelOutcome.UNKNOWN
    assert cancellation(made, AMC, other, 1_000.0, 0.0) is DelOutcome.UNKNOWN
    assert cancellation(made, "990000202", person, 1_000.0, 0.0) is DelOutcome.UNKNOWN
    assert cancellation(made, AMC, person, 1_000.0 + window, 0.0) is DelOutcome.CANCELLED
    assert cancellation(made, AMC, person, 1_001.0 + window, 0.0) is DelOutcome.EXPIRED
    cancelled = dataclasses.replace(made, state=EngagementState.CANCELLED)
    assert cancellation(cancelled, AMC, person, 0.0, 0.0) is DelOutcome.ALREADY_CANCELLED
    for settled in (EngagementState.BILLED, EngagementState.PAID, EngagementState.REJECTED):
        billed = dataclasses.replace(made, state=settled)
        assert cancellation(billed, AMC, person, 0.0, 0.0) is DelOutcome.BILLED
    # A seeded engagement counts its age from the sandbox's reset.
    seeded = dataclasses.replace(made, created=None, age_at_reset=window)
    assert cancellation(seeded, AMC, person, 500.0, 500.0) is DelOutcome.CANCELLED
    assert cancellation(seeded, AMC, person, 501.0, 500.0) is DelOutcome.EXPIRED
