"""Mutuelle ANS keeps its sandboxes: real ``twistd mutuelle`` processes on SQLite and on a real
PostgreSQL server (started here), restarted mid-suite, two instances on one database, and the
database going away and coming back."""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from mutuelle.care import CareRequest
from mutuelle.catalogue import Case
from mutuelle.databases import connect_postgresql, postgresql_dialect
from mutuelle.dbpool import InlineConnections
from mutuelle.decisions import DelRequest
from mutuelle.examples import case_request
from mutuelle.idb import IdbRequest
from mutuelle.migrate import upgrade
from mutuelle.soap import request_headers
from mutuelle.sqlstore import SqlStore
from piano.testing import StrictClock
from roc.model import SERVICE_NS, SoapVersion
from tests.integration import postgres
from tests.integration.harness import Twistd, free_port, http_get, write_toml
from tests.storage_contract import CATALOGUE, SEED, MakeStore, StoreContract

AMC = "990000101"
HOSPITAL_A = "990000028"
HOSPITAL_B = "990000036"
SEEDED_ACTIVE = sum(
    1 for e in {e.number: e for e in SEED.engagements}.values() if e.state.value == "ACTIF"
)


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres.PostgresServer]:
    if not postgres.available():
        pytest.fail("PostgreSQL is not installed: run `make system-deps`")
    server = postgres.PostgresServer()
    try:
        yield server.init().start()
    finally:
        server.remove()


def fresh_database(server: postgres.PostgresServer) -> str:
    return server.create_database(f"t_{uuid.uuid4().hex[:12]}")


# -- The store contract, on PostgreSQL ----------------------------------------------------------


class TestPostgresqlStore(StoreContract):
    @pytest.fixture
    def stores(self, pg: postgres.PostgresServer) -> Iterator[MakeStore]:
        url = fresh_database(pg)
        dialect = postgresql_dialect()
        opened: list[InlineConnections] = []

        def make(clock: StrictClock) -> SqlStore:
            first = connect_postgresql(url)
            upgrade(first, dialect.mark, None)
            first.close()
            connections = InlineConnections(lambda: connect_postgresql(url), dialect.unavailable)
            opened.append(connections)
            return SqlStore(connections, dialect, clock, SEED)

        yield make
        for connections in opened:
            connections.close()


# -- Real simulator processes --------------------------------------------------------------------


@dataclasses.dataclass
class Simulator:
    twistd: Twistd
    plain: int
    admin_port: int

    def play(
        self,
        played: Case,
        request: IdbRequest | CareRequest | DelRequest | None = None,
        finess: str = HOSPITAL_A,
    ) -> tuple[int, str, etree._Element | None, dict[str, str]]:
        """One exchange on the plain listener in *finess*'s sandbox: status, code, body, headers."""
        if request is not None:
            played = dataclasses.replace(played, request=request)
        service = played.service.value
        headers = dict(request_headers(played.service, SoapVersion.SOAP11))
        headers["X-ROC-Emetteur-Finess"] = finess
        conn = http.client.HTTPConnection("127.0.0.1", self.plain, timeout=30)
        try:
            conn.request("POST", f"/roc/{service}", case_request(played, "s-1"), headers)
            response = conn.getresponse()
            body = response.read()
            answer_headers = {k.lower(): v for k, v in response.getheaders()}
        finally:
            conn.close()
        root = etree.fromstring(body) if body.startswith(b"<?xml") else None
        code = "" if root is None else root.findtext(f".//{{{SERVICE_NS[service]}}}CodeRetour")
        return response.status, code or "", root, answer_headers

    def admin(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=30)
        try:
            data = None if body is None else json.dumps(body).encode()
            conn.request(method, "/__admin/" + path, body=data)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def ready(self) -> int:
        return http_get(f"http://127.0.0.1:{self.admin_port}/readyz", timeout=30)[0]


def simulator(pki: Path, directory: Path, storage_url: str) -> Simulator:
    """A ``twistd mutuelle`` process (not started) keeping its sandboxes at *storage_url*."""
    directory.mkdir(parents=True, exist_ok=True)
    port, plain, admin = free_port(), free_port(), free_port()
    config = write_toml(
        directory / "mutuelle.toml",
        {
            "": {"public_url": f"https://127.0.0.1:{port}"},
            "listen": {"endpoint": f"tcp:{port}:interface=127.0.0.1"},
            "plain": {"endpoint": f"tcp:{plain}:interface=127.0.0.1"},
            "admin": {"endpoint": f"tcp:{admin}:interface=127.0.0.1"},
            "tls": {
                "certificate": pki / "mutuelle-server.pem",
                "private_key": pki / "mutuelle-server.key",
                "ca_certificates": [pki / "ca.pem"],
            },
            "storage": {"url": storage_url},
        },
    )
    health = f"http://127.0.0.1:{admin}/healthz"
    return Simulator(Twistd("mutuelle", config, directory / "mutuelle.log", health), plain, admin)


def case(name: str) -> Case:
    found = CATALOGUE.get(AMC, name)
    assert found is not None
    return found


CLC = case("CLC_KO_MCO_SANS_IDB_PREALABLE")
assert isinstance(CLC.request, CareRequest)
IDB_REQUEST = CLC.request.rights_question
IDB = case("IDB_OK_MCO_DROITS_OUVERTS")
DEL = case("DEL_OK_MCO_ANNULATION")


