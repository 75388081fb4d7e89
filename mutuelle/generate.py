"""Generate the fictitious data deterministically from a seed.

``python -m mutuelle.generate --seed 2026 --out mutuelle/data/`` writes ``amcs.toml`` and
``beneficiaries.toml``. The same seed always gives byte-identical files (a test regenerates
and compares with the shipped ones), so change this module, regenerate, and commit both.

Every catalogue case gets one beneficiary per AMC it applies to, shaped by the case's
specification; a few more people with varied rights make the data feel like an insurer's.
NIRs come from the documented fictitious range (department 99, country 999, order 001-899).
"""

from __future__ import annotations

import argparse
import datetime
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from mutuelle.datafiles import SimulatorData, write_data
from mutuelle.model import (
    FICTITIOUS_NIR_PLACE,
    Amc,
    Beneficiary,
    BeneficiaryKey,
    Contract,
    Dataset,
    Guarantee,
    RightsPeriod,
    Sector,
)
from mutuelle.specs import Family, RightsTemplate
from mutuelle.specs_care import specs_for
from roc.identifiers import make_nir

_D = datetime.date


@dataclass(frozen=True, slots=True)
class _AmcSpec:
    number: str
    name: str
    prefix: str
    third_party_payment: bool
    extra_people: int


#: The simulated AMCs. Alpha, Beta and Gamma are fixed: the relay's development annuaire uses
#: them. 990000404 is left out on purpose: that annuaire uses it for an unreachable AMC.
AMCS = (
    _AmcSpec("990000101", "Mutuelle Alpha (fictive)", "ALP", True, 12),
    _AmcSpec("990000202", "Mutuelle Beta (fictive)", "BET", True, 12),
    _AmcSpec("990000303", "Mutuelle Gamma (fictive)", "GAM", True, 12),
    _AmcSpec("990000505", "Mutuelle Epsilon sans tiers payant (fictive)", "EPS", False, 4),
)

_LEVELS = (("ESSENTIEL", "Essentiel"), ("CONFORT", "Confort"), ("INTEGRAL", "Intégral"))

#: Surnames no one could take for a real patient's.
LAST_NAMES = (
    "FICTIF",
    "EXEMPLE",
    "FACTICE",
    "ESSAI",
    "MAQUETTE",
    "PROTOTYPE",
    "SIMULACRE",
    "CHIMERE",
    "TEMOIN",
    "BROUILLON",
    "ESQUISSE",
    "PASTICHE",
    "DEMONSTRATION",
    "SPECIMEN",
    "FANTOME",
    "IMAGINAIRE",
)
FIRST_NAMES = {
    "1": ("Alpha", "Bravo", "Charlie", "Delta", "Echo", "Oscar", "Romeo", "Victor"),
    "2": ("Alice", "Bertille", "Clarisse", "Domitille", "Eulalie", "Fiona", "Gaia", "Hortense"),
}


