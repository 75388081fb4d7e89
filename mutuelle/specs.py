"""Business case specifications: the situations the catalogue plays, independent of the AMC.

A specification says what the beneficiary's rights and contract must look like, what to send
and what comes back; the generator (``mutuelle.generate``) creates one such person per AMC and
``mutuelle.catalogue`` joins both into concrete cases. IDB and technical-fault cases are here,
SIM, CLC and DEL ones in ``mutuelle.specs_care``.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from enum import Enum

from mutuelle.care import CareLine
from mutuelle.decisions import Outcome
from mutuelle.idb import IdbOutcome
from mutuelle.model import BeneficiaryKey, CareKind, Sector
from mutuelle.sandbox import EngagementState
from mutuelle.technical import TechnicalFault
from roc.identifiers import make_nir
from roc.model import RocVersion, Service

_D = datetime.date

#: Default period of care the cases ask about (a five-day stay).
DEFAULT_START = _D(2026, 3, 2)
DEFAULT_END = _D(2026, 3, 6)

#: A valid, fictitious NIR no generated beneficiary has: order numbers 900-999 are never
#: generated, so NIRs using them are unknown to every simulated AMC.
UNKNOWN_BENEFICIARY = BeneficiaryKey(make_nir("1800199999999"), _D(1980, 1, 15), 1)

#: A member number no generated beneficiary has (generated ones are 3 letters + 7 digits
#: below 9000000).
WRONG_MEMBER_NUMBER = "ZZZ9999999"


class MemberNumber(Enum):
    """What a case sends as ``NumeroAdherent`` (optional in IDB)."""

    SENT = "the beneficiary's"
    OMITTED = "none"
    WRONG = f"{WRONG_MEMBER_NUMBER} (not the beneficiary's)"


class Family(Enum):
    """Who the generator creates for a case."""

    ADULT = "an adult, insured in their own name"
    TWIN = "the second of twins, covered on a parent's NIR (birth rank 2)"
    NOBODY = "nobody: the NIR is in no AMC's data"


@dataclass(frozen=True, slots=True)
class RightsTemplate:
    """A rights period the case's beneficiary must have."""

    start: datetime.date
    end: datetime.date | None
    sectors: frozenset[Sector]


_ALL_SECTORS = frozenset(Sector)
_OPEN = (RightsTemplate(_D(2020, 1, 1), None, _ALL_SECTORS),)


@dataclass(frozen=True, slots=True)
class CaseSpec:
    """One business case, independent of the AMC and of the generated person."""

    suffix: str
    service: Service
    version: RocVersion
    sector: Sector
    care_kind: CareKind
    description: str
    rule: str
    expected: Outcome
    rights: tuple[RightsTemplate, ...] = _OPEN
    family: Family = Family.ADULT
    member_number: MemberNumber = MemberNumber.SENT
    start: datetime.date = DEFAULT_START
    end: datetime.date = DEFAULT_END
    #: Whether the case applies to AMCs that practise third-party payment, or to those that
    #: do not; None: to every AMC.
    third_party_payment: bool | None = True
    #: Guarantee level of the beneficiary's contract (ESSENTIEL, CONFORT, INTEGRAL); None: any.
    contract_level: str | None = None
    #: SIM and CLC: the care lines sent, and the AMO rate.
    lines: tuple[CareLine, ...] = ()
    amo_rate: int = 80
    reference: str = "SEJ-2026-000123"
    #: CLC: a fresh sandbox already holds a successful IDB for this person and period.
    identified: bool = False
    #: CLC and DEL: a fresh sandbox already holds an engagement for this person, in this state.
    engagement: EngagementState | None = None
    #: A technical fault the simulator plays instead of answering (no CodeRetour then).
    technical_fault: TechnicalFault | None = None

    @property
    def name(self) -> str:
        ok = self.technical_fault is None and self.expected.value.code == "00"
        verdict = "OK" if ok else "KO"
        return f"{self.service.value}_{verdict}_{self.sector.value}_{self.suffix}"


def _open_in(sector: Sector, version: RocVersion = RocVersion.V2) -> CaseSpec:
    return CaseSpec(
        "DROITS_OUVERTS",
        Service.IDB,
        version,
        sector,
        CareKind.HOSPITALISATION,
        f"A beneficiary covered in every sector asks about a {sector.value} stay (ROC "
        f"{version.value}).",
        "Rights open over the whole period for the sector: CodeRetour 00 with the AMC, "
        "member number, contract, coverage period and sectors covered.",
        IdbOutcome.RIGHTS_OPEN,
    )


