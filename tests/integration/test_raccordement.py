"""An establishment's path to production, end to end (docs/raccordement.md).

Real processes: Mutuelle ANS, the relay, a real AMC (the fake AMC, a real HTTPS server that is
not Mutuelle ANS), Prometheus scraping the relay, the indicators service, headless Chromium.
Hospital A starts in qualification: the real AMC is refused; it plays the qualification suite
(signed, through the relay; billing straight to Mutuelle ANS) with one step first failed, then
fixed; it is shown qualified; the agency's promotion form prints the audited command, which is
run as printed, and a reload applies it; it then reaches the real AMC. Its page and the agency's
are read in Chromium at each stage.
"""

from __future__ import annotations

import json
import re
import shlex
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from lxml import html

from mutuelle.catalogue import default_catalogue
from mutuelle.qualification import Step, step_request, suite_for
from roc.messages import Routing, envelope
from roc.signature import sign
from tests.integration.conftest import RelayProcess, StartRelay
from tests.integration.fake_amc import FakeAmc
from tests.integration.harness import (
    ROOT,
    SoapClient,
    Twistd,
    client_context,
)
from tests.integration.indicators_stack import (
    ClientCertificateForwarder,
    IndicatorsProcess,
    Prometheus,
    chromium_dom,
    require,
    start_indicators,
    write_agency_identity,
)
from tests.integration.test_with_mutuelle import run_mutuelle
from tools.devpki import HOSPITAL_A, HOSPITAL_B

REAL_AMC = "990000909"
SIMULATED = ["990000101", "990000202", "990000303", "990000505"]


def registration(state_a: str) -> list[dict[str, object]]:
    return [
        {
            "finess": HOSPITAL_A["legal"],
            "sites": [HOSPITAL_A["site"]],
            "state": state_a,
            "since": "2026-11-02",
            "sectors": ["MCO"],
        },
        {"finess": HOSPITAL_B["legal"], "sites": [HOSPITAL_B["site"]], "state": "production"},
    ]


def idb(amc: str) -> bytes:
    routing = Routing(
        "IDB", amc, HOSPITAL_A["legal"], HOSPITAL_A["site"], exchange_id=str(uuid.uuid4())
    )
    return envelope(routing, '<i:DemandeIDB xmlns:i="urn:piano:roc:idb:v1"/>')


def send(relay: RelayProcess, pki: Path, body: bytes) -> tuple[int, bytes]:
    client = SoapClient(relay.port, client_context(pki, "hospital-a"))
    try:
        answer = client.post(body)
    finally:
        client.close()
    return answer.status, answer.body


