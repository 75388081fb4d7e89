"""Generate the fictitious data deterministically.

``python -m mutuelle.generate --seed 2026 --out mutuelle/data/`` writes ``amcs.toml`` and
``beneficiaries.toml``. The same seed always gives byte-identical files (a test regenerates
and compares with the shipped ones), so change this module, regenerate, and commit both.

Every catalogue case gets one beneficiary per AMC it applies to, shaped by the case's
specification. The person (NIR, birth date, names, member number digits, the contract when
the case leaves it open) is drawn from the case's *name* alone, never from a shared random
sequence: adding, removing or reordering cases never changes another case's beneficiary. So
are the contracts, from the AMC and the guarantee code. The seed only draws a few more people
with varied rights, so the data feels like an insurer's.

NIRs come from the documented fictitious range (department 99, country 999): case
beneficiaries use order numbers 001-499, the other people 500-899 (so they never meet);
900-999 stay free (unknown to every AMC).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from mutuelle.datafiles import SimulatorData, shipped_tariffs_text, write_data
from mutuelle.model import (
    FICTITIOUS_NIR_PLACE,
    Amc,
    Beneficiary,
    BeneficiaryKey,
    Contract,
    ContractPeriod,
    Dataset,
    Guarantee,
    RightsPeriod,
    Sector,
)
from mutuelle.specs import CaseSpec, Family, RightsTemplate
from mutuelle.specs_care import ALL_SPECS, specs_for
from mutuelle.tariffs import parse_tariffs
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

#: Guarantee levels every AMC sells: code and label.
LEVELS = (
    ("ESSENTIEL", "Essentiel"),
    ("CONFORT", "Confort"),
    ("INTEGRAL", "Intégral"),
    ("DEMI", "Hospitalisation 50 % (non responsable)"),
    ("SURCO", "Surcomplémentaire (non responsable)"),
    ("C2S", "Complémentaire santé solidaire"),
)
#: Levels a case gets when it leaves the contract open.
_USUAL_LEVELS = ("ESSENTIEL", "CONFORT", "INTEGRAL")

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


def _rng(*parts: str) -> random.Random:
    """A random stream drawn from *parts* alone (a case's name, an AMC and a code)."""
    digest = hashlib.sha256("/".join(("mutuelle-ans", *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))  # noqa: S311 - fictitious data


def _date(rng: random.Random, first: datetime.date, last: datetime.date) -> datetime.date:
    return first + datetime.timedelta(days=rng.randrange((last - first).days + 1))


def _nir(sex: str, birth: datetime.date, order: int) -> str:
    return make_nir(
        f"{sex}{birth.year % 100:02d}{birth.month:02d}{FICTITIOUS_NIR_PLACE}{order:03d}"
    )


@dataclass(frozen=True, slots=True)
class _Identity:
    """Who a case's beneficiary is, drawn from the case's name."""

    nir: str
    last_name: str
    #: (first name, birth date, birth rank) of each member: the insured, then twins.
    members: tuple[tuple[str, datetime.date, int], ...]
    member_digits: int
    default_level: str


def case_identity(spec: CaseSpec) -> _Identity:
    """The identity of *spec*'s beneficiary: a function of the case's name only."""
    rng = _rng("case", spec.name)
    sex = rng.choice("12")
    twins = spec.family is Family.TWIN
    birth = (
        _date(rng, _D(1975, 1, 1), _D(1995, 12, 31))
        if twins
        else _date(rng, _D(1945, 1, 1), _D(2000, 12, 31))
    )
    nir = _nir(sex, birth, rng.randrange(1, 500))
    last_name = rng.choice(LAST_NAMES)
    members = [(rng.choice(FIRST_NAMES[sex]), birth, 1)]
    if twins:
        twins_birth = _date(rng, _D(2012, 1, 1), _D(2020, 12, 31))
        members += [
            (rng.choice(FIRST_NAMES[rng.choice("12")]), twins_birth, 1),
            (rng.choice(FIRST_NAMES[rng.choice("12")]), twins_birth, 2),
        ]
    return _Identity(
        nir, last_name, tuple(members), rng.randrange(1, 9_000_000), rng.choice(_USUAL_LEVELS)
    )


def _guarantee(prefix: str, code: str, label: str) -> Guarantee:
    """The guarantee *code* of the AMC with member prefix *prefix* (drawn from both)."""
    rng = _rng("contract", prefix, code)
    pick = rng.choice
    if code == "ESSENTIEL":
        return Guarantee(code, label, 100, True, rng.random() < 0.5, 0, 0, 0, 0, 0, True)
    if code == "CONFORT":
        optam = pick((100, 150))
        return Guarantee(
            code,
            label,
            100,
            True,
            True,
            pick((3000, 4500, 6000)),
            pick((30, 45)),
            pick((0, 2000)),
            optam,
            optam,
            True,
        )
    if code == "INTEGRAL":
        return Guarantee(
            code,
            label,
            100,
            True,
            True,
            pick((7000, 9000)),
            0,
            pick((2500, 4000)),
            pick((200, 250)),
            pick((150, 200)),
            True,
        )
    if code == "DEMI":
        return Guarantee(code, label, 50, False, False, 0, 0, 0, 0, 0, False)
    if code == "SURCO":
        return Guarantee(
            code,
            label,
            0,
            False,
            False,
            pick((4000, 5000)),
            pick((15, 30)),
            0,
            pick((100, 150)),
            100,
            False,
        )
    if code == "C2S":
        return Guarantee(code, label, 100, True, True, 0, 0, 0, 0, 0, True)
    raise ValueError(f"unknown guarantee level {code}")


def _contracts(prefix: str) -> tuple[Contract, ...]:
    return tuple(
        Contract(f"{prefix}-{code}", _guarantee(prefix, code, label)) for code, label in LEVELS
    )


def _periods(templates: Sequence[RightsTemplate]) -> tuple[RightsPeriod, ...]:
    return tuple(RightsPeriod(t.start, t.end, t.sectors) for t in templates)


def _random_rights(rng: random.Random) -> tuple[RightsPeriod, ...]:
    draw = rng.random()
    start = _D(rng.randrange(2016, 2024), 1, 1)
    if draw < 0.2:
        return (
            RightsPeriod(start, _date(rng, _D(2024, 1, 1), _D(2025, 12, 31)), frozenset(Sector)),
        )
    if draw < 0.35:
        return (RightsPeriod(start, None, frozenset({Sector.MCO})),)
    return (RightsPeriod(start, None, frozenset(Sector)),)


class _Registry:
    """The people of one AMC: refuses two with one key, NIR or member number."""

    def __init__(self, amc: _AmcSpec) -> None:
        self.amc = amc
        self.people: list[Beneficiary] = []
        self._nirs: dict[str, str] = {}
        self._members: dict[str, str] = {}

    def claim(self, owner: str, nir: str, member_number: str) -> None:
        for kind, seen, value in (
            ("NIR", self._nirs, nir),
            ("member number", self._members, member_number),
        ):
            if seen.setdefault(value, owner) != owner:
                raise ValueError(
                    f"{owner} and {seen[value]} draw the same {kind} at AMC {self.amc.number}: "
                    "rename one of the cases"
                )

    def taken(self, nir: str, member_number: str) -> bool:
        return nir in self._nirs or member_number in self._members

    def add(
        self,
        nir: str,
        last_name: str,
        members: Sequence[tuple[str, datetime.date, int]],
        member_number: str,
        contracts: tuple[ContractPeriod, ...],
        rights: tuple[RightsPeriod, ...],
    ) -> Beneficiary:
        """The family on *nir*; returns the last member added."""
        for first_name, birth, rank in members:
            person = Beneficiary(
                nir=nir,
                last_name=last_name,
                first_name=first_name,
                birth_date=birth,
                birth_rank=rank,
                member_number=member_number,
                amc_number=self.amc.number,
                contracts=contracts,
                rights=rights,
            )
            self.people.append(person)
        return person


def generate(seed: int, specs: tuple[CaseSpec, ...] = ALL_SPECS) -> SimulatorData:
    """The whole fictitious dataset for *seed*, with the beneficiary of every case of *specs*.

    Raises ValueError when two cases draw the same NIR or member number at one AMC (rename a
    case: names are the only input of an identity).
    """
    rng = random.Random(seed)  # noqa: S311 - fictitious data, not security
    amcs: list[Amc] = []
    persons: list[Beneficiary] = []
    bindings: dict[tuple[str, str], BeneficiaryKey] = {}
    for amc in AMCS:
        contracts = _contracts(amc.prefix)
        amcs.append(Amc(amc.number, amc.name, amc.third_party_payment, contracts))
        registry = _Registry(amc)
        for spec in specs_for(amc.third_party_payment, specs):
            if spec.family is Family.NOBODY:
                continue
            identity = case_identity(spec)
            member_number = f"{amc.prefix}{identity.member_digits:07d}"
            registry.claim(spec.name, identity.nir, member_number)
            held = tuple(
                ContractPeriod(f"{amc.prefix}-{t.level}", t.start, t.end)
                for t in spec.held(identity.default_level)
            )
            person = registry.add(
                identity.nir,
                identity.last_name,
                identity.members,
                member_number,
                held,
                _periods(spec.rights),
            )
            bindings[(amc.number, spec.name)] = person.key
        for index in range(amc.extra_people):
            sex = rng.choice("12")
            twins = rng.random() < 0.15
            birth = (
                _date(rng, _D(1975, 1, 1), _D(1995, 12, 31))
                if twins
                else _date(rng, _D(1945, 1, 1), _D(2000, 12, 31))
            )
            while True:
                nir = _nir(sex, birth, rng.randrange(500, 900))
                member_number = f"{amc.prefix}{rng.randrange(1, 9_000_000):07d}"
                if not registry.taken(nir, member_number):
                    break
            registry.claim(f"extra person {index}", nir, member_number)
            members = [(rng.choice(FIRST_NAMES[sex]), birth, 1)]
            if twins:
                twins_birth = _date(rng, _D(2012, 1, 1), _D(2020, 12, 31))
                members += [
                    (rng.choice(FIRST_NAMES[rng.choice("12")]), twins_birth, 1),
                    (rng.choice(FIRST_NAMES[rng.choice("12")]), twins_birth, 2),
                ]
            contract = rng.choice(contracts[:3]).contract_id
            registry.add(
                nir,
                rng.choice(LAST_NAMES),
                members,
                member_number,
                (ContractPeriod(contract),),
                _random_rights(rng),
            )
        persons += registry.people
    dataset = Dataset(tuple(amcs), tuple(persons))
    tariffs = parse_tariffs(shipped_tariffs_text())
    return SimulatorData(seed, dataset, MappingProxyType(bindings), tariffs)


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
