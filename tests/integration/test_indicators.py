"""Indicators end to end: simulator, two relays, a real Prometheus, the indicators service and
a headless Chromium; the counts each establishment reads are exactly the exchanges it sent, each
in the class of who must act, and the agency reads the anomaly the traffic provokes."""

from __future__ import annotations

import datetime
import json
import re
import ssl
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from lxml import html

from indicators.testing import progress_document
from mutuelle.catalogue import default_catalogue
from mutuelle.examples import case_request
from rpn.outcomes import classify_answer
from tests.integration.conftest import RelayProcess, StartRelay
from tests.integration.harness import ROOT, SoapClient, Twistd, client_context, free_port
from tests.integration.indicators_stack import (
    ClientCertificateForwarder,
    IndicatorsProcess,
    Prometheus,
    StaticHttpServer,
    chromium_dom,
    require,
    start_indicators,
    write_agency_identity,
)
from tests.integration.test_with_mutuelle import start_mutuelle
from tools.devpki import HOSPITAL_A, HOSPITAL_B

A, B = HOSPITAL_A["site"], HOSPITAL_B["site"]
UNREACHABLE = "990000404"
#: Faults the relay answers for the refusals this test provokes, and their outcome.
RELAY_FAULTS = {
    "RPN-403-EMETTEUR": "rejected",
    "RPN-405-METHODE": "rejected",
    "RPN-415-TYPE": "rejected",
    "RPN-503-AMC-INDISPONIBLE": "amc_unavailable",
}
CLASS_OF = {"ok": "ok", "refused": "refused", "rejected": "rejected", "invalid_request": "invalid"}
DAY = 86400
TODAY = int(time.time()) // DAY * DAY  # the day's start, UTC, as the registration's `since`
#: Where each FINESS stands (contract B): hospital A went live today (under watch), hospital B
#: is in qualification since ten days; its site plays the suite, its legal entity never did.
LIFECYCLES = {
    HOSPITAL_A["legal"]: (HOSPITAL_A["legal"], "production_sous_surveillance", TODAY),
    A: (HOSPITAL_A["legal"], "production_sous_surveillance", TODAY),
    HOSPITAL_B["legal"]: (HOSPITAL_B["legal"], "qualification", TODAY - 10 * DAY),
    B: (HOSPITAL_B["legal"], "qualification", TODAY - 10 * DAY),
}
B_STEPS = ["passed", "passed", "passed", "failed"] + ["not_played"] * 5


def registration() -> dict[str, dict[str, object]]:
    """The relays' registration with the states of ``LIFECYCLES`` (what the relays export).

    The unreachable AMC counts as one of Mutuelle ANS's, so that hospital B, in
    qualification, still reaches it and sees it fail."""

    def day(when: int) -> str:
        return datetime.datetime.fromtimestamp(when, datetime.UTC).date().isoformat()

    entities = []
    for hospital in (HOSPITAL_A, HOSPITAL_B):
        _, state, since = LIFECYCLES[hospital["legal"]]
        entities.append(
            {
                "finess": hospital["legal"],
                "sites": [hospital["site"]],
                "state": state,
                "since": day(since),
                "sectors": ["MCO"],
            }
        )
    return {
        "establishments": {"legal_entities": entities},
        "lifecycle": {"simulated_amcs": ["990000101", UNREACHABLE], "watch_days": 30},
    }


def qualification_progress(path: str) -> tuple[int, str, bytes]:
    """Mutuelle ANS's progress answers (contract C). A stand-in served from contract-C JSON:
    the lead's end-to-end test plays the suite against the real Mutuelle ANS instead."""
    url = urllib.parse.urlsplit(path)
    parts = url.path.split("/")  # /__admin/sandboxes/<FINESS>/qualification
    finess = parts[3] if len(parts) == 5 and parts[4] == "qualification" else ""
    sectors = urllib.parse.parse_qs(url.query).get("sectors", [""])[0].split(",")
    now = datetime.datetime.now(datetime.UTC)
    played = now.isoformat(timespec="seconds")
    # B's site passed its three steps before B went (back) into qualification: stuck since.
    long_ago = (now - datetime.timedelta(days=11)).isoformat(timespec="seconds")
    documents = {
        B: progress_document(B, B_STEPS, sectors, long_ago),
        HOSPITAL_B["legal"]: progress_document(HOSPITAL_B["legal"], ["not_played"] * 9, sectors),
        A: progress_document(A, ["passed"] * 9, sectors, played),
    }
    if finess not in documents:
        answer = {"error": f"bac à sable {finess} inconnu"}
        return 404, "application/json", json.dumps(answer, ensure_ascii=False).encode()
    return 200, "application/json", json.dumps(documents[finess]).encode()


