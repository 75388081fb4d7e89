"""The catalogue of business cases: what a hospital or a publisher sends to get each answer.

A case is named ``<SERVICE>_<OK|KO>_<SECTOR>_<CASE>`` and exists once per simulated AMC it
applies to. Each is reached by a fictitious beneficiary: the case *specification* below says
what the person's rights must look like and what to send; the generator
(``mutuelle.generate``) creates one such person per AMC and records it in the data files; the
*catalogue* joins both into concrete cases (``build_catalogue``).

Pure: no I/O except ``main``. ``python -m mutuelle.catalogue --markdown > docs/catalogue.md``
renders the publishers' reference.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from mutuelle.datafiles import SimulatorData, load_data
from mutuelle.faults import MutuelleError
from mutuelle.idb import IdbOutcome, IdbRequest
from mutuelle.model import Beneficiary, BeneficiaryKey, CareKind, Sector
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
    expected: IdbOutcome
    rights: tuple[RightsTemplate, ...] = _OPEN
    family: Family = Family.ADULT
    member_number: MemberNumber = MemberNumber.SENT
    start: datetime.date = DEFAULT_START
    end: datetime.date = DEFAULT_END
    #: Whether the case applies to AMCs that practise third-party payment, or to those that
    #: do not; None: to every AMC.
    third_party_payment: bool | None = True

    @property
    def name(self) -> str:
        verdict = "OK" if self.expected.code == "00" else "KO"
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
)


def specs_for(third_party_payment: bool) -> tuple[CaseSpec, ...]:
    """The specifications that apply to an AMC with or without third-party payment."""
    return tuple(
        spec
        for spec in SPECS
        if spec.third_party_payment is None or spec.third_party_payment == third_party_payment
    )


@dataclass(frozen=True, slots=True)
class Case:
    """A concrete case at one AMC: who to send, what to send, what comes back."""

    spec: CaseSpec
    amc_number: str
    #: None when the case is about a beneficiary nobody knows.
    beneficiary: Beneficiary | None
    request: IdbRequest

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def service(self) -> Service:
        return self.spec.service

    @property
    def version(self) -> RocVersion:
        return self.spec.version

    @property
    def sector(self) -> Sector:
        return self.spec.sector

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def rule(self) -> str:
        return self.spec.rule

    @property
    def expected_code(self) -> str:
        return self.spec.expected.code

    @property
    def expected_label(self) -> str:
        return self.spec.expected.label


class Catalogue:
    """Every concrete case, by AMC and name."""

    def __init__(self, cases: Sequence[Case]) -> None:
        self.cases = tuple(cases)
        self._by_name = {(case.amc_number, case.name): case for case in self.cases}
        if len(self._by_name) != len(self.cases):
            raise ValueError("two cases share an AMC and a name")
        self._by_key: dict[tuple[str, BeneficiaryKey], list[Case]] = {}
        for case in self.cases:
            self._by_key.setdefault((case.amc_number, case.request.beneficiary), []).append(case)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def __len__(self) -> int:
        return len(self.cases)

    def get(self, amc_number: str, name: str) -> Case | None:
        return self._by_name.get((amc_number, name))

    def for_amc(self, amc_number: str) -> tuple[Case, ...]:
        return tuple(case for case in self.cases if case.amc_number == amc_number)

    def names(self) -> frozenset[str]:
        return frozenset(case.name for case in self.cases)

    def match(
        self, amc_number: str, version: RocVersion, request: IdbRequest, code: str
    ) -> Case | None:
        """The case an exchange played: same AMC, version, beneficiary, sector and answer."""
        for case in self._by_key.get((amc_number, request.beneficiary), ()):
            if (
                case.version is version
                and case.sector is request.sector
                and case.expected_code == code
            ):
                return case
        return None


def _request(spec: CaseSpec, key: BeneficiaryKey, member_number: str | None) -> IdbRequest:
    sent = {
        MemberNumber.SENT: member_number,
        MemberNumber.OMITTED: None,
        MemberNumber.WRONG: WRONG_MEMBER_NUMBER,
    }[spec.member_number]
    return IdbRequest(
        beneficiary=key,
        member_number=sent,
        start=spec.start,
        end=spec.end,
        sector=spec.sector,
        care_kind=spec.care_kind,
    )


def build_catalogue(data: SimulatorData) -> Catalogue:
    """The concrete cases of every AMC in *data*.

    Raises ValueError when the data lacks the beneficiary of a case (regenerate the data).
    """
    cases = []
    for amc in data.dataset.amcs:
        for spec in specs_for(amc.third_party_payment):
            if spec.family is Family.NOBODY:
                cases.append(
                    Case(spec, amc.number, None, _request(spec, UNKNOWN_BENEFICIARY, None))
                )
                continue
            key = data.case_beneficiaries.get((amc.number, spec.name))
            person = None if key is None else data.dataset.beneficiary(amc.number, key)
            if key is None or person is None:
                raise ValueError(f"no beneficiary reaches case {spec.name} at AMC {amc.number}")
            cases.append(Case(spec, amc.number, person, _request(spec, key, person.member_number)))
    return Catalogue(cases)


def default_catalogue() -> Catalogue:
    """The catalogue of the shipped data."""
    return build_catalogue(load_data())


# -- Markdown ----------------------------------------------------------------------------------


def _period(start: datetime.date, end: datetime.date | None) -> str:
    return f"{start.isoformat()} → {end.isoformat() if end else '(open)'}"


def _sectors(sectors: frozenset[Sector]) -> str:
    return ", ".join(s.value for s in Sector if s in sectors)


def render_markdown(data: SimulatorData, catalogue: Catalogue) -> str:
    """The publishers' reference: codes, faults, AMCs and every case (docs/catalogue.md)."""
    out: list[str] = []
    w = out.append
    w("# Mutuelle ANS: catalogue of business cases\n")
    w(
        "> Generated by `python -m mutuelle.catalogue --markdown > docs/catalogue.md` from "
        "`mutuelle/catalogue.py` and the data in `mutuelle/data/`: do not edit by hand.\n"
    )
    w(
        "**This is the PiANO project's model of ROC, not the official ROC specification.** "
        "The return codes, labels, faults and message formats below are the project's own "
        "(see [roc-model.md](roc-model.md)); the official lists are distributed to ROC members "
        "only. Every person and insurer here is fictitious.\n"
    )
    w("## How to play a case\n")
    w(
        "Send an IDB request (`examples/idb-*.xml`, schema `roc/schemas/roc-idb.xsd`) to "
        "`/roc/IDB`, with the routing block naming the case's AMC and ROC version, the "
        "beneficiary's NIR, birth date and birth rank, the member number as the case says, "
        "and the period, sector and kind of care shown. The answer carries the expected "
        "`CodeRetour` and `LibelleRetour`. No set-up call is needed: the beneficiary *is* the "
        "case.\n"
    )
    w(
        "Rights of the `DROITS_OUVERTS` beneficiaries are open-ended: any period from 2020 on "
        "gives the same answer. Cases about dated rights (renewal, rights ending during the "
        "stay) need the period shown.\n"
    )
    w("## Fictitious identifiers\n")
    w(
        "- **NIR**: sex 1 or 2, birth year and month, birth department `99` (born abroad) and "
        "country code `999`, which INSEE never assigned; the key is valid. Generated "
        "beneficiaries use order numbers 001-899; **order numbers 900-999 are never "
        f"generated**, so e.g. `{UNKNOWN_BENEFICIARY.nir}` is unknown to every AMC.\n"
        "- **Children** (ayants droit) are sent with the insured parent's NIR and their own "
        "birth date; the birth rank tells twins apart.\n"
        "- **Member numbers**: three letters of the AMC then 7 digits below 9000000; "
        f"`{WRONG_MEMBER_NUMBER}` belongs to nobody.\n"
        "- **AMC numbers** `99000xxxx`; establishments of the development PKI use FINESS "
        "numbers in department `99`.\n"
    )
    w(f"Data generated from seed `{data.seed}` (`python -m mutuelle.generate`).\n")

    w("## AMCs (demo annuaire)\n")
    w("| AMC | Name | Third-party payment | Contracts | Beneficiaries |")
    w("|---|---|---|---|---|")
    for amc in data.dataset.amcs:
        contracts = ", ".join(f"`{c.contract_id}`" for c in amc.contracts)
        count = sum(1 for _ in data.dataset.beneficiaries_of(amc.number))
        tp = "yes" if amc.third_party_payment else "**no**"
        w(f"| `{amc.number}` | {amc.name} | {tp} | {contracts} | {count} |")
    w("")
    w(
        "`/roc/ANN` answers `CodeRetour` 00 (`AMC trouvée`) with one endpoint per service "
        "(IDB, SIM, CLC, DEL) for each AMC above, built from the configured `public_url`, "
        "and 01 (`AMC inconnue`) otherwise. The demo annuaire matches on the AMC number; the "
        "convention type and secondary criterion are checked for format only.\n"
    )

    w("## IDB messages\n")
    w(
        "Every request body is validated against its schema first; a field that breaks it is "
        "named in a `MUT-400-DEMANDE` fault.\n"
    )
    w(
        "- **Request** `DemandeIDB` (namespace `urn:piano:roc:idb:v1`): `Beneficiaire` "
        "(`NIR`, `DateNaissance` YYYY-MM-DD, `RangNaissance` 1-9, optional `NumeroAdherent`) "
        "and `Soins` (`DateDebut`, `DateFin`, `Secteur` MCO/PSY/HAD/SMR/OQN, `NatureSoins` "
        "HOSP/PARTIEL/ACE). The AMC and the ROC version come from the routing block of the "
        "SOAP header. `NatureSoins` is checked but not used by the IDB rules yet.\n"
        "- **Answer** `ReponseIDB`: `CodeRetour`, `LibelleRetour`, and when rights are open "
        "`Droits`: `NumeroAMC`, `NumeroAdherent`, `Contrat`, `DateDebut`, `DateFin` (absent "
        "when the rights have no end), and one `Secteur` per sector covered over the whole "
        "period.\n"
    )
    w("## IDB return codes\n")
    w("Business answers: HTTP 200 and a `ReponseIDB`. The first rule that applies answers.\n")
    w("| CodeRetour | LibelleRetour | Meaning |")
    w("|---|---|---|")
    for outcome in IdbOutcome:
        w(f"| `{outcome.code}` | {outcome.label} | {outcome.value.meaning} |")
    w("")
    w(
        "Order of the rules: 06 (sector not in the ROC version), 01 (unknown beneficiary), "
        "05 (member number), 04 (no third-party payment), 02 (period), 03 (sector), then 00. "
        "Consecutive rights periods are merged.\n"
    )

    w("## Faults\n")
    w(
        "A request that cannot be processed at all gets a SOAP Fault in the request's SOAP "
        "version, with `ErreurSimulateur` (namespace `urn:piano:mutuelle:erreurs:v1`, schema "
        "`roc/schemas/mutuelle-erreurs.xsd`) in its detail. Messages name the field and the "
        "rule broken, never the value sent.\n"
    )
    w("| Code | HTTP | Role | Message |")
    w("|---|---|---|---|")
    for error in MutuelleError:
        fault = error.spec
        w(f"| `{fault.code}` | {fault.http_status} | {fault.fault_role} | {fault.message} |")
    w("")
    w(
        "An AMC number the simulator does not host is a routing mistake, not a business case: "
        "it answers the fault `MUT-400-AMC-INCONNUE` (the relay answers `RPN-400-AMC-INCONNUE` "
        "before that). SIM, CLC and DEL answer `MUT-501-NON-SIMULE` after checking the "
        "envelope and routing block; they will be simulated next.\n"
    )

    w("## Cases\n")
    for amc in data.dataset.amcs:
        w(f"### {amc.name} — `{amc.number}`\n")
        w(
            "| Case | ROC | Sector / care | NIR | Birth date | Rank | Member number sent "
            "| Period | CodeRetour | LibelleRetour |"
        )
        w("|---|---|---|---|---|---|---|---|---|---|")
        for case in catalogue.for_amc(amc.number):
            r = case.request
            w(
                f"| `{case.name}` | {case.version.value} "
                f"| {r.sector.value} / {r.care_kind.value} | `{r.beneficiary.nir}` "
                f"| {r.beneficiary.birth_date.isoformat()} | {r.beneficiary.birth_rank} "
                f"| {'`' + r.member_number + '`' if r.member_number else '(none)'} "
                f"| {_period(r.start, r.end)} | `{case.expected_code}` | {case.expected_label} |"
            )
        w("")
    w("## What each case illustrates\n")
    for spec in SPECS:
        amcs = [a.number for a in data.dataset.amcs if spec in specs_for(a.third_party_payment)]
        w(f"### `{spec.name}`\n")
        w(f"- **Situation**: {spec.description}")
        w(f"- **Rule**: {spec.rule}")
        sent = spec.member_number.value
        w(f"- **Beneficiary**: {spec.family.value}; member number sent: {sent}.")
        if spec.rights:
            periods = "; ".join(
                f"{_period(t.start, t.end)} ({_sectors(t.sectors)})" for t in spec.rights
            )
            w(f"- **Rights**: {periods}.")
        w(f"- **Expected**: `{spec.expected.code}` {spec.expected.label}.")
        w(f"- **AMCs**: {', '.join(f'`{n}`' for n in amcs)}.\n")
    w("## Beneficiaries of the cases\n")
    w("| AMC | Case | Name | Contract |")
    w("|---|---|---|---|")
    for case in catalogue:
        if case.beneficiary is not None:
            b = case.beneficiary
            name = f"{b.first_name} {b.last_name}"
            w(f"| `{case.amc_number}` | `{case.name}` | {name} | `{b.contract_id}` |")
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mutuelle.catalogue", description="Mutuelle ANS case catalogue."
    )
    parser.add_argument("--markdown", action="store_true", help="print docs/catalogue.md")
    parser.add_argument("--data-dir", type=Path, help="data files to use (default: shipped)")
    args = parser.parse_args(argv)
    data = load_data(args.data_dir)
    catalogue = build_catalogue(data)
    if args.markdown:
        sys.stdout.write(render_markdown(data, catalogue))
    else:
        for case in catalogue:
            print(f"{case.amc_number} {case.name} -> {case.expected_code}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
