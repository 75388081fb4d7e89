"""The simulator's data as readable TOML files: ``amcs.toml``, ``beneficiaries.toml`` (the
fictitious world, generated) and ``tariffs.toml`` (the dated regulated amounts, by hand).

The shipped files live in the ``mutuelle.data`` package (read with importlib.resources);
``data_dir`` in the configuration points at another directory with ``amcs.toml`` and
``beneficiaries.toml``, and optionally its own ``tariffs.toml`` (else the shipped one).
Loading checks every value, names the offending entry (``beneficiaries.toml:
beneficiary[3].nir: NIR key is wrong``, never the value) and refuses NIRs outside the
documented fictitious range.

Each beneficiary entry may list the catalogue ``cases`` it reaches; that is how the catalogue
finds the fictitious person behind each case.
"""

from __future__ import annotations

import datetime
import json
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from mutuelle.model import (
    Amc,
    Beneficiary,
    BeneficiaryKey,
    Contract,
    ContractPeriod,
    Dataset,
    Guarantee,
    RightsPeriod,
    Sector,
    fictitious_nir_error,
)
from mutuelle.tariffs import TARIFFS_FILE, TariffError, TariffTable, parse_tariffs
from roc.identifiers import amc_number_error

AMCS_FILE = "amcs.toml"
BENEFICIARIES_FILE = "beneficiaries.toml"
DATA_FILES = (AMCS_FILE, BENEFICIARIES_FILE)

_MEMBER_NUMBER = re.compile(r"[A-Za-z0-9]{1,20}")
_CONTRACT_ID = re.compile(r"[A-Za-z0-9-]{1,30}")
_CASE_NAME = re.compile(r"[A-Z]{3}_(?:OK|KO)_[A-Z]{3}_[A-Z0-9_]+")

T = TypeVar("T")


class DataError(ValueError):
    """A data file is missing or holds an invalid entry; the message names file and entry."""


@dataclass(frozen=True)
class SimulatorData:
    """The dataset, the seed it was generated from, which beneficiary reaches which case, and
    the tariff table."""

    seed: int | None
    dataset: Dataset
    #: (AMC number, case name) -> the beneficiary that reaches the case at that AMC.
    case_beneficiaries: Mapping[tuple[str, str], BeneficiaryKey]
    tariffs: TariffTable


# -- Reading -----------------------------------------------------------------------------------


def _get(table: Mapping[str, Any], key: str, kind: type[T], where: str) -> T:
    if key not in table:
        raise DataError(f"{where}.{key}: required")
    value = table[key]
    if kind is int and isinstance(value, bool):
        raise DataError(f"{where}.{key}: must be an integer")
    if not isinstance(value, kind):
        raise DataError(f"{where}.{key}: must be of type {kind.__name__}")
    return value


def _checked(value: str, check: Callable[[str], str | None], where: str) -> str:
    reason = check(value)
    if reason is not None:
        raise DataError(f"{where}: {reason}")
    return value


def _pattern(regex: re.Pattern[str], rule: str) -> Callable[[str], str | None]:
    return lambda value: None if regex.fullmatch(value) else rule


def _date(table: Mapping[str, Any], key: str, where: str) -> datetime.date:
    value = table.get(key)
    if isinstance(value, datetime.datetime) or not isinstance(value, datetime.date):
        raise DataError(f"{where}.{key}: must be a date (YYYY-MM-DD)")
    return value