#: Every case specification, in catalogue order.
SPECS: tuple[CaseSpec, ...] = (
    _open_in(Sector.MCO, RocVersion.V1),
    CaseSpec(
        "AYANT_DROIT_JUMEAU",
        Service.IDB,
        RocVersion.V1,
        Sector.MCO,
        CareKind.EXTERNAL,
        "The second of twins, covered on a parent's contract, comes for an external "
        "consultation; no member number is sent.",
        "A child is identified by the insured parent's NIR, the child's own birth date and "
        "the birth rank (2 for the second twin); the member number is optional.",
        IdbOutcome.RIGHTS_OPEN,
        family=Family.TWIN,
        member_number=MemberNumber.OMITTED,
        start=DEFAULT_START,
        end=DEFAULT_START,
    ),
    CaseSpec(
        "DROITS_RENOUVELES",
        Service.IDB,
        RocVersion.V1,
        Sector.MCO,
        CareKind.HOSPITALISATION,
        "A stay over New Year; the contract was renewed on 1 January (two rights periods).",
        "Consecutive rights periods are merged: the stay is covered without a gap.",
        IdbOutcome.RIGHTS_OPEN,
        rights=(
            RightsTemplate(_D(2025, 1, 1), _D(2025, 12, 31), _ALL_SECTORS),
            RightsTemplate(_D(2026, 1, 1), None, _ALL_SECTORS),
        ),
        start=_D(2025, 12, 29),
        end=_D(2026, 1, 3),
    ),
    _open_in(Sector.PSY),
    _open_in(Sector.HAD),
    _open_in(Sector.SMR),
    _open_in(Sector.OQN),
    CaseSpec(
        "DROITS_FERMES",
        Service.IDB,
        RocVersion.V1,
        Sector.MCO,
        CareKind.HOSPITALISATION,
        "The beneficiary's contract ended on 31 December 2024.",
        "No day of the period is covered: CodeRetour 02.",
        IdbOutcome.RIGHTS_CLOSED,
        rights=(RightsTemplate(_D(2018, 1, 1), _D(2024, 12, 31), _ALL_SECTORS),),
    ),
    CaseSpec(
        "FIN_DROITS_EN_COURS_DE_SEJOUR",
        Service.IDB,
        RocVersion.V1,
        Sector.MCO,
        CareKind.HOSPITALISATION,
        "The beneficiary's rights end on 4 March 2026, in the middle of the stay.",
        "Every day of the period must be covered; a period only partly covered answers "
        "CodeRetour 02 with its own label.",
        IdbOutcome.RIGHTS_PARTIAL,
        rights=(RightsTemplate(_D(2021, 1, 1), _D(2026, 3, 4), _ALL_SECTORS),),
    ),
    CaseSpec(
        "BENEFICIAIRE_INCONNU",
        Service.IDB,
        RocVersion.V1,
        Sector.MCO,
        CareKind.HOSPITALISATION,
        "A valid, fictitious NIR that no simulated AMC knows.",
        "The beneficiary is looked up by NIR, birth date and birth rank within the AMC of the "
        "routing block: CodeRetour 01 when nobody matches.",
        IdbOutcome.UNKNOWN_BENEFICIARY,
        rights=(),
        family=Family.NOBODY,
        member_number=MemberNumber.OMITTED,
        third_party_payment=None,
    ),
    CaseSpec(
        "ADHERENT_INCOHERENT",
        Service.IDB,
        RocVersion.V1,
        Sector.MCO,
        CareKind.HOSPITALISATION,
        "The request names the right person but a member number that is not theirs.",
        "When a member number is sent it must be the identified beneficiary's: CodeRetour 05.",
        IdbOutcome.MEMBER_NUMBER_MISMATCH,
        member_number=MemberNumber.WRONG,
    ),
    CaseSpec(
        "SECTEUR_NON_COUVERT",
        Service.IDB,
        RocVersion.V2,
        Sector.PSY,
        CareKind.HOSPITALISATION,
        "The beneficiary's contract covers MCO stays only; the request is for psychiatry.",
        "Rights open over the period but not for the requested sector: CodeRetour 03.",
        IdbOutcome.SECTOR_NOT_COVERED,
        rights=(RightsTemplate(_D(2020, 1, 1), None, frozenset({Sector.MCO})),),
    ),
    CaseSpec(
        "HORS_VERSION_V1",
        Service.IDB,
        RocVersion.V1,
        Sector.PSY,
        CareKind.HOSPITALISATION,
        "A psychiatry request sent with VersionROC V1.",
        "ROC V1 carries MCO only; PSY, HAD, SMR and OQN need VersionROC V2: CodeRetour 06, "
        "whoever the beneficiary is.",
        IdbOutcome.SECTOR_NOT_IN_VERSION,
    ),
    CaseSpec(
        "SANS_TIERS_PAYANT",
        Service.IDB,
        RocVersion.V1,
        Sector.MCO,
        CareKind.HOSPITALISATION,
        "A beneficiary with open rights, at an AMC that does not practise third-party payment.",
        "An AMC without third-party payment answers CodeRetour 04 for every known beneficiary.",
        IdbOutcome.NO_THIRD_PARTY_PAYMENT,
        third_party_payment=False,
    ),
    *(
        CaseSpec(
            f"FAUTE_{fault.value}",
            Service.IDB,
            RocVersion.V1,
            Sector.MCO,
            CareKind.HOSPITALISATION,
            f"Technical fault, reached by an ordinary IDB for this beneficiary: "
            f"{fault.description}",
            "Any request about this beneficiary (any service) gets the fault instead of an "
            "answer: the client must handle it (retry policy, timeout, error shown to the "
            "user). "
            + (
                "The AMC processed the request first: a retried CLC finds its engagement (09)."
                if fault.processed
                else "The AMC processed nothing: a retry is safe."
            )
            + " The same fault can be switched on for a whole sandbox (admin API).",
            IdbOutcome.RIGHTS_OPEN,
            technical_fault=fault,
        )
        for fault in TechnicalFault
    ),
)
