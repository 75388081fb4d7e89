"""Conformance of a request to the ROC rules a schema cannot express, field by field.

Pure: a parsed request (and the dated tariff table) in, a list of ``Violation`` out (empty
when conforming). Each violation names the field, a stable rule code (listed in ``RULES``
and docs/catalogue.md) and a reason in French a hospital can act on, never the value sent.
Schema violations come first (``mutuelle.schemas.validation_errors``); these rules run on
requests that passed the schema. Regulated amounts are checked against the amount in force
on each day of care.
"""

from __future__ import annotations

import bisect
import datetime
from collections.abc import Callable, Mapping
from types import MappingProxyType

from mutuelle.billing import Invoice
from mutuelle.care import BASED_LINES, DAILY_LINES, CareRequest, LineCode
from mutuelle.idb import IdbRequest
from mutuelle.model import CareKind, Sector
from mutuelle.sandbox import Violation
from mutuelle.tariffs import TariffTable, amo_rate_code, daily_charge_code
from roc.model import RocVersion

#: Days a SIM or CLC may cover at most (a longer stay is sent in periods; model choice).
MAX_DAYS = 366

#: Rule code -> what it requires, in French (shown to hospitals, rendered in docs/catalogue.md).
RULES: Mapping[str, str] = MappingProxyType(
    {
        "XSD": "Le corps doit être valide selon le schéma du service (roc/schemas/).",
        "PERIODE": "DateFin ne doit pas précéder DateDebut.",
        "DUREE_MAX": f"Une SIM ou un CLC couvre au plus {MAX_DAYS} jours : un séjour plus long "
        "est transmis par périodes.",
        "ACE_UN_JOUR": "Les actes et consultations externes (NatureSoins ACE) durent un jour : "
        "DateFin = DateDebut.",
        "ACE_LIGNES": "Les actes et consultations externes (ACE) ne portent que des lignes ACT "
        "ou DEP (ni PJ, GHS, FJH, CP, ACC).",
        "SEJOUR_TARIF": "Un séjour (NatureSoins HOSP ou PARTIEL) porte sa base : des lignes PJ "
        "(prix de journée) dans le secteur public, PJ ou GHS en clinique ex-OQN.",
        "GHS_OQN": "Les lignes GHS n'existent qu'en clinique ex-OQN (Secteur OQN) : dans le "
        "secteur public le ticket modérateur est calculé sur le prix de journée (PJ).",
        "FJH_HAD": "Pas de forfait journalier (FJH) en hospitalisation à domicile (HAD).",
        "FJH_PARTIEL": "Pas de forfait journalier (FJH) en hospitalisation partielle ou de jour "
        "(NatureSoins PARTIEL) : il n'est dû qu'en hospitalisation complète.",
        "FJH_EXONERATION": "Pas de forfait journalier (FJH) en maternité ni pour un accident du "
        "travail ou une maladie professionnelle (Exoneration MATERNITE, AT_MP) : l'assurance "
        "maladie le prend en charge.",
        "FJH_TARIF": "PrixUnitaire d'une ligne FJH : le forfait journalier en vigueur chaque jour "
        "couvert (secteur psychiatrique ou autre) ; un séjour à cheval sur un changement de "
        "tarif est transmis en une ligne FJH par tarif (DateDebut).",
        "TARIF_INCONNU": "Aucun montant réglementé n'est en vigueur à la date des soins dans la "
        "table des tarifs du simulateur.",
        "TAUX_AMO": "TauxAMO : 100 avec une Exoneration, sinon le taux en vigueur pour la nature "
        "des soins à DateDebut (hospitalisation ou actes externes).",
        "JOURS": "Une ligne par jour (PJ, FJH, CP, ACC) couvre Quantite jours consécutifs à "
        "partir de son DateDebut, tous dans le séjour.",
        "DATE_LIGNE": "Le DateDebut d'une ligne est un jour du séjour.",
        "UN_PAR_JOUR": "Au plus une ligne de chaque code PJ, FJH, CP, ACC par jour : les lignes "
        "d'un même code ne se chevauchent pas.",
        "DEP_OQN": "Les dépassements d'honoraires (DEP) n'existent qu'en clinique ex-OQN "
        "(Secteur OQN, ROC V2).",
        "DEP_OPTAM": "Une ligne DEP indique Optam (médecin adhérent ou non à l'OPTAM).",
        "OPTAM_DEP": "Seules les lignes DEP portent Optam.",
        "BASE_REQUISE": "Les lignes PJ, GHS, ACT et DEP portent BaseRemboursement.",
        "BASE_INTERDITE": "Les lignes FJH, CP et ACC ne portent pas de BaseRemboursement "
        "(l'assurance maladie n'en paie aucune).",
        "BASE_PRIX": "PJ, GHS et ACT sont facturés à leur base (PrixUnitaire = "
        "BaseRemboursement) ; un dépassement va sur une ligne DEP.",
        "LIGNES_UNIQUES": "Chaque NumeroLigne n'apparaît qu'une fois.",
    }
)

_STAY_ONLY = frozenset({LineCode.PJ, LineCode.GHS, LineCode.FJH, LineCode.CP, LineCode.ACC})
_ONE_DAY = datetime.timedelta(days=1)

#: The local ``add(path, rule)`` helper of ``care_violations``.
_Add = Callable[[str, str], None]


def idb_violations(request: IdbRequest, version: RocVersion) -> list[Violation]:
    """ROC rules of a ``DemandeIDB`` beyond its schema."""
    out: list[Violation] = []
    if request.care_kind is CareKind.EXTERNAL and request.end != request.start:
        out.append(Violation("DemandeIDB/Soins/DateFin", "ACE_UN_JOUR", RULES["ACE_UN_JOUR"]))
    return out


