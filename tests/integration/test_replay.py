"""A publisher's non-regression run: the catalogue exported as a suite, replayed through the
relay against the simulator (real ``twistd`` processes, real TLS) with ``python -m
mutuelle.replay`` as a process, as a CI job would run it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from tests.integration.test_mutuelle_cases import Stack, start_stack

pytestmark = pytest.mark.integration

JUNIT_XSD = Path(__file__).parent.parent / "junit.xsd"


@pytest.fixture(scope="module")
def stack(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(pki, tmp_path_factory.mktemp("replay-stack"))
    yield started
    started.stop()


def _replay(
    stack: Stack, pki: Path, suite: Path, *extra: str, reset: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mutuelle.replay",
            str(suite),
            "--url",
            f"https://127.0.0.1:{stack.relay_port}/roc",
            "--billing-url",
            f"https://127.0.0.1:{stack.mutuelle_port}/roc/{{service}}",
            "--cert",
            str(pki / "hospital-a.pem"),
            "--key",
            str(pki / "hospital-a.key"),
            "--cacert",
            str(pki / "ca.pem"),
            "--admin",
            f"http://127.0.0.1:{stack.mutuelle_admin}",
            *(["--sandbox-reset"] if reset else []),
            "--concurrency",
            "4",
            "--quiet",
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_exported_catalogue_replays_clean_then_an_edited_expectation_is_named(
    stack: Stack, pki: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "suite"
    exported = subprocess.run(
        [sys.executable, "-m", "mutuelle.suite", "export", str(suite)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "steps" in exported.stdout
    junit = tmp_path / "junit.xml"
    report = tmp_path / "report.json"
    run = _replay(stack, pki, suite, "--junit", str(junit), "--json", str(report))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["failed"] == 0 and data["passed"] == data["steps"] > 300
    schema = etree.XMLSchema(etree.parse(str(JUNIT_XSD)))
    document = etree.parse(str(junit))
    schema.assertValid(document)
    assert len(document.findall(".//testcase")) == data["steps"]
    assert document.find(".//failure") is None

    # One expectation edited: that step, and only it, is reported.
    manifest = suite / "suite.toml"
    text = manifest.read_text()
    step = "990000202/SIM_OK_MCO_PRISE_EN_CHARGE_TOTALE"
    at = text.index(f'id = "{step}"')
    edited = re.sub(r'code = "00"', 'code = "01"', text[at:], count=1)
    manifest.write_text(text[:at] + edited)
    run = _replay(stack, pki, suite, "--junit", str(junit))
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-2000:]
    assert step in run.stdout
    assert "of" in run.stdout and "steps matched" in run.stdout
    document = etree.parse(str(junit))
    schema.assertValid(document)
    failed = [
        t.get("name") for t in document.iterfind(".//testcase") if t.find("failure") is not None
    ]
    assert failed == [step]


def test_an_unreachable_target_is_a_connection_error_not_a_crash(
    stack: Stack, pki: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "suite"
    subprocess.run([sys.executable, "-m", "mutuelle.suite", "export", str(suite)], check=True)
    run = subprocess.run(
        [
            sys.executable, "-m", "mutuelle.replay", str(suite),
            "--url", "https://127.0.0.1:1/roc",
            "--cacert", str(pki / "ca.pem"), "--quiet",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "cannot reach https://127.0.0.1:1/roc" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_signed_suite_replays_clean_against_a_sandbox_requiring_signatures(
    stack: Stack, pki: Path, tmp_path: Path
) -> None:
    """Every request signed with hospital A's certificate (the invoices at replay, once their
    engagement is known), the unsigned one refused with MUT-400-SIGNATURE as expected."""
    suite = tmp_path / "signed"
    subprocess.run(
        [
            sys.executable, "-m", "mutuelle.suite", "export", str(suite),
            "--sign-cert", str(pki / "hospital-a.pem"), "--sign-key", str(pki / "hospital-a.key"),
        ],
        check=True,
    )  # fmt: skip
    site = "990000028"
    stack.admin("POST", f"sandboxes/{site}/reset")
    assert stack.admin("PUT", f"sandboxes/{site}/signature", {"policy": "require"})[0] == 200
    try:
        report = tmp_path / "signed.json"
        # (a reset would also drop the sandbox's signature policy)
        run = _replay(stack, pki, suite, "--json", str(report), reset=False)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        data = json.loads(report.read_text())
        faults = [r for r in data["results"] if r["status"] == 400]
        assert [r["step"] for r in faults] == [
            f"{amc}/IDB_KO_MCO_SIGNATURE_ABSENTE" for amc in ("990000101", "990000202", "990000303")
        ] or len(faults) >= 1
    finally:
        stack.admin("PUT", f"sandboxes/{site}/signature", {"policy": "off"})


def test_a_recorded_trainee_session_replays_clean(stack: Stack, pki: Path, tmp_path: Path) -> None:
    """A trainee plays a few exchanges through the relay; ``suite record`` turns its sandbox's
    journal into a suite, which replays clean on the reset sandbox, and names a change."""
    from tests.integration.harness import SoapClient, client_context
    from tests.integration.test_trainees import _case, _play

    sandbox = "990000028.poste-9"
    assert stack.admin("POST", f"sandboxes/{sandbox}/reset")[0] == 200
    relay = SoapClient(stack.relay_port, client_context(pki, "hospital-a"))
    played = [
        "IDB_OK_MCO_DROITS_OUVERTS",
        "SIM_OK_MCO_PRISE_EN_CHARGE_TOTALE",
        "CLC_OK_MCO_ENGAGEMENT",
        "DEL_OK_MCO_ANNULATION",
        "DEL_OK_MCO_ANNULATION",
    ]
    codes = [_play(relay, _case(name), "poste-9")[1] for name in played]
    assert codes == ["00", "00", "00", "00", "11"]
    relay.close()
    suite = tmp_path / "recorded"
    recorded = subprocess.run(
        [
            sys.executable, "-m", "mutuelle.suite", "record",
            "--admin", f"http://127.0.0.1:{stack.mutuelle_admin}",
            "--sandbox", "990000028", "--trainee", "poste-9", str(suite),
        ],
        capture_output=True, text=True,
    )  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    assert "5 steps recorded" in recorded.stdout
    manifest = (suite / "suite.toml").read_text()
    assert manifest.count('code = "11"') == 1 and "totals" in manifest
    run = _replay(stack, pki, suite, "--sandbox", sandbox, "--json", str(tmp_path / "r.json"))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert json.loads((tmp_path / "r.json").read_text())["passed"] == 5
    # Replayed without the reset, the first cancellation now finds the engagement cancelled.
    run = _replay(stack, pki, suite, reset=False)
    assert run.returncode == 1 and "00004-DEL" in run.stdout


def test_dropped_connections_and_non_soap_answers_are_differences_not_crashes(
    stack: Stack, pki: Path, tmp_path: Path
) -> None:
    """Straight to the simulator, with a technical fault switched on for the sandbox: every
    step is reported as a difference, the run goes to its end and exits 1."""
    from mutuelle.suite_model import Suite, load_suite, manifest_text

    suite_dir = tmp_path / "two"
    subprocess.run([sys.executable, "-m", "mutuelle.suite", "export", str(suite_dir)], check=True)
    suite = load_suite(suite_dir)
    (suite_dir / "suite.toml").write_text(manifest_text(Suite(suite.name, suite.steps[:2])))
    site = "990000028"
    direct = f"https://127.0.0.1:{stack.mutuelle_port}/roc/{{service}}"
    try:
        for fault, seen in (("CONNEXION_COUPEE", "connection failed"), ("HTTP_500", "not a SOAP")):
            assert stack.admin("PUT", f"sandboxes/{site}/fault", {"fault": fault})[0] == 200
            run = _replay(stack, pki, suite_dir, "--url", direct, "--timeout", "5", reset=False)
            assert run.returncode == 1, run.stdout + run.stderr
            assert run.stdout.count(seen) == 2 and "Traceback" not in run.stderr
            assert "0 of 2 steps matched" in run.stdout
    finally:
        stack.admin("DELETE", f"sandboxes/{site}/fault")
