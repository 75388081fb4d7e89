"""An establishment's path to production, end to end (docs/raccordement.md).

Real processes: Mutuelle ANS, the relay, a real AMC (the fake AMC, a real HTTPS server that is
not Mutuelle ANS), Prometheus scraping the relay, the indicators service, headless Chromium.
Hospital A starts in qualification: the real AMC is refused; it plays the qualification suite
through the relay against Mutuelle ANS (one step first failed, then fixed), is shown qualified,
is promoted with the audited command and a reload, and then reaches the real AMC.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from roc.messages import Routing, envelope
from tests.integration.conftest import RelayProcess, StartRelay
from tests.integration.fake_amc import FakeAmc
from tests.integration.harness import ROOT, SoapClient, client_context
from tests.integration.test_with_mutuelle import start_mutuelle
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


def lifecycle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpn.lifecycle", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_an_establishment_in_qualification_is_promoted_by_a_reload_and_reaches_the_real_amc(
    start_relay: StartRelay, pki: Path, fake_amc: FakeAmc, tmp_path: Path
) -> None:
    fake_amc.behaviour.body = b"<reponse-amc-reelle/>"
    (tmp_path / "mutuelle").mkdir()
    mutuelle, mutuelle_port = start_mutuelle(pki, tmp_path / "mutuelle")
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
        # In qualification: the real AMC is refused, in French, with the step that remains;
        # nothing reaches it. Mutuelle ANS's AMC answers.
        status, body = send(relay, pki, idb(REAL_AMC))
        text = body.decode()
        assert status == 403 and "RPN-403-QUALIFICATION" in text, text
        assert "suite de qualification" in text and REAL_AMC in text
        assert fake_amc.received == []
        status, body = send(relay, pki, idb("990000101"))
        assert b"ErreurSimulateur" in body and b"RPN-" not in body, body  # Mutuelle ANS answered

        # Promoted with the audited command, applied by a reload (no restart).
        config = relay.twistd.config
        done = lifecycle(
            "set",
            "--config",
            str(config),
            "--finess",
            HOSPITAL_A["legal"],
            "--state",
            "production_sous_surveillance",
            "--by",
            "Agent ANS",
            "--reason",
            "suite de qualification réussie",
        )
        assert done.returncode == 0, done.stderr
        [audit] = (config.parent / "audit.jsonl").read_text().splitlines()
        assert json.loads(audit)["to"] == "production_sous_surveillance"
        pid = relay.twistd.process.pid  # type: ignore[union-attr]
        relay.twistd.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        wait_in_log(
            relay,
            f"lifecycle_changed finess={HOSPITAL_A['legal']} from=qualification "
            "to=production_sous_surveillance",
        )
        status, body = send(relay, pki, idb(REAL_AMC))
        assert (status, body) == (200, b"<reponse-amc-reelle/>")
        assert len(fake_amc.received) == 1
        assert relay.twistd.process.pid == pid and relay.twistd.process.poll() is None  # type: ignore[union-attr]
        assert (
            relay.metric(
                "rpn_establishment_lifecycle_since_timestamp_seconds",
                finess=HOSPITAL_A["site"],
                state="production_sous_surveillance",
            )
            > 0
        )
    finally:
        mutuelle.stop()
