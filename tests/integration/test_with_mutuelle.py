"""Mutuelle ANS and the relay as real processes: the catalogue and the annuaire web service."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from roc.messages import Routing, envelope
from tests.integration.conftest import StartRelay
from tests.integration.fake_amc import FakeAmc
from tests.integration.harness import (
    ROOT,
    SoapClient,
    Twistd,
    client_context,
    free_port,
    write_toml,
)
from tools.devpki import HOSPITAL_A


def test_demo_plays_every_catalogue_case_through_the_relay() -> None:
    """`make demo`'s own script, once: every case answers its documented code, signed."""
    offset = random.randrange(1000, 5000, 10)
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--once", "--port-offset", str(offset)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("  ok ")]
    assert len(lines) >= 30 + 2
    assert "BAD" not in done.stdout
    assert "All exchanges gave their documented answer." in done.stdout
    # Every request is signed; each broken signature is refused by Mutuelle ANS, its rule named.
    refused = [line for line in lines if "MUT-400-SIGNATURE" in line]
    assert len(refused) == 7, done.stdout
    assert any("IDB_KO_MCO_SIGNATURE_EMPREINTE" in line for line in refused)
    assert "[SIGNATURE_EMPREINTE] l'empreinte (DigestValue)" in done.stdout
    # Billing straight to the simulator: one stay through to its payment, the relay refusing
    # the same invoice.
    assert "DRE-ES FAC-990000101-" in done.stdout and "ARL 00" in done.stdout
    assert "DemandeRetours: HTTP 200 578R VIR-990000101-" in done.stdout
    assert "(in full: true)" in done.stdout
    assert "the same DRE-ES through the relay: HTTP 400 RPN-400-DRE" in done.stdout


def start_mutuelle(pki: Path, directory: Path, public_url: str | None = None) -> tuple[Twistd, int]:
    twistd, port, _ = run_mutuelle(pki, directory, public_url)
    return twistd, port


def run_mutuelle(
    pki: Path,
    directory: Path,
    public_url: str | None = None,
    tables: dict[str, dict[str, object]] | None = None,
) -> tuple[Twistd, int, int]:
    """``twistd mutuelle`` with the test PKI (and *tables* added to its configuration):
    the process, its ROC port and its admin port."""
    port, admin = free_port(), free_port()
    config = write_toml(
        directory / "mutuelle.toml",
        {
            "": {"public_url": public_url or f"https://127.0.0.1:{port}"},
            "listen": {"endpoint": f"tcp:{port}:interface=127.0.0.1"},
            "tls": {
                "certificate": pki / "mutuelle-server.pem",
                "private_key": pki / "mutuelle-server.key",
                "ca_certificates": [pki / "ca.pem"],
            },
            "admin": {"endpoint": f"tcp:{admin}:interface=127.0.0.1"},
            **(tables or {}),
        },
    )
    twistd = Twistd(
        "mutuelle", config, directory / "mutuelle.log", f"http://127.0.0.1:{admin}/healthz"
    )
    return twistd.start(), port, admin


@pytest.fixture
def mutuelle_dir(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "mutuelle"
    directory.mkdir()
    yield directory


def test_relay_routes_from_the_annuaire_web_service_and_its_snapshot_after_a_restart(
    start_relay: StartRelay, pki: Path, fake_amc: FakeAmc, mutuelle_dir: Path, tmp_path: Path
) -> None:
    # The demo annuaire advertises the fake AMC's address for every AMC it knows.
    annuaire, port = start_mutuelle(pki, mutuelle_dir, f"https://127.0.0.1:{fake_amc.port}")
    fake_amc.behaviour.body = b"<answer/>"
    snapshot = tmp_path / "snapshot.json"
    settings = {"service_url": f"https://127.0.0.1:{port}/roc/ANN", "snapshot": str(snapshot)}
    try:
        relay = start_relay({}, annuaire=settings)
        client = SoapClient(relay.port, client_context(pki, "hospital-a"))
        request = envelope(
            Routing("IDB", "990000101", HOSPITAL_A["legal"], HOSPITAL_A["site"]), "<x/>"
        )
        assert client.post(request).body == b"<answer/>"
        unknown = envelope(
            Routing("IDB", "990000999", HOSPITAL_A["legal"], HOSPITAL_A["site"]), "<x/>"
        )
        assert client.post(unknown).status == 400
        client.close()
        relay.twistd.stop()
        assert "990000101" in snapshot.read_text()
    finally:
        annuaire.stop()
    # The annuaire is down: a restarted relay still routes the AMC it knew.
    relay = start_relay({}, annuaire=settings)
    client = SoapClient(relay.port, client_context(pki, "hospital-a"))
    answer = client.post(request)
    assert (answer.status, answer.body) == (200, b"<answer/>")
    assert [r.body for r in fake_amc.received] == [request, request]
    # An AMC it never knew cannot be routed: the annuaire-unavailable fault, retryable.
    answer = client.post(unknown.replace(b"990000999", b"990000888"))
    assert answer.status == 503
    assert b"RPN-503-ANNUAIRE" in answer.body