def wait_in_log(relay: RelayProcess, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = relay.twistd.log.read_text(errors="replace")
        if text in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never logged:\n{relay.twistd.log_text()}")


def start_mutuelle(pki: Path, directory: Path) -> tuple[Twistd, int, int]:
    """Mutuelle ANS checking signatures (policy report: served, violations journaled), its
    sandboxes in SQLite."""
    tables: dict[str, dict[str, object]] = {
        "signatures": {"policy": "report"},
        "storage": {"url": "sqlite:///" + str(directory / "sandboxes.sqlite")},
    }
    return run_mutuelle(pki, directory, tables=tables)


class Establishment:
    """Hospital A's software: plays the suite's steps, signed, through the relay (billing
    straight to Mutuelle ANS, as DRE-ES is not relayed)."""

    def __init__(self, pki: Path, relay: RelayProcess, mutuelle_port: int) -> None:
        self.pki = pki
        self.relay = relay
        self.mutuelle_port = mutuelle_port
        self.signer = ((pki / "hospital-a.pem").read_bytes(), (pki / "hospital-a.key").read_bytes())
        self.catalogue = default_catalogue()
        self.sent = 0

    def play(self, step: Step, drop: str = "") -> tuple[int, bytes]:
        """Send *step*'s request; *drop*: an element (``prefix:Name``) left out of it."""
        self.sent += 1
        body = step_request(
            step, self.catalogue, HOSPITAL_A["legal"], HOSPITAL_A["site"], f"qual-{self.sent}"
        )
        if drop:
            body, removed = re.subn(f"<{drop}>[^<]*</{drop}>".encode(), b"", body, count=1)
            assert removed == 1
        body = sign(body, *self.signer)
        port = self.relay.port if step.through_relay else self.mutuelle_port
        client = SoapClient(port, client_context(self.pki, "hospital-a"))
        try:
            answer = client.post(body, path=f"/roc/{step.service.value}")
        finally:
            client.close()
        return answer.status, answer.body


def progress_of(admin: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{admin}/__admin/sandboxes/{HOSPITAL_A['site']}/qualification"
    with urllib.request.urlopen(url + "?sectors=MCO", timeout=10) as answer:
        document: dict[str, Any] = json.load(answer)
        return document


def page(indicators: IndicatorsProcess, context: ssl.SSLContext, path: str, profile: Path) -> Any:
    """*path* as headless Chromium renders it, with *context*'s client certificate."""
    with ClientCertificateForwarder(indicators.port, context) as forwarder:
        return html.fromstring(chromium_dom(f"http://127.0.0.1:{forwarder.port}{path}", profile))


def wait_for(
    indicators: IndicatorsProcess,
    context: ssl.SSLContext,
    path: str,
    ready: Any,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """The JSON at *path* once *ready(document)* holds (Prometheus scraped, service read)."""
    deadline = time.monotonic() + timeout
    document: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = indicators.get(path, context)
        if status == 200:
            document = json.loads(body)
            if ready(document):
                return document
        time.sleep(0.5)
    raise AssertionError(f"{path} never ready: {json.dumps(document)[:3000]}")


def passed(document: dict[str, Any]) -> int:
    counts = (raccordement(document).get("progress") or {}).get("counts") or {}
    return int(counts.get("passed", 0))


def raccordement(document: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = document.get("raccordement") or {}
    return found


def test_an_establishment_goes_from_qualification_to_production_under_watch(
    start_relay: StartRelay, pki: Path, fake_amc: FakeAmc, tmp_path: Path
) -> None:
    require("prometheus")
    require("chromium")
    fake_amc.behaviour.body = b"<reponse-amc-reelle/>"
    (tmp_path / "mutuelle").mkdir()
    mutuelle, mutuelle_port, mutuelle_admin = start_mutuelle(pki, tmp_path / "mutuelle")
    started = [mutuelle]
    prometheus: Prometheus | None = None
    try:
        relay = start_relay(
            {
                "990000101": f"https://127.0.0.1:{mutuelle_port}",
                REAL_AMC: f"https://127.0.0.1:{fake_amc.port}",
            },
            tables={
                "establishments": {"legal_entities": registration("qualification")},
                "lifecycle": {"simulated_amcs": SIMULATED, "audit_log": "audit.jsonl"},
            },
        )
        config = relay.twistd.config
        (tmp_path / "prometheus").mkdir()
        prometheus = Prometheus(tmp_path / "prometheus", [f"127.0.0.1:{relay.admin_port}"]).start()
        (tmp_path / "indicators").mkdir()
        agency_pem = write_agency_identity(pki, tmp_path / "indicators")
        indicators_dir = tmp_path / "indicators"
        indicators = start_indicators(
            pki,
            indicators_dir,
            prometheus.url,
            agency_pem,
            f"http://127.0.0.1:{mutuelle_admin}/__admin",
            relay_config=str(config),
        )
        started.append(indicators.twistd)
        hospital = client_context(pki, "hospital-a")
        agency = ssl.create_default_context(cafile=str(pki / "ca.pem"))
        agency.load_cert_chain(str(agency_pem), str(indicators_dir / "agency.key"))
        site_json = f"/establishments/{HOSPITAL_A['site']}.json"

        # 1. In qualification: the real AMC is refused, in French, with the step that remains;
        # nothing reaches it.
        status, body = send(relay, pki, idb(REAL_AMC))
        text = body.decode()
        assert status == 403 and "RPN-403-QUALIFICATION" in text, text
        assert "suite de qualification" in text and REAL_AMC in text
        assert fake_amc.received == []

        # 2. The suite, played by the establishment's software: SIM first without its stay's
        # start date (refused, the step failed with the rule), then right.
        suite = suite_for("MCO", default_catalogue())
        software = Establishment(pki, relay, mutuelle_port)
        by_id = {step.id: step for step in suite.steps}
        status, body = software.play(by_id["SIM_MCO"], drop="sim:DateDebut")
        assert status == 400 and b"MUT-400" in body, body
        failed = {s["id"]: s for s in progress_of(mutuelle_admin)["steps"]}["SIM_MCO"]
        assert failed["status"] == "failed" and failed["reason"].startswith("requête non conforme")
        for step in suite.steps:
            if step.signed:
                continue  # the IDB step's request is signed: it plays the signature step too
            status, body = software.play(step)
            assert status == 200, (step.id, body[:600])
            if step.id == "IDB_MCO":
                # Mid-way, in a real browser: the state, the failed step and what to fix.
                wait_for(
                    indicators,
                    hospital,
                    site_json,
                    lambda d: passed(d) >= 2,
                )
                tree = page(
                    indicators,
                    hospital,
                    f"/establishments/{HOSPITAL_A['site']}",
                    tmp_path / "chromium-1",
                )
                assert tree.xpath("string(//section[@id='raccordement']/@data-state)") == (
                    "qualification"
                )
                sim_row = tree.xpath("//table[@id='steps']//tr[@data-step='SIM_MCO']")[0]
                assert sim_row.get("data-status") == "failed"
                assert "À corriger" in sim_row.text_content()
        progress = progress_of(mutuelle_admin)
        assert progress["qualified"], json.dumps(progress, ensure_ascii=False)[:3000]
        # The IT team's command says the same, from the real service (exit 0: qualified).
        admin_url = f"http://127.0.0.1:{mutuelle_admin}/__admin"
        cli = ["-m", "mutuelle.qualification", "--admin", admin_url]
        shown = subprocess.run(
            [sys.executable, *cli, "--sandbox", HOSPITAL_A["site"]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "7/7 étapes réussies — qualifiée" in shown.stdout
        assert {s["id"]: s["attempts"] for s in progress["steps"]}["SIM_MCO"] == 2

        # 3. Shown qualified, on its page and on the agency's, in Chromium.
        wait_for(
            indicators,
            hospital,
            site_json,
            lambda d: (raccordement(d).get("progress") or {}).get("qualified") is True,
        )
        tree = page(
            indicators, hospital, f"/establishments/{HOSPITAL_A['site']}", tmp_path / "chromium-2"
        )
        assert tree.xpath("string(//div[@id='progress']/@data-status)") == "qualified"
        assert "qualifié" in tree.xpath("string(//p[@id='progress-summary'])")
        tree = page(indicators, agency, "/agency", tmp_path / "chromium-3")
        row = tree.xpath(f"//table[@id='raccordements']//tr[@data-finess='{HOSPITAL_A['site']}']")
        assert row and row[0].get("data-state") == "qualification"
        assert "(qualifié)" in row[0].text_content()

        # 4. The agency promotes: the form prints the audited command, which the operator runs
        # as printed, then the reload applies it (no restart).
        status, body = indicators.post_form(
            "/agency/promotion",
            agency,
            {
                "finess": HOSPITAL_A["legal"],
                "state": "production_sous_surveillance",
                "reason": "Suite de qualification réussie",
            },
        )
        assert status == 200, body[:1500]
        command = html.fromstring(body).xpath("string(//pre[@id='command'])")
        argv = shlex.split(command)
        assert argv[:3] == ["python", "-m", "rpn.lifecycle"], command
        done = subprocess.run(
            [sys.executable, *argv[1:]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        [audit] = (config.parent / "audit.jsonl").read_text().splitlines()
        assert json.loads(audit)["by"] == "ANS supervision ROC"
        assert relay.twistd.process is not None
        pid = relay.twistd.process.pid
        relay.twistd.process.send_signal(signal.SIGHUP)
        wait_in_log(
            relay,
            f"lifecycle_changed finess={HOSPITAL_A['legal']} from=qualification "
            "to=production_sous_surveillance",
        )

        # 5. Under watch: the real AMC answers, through the same relay process.
        status, body = send(relay, pki, idb(REAL_AMC))
        assert (status, body) == (200, b"<reponse-amc-reelle/>")
        assert len(fake_amc.received) == 1
        assert relay.twistd.process.pid == pid and relay.twistd.process.poll() is None

        # 6. Both pages show the new stage, in Chromium.
        wait_for(
            indicators,
            hospital,
            site_json,
            lambda d: raccordement(d).get("state") == "production_sous_surveillance",
        )
        tree = page(
            indicators, hospital, f"/establishments/{HOSPITAL_A['site']}", tmp_path / "chromium-4"
        )
        assert tree.xpath("string(//section[@id='raccordement']/@data-state)") == (
            "production_sous_surveillance"
        )
        assert "Production sous surveillance" in tree.xpath("string(//p[@id='state'])")
        assert tree.xpath("//p[@id='watch-summary']")
        tree = page(indicators, agency, "/agency", tmp_path / "chromium-5")
        row = tree.xpath(f"//table[@id='raccordements']//tr[@data-finess='{HOSPITAL_A['site']}']")
        assert row and row[0].get("data-state") == "production_sous_surveillance"
    finally:
        for twistd in reversed(started):
            twistd.stop()
        if prometheus is not None:
            prometheus.stop()
