"""CLC and DEL case specifications: engagements, and coherence across calls."""

from __future__ import annotations

from dataclasses import replace

from mutuelle.care import CareLine, CareOutcome, Exemption, LineCode
from mutuelle.engagements import EngagementState
from mutuelle.idb import IdbOutcome
from mutuelle.model import CareKind, Sector
from mutuelle.sandbox import DelOutcome
from mutuelle.specs import (
    _ALL_SECTORS,
    _D,
    CaseSpec,
    ContractTemplate,
    MemberNumber,
    Relation,
    RightsTemplate,
    SeedEngagement,
    care_spec,
)
from mutuelle.specs_stays import HAD_STAY, MCO_PLAIN, MCO_STAY, OQN_STAY, PSY_STAY, SMR_STAY
from roc.model import RocVersion, Service

_CLC, _DEL, _V1, _V2 = Service.CLC, Service.DEL, RocVersion.V1, RocVersion.V2
_HOSP = CareKind.HOSPITALISATION
_ACCEPTED = CareOutcome.ACCEPTED
_ACTIVE = SeedEngagement(EngagementState.ACTIVE)
#: Another stay of the same person, 4-8 March 2026, still engaged: it overlaps 2-6 March.
_OVERLAPPING = SeedEngagement(
    EngagementState.ACTIVE, Relation.OTHER_STAY, start=_D(2026, 3, 4), end=_D(2026, 3, 8)
)


def _clc(
    suffix: str,
    version: RocVersion,
    sector: Sector,
    description: str,
    rule: str,
    expected: CareOutcome | IdbOutcome,
    lines: tuple[CareLine, ...],
    level: str | None,
    **more: object,
) -> CaseSpec:
    return care_spec(
        suffix, _CLC, version, sector, _HOSP, description, rule, expected, lines, level, **more
    )