def number_of(body: etree._Element | None) -> str:
    assert body is not None
    return body.findtext(f".//{{{SERVICE_NS['CLC']}}}NumeroEngagement") or ""


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return "sqlite:///sandboxes.sqlite3"
    server: postgres.PostgresServer = request.getfixturevalue("pg")
    return fresh_database(server)


def test_a_restarted_simulator_keeps_every_sandbox(
    pki: Path, tmp_path: Path, storage_url: str
) -> None:
    sim = simulator(pki, tmp_path / "sim", storage_url)
    sim.twistd.start()
    try:
        assert sim.play(IDB, IDB_REQUEST)[1] == "00"
        status, code, body, _ = sim.play(CLC)
        assert (status, code) == (200, "00")
        number = number_of(body)
        assert sim.admin("PUT", f"sandboxes/{HOSPITAL_B}/fault", {"fault": "HTTP_503"})[0] == 200
        assert sim.admin("PUT", f"sandboxes/{HOSPITAL_A}/clock", {"offset_days": 2})[0] == 200
        before = sim.admin("GET", "sandboxes")[1]
        journal = sim.admin("GET", f"sandboxes/{HOSPITAL_A}/journal")[1]["entries"]
        assert [e["outcome"] for e in journal] == ["00", "00"]
    finally:
        sim.twistd.stop()
    sim.twistd.start()  # the same configuration, a new process
    try:
        assert sim.admin("GET", "sandboxes")[1] == before
        again = sim.admin("GET", f"sandboxes/{HOSPITAL_A}/journal")[1]["entries"]
        assert again == journal
        status, code, body, _ = sim.play(CLC)  # a retry after the restart: the same engagement
        assert (status, code, number_of(body)) == (200, "00", number)
        assert sim.play(IDB, IDB_REQUEST, finess=HOSPITAL_B)[0] == 503  # its fault is still on
        cancel = DelRequest(CLC.request.beneficiary, None, number, "ERREUR_SAISIE")
        assert sim.play(DEL, cancel)[1] == "00"
        assert sim.ready() == 200
    finally:
        sim.twistd.stop()


def test_two_instances_on_one_postgresql_share_the_sandboxes(
    pki: Path, tmp_path: Path, pg: postgres.PostgresServer
) -> None:
    url = fresh_database(pg)
    one = simulator(pki, tmp_path / "one", url)
    two = simulator(pki, tmp_path / "two", url)
    one.twistd.start()
    try:
        two.twistd.start()
        try:
            assert one.play(IDB, IDB_REQUEST)[1] == "00"
            status, code, body, _ = two.play(CLC)  # the IDB made on the other instance counts
            assert (status, code) == (200, "00")
            number = number_of(body)
            cancel = DelRequest(CLC.request.beneficiary, None, number, "ERREUR_SAISIE")
            assert two.play(DEL, cancel)[1] == "00"
            assert one.play(DEL, cancel)[1] == "11"  # the cancellation is seen by both
            # The same stay sent to both instances at once, many times: one engagement.
            changed = dataclasses.replace(CLC.request, reference="SEJ-CONCURRENT")
            assert one.play(IDB, IDB_REQUEST, finess=HOSPITAL_B)[1] == "00"
            answers: list[tuple[int, str, str]] = []

            def send(instance: Simulator) -> None:
                status, code, body, _ = instance.play(CLC, changed, finess=HOSPITAL_B)
                answers.append((status, code, number_of(body)))

            threads = [threading.Thread(target=send, args=(s,)) for s in (one, two) * 6]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            assert len(answers) == 12
            assert {(status, code) for status, code, _ in answers} == {(200, "00")}
            assert len({n for _, _, n in answers}) == 1
            summary = two.admin("GET", f"sandboxes/{HOSPITAL_B}")[1]
            assert summary["engagements"]["ACTIF"] == SEEDED_ACTIVE + 1
            assert summary["conformance"]["requests"] == 13
        finally:
            two.twistd.stop()
    finally:
        one.twistd.stop()


def test_the_database_going_away_gives_a_retryable_fault_and_the_service_recovers(
    pki: Path, tmp_path: Path
) -> None:
    server = postgres.PostgresServer()
    try:
        server.init().start()
        sim = simulator(pki, tmp_path / "sim", fresh_database(server))
        sim.twistd.start()
        try:
            assert sim.play(IDB, IDB_REQUEST)[1] == "00"
            assert sim.ready() == 200
            server.stop()
            status, _, body, headers = sim.play(CLC)
            assert status == 503 and headers.get("retry-after") == "5"
            assert body is not None
            assert body.findtext(".//{urn:piano:mutuelle:erreurs:v1}Code") == "MUT-503-STOCKAGE"
            assert "renvoyez la même demande" in (body.findtext(".//faultstring") or "")
            assert sim.ready() == 503
            assert sim.admin("GET", "sandboxes")[0] == 503
            server.start()
            assert sim.ready() == 200  # back by itself, no restart
            status, code, body, _ = sim.play(CLC)
            assert (status, code) == (200, "00")
            # Nothing half-written: the CLC that met the outage left no journal line.
            journal = sim.admin("GET", f"sandboxes/{HOSPITAL_A}/journal")[1]["entries"]
            assert [(e["service"], e["outcome"]) for e in journal] == [("IDB", "00"), ("CLC", "00")]
            log = sim.twistd.log_text()
            assert "Sandbox storage unavailable" in log
        finally:
            sim.twistd.stop()
    finally:
        server.remove()
