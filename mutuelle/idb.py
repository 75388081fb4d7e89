"""IDB rules: does this beneficiary have third-party-payment rights for this care?

Pure: a parsed request and the dataset in, an answer out. The return codes are the project's
model (the official list is distributed to ROC members only); docs/catalogue.md lists them.

Rules, in order (the first that applies answers):

1. the sector is not carried by the request's ROC version (V1: MCO only) -> 06;
2. no beneficiary of this AMC has this NIR, birth date and birth rank -> 01;
3. a member number is sent and is not the beneficiary's -> 05;
4. the AMC does not practise third-party payment -> 04;
5. the beneficiary's rights, whatever the sector, do not cover every day of the period -> 02
   (two labels: no day covered, or only some days covered);
6. the rights cover the period but not for the requested sector -> 03;
7. otherwise -> 00, with the AMC, member number, contract in force on the first day,
   coverage period and sectors; and every contract with its period when more than one
   covers part of the period (a change of contract, a second contract).

Consecutive or overlapping rights periods are merged: a yearly renewal does not break a stay.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from mutuelle.model import (
    SECTORS_BY_VERSION,
    BeneficiaryKey,
    CareKind,
    ContractPeriod,
    Dataset,
    RightsPeriod,
    Sector,
)
from roc.model import RocVersion

_ONE_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ReturnCode:
    """A ``CodeRetour`` and its ``LibelleRetour``, with what it means for the hospital."""

    code: str
    label: str
    meaning: str


class CodedOutcome(Enum):
    """An answer's outcome: an enum whose every member's value is a ``ReturnCode``."""

    _value_: ReturnCode

    @property
    def code(self) -> str:
        return self.value.code

    @property
    def label(self) -> str:
        return self.value.label


class CodedAnswer:
    """An answer whose ``CodeRetour`` and ``LibelleRetour`` are its outcome's."""

    __slots__ = ()

    outcome: CodedOutcome

    @property
    def code(self) -> str:
        return self.outcome.code

    @property
    def label(self) -> str:
        return self.outcome.label


class IdbOutcome(CodedOutcome):
    """Every answer IDB can give. Several outcomes may share a code with distinct labels."""

    RIGHTS_OPEN = ReturnCode(
        "00",
        "Droits ouverts",
        "The AMC covers the whole period for this sector, with third-party payment.",
    )
    UNKNOWN_BENEFICIARY = ReturnCode(
        "01",
        "Bénéficiaire inconnu",
        "No beneficiary of this AMC has this NIR, birth date and birth rank.",
    )
    RIGHTS_CLOSED = ReturnCode(
        "02",
        "Droits fermés à la date des soins",
        "The beneficiary has no rights on any day of the period.",
    )
    RIGHTS_PARTIAL = ReturnCode(
        "02",
        "Droits fermés sur une partie de la période",
        "The beneficiary's rights start after, or end before, the requested period.",
    )
    SECTOR_NOT_COVERED = ReturnCode(
        "03",
        "Secteur non couvert par le contrat",
        "Rights are open over the period, but not for this activity sector.",
    )
    NO_THIRD_PARTY_PAYMENT = ReturnCode(
        "04",
        "Tiers payant non pratiqué par l'organisme",
        "The AMC knows the beneficiary but does not practise third-party payment.",
    )
    MEMBER_NUMBER_MISMATCH = ReturnCode(
        "05",
        "Numéro d'adhérent incohérent",
        "The member number sent is not the one of the identified beneficiary.",
    )
    SECTOR_NOT_IN_VERSION = ReturnCode(
        "06",
        "Secteur non prévu par cette version de ROC",
        "ROC V1 carries MCO only; PSY, HAD, SMR and OQN need VersionROC V2.",
    )


@dataclass(frozen=True, slots=True)
class IdbRequest:
    """What a ``DemandeIDB`` asks (routing aside): who, when, which sector, which care."""

    beneficiary: BeneficiaryKey
    #: Optional in the request; checked against the beneficiary's when sent.
    member_number: str | None
    start: datetime.date
    end: datetime.date
    sector: Sector
    care_kind: CareKind

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError("DateFin is before DateDebut")

    def __repr__(self) -> str:
        return f"IdbRequest(sector={self.sector.value}, care_kind={self.care_kind.value})"