CLC_SPECS: tuple[CaseSpec, ...] = (
    _clc(
        "ENGAGEMENT",
        _V1,
        Sector.MCO,
        "The final calculation of an MCO stay, after a successful IDB (already recorded in a "
        "fresh sandbox for this beneficiary).",
        "CLC answers the statement and an engagement number (NumeroEngagement) that DEL can "
        "cancel and the invoice will quote.",
        _ACCEPTED,
        MCO_STAY,
        "CONFORT",
        identified=True,
    ),
    _clc(
        "ENGAGEMENT_V2",
        _V2,
        Sector.MCO,
        "The final calculation of an MCO stay sent with VersionROC V2, after an IDB.",
        "As in V1.",
        _ACCEPTED,
        MCO_STAY,
        "CONFORT",
        identified=True,
    ),
    _clc(
        "RELANCE_APRES_PERTE",
        _V1,
        Sector.MCO,
        "The CLC of a stay sent again after its answer was lost: a fresh sandbox already holds "
        "the engagement that first CLC made.",
        "The same request for the same stay gets the same engagement back: CodeRetour 00, the "
        "same NumeroEngagement and amounts, no second engagement. The hospital carries on, or "
        "cancels it with DEL.",
        _ACCEPTED,
        MCO_STAY,
        "CONFORT",
        identified=True,
        engagement=SeedEngagement(EngagementState.ACTIVE, Relation.SAME_REQUEST),
    ),
    _clc(
        "CHANGEMENT_CONTRAT",
        _V1,
        Sector.MCO,
        "The final calculation of a stay during which the beneficiary moves from ESSENTIEL to "
        "INTEGRAL (4 March 2026).",
        "Each day with the contract in force that day; the engagement is the AMC's, whatever "
        "the contract.",
        _ACCEPTED,
        MCO_STAY,
        None,
        identified=True,
        contracts=(
            ContractTemplate("ESSENTIEL", None, _D(2026, 3, 3)),
            ContractTemplate("INTEGRAL", _D(2026, 3, 4), None),
        ),
    ),
    _clc(
        "SECOND_CONTRAT",
        _V1,
        Sector.MCO,
        "The final calculation of a stay for a beneficiary holding ESSENTIEL and a "
        "supplementary contract (SURCO).",
        "One engagement for the AMC's whole share: both contracts' shares.",
        _ACCEPTED,
        MCO_STAY,
        None,
        identified=True,
        contracts=(ContractTemplate("ESSENTIEL"), ContractTemplate("SURCO")),
    ),
    _clc(
        "ENGAGEMENT",
        _V2,
        Sector.HAD,
        "The final calculation of a home hospitalisation, after a successful IDB.",
        "As in MCO, without a forfait journalier.",
        _ACCEPTED,
        HAD_STAY,
        "CONFORT",
        identified=True,
    ),
    _clc(
        "ENGAGEMENT",
        _V2,
        Sector.PSY,
        "The final calculation of a psychiatric stay, after a successful IDB.",
        "Billed by the day; the psychiatric forfait journalier in force.",
        _ACCEPTED,
        PSY_STAY,
        "CONFORT",
        identified=True,
    ),
    _clc(
        "ENGAGEMENT",
        _V2,
        Sector.SMR,
        "The final calculation of a rehabilitation stay, after a successful IDB.",
        "Billed by the day.",
        _ACCEPTED,
        SMR_STAY,
        "CONFORT",
        identified=True,
    ),
    _clc(
        "DEPASSEMENTS_HONORAIRES",
        _V2,
        Sector.OQN,
        "The final calculation of an ex-OQN clinic stay with an OPTAM fee overrun, after an IDB.",
        "The engagement includes the fee overrun within the guarantee's OPTAM percentage of "
        "the base.",
        _ACCEPTED,
        OQN_STAY,
        "INTEGRAL",
        identified=True,
    ),
    _clc(
        "SANS_IDB_PREALABLE",
        _V1,
        Sector.MCO,
        "A CLC for a beneficiary with open rights, but no IDB was sent first.",
        "CLC refers to an earlier successful IDB of the same establishment for the same "
        "beneficiary, period and sector: CodeRetour 07. Send the IDB, then the CLC again.",
        CareOutcome.NO_PRIOR_IDB,
        MCO_STAY,
        "CONFORT",
    ),
    _clc(
        "SANS_IDB_PREALABLE",
        _V2,
        Sector.PSY,
        "A psychiatric CLC (ROC V2) without an IDB first.",
        "CodeRetour 07, as in MCO.",
        CareOutcome.NO_PRIOR_IDB,
        PSY_STAY,
        "CONFORT",
    ),
    _clc(
        "ENGAGEMENT_EXISTANT",
        _V1,
        Sector.MCO,
        "A CLC for a stay (same ReferenceSejour) that already has an active engagement, made "
        "by an earlier CLC without the private room.",
        "One active engagement per stay: CodeRetour 09 with that engagement's number and "
        "amounts, so the hospital carries on with it, or cancels it (DEL) and calculates "
        "again.",
        CareOutcome.ENGAGEMENT_EXISTS,
        MCO_STAY,
        "CONFORT",
        identified=True,
        engagement=_ACTIVE,
    ),
    _clc(
        "ENGAGEMENT_EXISTANT",
        _V2,
        Sector.HAD,
        "A home-hospitalisation CLC for a stay that already has an active engagement made from "
        "a different request.",
        "CodeRetour 09 with the existing engagement, as in MCO.",
        CareOutcome.ENGAGEMENT_EXISTS,
        (*HAD_STAY, CareLine(2, LineCode.ACC, 5, 2000)),
        "CONFORT",
        identified=True,
        engagement=_ACTIVE,
    ),
    _clc(
        "CHEVAUCHEMENT",
        _V1,
        Sector.MCO,
        "A CLC for a stay (2-6 March) of a beneficiary who has an active engagement for "
        "another stay, 4-8 March.",
        "A person is in one stay at a time: an engagement overlapping another active one of "
        "the same beneficiary is refused, CodeRetour 13 (a stay may start the day another "
        "ends).",
        CareOutcome.OVERLAPPING,
        MCO_STAY,
        "CONFORT",
        identified=True,
        engagement=_OVERLAPPING,
    ),
    _clc(
        "CHEVAUCHEMENT",
        _V2,
        Sector.SMR,
        "An SMR CLC overlapping another active engagement of the same beneficiary.",
        "CodeRetour 13, as in MCO.",
        CareOutcome.OVERLAPPING,
        SMR_STAY,
        "CONFORT",
        identified=True,
        engagement=_OVERLAPPING,
    ),
    _clc(
        "DROITS_FERMES",
        _V1,
        Sector.MCO,
        "A CLC for a beneficiary whose contract ended on 31 December 2024.",
        "IDB's rules first: CodeRetour 02.",
        IdbOutcome.RIGHTS_CLOSED,
        MCO_STAY,
        None,
        rights=(RightsTemplate(_D(2018, 1, 1), _D(2024, 12, 31), _ALL_SECTORS),),
    ),
    _clc(
        "REFUS_AUCUNE_PART_AMC",
        _V1,
        Sector.MCO,
        "A CLC for a stay after a work accident (AT_MP), without extras, after an IDB.",
        "Nothing is left for the AMC: CodeRetour 08, no engagement.",
        CareOutcome.REFUSED,
        MCO_PLAIN[:1],
        "ESSENTIEL",
        identified=True,
        exemption=Exemption.WORK_ACCIDENT,
    ),
    _clc(
        "HORS_VERSION_V1",
        _V1,
        Sector.OQN,
        "An ex-OQN clinic CLC (without fee overrun: DEP lines need ROC V2) sent with "
        "VersionROC V1.",
        "ROC V1 carries MCO only: CodeRetour 06.",
        IdbOutcome.SECTOR_NOT_IN_VERSION,
        OQN_STAY[:3],
        None,
    ),
)


