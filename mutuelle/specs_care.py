"""SIM, CLC and DEL case specifications, and the whole list (``ALL_SPECS``)."""

from __future__ import annotations

from dataclasses import replace

from mutuelle.care import CareLine, CareOutcome, LineCode
from mutuelle.decisions import Outcome
from mutuelle.idb import IdbOutcome
from mutuelle.model import CareKind, Sector
from mutuelle.sandbox import DelOutcome, EngagementState
from mutuelle.specs import (
    _ALL_SECTORS,
    _D,
    DEFAULT_START,
    SPECS,
    CaseSpec,
    RightsTemplate,
)
from roc.model import RocVersion, Service

_L = CareLine
#: A five-day MCO stay: the stay itself, five daily charges, four nights in a private room.
_MCO_STAY = (
    _L(1, LineCode.GHS, 1, 350000, 350000),
    _L(2, LineCode.FJH, 5, 2000),
    _L(3, LineCode.CP, 4, 6500),
)


def _care(
    suffix: str,
    service: Service,
    version: RocVersion,
    sector: Sector,
    care_kind: CareKind,
    description: str,
    rule: str,
    expected: Outcome,
    lines: tuple[CareLine, ...],
    level: str | None,
    **more: object,
) -> CaseSpec:
    spec = CaseSpec(
        suffix,
        service,
        version,
        sector,
        care_kind,
        description,
        rule,
        expected,
        lines=lines,
        contract_level=level,
    )
    return replace(spec, **more) if more else spec  # type: ignore[arg-type]


_SIM, _CLC, _V1, _V2, _HOSP = (
    Service.SIM,
    Service.CLC,
    RocVersion.V1,
    RocVersion.V2,
    CareKind.HOSPITALISATION,
)
_ACCEPTED = CareOutcome.ACCEPTED
_CLOSED = (RightsTemplate(_D(2018, 1, 1), _D(2024, 12, 31), _ALL_SECTORS),)

