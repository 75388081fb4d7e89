"""A real SOAP client in another language: the Node.js ``soap`` package consumes
roc/schemas/roc.wsdl as is and calls every service through the relay (mutual TLS).

Needs ``npm ci --prefix tests/integration/soap_clients`` (``make test`` runs it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from mutuelle.care import CareRequest, euros
from mutuelle.catalogue import Case, default_catalogue
from mutuelle.examples import routing_for
from mutuelle.idb import IdbRequest
from roc.model import Service
from roc.routing import routing_block
from tests.integration.test_mutuelle_cases import Stack, start_stack

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "tests" / "integration" / "soap_clients"
WSDL = ROOT / "roc" / "schemas" / "roc.wsdl"
CATALOGUE = default_catalogue()
AMC = "990000202"
NODE = shutil.which("node")


@pytest.fixture(scope="module")
def stack(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if NODE is None:
        pytest.fail("node is required (the Node.js SOAP client; make test-integration runs npm ci)")
    if not (CLIENTS / "node_modules" / "soap").is_dir():
        pytest.fail("node-soap missing: run `npm ci --prefix tests/integration/soap_clients`")
    started = start_stack(pki, tmp_path_factory.mktemp("node-stack"))
    yield started
    started.stop()


def case(name: str) -> Case:
    found = CATALOGUE.get(AMC, name)
    assert found is not None
    return found


def routage(played: Case, service: Service) -> str:
    key = routing_for(played, str(uuid.uuid4()))
    key = type(key)(
        service, key.roc_version, key.amc, key.sender_finess_legal, key.sender_finess_site,
        key.exchange_id,
    )  # fmt: skip
    return etree.tostring(routing_block(key)).decode()


def beneficiaire(request: IdbRequest | CareRequest) -> dict[str, Any]:
    key = request.beneficiary
    who: dict[str, Any] = {
        "NIR": key.nir,
        "DateNaissance": key.birth_date.isoformat(),
        "RangNaissance": key.birth_rank,
    }
    if request.member_number:
        who["NumeroAdherent"] = request.member_number
    return who


def care_arguments(request: CareRequest) -> dict[str, Any]:
    lines = []
    for line in request.lines:
        item: dict[str, Any] = {
            "NumeroLigne": line.number,
            "Code": line.code.value,
            "Quantite": line.quantity,
            "PrixUnitaire": euros(line.unit_price_cents),
        }
        if line.base_cents is not None:
            item["BaseRemboursement"] = euros(line.base_cents)
        if line.start is not None:
            item["DateDebut"] = line.start.isoformat()
        if line.optam is not None:
            item["Optam"] = line.optam
        lines.append(item)
    stay: dict[str, Any] = {
        "ReferenceSejour": request.reference,
        "DateDebut": request.start.isoformat(),
        "DateFin": request.end.isoformat(),
        "Secteur": request.sector.value,
        "NatureSoins": request.care_kind.value,
        "TauxAMO": request.amo_rate,
    }
    if request.exemption is not None:
        stay["Exoneration"] = request.exemption.value
    return {
        "Beneficiaire": beneficiaire(request),
        "Sejour": stay,
        "Prestations": {"Prestation": lines},
    }


def run(pki: Path, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert NODE is not None
    spec = {
        "wsdl": str(WSDL),
        "ca": str(pki / "ca.pem"),
        "cert": str(pki / "hospital-a.pem"),
        "key": str(pki / "hospital-a.key"),
        "calls": calls,
    }
    done = subprocess.run(
        [NODE, str(CLIENTS / "roc_client.js")],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=CLIENTS,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_node_soap_plays_idb_sim_clc_and_del_through_the_relay(stack: Stack, pki: Path) -> None:
    stack.admin("POST", "sandboxes/990000028/reset")
    url = f"https://127.0.0.1:{stack.relay_port}/roc"
    idb_case = case("IDB_OK_PSY_DROITS_OUVERTS")
    sim_case = case("SIM_OK_HAD_SANS_FORFAIT_JOURNALIER")
    clc_case = case("CLC_OK_OQN_DEPASSEMENTS_HONORAIRES")
    assert isinstance(idb_case.request, IdbRequest)
    assert isinstance(sim_case.request, CareRequest) and isinstance(clc_case.request, CareRequest)
    r = idb_case.request
    idb, sim, clc = run(
        pki,
        [
            {
                "operation": "IDB",
                "port": "IDB_Soap11",
                "url": f"{url}/IDB",
                "routage": routage(idb_case, Service.IDB),
                "args": {
                    "Beneficiaire": beneficiaire(r),
                    "Soins": {
                        "DateDebut": r.start.isoformat(),
                        "DateFin": r.end.isoformat(),
                        "Secteur": r.sector.value,
                        "NatureSoins": r.care_kind.value,
                    },
                },
            },
            {
                "operation": "SIM",
                "port": "SIM_Soap11",
                "url": f"{url}/SIM",
                "routage": routage(sim_case, Service.SIM),
                "args": care_arguments(sim_case.request),
            },
            {
                "operation": "CLC",
                "port": "CLC_Soap12",
                "url": f"{url}/CLC",
                "routage": routage(clc_case, Service.CLC),
                "args": care_arguments(clc_case.request),
            },
        ],
    )
    assert idb["ok"], idb
    assert idb["result"]["CodeRetour"] == "00"
    assert idb["result"]["Droits"]["NumeroAMC"] == AMC
    assert sim["ok"] and sim["result"]["CodeRetour"] == "00", sim
    assert sim_case.expected_statement is not None
    assert sim["result"]["Decompte"]["Total"]["PartAMC"] == euros(
        sim_case.expected_statement.total.amc
    )
    assert clc["ok"] and clc["result"]["CodeRetour"] == "00", clc
    number = clc["result"]["Engagement"]["NumeroEngagement"]
    delete = {
        "operation": "DEL",
        "port": "DEL_Soap11",
        "url": f"{url}/DEL",
        "routage": routage(clc_case, Service.DEL),
        "args": {
            "Beneficiaire": beneficiaire(clc_case.request),
            "NumeroEngagement": number,
            "Motif": "ANNULATION_SEJOUR",
        },
    }
    first, second = run(pki, [delete, {**delete, "routage": routage(clc_case, Service.DEL)}])
    assert first["ok"] and first["result"]["CodeRetour"] == "00", first
    assert first["result"]["NumeroEngagement"] == number
    assert second["ok"] and second["result"]["CodeRetour"] == "11", second


def test_node_soap_gets_a_fault_for_a_non_conforming_request(stack: Stack, pki: Path) -> None:
    sim_case = case("SIM_OK_MCO_PRISE_EN_CHARGE_TOTALE")
    assert isinstance(sim_case.request, CareRequest)
    arguments = care_arguments(sim_case.request)
    arguments["Sejour"]["Secteur"] = "HAD"  # FJH lines are not allowed in HAD
    (answer,) = run(
        pki,
        [
            {
                "operation": "SIM",
                "port": "SIM_Soap11",
                "url": f"https://127.0.0.1:{stack.relay_port}/roc/SIM",
                "routage": routage(sim_case, Service.SIM),
                "args": arguments,
            }
        ],
    )
    assert not answer["ok"]
    assert "MUT-400-CONFORMITE" in json.dumps(answer)
    assert "FJH_HAD" in json.dumps(answer)