def invoice_violations(invoice: Invoice) -> list[Violation]:
    """Rules of a ``DemandeDRE`` beyond its schema (a negative ARL 30 names them)."""
    out: list[Violation] = []
    if invoice.end < invoice.start:
        out.append(Violation("DemandeDRE/Sejour/DateFin", "PERIODE", RULES["PERIODE"]))
    numbers = [line.number for line in invoice.lines]
    if len(set(numbers)) != len(numbers):
        out.append(
            Violation(
                "DemandeDRE/Lignes/Ligne/NumeroLigne", "LIGNES_UNIQUES", RULES["LIGNES_UNIQUES"]
            )
        )
    return out


def care_violations(
    request: CareRequest, version: RocVersion, root: str, tariffs: TariffTable
) -> list[Violation]:
    """ROC rules of a ``DemandeSIM`` or ``DemandeCLC`` (*root*) beyond its schema."""
    out: list[Violation] = []

    def add(path: str, rule: str) -> None:
        out.append(Violation(f"{root}/{path}", rule, RULES[rule]))

    if request.end < request.start:
        add("Sejour/DateFin", "PERIODE")
        return out
    if request.days > MAX_DAYS:
        add("Sejour/DateFin", "DUREE_MAX")
        return out  # the per-day rules below would walk every day
    external = request.care_kind is CareKind.EXTERNAL
    if external and request.end != request.start:
        add("Sejour/DateFin", "ACE_UN_JOUR")
    _amo_rate(request, tariffs, add)
    if not external and not any(line.code in (LineCode.PJ, LineCode.GHS) for line in request.lines):
        add("Prestations", "SEJOUR_TARIF")
    seen: set[int] = set()
    taken: dict[LineCode, list[tuple[datetime.date, datetime.date]]] = {}
    for index, line in enumerate(request.lines, start=1):
        where = f"Prestations/Prestation[{index}]"
        if line.number in seen:
            add(f"{where}/NumeroLigne", "LIGNES_UNIQUES")
        seen.add(line.number)
        first = request.line_start(line)
        if not request.start <= first <= request.end:
            add(f"{where}/DateDebut", "DATE_LIGNE")
        elif line.code in DAILY_LINES:
            last = first + (min(line.quantity, MAX_DAYS + 1) - 1) * _ONE_DAY
            if last > request.end:
                add(f"{where}/Quantite", "JOURS")
            elif _overlaps(taken.setdefault(line.code, []), first, last):
                add(f"{where}/DateDebut", "UN_PAR_JOUR")
            elif line.code is LineCode.FJH:
                _daily_charge(request, line.unit_price_cents, first, last, tariffs, where, add)
        if external and line.code in _STAY_ONLY:
            add(f"{where}/Code", "ACE_LIGNES")
        if line.code is LineCode.GHS and request.sector is not Sector.OQN:
            add(f"{where}/Code", "GHS_OQN")
        if line.code in BASED_LINES and line.base_cents is None:
            add(f"{where}/BaseRemboursement", "BASE_REQUISE")
        if line.code not in BASED_LINES and line.base_cents is not None:
            add(f"{where}/BaseRemboursement", "BASE_INTERDITE")
        if (
            line.code in (LineCode.PJ, LineCode.GHS, LineCode.ACT)
            and line.base_cents is not None
            and line.base_cents != line.unit_price_cents
        ):
            add(f"{where}/PrixUnitaire", "BASE_PRIX")
        if line.code is LineCode.FJH:
            if request.sector is Sector.HAD:
                add(f"{where}/Code", "FJH_HAD")
            elif request.care_kind is CareKind.PARTIAL:
                add(f"{where}/Code", "FJH_PARTIEL")
            elif request.exemption is not None and request.exemption.exempts_daily_charge:
                add(f"{where}/Code", "FJH_EXONERATION")
        if line.code is LineCode.DEP:
            if request.sector is not Sector.OQN or version is not RocVersion.V2:
                add(f"{where}/Code", "DEP_OQN")
            if line.optam is None:
                add(f"{where}/Optam", "DEP_OPTAM")
        elif line.optam is not None:
            add(f"{where}/Optam", "OPTAM_DEP")
    return out


def _amo_rate(request: CareRequest, tariffs: TariffTable, add: _Add) -> None:
    if request.exemption is not None:
        if request.amo_rate != 100:
            add("Sejour/TauxAMO", "TAUX_AMO")
        return
    rate = tariffs.value(amo_rate_code(request.care_kind), request.start)
    if rate is None:
        add("Sejour/TauxAMO", "TARIF_INCONNU")
    elif request.amo_rate != rate:
        add("Sejour/TauxAMO", "TAUX_AMO")


def _overlaps(
    taken: list[tuple[datetime.date, datetime.date]], first: datetime.date, last: datetime.date
) -> bool:
    """Whether [first, last] meets a period of *taken* (sorted, disjoint); else add it."""
    index = bisect.bisect_left(taken, (first, first))
    if index > 0 and taken[index - 1][1] >= first:
        return True
    if index < len(taken) and taken[index][0] <= last:
        return True
    taken.insert(index, (first, last))
    return False


def _daily_charge(
    request: CareRequest,
    price: int,
    first: datetime.date,
    last: datetime.date,
    tariffs: TariffTable,
    where: str,
    add: _Add,
) -> None:
    """An FJH line charges the forfait in force on each day it covers (one tariff a line)."""
    code = daily_charge_code(request.sector)
    if code is None:
        return  # HAD: FJH_HAD says it
    amounts = tariffs.values_between(code, first, last)
    if None in amounts:
        add(f"{where}/PrixUnitaire", "TARIF_INCONNU")
    elif amounts != {price}:
        add(f"{where}/PrixUnitaire", "FJH_TARIF")
