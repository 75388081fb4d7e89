"""A real SOAP client, zeep, consumes roc/schemas/roc.wsdl as is and calls every service
through the relay (mutual TLS), then the demo annuaire on the simulator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import zeep

from mutuelle.care import CareRequest, euros
from mutuelle.catalogue import Case, default_catalogue
from mutuelle.decisions import DelRequest
from mutuelle.idb import IdbRequest
from tests.integration.test_mutuelle_cases import Stack, start_stack
from tools.devpki import HOSPITAL_A

WSDL = Path(__file__).resolve().parents[2] / "roc" / "schemas" / "roc.wsdl"
CATALOGUE = default_catalogue()
AMC = "990000101"


@pytest.fixture(scope="module")
def stack(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(pki, tmp_path_factory.mktemp("zeep-stack"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def client(pki: Path) -> Any:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace our CA
    session.verify = str(pki / "ca.pem")
    session.cert = (str(pki / "hospital-a.pem"), str(pki / "hospital-a.key"))
    return zeep.Client(str(WSDL), transport=zeep.Transport(session=session))


def routage(case: Case, service: str) -> dict[str, Any]:
    return {
        "Service": service,
        "VersionROC": case.version.value,
        "AMC": {"Numero": case.amc_number, "TypeConvention": "TP", "CritereSecondaire": "01"},
        "Emetteur": {
            "FinessJuridique": HOSPITAL_A["legal"],
            "FinessGeographique": HOSPITAL_A["site"],
        },
        "IdentifiantEchange": str(uuid.uuid4()),
    }


def beneficiaire(request: IdbRequest | CareRequest | DelRequest) -> dict[str, Any]:
    key = request.beneficiary
    who: dict[str, Any] = {
        "NIR": key.nir,
        "DateNaissance": key.birth_date,
        "RangNaissance": key.birth_rank,
    }
    if request.member_number:
        who["NumeroAdherent"] = request.member_number
    return who


def care_arguments(request: CareRequest) -> dict[str, Any]:
    stay: dict[str, Any] = {
        "ReferenceSejour": request.reference,
        "DateDebut": request.start,
        "DateFin": request.end,
        "Secteur": request.sector.value,
        "NatureSoins": request.care_kind.value,
        "TauxAMO": request.amo_rate,
    }
    if request.exemption is not None:
        stay["Exoneration"] = request.exemption.value
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
            item["DateDebut"] = line.start
        if line.optam is not None:
            item["Optam"] = line.optam
        lines.append(item)
    return {
        "Beneficiaire": beneficiaire(request),
        "Sejour": stay,
        "Prestations": {"Prestation": lines},
    }


def service_for(client: Any, stack: Stack, service: str, soap: str = "Soap11") -> Any:
    binding = f"{{urn:piano:roc:wsdl:v1}}Roc{soap}Binding"
    return client.create_service(binding, f"https://127.0.0.1:{stack.relay_port}/roc/{service}")


def case(name: str, amc: str = AMC) -> Case:
    found = CATALOGUE.get(amc, name)
    assert found is not None
    return found


def test_zeep_plays_idb_sim_clc_and_del_through_the_relay(client: Any, stack: Stack) -> None:
    stack.admin("POST", f"sandboxes/{HOSPITAL_A['site']}/reset")
    idb_case = case("IDB_OK_MCO_DROITS_OUVERTS")
    assert isinstance(idb_case.request, IdbRequest)
    r = idb_case.request
    answer = service_for(client, stack, "IDB").IDB(
        Beneficiaire=beneficiaire(r),
        Soins={
            "DateDebut": r.start,
            "DateFin": r.end,
            "Secteur": r.sector.value,
            "NatureSoins": r.care_kind.value,
        },
        _soapheaders={"routage": routage(idb_case, "IDB")},
    )
    assert answer.CodeRetour == "00"
    assert answer.Droits.NumeroAMC == AMC and "MCO" in answer.Droits.Secteur

    sim_case = case("SIM_OK_MCO_PLAFOND_ATTEINT")
    assert isinstance(sim_case.request, CareRequest) and sim_case.expected_statement
    answer = service_for(client, stack, "SIM").SIM(
        **care_arguments(sim_case.request), _soapheaders={"routage": routage(sim_case, "SIM")}
    )
    assert answer.CodeRetour == "00"
    total = sim_case.expected_statement.total
    assert str(answer.Decompte.Total.PartAMC) == euros(total.amc)
    assert str(answer.Decompte.Total.ResteACharge) == euros(total.patient)
    assert len(answer.Decompte.Ligne) == len(sim_case.request.lines)

    clc_case = case("CLC_OK_MCO_ENGAGEMENT")
    assert isinstance(clc_case.request, CareRequest)
    answer = service_for(client, stack, "CLC", "Soap12").CLC(
        **care_arguments(clc_case.request), _soapheaders={"routage": routage(clc_case, "CLC")}
    )
    assert answer.CodeRetour == "00"
    number = answer.Engagement.NumeroEngagement
    assert number.startswith(f"ENG-{AMC}-")

    del_service = service_for(client, stack, "DEL")
    arguments = {
        "Beneficiaire": beneficiaire(clc_case.request),
        "NumeroEngagement": number,
        "Motif": "ERREUR_SAISIE",
        "_soapheaders": {"routage": routage(clc_case, "DEL")},
    }
    answer = del_service.DEL(**arguments)
    assert (answer.CodeRetour, answer.NumeroEngagement) == ("00", number)
    arguments["_soapheaders"] = {"routage": routage(clc_case, "DEL")}
    assert del_service.DEL(**arguments).CodeRetour == "11"


def test_zeep_sees_a_simulator_fault_as_a_soap_fault(client: Any, stack: Stack) -> None:
    sim_case = case("SIM_OK_MCO_PRISE_EN_CHARGE_TOTALE")
    assert isinstance(sim_case.request, CareRequest)
    arguments = care_arguments(sim_case.request)
    arguments["Sejour"]["DateFin"] = sim_case.request.start  # FJH 5 days > a 1-day stay
    with pytest.raises(zeep.exceptions.Fault) as raised:
        service_for(client, stack, "SIM").SIM(
            **arguments, _soapheaders={"routage": routage(sim_case, "SIM")}
        )
    assert "[JOURS]" in raised.value.message
    code = raised.value.detail.find(".//{urn:piano:mutuelle:erreurs:v1}Code")
    assert code is not None and code.text == "MUT-400-CONFORMITE"


def test_zeep_asks_the_demo_annuaire(client: Any, stack: Stack) -> None:
    annuaire = client.create_service(
        "{urn:piano:roc:wsdl:v1}AnnuaireSoap11Binding",
        f"https://127.0.0.1:{stack.mutuelle_port}/roc/ANN",
    )
    answer = annuaire.ANN(NumeroAMC=AMC, TypeConvention="TP", CritereSecondaire="01")
    assert answer.CodeRetour == "00"
    assert answer.AMC.Nom.startswith("Mutuelle Alpha")
