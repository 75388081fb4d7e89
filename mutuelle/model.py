"""The simulated insurers' world: AMCs, contracts, guarantees and beneficiaries.

Pure, immutable data. Everything here is fictitious (see ``mutuelle.generate``); the shapes
follow the public rules of ROC (docs/roc-model.md, ROC.md section 4) so the rules engine can
grow from them: IDB reads rights periods now, SIM and CLC will read guarantees.

Amounts are integer euro cents and rates integer percentages, so computations are exact.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from roc.identifiers import nir_error
from roc.model import RocVersion


class Sector(StrEnum):
    """Activity sectors of a stay; ROC V1 covers MCO only, V2 adds the others."""

    MCO = "MCO"  #: médecine, chirurgie, obstétrique
    PSY = "PSY"  #: psychiatrie
    HAD = "HAD"  #: hospitalisation à domicile
    SMR = "SMR"  #: soins médicaux et de réadaptation
    OQN = "OQN"  #: cliniques privées ex-OQN (expérimentation V2)


#: Sectors each ROC version carries.
SECTORS_BY_VERSION: Mapping[RocVersion, frozenset[Sector]] = MappingProxyType(
    {
        RocVersion.V1: frozenset({Sector.MCO}),
        RocVersion.V2: frozenset(Sector),
    }
)


class CareKind(StrEnum):
    """Kind of care (nature des soins) a request is about."""

    HOSPITALISATION = "HOSP"  #: hospitalisation complète
    PARTIAL = "PARTIEL"  #: hospitalisation partielle, ambulatoire
    EXTERNAL = "ACE"  #: actes et consultations externes


@dataclass(frozen=True, slots=True)
class Guarantee:
    """What a contract's AMC pays on top of the mandatory insurer (AMO), with its ceilings.

    The AMC share never exceeds what remains after the AMO share (the rules engine enforces
    it); these fields only say what the contract is willing to pay. Regulated amounts (the
    forfait journalier, the flat participation, the responsible-contract caps) are not here:
    they live in the dated tariff table (``mutuelle.tariffs``).
    """

    code: str
    label: str
    #: Share of the ticket modérateur (base minus AMO share) the AMC pays, 0-100.
    ticket_moderateur_percent: int
    #: Whether the AMC pays the forfait journalier hospitalier (the amount in force).
    covers_daily_hospital_charge: bool
    #: Whether the AMC pays the flat participation charged on heavy acts.
    covers_flat_participation: bool
    #: Ceiling per day for a private room (chambre particulière), in cents; 0 = not covered.
    private_room_ceiling_cents: int
    #: Private-room days covered per calendar year; 0 = no limit.
    private_room_days_per_year: int
    #: Ceiling per day for a companion's bed and meals (lit et repas accompagnant), in cents.
    companion_ceiling_cents: int
    #: Ex-OQN fee overruns of OPTAM doctors: covered up to this percentage of the base.
    fee_overrun_optam_percent: int
    #: Fee overruns of doctors outside OPTAM, before the responsible-contract caps.
    fee_overrun_non_optam_percent: int
    #: A responsible contract (contrat responsable, CSS L. 871-1): the regulated caps apply.
    responsible: bool

    def __post_init__(self) -> None:
        if not 0 <= self.ticket_moderateur_percent <= 100:
            raise ValueError("ticket_moderateur_percent: must be between 0 and 100")
        for name in ("fee_overrun_optam_percent", "fee_overrun_non_optam_percent"):
            if not 0 <= getattr(self, name) <= 500:
                raise ValueError(f"{name}: must be between 0 and 500")
        if self.private_room_ceiling_cents < 0 or self.companion_ceiling_cents < 0:
            raise ValueError("ceilings must be >= 0")
        if not 0 <= self.private_room_days_per_year <= 366:
            raise ValueError("private_room_days_per_year: must be between 0 and 366")


@dataclass(frozen=True, slots=True)
class Contract:
    """A contract an AMC sells; its guarantee says what it covers."""

    contract_id: str
    guarantee: Guarantee


@dataclass(frozen=True, slots=True)
class Amc:
    """A (fictitious) complementary insurer and the contracts it sells."""

    number: str
    name: str
    third_party_payment: bool
    contracts: tuple[Contract, ...]

    def contract(self, contract_id: str) -> Contract | None:
        for contract in self.contracts:
            if contract.contract_id == contract_id:
                return contract
        return None


@dataclass(frozen=True, slots=True)
class RightsPeriod:
    """Dates (inclusive) during which a beneficiary is covered, and for which sectors."""

    start: datetime.date
    #: None: open-ended.
    end: datetime.date | None
    sectors: frozenset[Sector]

    def __post_init__(self) -> None:
        if self.end is not None and self.end < self.start:
            raise ValueError("rights period ends before it starts")
        if not self.sectors:
            raise ValueError("rights period covers no sector")

    def contains(self, day: datetime.date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)

    def covers(self, start: datetime.date, end: datetime.date) -> bool:
        """Whether every day from *start* to *end* falls in this period."""
        return self.contains(start) and self.contains(end)

    def overlaps(self, start: datetime.date, end: datetime.date) -> bool:
        return self.start <= end and (self.end is None or start <= self.end)


@dataclass(frozen=True, slots=True)
class BeneficiaryKey:
    """How ROC identifies a beneficiary: the insured's NIR, the birth date and birth rank.

    A child covered on a parent's contract (ayant droit) is sent with the parent's NIR and
    their own birth date; the birth rank tells twins apart.
    """

    nir: str
    birth_date: datetime.date
    birth_rank: int


@dataclass(frozen=True, slots=True)
class ContractPeriod:
    """A contract a beneficiary holds from *start* to *end* (inclusive; None: open)."""

    contract_id: str
    start: datetime.date | None = None
    end: datetime.date | None = None

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError("contract period ends before it starts")

    def contains(self, day: datetime.date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)

    def overlaps(self, start: datetime.date, end: datetime.date) -> bool:
        return (self.start is None or self.start <= end) and (self.end is None or start <= self.end)


@dataclass(frozen=True, slots=True)
class Beneficiary:
    """A (fictitious) person covered by one AMC, through one or more contracts.

    ``contracts`` are in priority order: on a day several cover, the first pays first and the
    next ones top up what remains (a second contract, *surcomplémentaire*); consecutive ones
    model a change of contract.
    """

    nir: str
    last_name: str
    first_name: str
    birth_date: datetime.date
    birth_rank: int
    member_number: str
    amc_number: str
    contracts: tuple[ContractPeriod, ...]
    rights: tuple[RightsPeriod, ...]

    def __post_init__(self) -> None:
        if not self.contracts:
            raise ValueError("a beneficiary holds at least one contract")

    @property
    def key(self) -> BeneficiaryKey:
        return BeneficiaryKey(self.nir, self.birth_date, self.birth_rank)

    @property
    def contract_id(self) -> str:
        """The first contract (the only one, for most beneficiaries)."""
        return self.contracts[0].contract_id

    def contract_on(self, day: datetime.date) -> str:
        """The first contract in force on *day* (the first contract if none is)."""
        for period in self.contracts:
            if period.contains(day):
                return period.contract_id
        return self.contract_id

    def __repr__(self) -> str:
        # Fictitious, but written like real personal data would be: never in a log or trace.
        return f"Beneficiary(amc_number={self.amc_number!r}, contract_id={self.contract_id!r})"


@dataclass(frozen=True, slots=True)
class CoverPeriod:
    """A guarantee in force over a period (a contract period, resolved)."""

    contract_id: str
    guarantee: Guarantee
    start: datetime.date | None = None
    end: datetime.date | None = None

    def contains(self, day: datetime.date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)


@dataclass(frozen=True, slots=True)
class Cover:
    """What covers a beneficiary day by day: guarantees in force, in priority order."""

    periods: tuple[CoverPeriod, ...]

    @classmethod
    def single(cls, guarantee: Guarantee, contract_id: str = "C") -> Cover:
        return cls((CoverPeriod(contract_id, guarantee),))

    def on(self, day: datetime.date) -> tuple[Guarantee, ...]:
        return tuple(p.guarantee for p in self.periods if p.contains(day))


@dataclass(frozen=True)
class Dataset:
    """Every AMC and beneficiary the simulator knows, indexed for lookups.

    Construction checks referential integrity: each beneficiary names a known AMC and one of
    its contracts, and no two beneficiaries of one AMC share a key.
    """

    amcs: tuple[Amc, ...]
    beneficiaries: tuple[Beneficiary, ...]
    _amc_index: Mapping[str, Amc] = field(init=False, repr=False, compare=False)
    _beneficiary_index: Mapping[tuple[str, BeneficiaryKey], Beneficiary] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        amcs: dict[str, Amc] = {}
        for amc in self.amcs:
            if amc.number in amcs:
                raise ValueError(f"AMC {amc.number} is listed twice")
            amcs[amc.number] = amc
        people: dict[tuple[str, BeneficiaryKey], Beneficiary] = {}
        for index, person in enumerate(self.beneficiaries):
            insurer = amcs.get(person.amc_number)
            if insurer is None:
                raise ValueError(f"beneficiary #{index}: unknown AMC {person.amc_number}")
            for period in person.contracts:
                if insurer.contract(period.contract_id) is None:
                    raise ValueError(
                        f"beneficiary #{index}: AMC {insurer.number} has no contract "
                        f"{period.contract_id}"
                    )
            slot = (person.amc_number, person.key)
            if slot in people:
                raise ValueError(
                    f"beneficiary #{index}: same key as another of AMC {insurer.number}"
                )
            people[slot] = person
        object.__setattr__(self, "_amc_index", MappingProxyType(amcs))
        object.__setattr__(self, "_beneficiary_index", MappingProxyType(people))

    def amc(self, number: str) -> Amc | None:
        return self._amc_index.get(number)

    def beneficiary(self, amc_number: str, key: BeneficiaryKey) -> Beneficiary | None:
        return self._beneficiary_index.get((amc_number, key))

    def cover_of(self, person: Beneficiary) -> Cover:
        """Every guarantee of the person's contracts, with its period."""
        amc = self._amc_index[person.amc_number]
        periods = []
        for period in person.contracts:
            contract = amc.contract(period.contract_id)
            assert contract is not None  # checked at construction
            periods.append(
                CoverPeriod(contract.contract_id, contract.guarantee, period.start, period.end)
            )
        return Cover(tuple(periods))

    def beneficiaries_of(self, amc_number: str) -> Iterable[Beneficiary]:
        return (b for b in self.beneficiaries if b.amc_number == amc_number)


#: Birth department and country code of every fictitious NIR: "born abroad" (99) in a
#: country code (999) that INSEE never assigned, so the NIR matches nobody.
FICTITIOUS_NIR_PLACE = "99999"


def fictitious_nir_error(nir: str) -> str | None:
    """Why *nir* is not a valid NIR from the documented fictitious range, or None.

    A guard on every data file the simulator loads: it never holds real people's NIRs.
    """
    if (reason := nir_error(nir)) is not None:
        return reason
    if nir[0] not in "12":
        return "fictitious NIR must start with sex digit 1 or 2"
    if nir[5:10] != FICTITIOUS_NIR_PLACE:
        return "fictitious NIR must have birth department 99 and country code 999"
    return None