def _del(
    suffix: str,
    version: RocVersion,
    sector: Sector,
    description: str,
    rule: str,
    expected: DelOutcome | IdbOutcome,
    engagement: SeedEngagement | None,
    **more: object,
) -> CaseSpec:
    spec = CaseSpec(
        suffix, _DEL, version, sector, _HOSP, description, rule, expected, engagement=engagement
    )
    return replace(spec, **more) if more else spec  # type: ignore[arg-type]


#: DEL specifications; the engagement sent is the seeded one (or an unknown number).
DEL_SPECS: tuple[CaseSpec, ...] = (
    _del(
        "ANNULATION",
        _V1,
        Sector.MCO,
        "Cancel an active engagement (a fresh sandbox holds one for this beneficiary).",
        "An active engagement of this beneficiary, within the cancellation window, is "
        "cancelled: CodeRetour 00. A second DEL answers 11.",
        DelOutcome.CANCELLED,
        _ACTIVE,
    ),
    _del(
        "ANNULATION",
        _V2,
        Sector.PSY,
        "Cancel the active engagement of a psychiatric stay (ROC V2).",
        "As in V1: CodeRetour 00.",
        DelOutcome.CANCELLED,
        _ACTIVE,
    ),
    _del(
        "ENGAGEMENT_INCONNU",
        _V1,
        Sector.MCO,
        "Cancel an engagement number this AMC never gave.",
        "Unknown number, or another beneficiary's: CodeRetour 10 (without saying which).",
        DelOutcome.UNKNOWN,
        None,
    ),
    _del(
        "ENGAGEMENT_INCONNU",
        _V2,
        Sector.HAD,
        "Cancel, with VersionROC V2, an engagement number this AMC never gave.",
        "CodeRetour 10.",
        DelOutcome.UNKNOWN,
        None,
    ),
    _del(
        "DEJA_ANNULE",
        _V1,
        Sector.MCO,
        "Cancel an engagement that was already cancelled.",
        "A cancelled engagement stays cancelled: CodeRetour 11.",
        DelOutcome.ALREADY_CANCELLED,
        SeedEngagement(EngagementState.CANCELLED),
    ),
    _del(
        "DEJA_ANNULE",
        _V2,
        Sector.SMR,
        "Cancel an SMR engagement already cancelled (ROC V2).",
        "CodeRetour 11.",
        DelOutcome.ALREADY_CANCELLED,
        SeedEngagement(EngagementState.CANCELLED),
    ),
    _del(
        "NON_ANNULABLE",
        _V1,
        Sector.MCO,
        "Cancel an engagement that has already been billed.",
        "A billed engagement can no longer be cancelled: CodeRetour 12.",
        DelOutcome.BILLED,
        SeedEngagement(EngagementState.BILLED),
    ),
    _del(
        "NON_ANNULABLE",
        _V2,
        Sector.OQN,
        "Cancel an ex-OQN clinic engagement that has been billed (ROC V2).",
        "CodeRetour 12.",
        DelOutcome.BILLED,
        SeedEngagement(EngagementState.BILLED),
    ),
    _del(
        "DELAI_DEPASSE",
        _V1,
        Sector.MCO,
        "Cancel an active engagement made 31 days before the sandbox was reset.",
        "An engagement older than the cancellation window (30 days of sandbox time) can no "
        "longer be cancelled: CodeRetour 12 with its own label.",
        DelOutcome.EXPIRED,
        SeedEngagement(EngagementState.ACTIVE, age_days=31),
    ),
    _del(
        "ADHERENT_INCOHERENT",
        _V1,
        Sector.MCO,
        "Cancel this beneficiary's active engagement with a member number that is not theirs.",
        "When a member number is sent it must be the beneficiary's: CodeRetour 05, nothing "
        "cancelled.",
        IdbOutcome.MEMBER_NUMBER_MISMATCH,
        _ACTIVE,
        member_number=MemberNumber.WRONG,
    ),
)
