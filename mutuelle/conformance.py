"""Conformance of a request to the ROC rules a schema cannot express, field by field.

Pure: a parsed request in, a list of ``Violation`` out (empty when conforming). Each violation
names the field, a stable rule code (listed in ``RULES`` and docs/catalogue.md) and a reason a
publisher can act on, never the value sent. Schema violations come first
(``mutuelle.schemas.validation_errors``); these rules run on requests that passed the schema.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from mutuelle.care import (
    BASED_LINES,
    DAILY_HOSPITAL_CHARGE_CENTS,
    FLAT_PARTICIPATION_CENTS,
    CareRequest,
    LineCode,
)
from mutuelle.idb import IdbRequest
from mutuelle.model import CareKind, Sector
from mutuelle.sandbox import Violation
from roc.model import RocVersion

#: Rule code -> what it requires (rendered in docs/catalogue.md).
RULES: Mapping[str, str] = MappingProxyType(
    {
        "XSD": "The body must be valid against the service's schema (roc/schemas/).",
        "PERIODE": "DateFin must not be before DateDebut.",
        "ACE_UN_JOUR": "External consultations and acts (NatureSoins ACE) last one day: "
        "DateFin = DateDebut.",
        "ACE_LIGNES": "External consultations and acts (ACE) carry ACT, PFA or DEP lines only "
        "(no GHS, FJH, CP, ACC).",
        "HOSP_GHS": "A stay (NatureSoins HOSP or PARTIEL) carries at least one GHS line.",
        "FJH_HAD": "No forfait journalier (FJH) in home hospitalisation (HAD).",
        "FJH_TARIF": "The forfait journalier (FJH) costs 20.00 a day in MCO, SMR and OQN and "
        "15.00 in PSY.",
        "JOURS": "FJH, CP and ACC quantities count days: at most the days of the stay.",
        "PFA_TARIF": "The flat participation (PFA) costs 24.00.",
        "DEP_OQN": "Fee overruns (DEP) exist only for ex-OQN clinics (Secteur OQN, ROC V2).",
        "BASE_REQUISE": "GHS, ACT and DEP lines carry BaseRemboursement.",
        "BASE_INTERDITE": "FJH, PFA, CP and ACC lines carry no BaseRemboursement (the AMO pays "
        "none of them).",
        "BASE_PRIX": "GHS and ACT are charged at their base (PrixUnitaire = BaseRemboursement); "
        "an overrun goes on a DEP line.",
        "LIGNES_UNIQUES": "Each NumeroLigne appears once.",
    }
)

_STAY_ONLY = frozenset({LineCode.GHS, LineCode.FJH, LineCode.CP, LineCode.ACC})


def idb_violations(request: IdbRequest, version: RocVersion) -> list[Violation]:
    """ROC rules of a ``DemandeIDB`` beyond its schema."""
    out: list[Violation] = []
    if request.care_kind is CareKind.EXTERNAL and request.end != request.start:
        out.append(Violation("DemandeIDB/Soins/DateFin", "ACE_UN_JOUR", RULES["ACE_UN_JOUR"]))
    return out


def care_violations(request: CareRequest, version: RocVersion, root: str) -> list[Violation]:
    """ROC rules of a ``DemandeSIM`` or ``DemandeCLC`` (*root*) beyond its schema."""
    out: list[Violation] = []

    def add(path: str, rule: str) -> None:
        out.append(Violation(f"{root}/{path}", rule, RULES[rule]))

    if request.end < request.start:
        add("Sejour/DateFin", "PERIODE")
        days = 1
    else:
        days = (request.end - request.start).days + 1
    external = request.care_kind is CareKind.EXTERNAL
    if external and request.end != request.start:
        add("Sejour/DateFin", "ACE_UN_JOUR")
    if not external and not any(line.code is LineCode.GHS for line in request.lines):
        add("Prestations", "HOSP_GHS")
    seen: set[int] = set()
    for index, line in enumerate(request.lines, start=1):
        where = f"Prestations/Prestation[{index}]"
        if line.number in seen:
            add(f"{where}/NumeroLigne", "LIGNES_UNIQUES")
        seen.add(line.number)
        if external and line.code in _STAY_ONLY:
            add(f"{where}/Code", "ACE_LIGNES")
        if line.code in BASED_LINES and line.base_cents is None:
            add(f"{where}/BaseRemboursement", "BASE_REQUISE")
        if line.code not in BASED_LINES and line.base_cents is not None:
            add(f"{where}/BaseRemboursement", "BASE_INTERDITE")
        if (
            line.code in (LineCode.GHS, LineCode.ACT)
            and line.base_cents is not None
            and line.base_cents != line.unit_price_cents
        ):
            add(f"{where}/PrixUnitaire", "BASE_PRIX")
        if line.code is LineCode.FJH:
            if request.sector is Sector.HAD:
                add(f"{where}/Code", "FJH_HAD")
            elif line.unit_price_cents != DAILY_HOSPITAL_CHARGE_CENTS[request.sector]:
                add(f"{where}/PrixUnitaire", "FJH_TARIF")
        if line.code in (LineCode.FJH, LineCode.CP, LineCode.ACC) and line.quantity > days:
            add(f"{where}/Quantite", "JOURS")
        if line.code is LineCode.PFA and line.unit_price_cents != FLAT_PARTICIPATION_CENTS:
            add(f"{where}/PrixUnitaire", "PFA_TARIF")
        if line.code is LineCode.DEP and (
            request.sector is not Sector.OQN or version is not RocVersion.V2
        ):
            add(f"{where}/Code", "DEP_OQN")
    return out