@dataclass(frozen=True, slots=True)
class OpenRights:
    """What an IDB answer says when rights are open (CodeRetour 00)."""

    amc_number: str
    member_number: str
    contract_id: str
    start: datetime.date
    #: None: open-ended.
    end: datetime.date | None
    #: Sectors covered over the whole requested period, in ``Sector`` order.
    sectors: tuple[Sector, ...]
    #: When more than one contract covers part of the period (a change of contract, a second
    #: contract): each, in priority order, as held; empty otherwise.
    contracts: tuple[ContractPeriod, ...] = ()


@dataclass(frozen=True, slots=True)
class IdbAnswer(CodedAnswer):
    outcome: IdbOutcome
    rights: OpenRights | None = None


@dataclass(frozen=True, slots=True)
class _Span:
    start: datetime.date
    end: datetime.date | None

    def covers(self, start: datetime.date, end: datetime.date) -> bool:
        return self.start <= start and (self.end is None or end <= self.end)


def _merged(periods: Iterable[RightsPeriod]) -> list[_Span]:
    """Periods merged where they overlap or follow each other without a gap day."""
    spans: list[_Span] = []
    for period in sorted(periods, key=lambda p: p.start):
        last = spans[-1] if spans else None
        if last is not None and (last.end is None or period.start <= last.end + _ONE_DAY):
            end = None if last.end is None or period.end is None else max(last.end, period.end)
            spans[-1] = _Span(last.start, end)
        else:
            spans.append(_Span(period.start, period.end))
    return spans


def _covering(
    periods: Iterable[RightsPeriod], start: datetime.date, end: datetime.date
) -> _Span | None:
    for span in _merged(periods):
        if span.covers(start, end):
            return span
    return None


def decide(
    request: IdbRequest, amc_number: str, version: RocVersion, dataset: Dataset
) -> IdbAnswer:
    """The IDB answer of AMC *amc_number* (which must be in *dataset*) to *request*."""
    amc = dataset.amc(amc_number)
    if amc is None:
        raise ValueError(f"AMC {amc_number} is not simulated")  # the caller faults before
    if request.sector not in SECTORS_BY_VERSION[version]:
        return IdbAnswer(IdbOutcome.SECTOR_NOT_IN_VERSION)
    person = dataset.beneficiary(amc_number, request.beneficiary)
    if person is None:
        return IdbAnswer(IdbOutcome.UNKNOWN_BENEFICIARY)
    if request.member_number is not None and request.member_number != person.member_number:
        return IdbAnswer(IdbOutcome.MEMBER_NUMBER_MISMATCH)
    if not amc.third_party_payment:
        return IdbAnswer(IdbOutcome.NO_THIRD_PARTY_PAYMENT)
    start, end = request.start, request.end
    if _covering(person.rights, start, end) is None:
        if any(period.overlaps(start, end) for period in person.rights):
            return IdbAnswer(IdbOutcome.RIGHTS_PARTIAL)
        return IdbAnswer(IdbOutcome.RIGHTS_CLOSED)
    span = _covering((p for p in person.rights if request.sector in p.sectors), start, end)
    if span is None:
        return IdbAnswer(IdbOutcome.SECTOR_NOT_COVERED)
    sectors = tuple(
        sector
        for sector in Sector
        if _covering((p for p in person.rights if sector in p.sectors), start, end) is not None
    )
    held = tuple(c for c in person.contracts if c.overlaps(start, end))
    rights = OpenRights(
        amc_number=amc.number,
        member_number=person.member_number,
        contract_id=person.contract_on(start),
        start=span.start,
        end=span.end,
        sectors=sectors,
        contracts=held if len(held) > 1 else (),
    )
    return IdbAnswer(IdbOutcome.RIGHTS_OPEN, rights)
