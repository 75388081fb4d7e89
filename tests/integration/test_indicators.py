"""Indicators end to end: simulator, two relays, a real Prometheus, the indicators service and
a headless Chromium; the counts each establishment reads are exactly the exchanges it sent."""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from lxml import html

from rpn.outcomes import classify_answer
from tests.integration.conftest import RelayProcess, StartRelay
from tests.integration.harness import ROOT, SoapClient, Twistd, client_context, free_port
from tests.integration.indicators_stack import (
    ClientCertificateForwarder,
    IndicatorsProcess,
    Prometheus,
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
RELAY_FAULTS = {"RPN-403-EMETTEUR": "rejected", "RPN-503-AMC-INDISPONIBLE": "amc_unavailable"}
CLASS_OF = {"ok": "ok", "refused": "refused", "rejected": "rejected"}


def example(name: str, sender: dict[str, str] = HOSPITAL_A, amc: str = "990000101") -> bytes:
    """An example request from examples/, sent by *sender* to *amc*."""
    body = (ROOT / "examples" / name).read_bytes()
    body = body.replace(b">990000010<", f">{sender['legal']}<".encode())
    body = body.replace(b">990000028<", f">{sender['site']}<".encode())
    return body.replace(b"<rt:Numero>990000101<", f"<rt:Numero>{amc}<".encode())


class Traffic:
    """What was sent and what each establishment should read: from the answers received."""

    def __init__(self, pki: Path) -> None:
        self.pki = pki
        self.outcomes: Counter[tuple[str, str, str]] = Counter()  # (finess, service, outcome)
        self.codes: Counter[tuple[str, str]] = Counter()

    def send(
        self, relay: RelayProcess, identity: str, finess: str, service: str, body: bytes
    ) -> None:
        client = SoapClient(relay.port, client_context(self.pki, identity))
        try:
            answer = client.post(body)
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
) -> Iterator[tuple[list[RelayProcess], Prometheus, IndicatorsProcess, Traffic, Path]]:
    require("prometheus")
    require("chromium")
    started: list[Twistd] = []
    (tmp_path / "mutuelle").mkdir()
    mutuelle, mutuelle_port = start_mutuelle(pki, tmp_path / "mutuelle")
    started.append(mutuelle)
    prometheus: Prometheus | None = None
    try:
        amcs = {
            "990000101": f"https://127.0.0.1:{mutuelle_port}",
            UNREACHABLE: f"https://127.0.0.1:{free_port()}",
        }
        relays = [start_relay(amcs), start_relay(amcs)]
        (tmp_path / "prometheus").mkdir()
        prometheus = Prometheus(
            tmp_path / "prometheus", [f"127.0.0.1:{r.admin_port}" for r in relays]
        ).start()
        (tmp_path / "indicators").mkdir()
        agency = write_agency_identity(pki, tmp_path / "indicators")
        indicators = start_indicators(pki, tmp_path / "indicators", prometheus.url, agency)
        started.append(indicators.twistd)
        yield relays, prometheus, indicators, Traffic(pki), tmp_path / "indicators"
    finally:
        for twistd in reversed(started):
            twistd.stop()
        if prometheus is not None:
            prometheus.stop()


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


def test_each_establishment_reads_exactly_its_own_exchanges_and_only_its_own_page(
    stack: tuple[list[RelayProcess], Prometheus, IndicatorsProcess, Traffic, Path], pki: Path
) -> None:
    (relay1, relay2), _, indicators, traffic, directory = stack
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
    # Hospital B, through both relay processes, one exchange to an AMC that does not answer.
    for relay, name in ((relay2, ouverts), (relay2, inconnu), (relay2, inconnu), (relay1, fermes)):
        traffic.send(relay, "hospital-b", B, "IDB", example(name, sender=HOSPITAL_B))
    traffic.send(relay2, "hospital-b", B, "IDB", example(ouverts, HOSPITAL_B, UNREACHABLE))
    expected_a, expected_b = traffic.classes(A), traffic.classes(B)
    assert expected_a["ok"] >= 3 and expected_a["refused"] == 2 and expected_a["rejected"] == 1
    assert expected_b["ok"] == 1 and expected_b["refused"] == 3 and expected_b["technical"] == 1

    for identity, finess, expected in (
        ("hospital-a", A, expected_a),
        ("hospital-b", B, expected_b),
    ):
        document = wait_for_totals(indicators, identity, finess, sum(expected.values()), pki)
        totals = document["totals"]
        assert isinstance(totals, dict)
        for cls in ("ok", "refused", "technical", "rejected", "abandoned"):
            assert totals[cls] == expected[cls], (finess, cls, totals)
        by_service = document["by_service"]
        assert isinstance(by_service, dict)
        for service, n in traffic.by_service(finess).items():
            assert sum(by_service[service].values()) == n
        daily = document["daily"]
        assert isinstance(daily, list)
        assert sum(day.get("IDB", 0) for day in daily) == traffic.by_service(finess)["IDB"]
        codes = {c["code"]: c["count"] for c in document["top_codes"]}  # type: ignore[attr-defined]
        assert codes == {c: n for (f, c), n in traffic.codes.items() if f == finess and c != "00"}
        figures = document["indicators"]
        assert isinstance(figures, dict)
        assert figures["exchanges"]["value"] == sum(expected.values())
        assert figures["success_rate"]["value"] == pytest.approx(
            expected["ok"] / sum(expected.values())
        )
        assert figures["exchanges"]["peers"] == 2
        cert = x509.load_pem_x509_certificate((pki / f"{identity}.pem").read_bytes())
        assert document["certificate_expiry"] == cert.not_valid_after_utc.isoformat()
        assert document["last_success"] is not None
        # The HTML page shows the same counts.
        status, page = indicators.get(f"/establishments/{finess}", client_context(pki, identity))
        assert status == 200
        tree = html.fromstring(page)
        assert tree.xpath("string(//tr[@id='totals']/td[@data-class='all']/@data-count)") == str(
            sum(expected.values())
        )

    # Neither establishment may read the other's page, in any format.
    for identity, other in (("hospital-a", B), ("hospital-b", A)):
        for suffix in ("", ".json", ".csv"):
            status, body = indicators.get(
                f"/establishments/{other}{suffix}", client_context(pki, identity)
            )
            assert status == 403, (identity, other, suffix)
            assert other.encode() not in body
        assert indicators.get("/agency.json", client_context(pki, identity))[0] == 403

    # The agency sees both, with the same counts.
    agency = client_context(directory, "agency", ca=str(pki / "ca.pem"))
    status, body = indicators.get("/agency.json", agency)
    assert status == 200
    listed = {e["finess"]: e["totals"]["all"] for e in json.loads(body)["establishments"]}
    assert listed == {A: sum(expected_a.values()), B: sum(expected_b.values())}
    status, body = indicators.get(f"/establishments/{B}.csv", agency)
    assert status == 200 and body.startswith(b"finess,section,key")

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
    assert len(tree.xpath("//svg[contains(@class,'compare')]")) == 8
