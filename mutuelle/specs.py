"""Business case specifications: the situations the catalogue plays, independent of the AMC.

A specification says what the beneficiary's rights and contracts must look like, what to send
and what comes back; the generator (``mutuelle.generate``) creates the person (derived from
the case's name alone, so adding a case never changes another) and ``mutuelle.catalogue``
joins both into concrete cases, one per AMC. A new case is one ``CaseSpec`` in one of the
lists: IDB and technical-fault cases here, SIM in ``mutuelle.specs_sim``, CLC and DEL in
``mutuelle.specs_clc``, signatures in ``mutuelle.specs_signature``; ``mutuelle.specs_care``
assembles them (``ALL_SPECS``).

Amounts a case sends that are regulated (the forfait journalier, the AMO rate) are not
written here: ``IN_FORCE`` and ``amo_rate=None`` stand for the amount in force on the day,
resolved from the tariff table when the catalogue is built.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace
from enum import Enum

from mutuelle.billing import Rejection
from mutuelle.care import CareLine, Exemption
from mutuelle.decisions import Outcome
from mutuelle.engagements import EngagementState
from mutuelle.idb import IdbOutcome
from mutuelle.model import BeneficiaryKey, CareKind, Sector
from mutuelle.technical import TechnicalFault
from roc.identifiers import make_nir
from roc.model import RocVersion, Service
from roc.signature import Defect

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


@dataclass(frozen=True, slots=True)
class ContractTemplate:
    """A contract the case's beneficiary holds: a guarantee level, over a period."""

    level: str
    start: datetime.date | None = None
    end: datetime.date | None = None


class Relation(Enum):
    """How an engagement a fresh sandbox holds relates to the case's request."""

    #: Made by this very request (the answer was lost; the CLC is sent again).
    SAME_REQUEST = "the same request, sent earlier (its answer was lost)"
    #: Made for the same stay reference by an earlier, different request (without its last
    #: line).
    SAME_STAY = "the same stay, calculated earlier from a different request"
    #: Made for another stay of the same person (``start`` to ``end``).
    OTHER_STAY = "another stay of the same person"


@dataclass(frozen=True, slots=True)
class SeedEngagement:
    """An engagement a fresh sandbox holds for the case's beneficiary."""

    state: EngagementState
    relation: Relation = Relation.SAME_STAY
    #: OTHER_STAY: that stay's days (default: the case's).
    start: datetime.date | None = None
    end: datetime.date | None = None
    #: Made this many days before the sandbox was reset (the cancellation window is 30).
    age_days: int = 0
    #: OTHER_STAY: private-room days it billed, as "the yearly limit minus this many" (the
    #: limit is the case contract's); None: none billed.
    private_room_days_left: int | None = None
    #: DRE: the case's invoice number was already received (an acknowledged return is kept).
    invoiced: bool = False


class InvoiceVariant(Enum):
    """What a DRE case's invoice asks, against the engagement its stay made."""

    MATCHING = "the engaged AMC share on every line the AMC pays"
    MORE = "20.00 more than engaged on the first line, the engaged share on the others"
    UNHELD_LINE = "a single line the engagement does not hold (a companion's bed)"


