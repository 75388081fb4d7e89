"""The qualification suite and its progress, computed from what the sandbox really received."""

from __future__ import annotations

import datetime
import io
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mutuelle import testing
from mutuelle.admin import AdminApi
from mutuelle.qualification import (
    Progress,
    Step,
    Suite,
    UnknownSector,
    progress,
    standard_suites,
    step_request,
    suite_for,
)
from mutuelle.qualification_cli import main
from mutuelle.rows import decode_entry, encode_entry
from mutuelle.sandbox import MemoryStore
from mutuelle.signatures import SignaturePolicy, Trust
from mutuelle.simulator import Simulator
from mutuelle.soap import request_headers
from roc.model import RocVersion, Service, SoapVersion
from roc.signature import sign
from tests.deferreds import success_result_of as result_of
from tools.devpki import HOSPITAL_A, issue, make_ca
from tools.signing import pem_of

DATA, CATALOGUE = testing.shipped()
LEGAL, SITE = HOSPITAL_A["legal"], HOSPITAL_A["site"]
NOW = datetime.datetime.now(datetime.UTC)


# The suites


def test_an_mco_establishment_plays_roc_v1_every_service_a_refusal_and_a_signature() -> None:
    suite = suite_for("MCO", CATALOGUE)
    assert (suite.name, suite.roc_version) == ("qualification-V1-MCO", RocVersion.V1)
    assert [s.id for s in suite.steps] == [
        "IDB_MCO",
        "SIGNATURE_MCO",
        "IDB_MCO_REFUS",
        "SIM_MCO",
        "CLC_MCO",
        "DEL_MCO",
        "DRE_MCO",
    ]
    by_id = {s.id: s for s in suite.steps}
    assert by_id["IDB_MCO_REFUS"].expected_code == "01"
    assert (
        by_id["SIGNATURE_MCO"].signed and by_id["SIGNATURE_MCO"].case == "IDB_OK_MCO_DROITS_OUVERTS"
    )
    # Billing is not relayed: the only step played straight at Mutuelle ANS.
    assert [s.id for s in suite.steps if not s.through_relay] == ["DRE_MCO"]
    assert all(s.amc == "990000101" and s.roc_version is RocVersion.V1 for s in suite.steps)
    # Every step is a case of the catalogue, with its documented answer.
    for step in suite.steps:
        case = CATALOGUE.get(step.amc, step.case)
        assert case is not None and case.expected_code == step.expected_code
        assert step.title and step.expected_label


@pytest.mark.parametrize("sector", ["PSY", "HAD", "SMR", "OQN"])
def test_another_sector_moves_the_suite_to_v2_with_that_sector_s_cases(sector: str) -> None:
    suite = suite_for(["MCO", sector], CATALOGUE)
    assert suite.roc_version is RocVersion.V2
    assert suite.name == f"qualification-V2-MCO-{sector}"
    ours = {s.service for s in suite.steps if s.sector == sector}
    assert {Service.IDB, Service.SIM, Service.CLC} <= ours
    assert all(s.roc_version is RocVersion.V2 for s in suite.steps)
    assert any(s.signed for s in suite.steps)


@pytest.mark.parametrize(
    ("sector", "case", "code"),
    [
        ("PSY", "IDB_KO_PSY_SECTEUR_NON_COUVERT", "03"),
        ("SMR", "IDB_KO_SMR_DEBUT_DROITS_EN_COURS_DE_SEJOUR", "02"),
    ],
)
def test_a_v2_suite_expects_an_idb_refusal_where_the_catalogue_has_one_in_v2(
    sector: str, case: str, code: str
) -> None:
    steps = suite_for(["MCO", sector], CATALOGUE).steps
    ids = [s.id for s in steps]
    refusal = steps[ids.index(f"IDB_{sector}_REFUS")]
    assert (refusal.case, refusal.expected_code, refusal.through_relay) == (case, code, True)
    assert ids.index(f"IDB_{sector}_REFUS") == ids.index(f"IDB_{sector}") + 1


def test_sectors_are_read_in_any_order_and_case() -> None:
    assert suite_for(" psy,MCO ", CATALOGUE).sectors == ("MCO", "PSY")


@pytest.mark.parametrize("text", ["USLD", "", "MCO,XYZ"])
def test_an_unknown_sector_is_refused_in_french(text: str) -> None:
    with pytest.raises(UnknownSector, match="secteur"):
        suite_for(text, CATALOGUE)


def test_standard_suites_cover_every_sector() -> None:
    names = [s.name for s in standard_suites(CATALOGUE)]
    assert names[0] == "qualification-V1-MCO" and len(names) == 5


# Progress, from exchanges really played in a sandbox


@pytest.fixture(scope="module")
def trust_and_signer() -> tuple[Trust, tuple[bytes, bytes]]:
    ca = make_ca("Test CA")
    return Trust([ca.certificate]), pem_of(issue(ca, "A", client=True, finess=SITE))