def example(name: str, sender: dict[str, str] = HOSPITAL_A, amc: str = "990000101") -> bytes:
    """An example request from examples/, sent by *sender* to *amc*."""
    body = (ROOT / "examples" / name).read_bytes()
    body = body.replace(b">990000010<", f">{sender['legal']}<".encode())
    body = body.replace(b">990000028<", f">{sender['site']}<".encode())
    return body.replace(b"<rt:Numero>990000101<", f"<rt:Numero>{amc}<".encode())


def invalid_request(sender: dict[str, str]) -> bytes:
    """A request the simulator refuses as invalid (MUT-400-DEMANDE): a birth date that is no
    date."""
    body = example("idb-droits-ouverts.xml", sender)
    return body.replace(b">1980-03-21<", b">1980-13-45<")


def truncated_answer_request(sender: dict[str, str]) -> bytes:
    """The simulator's case whose answer stops half-way (XML_TRONQUE)."""
    case = next(
        c
        for c in default_catalogue().technical
        if c.name == "IDB_KO_MCO_FAUTE_XML_TRONQUE" and c.amc_number == "990000101"
    )
    body = case_request(case, str(uuid.uuid4()))
    body = body.replace(b">990000010<", f">{sender['legal']}<".encode())
    return body.replace(b">990000028<", f">{sender['site']}<".encode())


class Traffic:
    """What was sent and what each establishment should read: from the answers received."""

    def __init__(self, pki: Path) -> None:
        self.pki = pki
        self.outcomes: Counter[tuple[str, str, str]] = Counter()  # (finess, service, outcome)
        self.codes: Counter[tuple[str, str]] = Counter()

    def send(
        self,
        relay: RelayProcess,
        identity: str,
        finess: str,
        service: str,
        body: bytes,
        method: str = "POST",
        content_type: str = "text/xml; charset=utf-8",
    ) -> str:
        """Send *body*; returns the code the answer carries (the one the relay records)."""
        client = SoapClient(relay.port, client_context(self.pki, identity))
        try:
            answer = client.post(body, method=method, headers={"Content-Type": content_type})
        finally:
            client.close()
        fault = re.search(rb"RPN-\d{3}-[A-Z-]+", answer.body)
        if fault is not None:
            code = fault.group().decode()
            outcome = RELAY_FAULTS[code]
        else:
            verdict = classify_answer(answer.status, answer.body)
            code, outcome = verdict.code, verdict.outcome.label
        self.outcomes[(finess, service, outcome)] += 1
        if code:
            self.codes[(finess, code)] += 1
        return code

    def classes(self, finess: str) -> Counter[str]:
        found: Counter[str] = Counter()
        for (f, _, outcome), n in self.outcomes.items():
            if f == finess:
                found[CLASS_OF.get(outcome, "technical")] += n
        return found

    def by_service(self, finess: str) -> Counter[str]:
        found: Counter[str] = Counter()
        for (f, service, _), n in self.outcomes.items():
            if f == finess:
                found[service] += n
        return found


@pytest.fixture
def stack(
    start_relay: StartRelay, pki: Path, tmp_path: Path
) -> Iterator[
    tuple[list[RelayProcess], Prometheus, IndicatorsProcess, Traffic, Path, StaticHttpServer]
]:
    require("prometheus")
    require("chromium")
    started: list[Twistd] = []
    progress = StaticHttpServer(qualification_progress).__enter__()
    (tmp_path / "mutuelle").mkdir()
    mutuelle, mutuelle_port = start_mutuelle(pki, tmp_path / "mutuelle")
    started.append(mutuelle)
    prometheus: Prometheus | None = None
    try:
        amcs = {
            "990000101": f"https://127.0.0.1:{mutuelle_port}",
            UNREACHABLE: f"https://127.0.0.1:{free_port()}",
        }
        relays = [start_relay(amcs, tables=registration()) for _ in range(2)]
        (tmp_path / "prometheus").mkdir()
        prometheus = Prometheus(
            tmp_path / "prometheus",
            [f"127.0.0.1:{r.admin_port}" for r in relays],
        ).start()
        (tmp_path / "indicators").mkdir()
        agency = write_agency_identity(pki, tmp_path / "indicators")
        indicators = start_indicators(
            pki,
            tmp_path / "indicators",
            prometheus.url,
            agency,
            f"http://{progress.address}/__admin",
        )
        started.append(indicators.twistd)
        yield relays, prometheus, indicators, Traffic(pki), tmp_path / "indicators", progress
    finally:
        for twistd in reversed(started):
            twistd.stop()
        if prometheus is not None:
            prometheus.stop()
        progress.__exit__()