#: SIM, CLC and DEL specifications, in catalogue order.
CARE_SPECS: tuple[CaseSpec, ...] = (
    _care(
        "PRISE_EN_CHARGE_TOTALE",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "A five-day MCO stay with a private room, for a beneficiary with the most generous "
        "guarantee (INTEGRAL).",
        "AMO pays TauxAMO % of the GHS base; the AMC pays the ticket modérateur, the forfait "
        "journalier and the private room within its ceiling: the patient pays nothing.",
        _ACCEPTED,
        _MCO_STAY,
        "INTEGRAL",
    ),
    _care(
        "PRISE_EN_CHARGE_PARTIELLE",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "The same stay for a beneficiary with the basic guarantee (ESSENTIEL), which does not "
        "cover private rooms.",
        "Each line is computed on its own: the private room is left to the patient, the rest "
        "is covered.",
        _ACCEPTED,
        _MCO_STAY,
        "ESSENTIEL",
    ),
    _care(
        "PLAFOND_ATTEINT",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "A stay with an expensive private room (95.00 a day) and a companion (45.00 a day), "
        "for a CONFORT guarantee.",
        "Extras are covered up to the guarantee's ceiling per day; what exceeds it is the "
        "patient's.",
        _ACCEPTED,
        (
            _L(1, LineCode.GHS, 1, 350000, 350000),
            _L(2, LineCode.FJH, 5, 2000),
            _L(3, LineCode.CP, 4, 9500),
            _L(4, LineCode.ACC, 4, 4500),
        ),
        "CONFORT",
    ),
    _care(
        "PARTICIPATION_FORFAITAIRE",
        _SIM,
        _V1,
        Sector.MCO,
        CareKind.EXTERNAL,
        "An expensive external act (150.00) with its flat participation (PFA 24.00).",
        "The flat participation replaces the ticket modérateur: the AMO pays the whole base, "
        "the AMC pays the 24.00 when the guarantee covers it.",
        _ACCEPTED,
        (_L(1, LineCode.ACT, 1, 15000, 15000), _L(2, LineCode.PFA, 1, 2400)),
        "CONFORT",
        start=DEFAULT_START,
        end=DEFAULT_START,
    ),
    _care(
        "FORFAIT_JOURNALIER",
        _SIM,
        _V2,
        Sector.PSY,
        _HOSP,
        "A five-day stay in psychiatry (ROC V2).",
        "The forfait journalier is 15.00 a day in psychiatry (20.00 in MCO and SMR); the AMO "
        "never pays it.",
        _ACCEPTED,
        (_L(1, LineCode.GHS, 1, 250000, 250000), _L(2, LineCode.FJH, 5, 1500)),
        "ESSENTIEL",
    ),
    _care(
        "SANS_FORFAIT_JOURNALIER",
        _SIM,
        _V2,
        Sector.HAD,
        _HOSP,
        "Five days of home hospitalisation (HAD, ROC V2).",
        "There is no forfait journalier in HAD (an FJH line breaks rule FJH_HAD); the AMC pays "
        "the ticket modérateur.",
        _ACCEPTED,
        (_L(1, LineCode.GHS, 1, 180000, 180000),),
        "ESSENTIEL",
    ),
    _care(
        "FORFAIT_JOURNALIER",
        _SIM,
        _V2,
        Sector.SMR,
        _HOSP,
        "A five-day stay in rehabilitation (SMR, ROC V2).",
        "The forfait journalier is 20.00 a day in SMR, as in MCO.",
        _ACCEPTED,
        (_L(1, LineCode.GHS, 1, 200000, 200000), _L(2, LineCode.FJH, 5, 2000)),
        "ESSENTIEL",
    ),
    _care(
        "DEPASSEMENTS_HONORAIRES",
        _SIM,
        _V2,
        Sector.OQN,
        _HOSP,
        "A stay in a private ex-OQN clinic with a 450.00 fee overrun on a 300.00 base (ROC V2).",
        "Fee overruns (DEP) are covered up to the guarantee's percentage of the base (CONFORT: "
        "50 % or 100 % depending on the AMC); the AMO pays none of them.",
        _ACCEPTED,
        (
            _L(1, LineCode.GHS, 1, 150000, 150000),
            _L(2, LineCode.FJH, 5, 2000),
            _L(3, LineCode.DEP, 1, 45000, 30000),
        ),
        "CONFORT",
    ),
    _care(
        "REFUS_AUCUNE_PART_AMC",
        _SIM,
        _V1,
        Sector.MCO,
        CareKind.EXTERNAL,
        "A consultation for a patient exempt from the ticket modérateur (TauxAMO 100).",
        "The AMC share never exceeds what the AMO leaves: nothing is left, so the AMC refuses "
        "(CodeRetour 08).",
        CareOutcome.REFUSED,
        (_L(1, LineCode.ACT, 1, 2500, 2500),),
        "ESSENTIEL",
        amo_rate=100,
        start=DEFAULT_START,
        end=DEFAULT_START,
    ),
    _care(
        "DROITS_FERMES",
        _SIM,
        _V1,
        Sector.MCO,
        _HOSP,
        "A simulation for a beneficiary whose contract ended on 31 December 2024.",
        "SIM and CLC apply IDB's rules first: CodeRetour 02, no statement.",
        IdbOutcome.RIGHTS_CLOSED,
        _MCO_STAY,
        None,
        rights=_CLOSED,
    ),
    _care(
        "HORS_VERSION_V1",
        _SIM,
        _V1,
        Sector.PSY,
        _HOSP,
        "A psychiatry simulation sent with VersionROC V1.",
        "ROC V1 carries MCO only: the refusal an AMC gives, CodeRetour 06.",
        IdbOutcome.SECTOR_NOT_IN_VERSION,
        (_L(1, LineCode.GHS, 1, 250000, 250000), _L(2, LineCode.FJH, 5, 1500)),
        None,
    ),
    _care(
        "ENGAGEMENT",
        _CLC,
        _V1,
        Sector.MCO,
        _HOSP,
        "The final calculation of an MCO stay, after a successful IDB (already recorded in a "
        "fresh sandbox for this beneficiary).",
        "CLC answers the statement and an engagement number (NumeroEngagement) that DEL can "
        "cancel and the invoice will quote.",
        _ACCEPTED,
        _MCO_STAY,
        "CONFORT",
        identified=True,
    ),
    _care(
        "ENGAGEMENT",
        _CLC,
        _V2,
        Sector.HAD,
        _HOSP,
        "The final calculation of a home hospitalisation, after a successful IDB.",
        "As in MCO, without a forfait journalier.",
        _ACCEPTED,
        ((_L(1, LineCode.GHS, 1, 180000, 180000)),),
        "CONFORT",
        identified=True,
    ),
    _care(
        "DEPASSEMENTS_HONORAIRES",
        _CLC,
        _V2,
        Sector.OQN,
        _HOSP,
        "The final calculation of an ex-OQN clinic stay with a fee overrun, after an IDB.",
        "The engagement includes the fee overrun within the guarantee's percentage of the "
        "base (INTEGRAL: 150 % or 200 %).",
        _ACCEPTED,
        (
            _L(1, LineCode.GHS, 1, 150000, 150000),
            _L(2, LineCode.FJH, 5, 2000),
            _L(3, LineCode.DEP, 1, 45000, 30000),
        ),
        "INTEGRAL",
        identified=True,
    ),
    _care(
        "SANS_IDB_PREALABLE",
        _CLC,
        _V1,
        Sector.MCO,
        _HOSP,
        "A CLC for a beneficiary with open rights, but no IDB was sent first.",
        "CLC refers to an earlier successful IDB of the same establishment for the same "
        "beneficiary, period and sector: CodeRetour 07. Send the IDB, then the CLC again.",
        CareOutcome.NO_PRIOR_IDB,
        _MCO_STAY,
        "CONFORT",
    ),
    _care(
        "ENGAGEMENT_EXISTANT",
        _CLC,
        _V1,
        Sector.MCO,
        _HOSP,
        "A second CLC for a stay (same ReferenceSejour) that already has an active engagement.",
        "One active engagement per stay: cancel it with DEL before calculating again "
        "(CodeRetour 09).",
        CareOutcome.ENGAGEMENT_EXISTS,
        _MCO_STAY,
        "CONFORT",
        identified=True,
        engagement=EngagementState.ACTIVE,
    ),
)