def simulator(trust: Trust, policy: SignaturePolicy) -> Simulator:
    return testing.checking_simulator(trust, policy, NOW.timestamp())


class Player:
    """Plays steps as the establishment's software would, into hospital A's sandbox."""

    def __init__(self, sim: Simulator, signer: tuple[bytes, bytes] | None) -> None:
        self.sim = sim
        self.signer = signer
        self.sandbox = sim.sandboxes.get(SITE)
        self.count = 0

    def play(self, step: Step, via_relay: bool = True, drop: str = "") -> int:
        """Play *step*; *drop*: an element (``prefix:Name``) removed from its request."""
        self.count += 1
        body = step_request(step, CATALOGUE, LEGAL, SITE, f"q-{self.count}")
        if drop:
            body, removed = re.subn(f"<{drop}>[^<]*</{drop}>".encode(), b"", body, count=1)
            assert removed == 1
        if self.signer is not None:
            body = sign(body, *self.signer)
        headers = request_headers(step.service, SoapVersion.SOAP11)
        reply = self.sim.handle_in(
            self.sandbox,
            step.service.value,
            "POST",
            headers["Content-Type"],
            headers.get("SOAPAction"),
            body,
            via_relay,
        )
        return reply.status

    def progress(self, suite: Suite) -> Progress:
        return progress(SITE, suite, self.sandbox.journal_tail(500))


def test_nothing_played_is_not_played(trust_and_signer: tuple[Trust, tuple[bytes, bytes]]) -> None:
    player = Player(simulator(trust_and_signer[0], SignaturePolicy.REPORT), None)
    found = player.progress(suite_for("MCO", CATALOGUE))
    assert not found.qualified
    assert found.counts() == {"passed": 0, "failed": 0, "not_played": 7, "total": 7}


def test_a_whole_suite_played_signed_through_the_relay_is_qualified(
    trust_and_signer: tuple[Trust, tuple[bytes, bytes]],
) -> None:
    trust, signer = trust_and_signer
    player = Player(simulator(trust, SignaturePolicy.REPORT), signer)
    suite = suite_for("MCO", CATALOGUE)
    for step in suite.steps:
        if step.signed:
            continue  # the IDB step's exchange is signed: it plays both
        player.play(step, via_relay=step.through_relay)
    found = player.progress(suite)
    assert [(s.step.id, s.status) for s in found.steps if s.status != "passed"] == []
    assert found.qualified
    document = found.as_dict()
    assert document["counts"] == {"passed": 7, "failed": 0, "not_played": 0, "total": 7}
    assert document["steps"][0]["exchange_id"] == "q-1" and document["steps"][0]["attempts"] == 1
    json.dumps(document)  # serialisable as the admin API sends it


def test_a_schema_invalid_attempt_fails_its_step_with_the_rule_then_a_good_one_passes(
    trust_and_signer: tuple[Trust, tuple[bytes, bytes]],
) -> None:
    trust, signer = trust_and_signer
    player = Player(simulator(trust, SignaturePolicy.REPORT), signer)
    suite = suite_for("MCO", CATALOGUE)
    sim_step = next(s for s in suite.steps if s.id == "SIM_MCO")
    # The stay's start date removed: the request breaks the schema.
    status = player.play(sim_step, drop="sim:DateDebut")
    assert status == 400
    [failed] = [s for s in player.progress(suite).steps if s.step.id == "SIM_MCO"]
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.reason is not None and failed.reason.startswith("requête non conforme")
    assert "XSD" in failed.reason and failed.fix is not None and "SIM_OK_MCO" in failed.fix
    player.play(sim_step)
    [fixed] = [s for s in player.progress(suite).steps if s.step.id == "SIM_MCO"]
    assert (fixed.status, fixed.attempts, fixed.reason) == ("passed", 2, None)


def test_a_step_played_directly_instead_of_through_the_relay_fails(
    trust_and_signer: tuple[Trust, tuple[bytes, bytes]],
) -> None:
    trust, signer = trust_and_signer
    player = Player(simulator(trust, SignaturePolicy.REPORT), signer)
    suite = suite_for("MCO", CATALOGUE)
    player.play(suite.steps[0], via_relay=False)
    first = player.progress(suite).steps[0]
    assert first.status == "failed" and "RPN ROC" in (first.reason or "")


def test_an_unsigned_request_fails_the_signature_step_with_its_rule(
    trust_and_signer: tuple[Trust, tuple[bytes, bytes]],
) -> None:
    player = Player(simulator(trust_and_signer[0], SignaturePolicy.REPORT), None)
    suite = suite_for("MCO", CATALOGUE)
    player.play(suite.steps[0])
    steps = {s.step.id: s for s in player.progress(suite).steps}
    assert steps["SIGNATURE_MCO"].status == "failed"
    assert "SIGNATURE_ABSENTE" in (steps["SIGNATURE_MCO"].reason or "")
    # Under report a missing signature is a violation, so the IDB step fails too, for it.
    assert steps["IDB_MCO"].status == "failed"