def _tables(data: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
    tables = data.get(key, [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise DataError(f"{where}{key}: must be an array of tables")
    return tables


def _unknown_keys(table: Mapping[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise DataError(f"{where}.{unknown[0]}: unknown key")


def _guarantee(table: Mapping[str, Any], where: str) -> Guarantee:
    fields: dict[str, type] = {
        "code": str,
        "label": str,
        "ticket_moderateur_percent": int,
        "covers_daily_hospital_charge": bool,
        "covers_flat_participation": bool,
        "private_room_ceiling_cents": int,
        "private_room_days_per_year": int,
        "companion_ceiling_cents": int,
        "fee_overrun_optam_percent": int,
        "fee_overrun_non_optam_percent": int,
        "responsible": bool,
    }
    _unknown_keys(table, set(fields), where)
    values: dict[str, Any] = {name: _get(table, name, kind, where) for name, kind in fields.items()}
    try:
        return Guarantee(**values)
    except ValueError as exc:
        raise DataError(f"{where}.{exc}") from None


def _amc(table: Mapping[str, Any], where: str) -> Amc:
    _unknown_keys(table, {"number", "name", "third_party_payment", "contract"}, where)
    number = _checked(_get(table, "number", str, where), amc_number_error, f"{where}.number")
    contracts = []
    for index, entry in enumerate(_tables(table, "contract", f"{where}.")):
        at = f"{where}.contract[{index}]"
        _unknown_keys(entry, {"id", "guarantee"}, at)
        contract_id = _checked(
            _get(entry, "id", str, at),
            _pattern(_CONTRACT_ID, "must be 1 to 30 of A-Z a-z 0-9 -"),
            f"{at}.id",
        )
        guarantee = _guarantee(_get(entry, "guarantee", dict, at), f"{at}.guarantee")
        contracts.append(Contract(contract_id, guarantee))
    return Amc(
        number=number,
        name=_get(table, "name", str, where),
        third_party_payment=_get(table, "third_party_payment", bool, where),
        contracts=tuple(contracts),
    )


def _rights(table: Mapping[str, Any], where: str) -> RightsPeriod:
    _unknown_keys(table, {"start", "end", "sectors"}, where)
    sectors = _get(table, "sectors", list, where)
    known = {sector.value for sector in Sector}
    if not all(isinstance(s, str) and s in known for s in sectors):
        raise DataError(f"{where}.sectors: each must be one of {', '.join(sorted(known))}")
    end = _date(table, "end", where) if "end" in table else None
    try:
        return RightsPeriod(
            _date(table, "start", where), end, frozenset(Sector(s) for s in sectors)
        )
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None


def _contract_period(table: Mapping[str, Any], where: str) -> ContractPeriod:
    _unknown_keys(table, {"id", "start", "end"}, where)
    start = _date(table, "start", where) if "start" in table else None
    end = _date(table, "end", where) if "end" in table else None
    try:
        return ContractPeriod(_get(table, "id", str, where), start, end)
    except ValueError as exc:
        raise DataError(f"{where}: {exc}") from None


def _contracts(table: Mapping[str, Any], where: str) -> tuple[ContractPeriod, ...]:
    """``contract = "ID"`` (held all along) or ``[[beneficiary.contracts]]`` periods."""
    if ("contract" in table) == ("contracts" in table):
        raise DataError(f"{where}.contract: give either contract or contracts")
    if "contract" in table:
        return (ContractPeriod(_get(table, "contract", str, where)),)
    periods = _tables(table, "contracts", f"{where}.")
    if not periods:
        raise DataError(f"{where}.contracts: at least one")
    return tuple(
        _contract_period(entry, f"{where}.contracts[{i}]") for i, entry in enumerate(periods)
    )


_BENEFICIARY_KEYS = {
    "amc",
    "contract",
    "contracts",
    "member_number",
    "nir",
    "last_name",
    "first_name",
    "birth_date",
    "birth_rank",
    "cases",
    "rights",
}


def _beneficiary(table: Mapping[str, Any], where: str) -> tuple[Beneficiary, list[str]]:
    _unknown_keys(table, _BENEFICIARY_KEYS, where)
    rank = _get(table, "birth_rank", int, where)
    if not 1 <= rank <= 9:
        raise DataError(f"{where}.birth_rank: must be between 1 and 9")
    cases = table.get("cases", [])
    if not isinstance(cases, list) or not all(
        isinstance(c, str) and _CASE_NAME.fullmatch(c) for c in cases
    ):
        raise DataError(f"{where}.cases: must be a list of case names")
    person = Beneficiary(
        nir=_checked(_get(table, "nir", str, where), fictitious_nir_error, f"{where}.nir"),
        last_name=_get(table, "last_name", str, where),
        first_name=_get(table, "first_name", str, where),
        birth_date=_date(table, "birth_date", where),
        birth_rank=rank,
        member_number=_checked(
            _get(table, "member_number", str, where),
            _pattern(_MEMBER_NUMBER, "must be 1 to 20 letters and digits"),
            f"{where}.member_number",
        ),
        amc_number=_get(table, "amc", str, where),
        contracts=_contracts(table, where),
        rights=tuple(
            _rights(entry, f"{where}.rights[{i}]")
            for i, entry in enumerate(_tables(table, "rights", f"{where}."))
        ),
    )
    return person, cases


def parse_data(texts: Mapping[str, str]) -> SimulatorData:
    """Build the simulator's data from the text of each data file (keyed by file name).

    Without ``tariffs.toml`` in *texts*, the shipped tariff table is used.
    """
    parsed: dict[str, dict[str, Any]] = {}
    for name in DATA_FILES:
        if name not in texts:
            raise DataError(f"{name}: missing")
        try:
            parsed[name] = tomllib.loads(texts[name])
        except tomllib.TOMLDecodeError as exc:
            raise DataError(f"{name}: not valid TOML ({exc})") from None
    seeds = {parsed[name].get("seed") for name in DATA_FILES}
    if len(seeds) != 1 or not all(s is None or isinstance(s, int) for s in seeds):
        raise DataError(f"{AMCS_FILE}, {BENEFICIARIES_FILE}: seed must be the same integer")
    seed = seeds.pop()
    amcs_data, people_data = parsed[AMCS_FILE], parsed[BENEFICIARIES_FILE]
    _unknown_keys(amcs_data, {"seed", "amc"}, AMCS_FILE + ":")
    _unknown_keys(people_data, {"seed", "beneficiary"}, BENEFICIARIES_FILE + ":")
    amcs = tuple(
        _amc(table, f"{AMCS_FILE}: amc[{index}]")
        for index, table in enumerate(_tables(amcs_data, "amc", f"{AMCS_FILE}: "))
    )
    people = []
    bindings: dict[tuple[str, str], BeneficiaryKey] = {}
    for index, table in enumerate(_tables(people_data, "beneficiary", f"{BENEFICIARIES_FILE}: ")):
        where = f"{BENEFICIARIES_FILE}: beneficiary[{index}]"
        person, cases = _beneficiary(table, where)
        people.append(person)
        for case in cases:
            if (person.amc_number, case) in bindings:
                raise DataError(f"{where}.cases: {case} is already reached by another")
            bindings[(person.amc_number, case)] = person.key
    try:
        dataset = Dataset(amcs, tuple(people))
    except ValueError as exc:
        raise DataError(f"{BENEFICIARIES_FILE}: {exc}") from None
    tariffs_text = texts.get(TARIFFS_FILE)
    try:
        tariffs = parse_tariffs(
            tariffs_text if tariffs_text is not None else shipped_tariffs_text()
        )
    except TariffError as exc:
        raise DataError(str(exc)) from None
    return SimulatorData(seed, dataset, MappingProxyType(bindings), tariffs)


def shipped_tariffs_text() -> str:
    return resources.files("mutuelle.data").joinpath(TARIFFS_FILE).read_text("utf-8")


def load_data(directory: Path | None = None) -> SimulatorData:
    """The data files in *directory*, or the ones shipped in the ``mutuelle.data`` package.

    A *directory* without ``tariffs.toml`` uses the shipped tariff table.
    """
    texts = {}
    if directory is not None and (directory / TARIFFS_FILE).is_file():
        try:
            texts[TARIFFS_FILE] = (directory / TARIFFS_FILE).read_text("utf-8")
        except OSError as exc:
            raise DataError(f"{directory / TARIFFS_FILE}: cannot read ({exc.strerror})") from None
    for name in DATA_FILES:
        try:
            if directory is None:
                texts[name] = resources.files("mutuelle.data").joinpath(name).read_text("utf-8")
            else:
                texts[name] = (directory / name).read_text("utf-8")
        except OSError as exc:
            where = name if directory is None else directory / name
            raise DataError(f"{where}: cannot read ({exc.strerror})") from None
    return parse_data(texts)


# -- Writing -----------------------------------------------------------------------------------

_HEADER = """\
# Mutuelle ANS: {what}.
# Generated by `python -m mutuelle.generate --seed {seed} --out mutuelle/data/`: do not edit by
# hand, change the generator and regenerate. Every person and insurer here is fictitious; this
# is the PiANO project's model of ROC, not the official ROC.
"""


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | datetime.date):
        return value.isoformat() if isinstance(value, datetime.date) else str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _lines(pairs: Mapping[str, object]) -> list[str]:
    return [f"{key} = {_value(value)}" for key, value in pairs.items()]


def render_amcs(data: SimulatorData) -> str:
    lines = [_HEADER.format(what="AMCs, contracts and guarantees", seed=data.seed)]
    lines.append("# Amounts are euro cents, rates are percentages.\n")
    if data.seed is not None:
        lines.append(f"seed = {data.seed}\n")
    for amc in data.dataset.amcs:
        lines.append("[[amc]]")
        lines += _lines(
            {
                "number": amc.number,
                "name": amc.name,
                "third_party_payment": amc.third_party_payment,
            }
        )
        lines.append("")
        for contract in amc.contracts:
            g = contract.guarantee
            lines.append("[[amc.contract]]")
            lines.append(f"id = {_string(contract.contract_id)}")
            lines.append("")
            lines.append("[amc.contract.guarantee]")
            lines += _lines(
                {
                    "code": g.code,
                    "label": g.label,
                    "ticket_moderateur_percent": g.ticket_moderateur_percent,
                    "covers_daily_hospital_charge": g.covers_daily_hospital_charge,
                    "covers_flat_participation": g.covers_flat_participation,
                    "private_room_ceiling_cents": g.private_room_ceiling_cents,
                    "private_room_days_per_year": g.private_room_days_per_year,
                    "companion_ceiling_cents": g.companion_ceiling_cents,
                    "fee_overrun_optam_percent": g.fee_overrun_optam_percent,
                    "fee_overrun_non_optam_percent": g.fee_overrun_non_optam_percent,
                    "responsible": g.responsible,
                }
            )
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def render_beneficiaries(data: SimulatorData) -> str:
    cases: dict[tuple[str, BeneficiaryKey], list[str]] = {}
    for (amc_number, case), key in sorted(data.case_beneficiaries.items()):
        cases.setdefault((amc_number, key), []).append(case)
    lines = [_HEADER.format(what="beneficiaries and their rights", seed=data.seed)]
    lines.append(
        "# NIRs: sex 1 or 2, birth year and month, department 99 and country code 999\n"
        "# (unassigned), order number 001-899; a child is sent with the insured parent's NIR\n"
        "# and its own birth date. `cases` lists the catalogue cases (docs/catalogue.md) the\n"
        "# person reaches.\n"
    )
    if data.seed is not None:
        lines.append(f"seed = {data.seed}\n")
    for person in data.dataset.beneficiaries:
        lines.append("[[beneficiary]]")
        fields: dict[str, object] = {"amc": person.amc_number}
        single = len(person.contracts) == 1 and person.contracts[0] == ContractPeriod(
            person.contract_id
        )
        if single:
            fields["contract"] = person.contract_id
        fields |= {
            "member_number": person.member_number,
            "nir": person.nir,
            "last_name": person.last_name,
            "first_name": person.first_name,
            "birth_date": person.birth_date,
            "birth_rank": person.birth_rank,
        }
        person_cases = cases.get((person.amc_number, person.key))
        if person_cases:
            fields["cases"] = person_cases
        lines += _lines(fields)
        lines.append("")
        for period in person.rights:
            lines.append("[[beneficiary.rights]]")
            period_fields: dict[str, object] = {"start": period.start}
            if period.end is not None:
                period_fields["end"] = period.end
            period_fields["sectors"] = [s.value for s in Sector if s in period.sectors]
            lines += _lines(period_fields)
            lines.append("")
        if not single:
            for held in person.contracts:
                lines.append("[[beneficiary.contracts]]")
                held_fields: dict[str, object] = {"id": held.contract_id}
                if held.start is not None:
                    held_fields["start"] = held.start
                if held.end is not None:
                    held_fields["end"] = held.end
                lines += _lines(held_fields)
                lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def render_data(data: SimulatorData) -> dict[str, str]:
    """The text of each data file (keyed by file name) describing *data*."""
    return {AMCS_FILE: render_amcs(data), BENEFICIARIES_FILE: render_beneficiaries(data)}


def write_data(data: SimulatorData, directory: Path) -> list[Path]:
    """Write the data files of *data* into *directory*; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_data(data).items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