#: DEL specifications; the engagement sent is the seeded one (or an unknown number).
DEL_SPECS: tuple[CaseSpec, ...] = (
    CaseSpec(
        "ANNULATION",
        Service.DEL,
        _V1,
        Sector.MCO,
        _HOSP,
        "Cancel an active engagement (a fresh sandbox holds one for this beneficiary).",
        "An active engagement of this beneficiary, within the cancellation window, is "
        "cancelled: CodeRetour 00. A second DEL answers 11.",
        DelOutcome.CANCELLED,
        engagement=EngagementState.ACTIVE,
    ),
    CaseSpec(
        "ENGAGEMENT_INCONNU",
        Service.DEL,
        _V1,
        Sector.MCO,
        _HOSP,
        "Cancel an engagement number this AMC never gave.",
        "Unknown number, or another beneficiary's: CodeRetour 10 (without saying which).",
        DelOutcome.UNKNOWN,
    ),
    CaseSpec(
        "DEJA_ANNULE",
        Service.DEL,
        _V1,
        Sector.MCO,
        _HOSP,
        "Cancel an engagement that was already cancelled.",
        "A cancelled engagement stays cancelled: CodeRetour 11.",
        DelOutcome.ALREADY_CANCELLED,
        engagement=EngagementState.CANCELLED,
    ),
    CaseSpec(
        "NON_ANNULABLE",
        Service.DEL,
        _V1,
        Sector.MCO,
        _HOSP,
        "Cancel an engagement that has already been billed.",
        "A billed engagement, or one older than the cancellation window (30 days of sandbox "
        "time), can no longer be cancelled: CodeRetour 12.",
        DelOutcome.BILLED,
        engagement=EngagementState.BILLED,
    ),
)

#: Every specification, in catalogue order.
ALL_SPECS: tuple[CaseSpec, ...] = SPECS + CARE_SPECS + DEL_SPECS


def specs_for(third_party_payment: bool) -> tuple[CaseSpec, ...]:
    """The specifications that apply to an AMC with or without third-party payment."""
    return tuple(
        spec
        for spec in ALL_SPECS
        if spec.third_party_payment is None or spec.third_party_payment == third_party_payment
    )