def test_without_signature_checks_the_signature_step_says_how_to_enable_them(
    trust_and_signer: tuple[Trust, tuple[bytes, bytes]],
) -> None:
    player = Player(simulator(trust_and_signer[0], SignaturePolicy.OFF), None)
    suite = suite_for("MCO", CATALOGUE)
    player.play(suite.steps[0])
    steps = {s.step.id: s for s in player.progress(suite).steps}
    assert steps["IDB_MCO"].status == "passed"
    assert steps["SIGNATURE_MCO"].status == "failed"
    assert "PUT /__admin/sandboxes/<FINESS>/signature" in (steps["SIGNATURE_MCO"].fix or "")


def test_a_case_played_again_after_its_state_changed_fails_and_says_to_reset(
    trust_and_signer: tuple[Trust, tuple[bytes, bytes]],
) -> None:
    trust, signer = trust_and_signer
    player = Player(simulator(trust, SignaturePolicy.REPORT), signer)
    suite = suite_for("MCO", CATALOGUE)
    cancel = next(s for s in suite.steps if s.id == "DEL_MCO")
    player.play(cancel)
    player.play(cancel)  # already cancelled now: another answer
    [step] = [s for s in player.progress(suite).steps if s.step.id == "DEL_MCO"]
    assert step.status == "failed" and "au lieu de 00" in (step.reason or "")
    assert "reset" in (step.fix or "")


def test_non_conforming_exchanges_outside_the_suite_are_listed_with_their_rules(
    trust_and_signer: tuple[Trust, tuple[bytes, bytes]],
) -> None:
    trust, signer = trust_and_signer
    player = Player(simulator(trust, SignaturePolicy.REPORT), signer)
    suite = suite_for("MCO", CATALOGUE)
    other = Step(
        "X",
        "x",
        Service.IDB,
        RocVersion.V1,
        "MCO",
        "IDB_KO_MCO_DROITS_FERMES",
        "990000101",
        "02",
        "",
        True,
    )
    player.play(other, drop="idb:DateDebut")
    found = player.progress(suite)
    [unmatched] = found.unmatched
    assert unmatched.service == "IDB" and "XSD" in unmatched.reason
    assert all(s.status == "not_played" for s in found.steps)


# The admin API and the command


def test_the_admin_api_serves_progress_and_refuses_an_unknown_sector() -> None:
    sim = testing.simulator()
    api = AdminApi(MemoryStore(sim.sandboxes), catalogue=CATALOGUE)
    status, body = result_of(api.handle("GET", ["sandboxes", SITE, "qualification"], {}, None))
    assert status == 200 and body["suite"] == "qualification-V1-MCO" and not body["qualified"]
    query = {"sectors": "MCO,PSY"}
    status, body = result_of(api.handle("GET", ["sandboxes", SITE, "qualification"], query, None))
    assert body["roc_version"] == "V2"
    status, body = result_of(
        api.handle("GET", ["sandboxes", SITE, "qualification"], {"sectors": "USLD"}, None)
    )
    assert status == 400 and "secteur inconnu : USLD" in body["error"]
    status, body = result_of(api.handle("GET", ["qualification", "suites"], {}, None))
    assert status == 200 and len(body["suites"]) == 5


@pytest.fixture
def admin_server() -> Iterator[tuple[str, dict[str, object]]]:
    """A loopback HTTP server answering the progress document the test sets."""
    document: dict[str, object] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if "sectors=USLD" in self.path:
                status, body = 400, {"error": "secteur inconnu : USLD"}
            else:
                status, body = 200, document
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/__admin", document
    server.shutdown()
    server.server_close()


def test_the_command_prints_progress_in_french_and_exits_by_qualification(
    admin_server: tuple[str, dict[str, object]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, document = admin_server
    suite = suite_for("MCO", CATALOGUE)
    document.update(progress(SITE, suite, []).as_dict())
    out = io.StringIO()
    assert main(["--admin", url, "--sandbox", SITE], out) == 1
    text = out.getvalue()
    assert "0/7 étapes réussies" in text and "[pas encore jouée] IDB_MCO" in text
    document["qualified"] = True
    assert main(["--admin", url, "--sandbox", SITE, "--json"], io.StringIO()) == 0
    assert main(["--admin", url, "--sandbox", SITE, "--sectors", "USLD"], io.StringIO()) == 2
    assert "secteur inconnu : USLD" in capsys.readouterr().err


def test_journal_rows_written_before_the_qualification_fields_still_read() -> None:
    old = '[3,1.5,"IDB","x-1","990000101","V1",200,"00","IDB_OK_MCO_DROITS_OUVERTS",[],""]'
    entry = decode_entry(old)
    assert (entry.case, entry.aimed, entry.via_relay, entry.signature) == (
        "IDB_OK_MCO_DROITS_OUVERTS",
        (),
        False,
        "",
    )
    assert decode_entry(encode_entry(entry)) == entry