class _People:
    """Draws fictitious people with unique NIRs."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()
        self._members: set[str] = set()

    def date(self, first: datetime.date, last: datetime.date) -> datetime.date:
        return first + datetime.timedelta(days=self._rng.randrange((last - first).days + 1))

    def nir(self, sex: str, birth: datetime.date) -> str:
        while True:
            order = self._rng.randrange(1, 900)  # 900-999 stay free: unknown to every AMC
            nir13 = f"{sex}{birth.year % 100:02d}{birth.month:02d}{FICTITIOUS_NIR_PLACE}{order:03d}"
            if nir13 not in self._used:
                self._used.add(nir13)
                return make_nir(nir13)

    def member_number(self, prefix: str) -> str:
        while True:
            number = f"{prefix}{self._rng.randrange(1, 9_000_000):07d}"
            if number not in self._members:
                self._members.add(number)
                return number

    def last_name(self) -> str:
        return self._rng.choice(LAST_NAMES)

    def first_name(self, sex: str) -> str:
        return self._rng.choice(FIRST_NAMES[sex])

    def sex(self) -> str:
        return self._rng.choice("12")


def _guarantee(rng: random.Random, level: int, code: str, label: str) -> Guarantee:
    return Guarantee(
        code=code,
        label=label,
        ticket_moderateur_percent=100,
        covers_daily_hospital_charge=True,
        covers_flat_participation=level > 0 or rng.random() < 0.5,
        private_room_ceiling_cents=(0, rng.choice((3000, 4500, 6000)), rng.choice((7000, 9000)))[
            level
        ],
        companion_ceiling_cents=(0, rng.choice((0, 2000)), rng.choice((2500, 4000)))[level],
        fee_overrun_percent_of_base=(0, rng.choice((50, 100)), rng.choice((150, 200)))[level],
    )


def _contracts(rng: random.Random, prefix: str) -> tuple[Contract, ...]:
    return tuple(
        Contract(f"{prefix}-{code}", _guarantee(rng, level, code, label))
        for level, (code, label) in enumerate(_LEVELS)
    )


def _periods(templates: Sequence[RightsTemplate]) -> tuple[RightsPeriod, ...]:
    return tuple(RightsPeriod(t.start, t.end, t.sectors) for t in templates)


def _random_rights(rng: random.Random, people: _People) -> tuple[RightsPeriod, ...]:
    draw = rng.random()
    start = _D(rng.randrange(2016, 2024), 1, 1)
    if draw < 0.2:
        return (
            RightsPeriod(start, people.date(_D(2024, 1, 1), _D(2025, 12, 31)), frozenset(Sector)),
        )
    if draw < 0.35:
        return (RightsPeriod(start, None, frozenset({Sector.MCO})),)
    return (RightsPeriod(start, None, frozenset(Sector)),)


def generate(seed: int) -> SimulatorData:
    """The whole fictitious dataset for *seed*, with the beneficiary of every case."""
    rng = random.Random(seed)  # noqa: S311 - fictitious data, not security
    people = _People(rng)
    amcs: list[Amc] = []
    persons: list[Beneficiary] = []
    bindings: dict[tuple[str, str], BeneficiaryKey] = {}

    def family(
        amc: _AmcSpec,
        contracts: tuple[Contract, ...],
        rights: tuple[RightsPeriod, ...],
        twins: bool,
        level: str | None = None,
    ) -> Beneficiary:
        """An insured adult, and twins on their NIR when *twins*; returns the last added.

        *level* picks the contract of that guarantee level (a case needs it); else random.
        """
        contract = rng.choice(contracts)
        if level is not None:
            contract = next(c for c in contracts if c.guarantee.code == level)
        member_number = people.member_number(amc.prefix)
        last_name = people.last_name()
        sex = people.sex()
        if twins:
            birth = people.date(_D(1975, 1, 1), _D(1995, 12, 31))
        else:
            birth = people.date(_D(1945, 1, 1), _D(2000, 12, 31))
        nir = people.nir(sex, birth)
        members = [(sex, birth, 1)]
        if twins:
            twins_birth = people.date(_D(2012, 1, 1), _D(2020, 12, 31))
            members += [(people.sex(), twins_birth, 1), (people.sex(), twins_birth, 2)]
        for member_sex, member_birth, rank in members:
            person = Beneficiary(
                nir=nir,
                last_name=last_name,
                first_name=people.first_name(member_sex),
                birth_date=member_birth,
                birth_rank=rank,
                member_number=member_number,
                amc_number=amc.number,
                contract_id=contract.contract_id,
                rights=rights,
            )
            persons.append(person)
        return person

    for amc in AMCS:
        contracts = _contracts(rng, amc.prefix)
        amcs.append(Amc(amc.number, amc.name, amc.third_party_payment, contracts))
        for spec in specs_for(amc.third_party_payment):
            if spec.family is Family.NOBODY:
                continue
            person = family(
                amc,
                contracts,
                _periods(spec.rights),
                spec.family is Family.TWIN,
                spec.contract_level,
            )
            bindings[(amc.number, spec.name)] = person.key
        for _ in range(amc.extra_people):
            family(amc, contracts, _random_rights(rng, people), twins=rng.random() < 0.15)
    dataset = Dataset(tuple(amcs), tuple(persons))
    return SimulatorData(seed, dataset, MappingProxyType(bindings))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mutuelle.generate",
        description="Write Mutuelle ANS's fictitious data files, deterministically from a seed.",
    )
    parser.add_argument("--seed", type=int, default=2026, help="random seed (default: 2026)")
    parser.add_argument("--out", type=Path, required=True, help="directory to write into")
    args = parser.parse_args(argv)
    for path in write_data(generate(args.seed), args.out):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