def wait_for_totals(
    indicators: IndicatorsProcess, identity: str, finess: str, expected: int, pki: Path
) -> dict[str, object]:
    """The establishment's JSON once Prometheus scraped and the service read all its traffic."""
    deadline = time.monotonic() + 30
    document: dict[str, object] = {}
    status, body = 0, b""
    while time.monotonic() < deadline:
        status, body = indicators.get(
            f"/establishments/{finess}.json", client_context(pki, identity)
        )
        if status == 200:
            document = json.loads(body)
            totals = document["totals"]
            assert isinstance(totals, dict)
            if totals["all"] == expected:
                return document
        time.sleep(0.5)
    raise AssertionError(
        f"{finess}: never read {expected} exchanges; last answer {status} {body[:2000]!r}\n"
        f"{indicators.twistd.log_text()}"
    )


def wait_for_anomaly(
    indicators: IndicatorsProcess, agency: ssl.SSLContext, finess: str, anomaly: str
) -> dict[str, object]:
    """The agency's JSON once Prometheus' rules raised *anomaly* for *finess*."""
    deadline = time.monotonic() + 60
    document: dict[str, object] = {}
    while time.monotonic() < deadline:
        status, body = indicators.get("/agency.json", agency)
        if status == 200:
            document = json.loads(body)
            found = document["anomalies"]
            assert isinstance(found, list)
            if any(a["finess"] == finess and a["anomaly"] == anomaly for a in found):
                return document
        time.sleep(0.5)
    raise AssertionError(f"no {anomaly} anomaly for {finess}: {document.get('anomalies')}")


def wait_for_watch_alert(
    indicators: IndicatorsProcess, pki: Path, identity: str, finess: str, anomaly: str
) -> dict[str, Any]:
    """The establishment's raccordement (JSON) once a watch rule raised *anomaly* for it."""
    deadline = time.monotonic() + 60
    found: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = indicators.get(
            f"/establishments/{finess}.json", client_context(pki, identity)
        )
        if status == 200:
            found = json.loads(body)["raccordement"] or {}
            watch = found.get("watch") or {}
            if any(a["anomaly"] == anomaly for a in watch.get("alerts", ())):
                return found
        time.sleep(0.5)
    raise AssertionError(f"no {anomaly} watch alert for {finess}: {found}")