#: Stands for the amount in force (forfait journalier of the sector on the line's first
#: day) in a case's ``CareLine.unit_price_cents``; resolved from the tariff table.
IN_FORCE = -1

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
    #: Guarantee level of the beneficiary's contract (ESSENTIEL, CONFORT, INTEGRAL, DEMI,
    #: SURCO, C2S); None: one of the first three, drawn from the case's name.
    contract_level: str | None = None
    #: Contracts held, when not the one of ``contract_level`` all along (a change of
    #: contract, a second contract), in priority order.
    contracts: tuple[ContractTemplate, ...] = ()
    #: SIM and CLC: the care lines sent, the AMO rate (None: the rate in force, 100 with an
    #: exemption) and the exemption from the ticket modérateur.
    lines: tuple[CareLine, ...] = ()
    amo_rate: int | None = None
    exemption: Exemption | None = None
    reference: str = "SEJ-2026-000123"
    #: CLC: a fresh sandbox already holds a successful IDB for this person and period.
    identified: bool = False
    #: CLC and DEL: a fresh sandbox already holds an engagement for this person.
    engagement: SeedEngagement | None = None
    #: A technical fault the simulator plays instead of answering (no CodeRetour then).
    technical_fault: TechnicalFault | None = None
    #: The signature defect the request is sent with (``mutuelle.specs_signature``).
    signature: Defect | None = None
    #: DRE: what the invoice asks (the stay is ``lines``; the engagement ``engagement``).
    invoice: InvoiceVariant | None = None
    #: DRE accepted by the ARL: the 908R reason expected later; None: a 578R.
    rejection: Rejection | None = None
    #: DRE: the case is a whole stay: IDB, SIM and CLC first, then the invoice quoting the
    #: CLC's engagement number (a fresh sandbox holds nothing for it).
    full_stay: bool = False

    def held(self, default_level: str) -> tuple[ContractTemplate, ...]:
        """The contracts the beneficiary holds (*default_level* when the case leaves it)."""
        if self.contracts:
            return self.contracts
        return (ContractTemplate(self.contract_level or default_level),)

    @property
    def name(self) -> str:
        ok = (
            self.technical_fault is None
            and self.signature is None
            and self.expected.value.code == "00"
            and self.rejection is None
        )
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
        "DROITS_OUVERTS_V2",
        Service.IDB,
        RocVersion.V2,
        Sector.MCO,
        CareKind.HOSPITALISATION,
        "A beneficiary covered in every sector asks about an MCO stay with VersionROC V2.",
        "ROC V2 carries MCO as V1 does: the same answer, CodeRetour 00.",
        IdbOutcome.RIGHTS_OPEN,
    ),
    CaseSpec(
        "CHANGEMENT_CONTRAT",
        Service.IDB,
        RocVersion.V1,
        Sector.MCO,
        CareKind.HOSPITALISATION,
        "The beneficiary moves from the ESSENTIEL to the INTEGRAL contract on 4 March 2026, "
        "in the middle of the stay.",
        "Rights are continuous: CodeRetour 00; Contrat is the contract of the first day and "
        "Contrats lists both with their periods. SIM and CLC price each day with the "
        "contract in force that day.",
        IdbOutcome.RIGHTS_OPEN,
        contracts=(
            ContractTemplate("ESSENTIEL", None, _D(2026, 3, 3)),
            ContractTemplate("INTEGRAL", _D(2026, 3, 4), None),
        ),
    ),
    CaseSpec(
        "SECOND_CONTRAT",
        Service.IDB,
        RocVersion.V1,
        Sector.MCO,
        CareKind.HOSPITALISATION,
        "The beneficiary holds two contracts at once: ESSENTIEL, and a supplementary contract "
        "(SURCO, surcomplémentaire) at the same AMC.",
        "CodeRetour 00; Contrats lists both in priority order: the first pays, the second "
        "tops up what remains.",
        IdbOutcome.RIGHTS_OPEN,
        contracts=(ContractTemplate("ESSENTIEL"), ContractTemplate("SURCO")),
    ),
    CaseSpec(
        "C2S",
        Service.IDB,
        RocVersion.V1,
        Sector.MCO,
        CareKind.HOSPITALISATION,
        "A beneficiary of the complémentaire santé solidaire (C2S) managed by this AMC.",
        "CodeRetour 00 with the C2S contract: it pays the ticket modérateur, the forfait "
        "journalier and the flat participation in full (CSS L. 861-3), no extras.",
        IdbOutcome.RIGHTS_OPEN,
        contract_level="C2S",
    ),
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
        "DEBUT_DROITS_EN_COURS_DE_SEJOUR",
        Service.IDB,
        RocVersion.V2,
        Sector.SMR,
        CareKind.HOSPITALISATION,
        "The beneficiary's rights start on 4 March 2026, after the start of an SMR stay (ROC V2).",
        "Every day of the period must be covered: a period only partly covered answers "
        "CodeRetour 02 with its own label.",
        IdbOutcome.RIGHTS_PARTIAL,
        rights=(RightsTemplate(_D(2026, 3, 4), None, _ALL_SECTORS),),
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
        "HORS_VERSION_V1",
        Service.IDB,
        RocVersion.V1,
        Sector.SMR,
        CareKind.HOSPITALISATION,
        "A rehabilitation (SMR) request sent with VersionROC V1.",
        "ROC V1 carries MCO only: CodeRetour 06, whoever the beneficiary is.",
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
                "The AMC processed the request first: a CLC sent again gets the same "
                "engagement back (00, same number and amounts)."
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


def care_spec(
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
    """A SIM or CLC case (the helper keeps the lists of cases short)."""
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