def test_each_establishment_reads_exactly_its_own_exchanges_and_only_its_own_page(
    stack: tuple[
        list[RelayProcess], Prometheus, IndicatorsProcess, Traffic, Path, StaticHttpServer
    ],
    pki: Path,
) -> None:
    (relay1, relay2), prometheus, indicators, traffic, directory, progress = stack
    ouverts, inconnu = "idb-droits-ouverts.xml", "idb-beneficiaire-inconnu.xml"
    fermes = "idb-droits-fermes.xml"
    # Hospital A, through both relay processes.
    for relay, name in (
        (relay1, ouverts),
        (relay1, ouverts),
        (relay1, inconnu),
        (relay2, ouverts),
        (relay2, fermes),
    ):
        traffic.send(relay, "hospital-a", A, "IDB", example(name))
    traffic.send(relay1, "hospital-a", A, "CLC", example("clc.xml"))
    traffic.send(relay1, "hospital-a", A, "IDB", example(ouverts, sender=HOSPITAL_B))  # not A's
    # A truncated answer that still holds <CodeRetour>00: the AMC's technical error.
    truncated = traffic.send(relay2, "hospital-a", A, "IDB", truncated_answer_request(HOSPITAL_A))
    assert truncated == "AMC-REPONSE-ILLISIBLE"
    # Early refusals with A's valid certificate: a GET, and a body that is not SOAP.
    assert traffic.send(relay1, "hospital-a", A, "unknown", b"", method="GET") == "RPN-405-METHODE"
    assert (
        traffic.send(relay1, "hospital-a", A, "unknown", b"{}", content_type="application/json")
        == "RPN-415-TYPE"
    )
    # Hospital B, through both relay processes, one exchange to an AMC that does not answer,
    # and one request the AMC refuses as invalid: the establishment's to fix.
    for relay, name in ((relay2, ouverts), (relay2, inconnu), (relay2, inconnu), (relay1, fermes)):
        traffic.send(relay, "hospital-b", B, "IDB", example(name, sender=HOSPITAL_B))
    traffic.send(relay2, "hospital-b", B, "IDB", example(ouverts, HOSPITAL_B, UNREACHABLE))
    assert traffic.send(relay1, "hospital-b", B, "IDB", invalid_request(HOSPITAL_B)) == (
        "MUT-400-DEMANDE"
    )
    expected_a, expected_b = traffic.classes(A), traffic.classes(B)
    assert expected_a["ok"] >= 3 and expected_a["refused"] == 2 and expected_a["rejected"] == 3
    assert expected_a["technical"] == 1
    assert expected_b["ok"] == 1 and expected_b["refused"] == 3 and expected_b["technical"] == 1
    assert expected_b["invalid"] == 1

    for identity, finess, expected in (
        ("hospital-a", A, expected_a),
        ("hospital-b", B, expected_b),
    ):
        document = wait_for_totals(indicators, identity, finess, sum(expected.values()), pki)
        totals = document["totals"]
        assert isinstance(totals, dict)
        for cls in ("ok", "refused", "invalid", "technical", "rejected", "abandoned"):
            assert totals[cls] == expected[cls], (finess, cls, totals)
        by_service = document["by_service"]
        assert isinstance(by_service, dict)
        for service, n in traffic.by_service(finess).items():
            assert sum(by_service[service].values()) == n, (finess, service, by_service)
        daily = document["daily"]
        assert isinstance(daily, list)
        assert sum(day.get("IDB", 0) for day in daily) == traffic.by_service(finess)["IDB"]
        codes: Counter[str] = Counter()
        for row in document["codes"]:  # type: ignore[attr-defined]
            codes[row["code"]] += row["count"]
        assert codes == {c: n for (f, c), n in traffic.codes.items() if f == finess}
        figures = document["indicators"]
        assert isinstance(figures, dict)
        assert figures["exchanges"]["value"] == sum(expected.values())
        assert figures["success_rate"]["value"] == pytest.approx(
            expected["ok"] / sum(expected.values())
        )
        # Two establishments only: fewer than the minimum, so no position among peers.
        assert figures["exchanges"]["peers"] == 2
        assert not figures["success_rate"]["compared"]
        cert = x509.load_pem_x509_certificate((pki / f"{identity}.pem").read_bytes())
        certificate = document["certificate"]
        assert isinstance(certificate, dict)
        assert datetime.datetime.fromisoformat(certificate["expiry"]) == cert.not_valid_after_utc
        assert certificate["expiry"].endswith(("+01:00", "+02:00"))  # Paris time
        assert document["last_success"] is not None
        # The HTML page shows the same counts.
        status, page = indicators.get(f"/establishments/{finess}", client_context(pki, identity))
        assert status == 200
        tree = html.fromstring(page)
        assert tree.xpath("string(//tr[@id='totals']/td[@data-class='all']/@data-count)") == str(
            sum(expected.values())
        )

    # Neither establishment may read the other's page, in any format; refused JSON is JSON.
    for identity, other in (("hospital-a", B), ("hospital-b", A)):
        for suffix in ("", ".json", ".csv"):
            status, body = indicators.get(
                f"/establishments/{other}{suffix}", client_context(pki, identity)
            )
            assert status == 403, (identity, other, suffix)
            assert other.encode() not in body
            if suffix == ".json":
                assert json.loads(body)["error"]["status"] == 403
        assert indicators.get("/agency.json", client_context(pki, identity))[0] == 403

    # The agency sees both, with the same counts; a FINESS never seen is told so.
    agency = client_context(directory, "agency", ca=str(pki / "ca.pem"))
    status, body = indicators.get("/agency.json", agency)
    assert status == 200
    listed = {e["finess"]: e["totals"]["all"] for e in json.loads(body)["establishments"]}
    assert listed == {A: sum(expected_a.values()), B: sum(expected_b.values())}
    status, body = indicators.get(f"/establishments/{B}.csv", agency)
    assert status == 200 and body.startswith(b"finess,section,key")
    status, body = indicators.get("/establishments/990000999", agency)
    assert status == 404 and "n'est pas inscrit auprès des relais" in body.decode()
    # Hospital A's legal entity is registered but has sent nothing itself: an empty page, not
    # "unknown" (the relays export their registration).
    status, body = indicators.get(f"/establishments/{HOSPITAL_A['legal']}", agency)
    assert status == 200 and "n'est pas inscrit" not in body.decode(), body[:500]

    # A sudden rise of B's invalid requests: Prometheus' anomaly rule sees it within seconds
    # (pending: it confirms after 15 minutes) and the agency page lists it.
    assert traffic.send(relay2, "hospital-a", A, "IDB", invalid_request(HOSPITAL_A)) == (
        "MUT-400-DEMANDE"
    )
    time.sleep(3)  # the first invalid request was scraped: the rise counts from there
    for _ in range(8):
        traffic.send(relay1, "hospital-b", B, "IDB", invalid_request(HOSPITAL_B))
    for _ in range(4):
        traffic.send(relay2, "hospital-a", A, "IDB", invalid_request(HOSPITAL_A))
    document = wait_for_anomaly(indicators, agency, B, "invalid_requests")
    wait_for_totals(indicators, "hospital-b", B, sum(traffic.classes(B).values()), pki)
    document = wait_for_anomaly(indicators, agency, B, "invalid_requests")
    amcs = {a["amc"]: a for a in document["amcs"]}  # type: ignore[attr-defined]
    assert amcs[UNREACHABLE]["technical_errors"] == 1 and amcs[UNREACHABLE]["exchanges"] == 1
    assert amcs["990000101"]["name"] == "AMC 990000101"

    # A went live today (under watch): 4 invalid requests in the hour reach the watch's
    # threshold (3), not the usual rule's (5), so the tighter rule is pending within seconds and
    # A's page lists it.
    expected_a = traffic.classes(A)
    wait_for_totals(indicators, "hospital-a", A, sum(expected_a.values()), pki)
    raccordement_a = wait_for_watch_alert(
        indicators, pki, "hospital-a", A, "watch_invalid_requests"
    )
    assert raccordement_a["state"] == "production_sous_surveillance"
    assert raccordement_a["progress"]["qualified"] is True

    # A real browser renders A's page: charts and figures are there and match what A sent.
    with ClientCertificateForwarder(
        indicators.port, client_context(pki, "hospital-a")
    ) as forwarder:
        dom = chromium_dom(
            f"http://127.0.0.1:{forwarder.port}/establishments/{A}", directory / "chromium-profile"
        )
    tree = html.fromstring(dom)
    total_a = sum(expected_a.values())
    bars = tree.xpath("//svg[@id='daily-volume']//rect[@data-count]")
    assert sum(int(b.get("data-count")) for b in bars) == total_a
    segments = {
        s.get("data-class"): int(s.get("data-count"))
        for s in tree.xpath("//svg[@id='outcomes']/rect")
    }
    assert segments == {k: v for k, v in expected_a.items() if v}
    assert tree.xpath("//svg[@id='latency']//rect[@data-amc='990000101']")
    assert tree.xpath(
        "string(//tr[@data-indicator='exchanges']/td[contains(@class,'value')])"
    ) == str(total_a)
    assert tree.xpath("string(//span[@id='finess'])") == A
    assert tree.get("lang") == "fr"
    # Its raccordement: under watch since today, until 30 days later, today's exchanges in the
    # daily summary, the tighter rule's alert.
    today = datetime.datetime.fromtimestamp(TODAY, datetime.UTC)
    state = tree.xpath("string(//p[@id='state'])")
    assert f"Production sous surveillance depuis le {today:%d/%m/%Y} (aujourd'hui)" in state
    assert f"entité juridique {HOSPITAL_A['legal']}" in state
    ends = today + datetime.timedelta(days=29)
    assert f"jusqu'au {ends:%d/%m/%Y} inclus" in tree.xpath("string(//p[@id='watch-summary'])")
    watch_days = tree.xpath("//table[@id='watch-days']//tr[@data-day]")
    assert sum(int(d.get("data-exchanges")) for d in watch_days) == total_a
    assert tree.xpath("//ul[@id='watch-alerts']/li[@data-anomaly='watch_invalid_requests']")
    # Trend: today's point of the success and error rates, from A's own counts.
    today = tree.xpath("//svg[@id='daily-rates']/circle[contains(@class,'success')]")[-1]
    assert float(today.get("data-rate")) == pytest.approx(expected_a["ok"] / total_a, abs=1e-4)
    errors_today = tree.xpath("//svg[@id='daily-rates']/circle[contains(@class,'error')]")[-1]
    assert float(errors_today.get("data-rate")) == pytest.approx(
        (expected_a["invalid"] + expected_a["rejected"] + expected_a["technical"]) / total_a,
        abs=1e-4,
    )
    # Codes in French, with service, AMC and nature: 01 is a normal answer, not an error.
    unknown = tree.xpath("//table[@id='codes']//tr[@data-code='01']")[0]
    assert "Bénéficiaire inconnu" in unknown.text_content()
    assert unknown.get("data-kind") == "normal" and unknown.get("data-amc") == "990000101"
    garbled = tree.xpath("//table[@id='codes']//tr[@data-code='AMC-REPONSE-ILLISIBLE']")[0]
    assert "illisible" in garbled.text_content() and "erreur (AMC)" in garbled.text_content()
    for code in ("RPN-405-METHODE", "RPN-415-TYPE", "RPN-403-EMETTEUR"):
        refused = tree.xpath(f"//table[@id='codes']//tr[@data-code='{code}']")[0]
        assert "erreur (établissement)" in refused.text_content(), code
    # The truncated answer is a technical error of that AMC, named.
    alpha = tree.xpath("//table[@id='amc-errors']//tr[@data-amc='990000101']")[0]
    assert alpha.get("data-errors") == "1" and "AMC 990000101" in alpha.text_content()
    # Two peers: no position shown, and the page says why.
    assert not tree.xpath("//svg[contains(@class,'compare')]/circle")
    assert "minimum 5" in tree.xpath("string(//tr[@data-indicator='success_rate'])")

    # B's page in a browser: its invalid requests are its own to fix, its technical error the
    # unreachable AMC's.
    with ClientCertificateForwarder(
        indicators.port, client_context(pki, "hospital-b")
    ) as forwarder:
        dom = chromium_dom(
            f"http://127.0.0.1:{forwarder.port}/establishments/{B}", directory / "chromium-b"
        )
    tree = html.fromstring(dom)
    assert tree.xpath("string(//tr[@id='totals']/td[@data-class='invalid']/@data-count)") == "9"
    invalid = tree.xpath("//table[@id='codes']//tr[@data-code='MUT-400-DEMANDE']")[0]
    assert "erreur (établissement)" in invalid.text_content()
    unreachable = tree.xpath(f"//table[@id='amc-errors']//tr[@data-amc='{UNREACHABLE}']")[0]
    assert unreachable.get("data-errors") == "1"
    assert f"AMC {UNREACHABLE}" in unreachable.text_content()
    # The anomaly the agency follows for B is on B's own page too.
    assert tree.xpath("//ul[@id='anomalies']/li[@data-anomaly='invalid_requests']")
    # B is in qualification: what it may reach, and its progress read from Mutuelle ANS, each
    # step with its status, the failed one with what was wrong and what to change.
    assert tree.xpath("string(//p[@id='state']/@data-state)") == "qualification"
    assert "Qualification depuis le" in tree.xpath("string(//p[@id='state'])")
    assert "seules les AMC fictives de Mutuelle ANS sont joignables" in tree.xpath(
        "string(//p[@id='state-allows'])"
    )
    shown = tree.xpath("//div[@id='progress']")[0]
    assert (shown.get("data-passed"), shown.get("data-failed"), shown.get("data-total")) == (
        "3",
        "1",
        "9",
    )
    assert [r.get("data-status") for r in shown.xpath(".//tr[@data-step]")] == B_STEPS
    failed = shown.xpath(".//tr[@data-status='failed']")[0].text_content()
    assert "code 05 reçu au lieu de 00" in failed and "À corriger" in failed
    assert f"/__admin/sandboxes/{B}/qualification?sectors=MCO" in progress.requests

    # The agency's page in a browser: the anomaly with a link to B's page, the AMCs' health.
    with ClientCertificateForwarder(indicators.port, agency) as forwarder:
        dom = chromium_dom(f"http://127.0.0.1:{forwarder.port}/agency", directory / "chromium-ag")
    tree = html.fromstring(dom)
    row = tree.xpath(f"//table[@id='anomalies']//tr[@data-finess='{B}']")[0]
    assert row.get("data-anomaly") == "invalid_requests"
    assert row.get("data-state") in ("pending", "firing")
    assert row.xpath("string(td/a/@href)") == f"establishments/{B}"
    assert "Hausse soudaine des demandes refusées comme invalides" in row.text_content()
    assert tree.xpath(f"//table[@id='amc-health']//tr[@data-amc='{UNREACHABLE}']")
    assert tree.xpath("//table[@id='national']//td[@data-class='all']/@data-count") == [
        str(sum(traffic.classes(A).values()) + sum(traffic.classes(B).values()))
    ]
    assert tree.xpath("//svg[@id='daily-rates']/circle")
    # Every establishment's raccordement, B's first: in qualification for ten days without a
    # newly passed step. Then the promotion form.
    rows = tree.xpath("//table[@id='raccordements']//tr[@data-finess]")
    assert [r.get("data-finess") for r in rows[:2]] == [HOSPITAL_B["legal"], B]
    assert [r.get("data-stuck") for r in rows] == ["true", "true", "false", "false"]
    assert "aucune nouvelle étape réussie depuis 10 jours" in rows[1].text_content()
    by_finess = {r.get("data-finess"): r for r in rows}
    assert set(by_finess) == set(LIFECYCLES)
    assert by_finess[A].get("data-state") == "production_sous_surveillance"
    assert "3/9" in by_finess[B].text_content()
    assert "indisponible" in by_finess[HOSPITAL_A["legal"]].text_content()  # its 404
    assert tree.xpath("//form[@id='promotion']//select[@name='state']/option")
    # The form's answer: refused moves say why; an allowed one prints the command, with the
    # agent named by the agency certificate, and changes nothing.
    status, body = indicators.post_form(
        "/agency/promotion",
        agency,
        {"finess": HOSPITAL_B["legal"], "state": "production_sous_surveillance", "reason": "x"},
    )
    assert status == 409, body[:800]
    assert "Pas encore qualifiée : 3/9 étapes réussies ; étape à faire : « Étape 4 »" in (
        html.fromstring(body).xpath("string(//p[@id='refusal'])")
    )
    status, body = indicators.post_form(
        "/agency/promotion",
        agency,
        {"finess": HOSPITAL_A["legal"], "state": "production", "reason": "x"},
    )
    assert status == 409
    assert "La période de surveillance n'est pas terminée : elle dure jusqu'au" in (
        html.fromstring(body).xpath("string(//p[@id='refusal'])")
    )
    status, body = indicators.post_form(
        "/agency/promotion",
        agency,
        {"finess": HOSPITAL_B["legal"], "state": "suspendue", "reason": "Tests d'intégration"},
    )
    assert status == 200, body[:800]
    command = html.fromstring(body).xpath("string(//pre[@id='command'])")
    assert command == (
        "python -m rpn.lifecycle set --config /etc/piano/rpn.toml "
        f"--finess {HOSPITAL_B['legal']} --state suspendue --by 'ANS supervision ROC' "
        "--reason 'Tests d'\"'\"'intégration'"
    )
    assert (
        indicators.post_form("/agency/promotion", client_context(pki, "hospital-a"), {"finess": A})[
            0
        ]
        == 403
    )

    # Prometheus becomes unreachable: the pages keep the last reading and say it is stale.
    prometheus.stop()
    deadline = time.monotonic() + 30
    page = b""
    while time.monotonic() < deadline:
        status, page = indicators.get(f"/establishments/{A}", client_context(pki, "hospital-a"))
        if b'id="stale"' in page:
            break
        time.sleep(0.5)
    assert status == 200 and "Données non actualisées" in page.decode(), page[:500]
    stale = html.fromstring(page)
    assert stale.xpath("string(//tr[@id='totals']/td[@data-class='all']/@data-count)") == str(
        sum(traffic.classes(A).values())
    )
