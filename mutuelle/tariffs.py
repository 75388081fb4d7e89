"""Regulated amounts (forfait journalier, flat participation, AMO rates...), dated.

Regulated amounts change by decree: each entry of the table holds a value, the day it takes
effect and the public text it comes from. The amount in force on a day is the value of the
latest entry of its code effective on or before that day; before the first entry there is
none (the conformance check refuses the request, rule ``TARIF_INCONNU``).

Pure: the table is parsed from text (``mutuelle/data/tariffs.toml``, replaceable through
``data_dir``) by ``parse_tariffs``; nothing here reads a file.
"""

from __future__ import annotations

import datetime
import itertools
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from mutuelle.model import CareKind, Sector

TARIFFS_FILE = "tariffs.toml"


class TariffCode(StrEnum):
    """Every regulated amount the engine or the conformance check uses."""

    #: Forfait journalier hospitalier per day, MCO, SMR and ex-OQN clinics (cents).
    DAILY_CHARGE = "FORFAIT_JOURNALIER_HOSPITALIER"
    #: Forfait journalier per day in a psychiatric service (cents).
    DAILY_CHARGE_PSYCHIATRY = "FORFAIT_JOURNALIER_PSYCHIATRIE"
    #: Flat participation replacing the ticket modérateur on a heavy act (cents).
    FLAT_PARTICIPATION = "PARTICIPATION_FORFAITAIRE_ACTE_LOURD"
    #: Tariff from which an act is heavy and carries the flat participation (cents).
    HEAVY_ACT_THRESHOLD = "SEUIL_ACTE_LOURD"
    #: AMO rate of hospital fees, full or partial hospitalisation (percent).
    AMO_RATE_HOSPITAL = "TAUX_AMO_HOSPITALISATION"
    #: AMO rate of practitioners' fees for external consultations and acts (percent).
    AMO_RATE_EXTERNAL = "TAUX_AMO_ACTES_EXTERNES"
    #: Responsible contracts: ceiling of the cover of non-OPTAM fee overruns (percent of base).
    NON_OPTAM_CEILING = "PLAFOND_DEPASSEMENT_NON_OPTAM"
    #: Responsible contracts: non-OPTAM cover at least this far below OPTAM cover (points).
    OPTAM_MARGIN = "ECART_MINIMAL_OPTAM"


class Unit(StrEnum):
    CENTS = "cents"
    PERCENT = "percent"


#: The unit each code is written in.
UNITS: Mapping[TariffCode, Unit] = MappingProxyType(
    {
        TariffCode.DAILY_CHARGE: Unit.CENTS,
        TariffCode.DAILY_CHARGE_PSYCHIATRY: Unit.CENTS,
        TariffCode.FLAT_PARTICIPATION: Unit.CENTS,
        TariffCode.HEAVY_ACT_THRESHOLD: Unit.CENTS,
        TariffCode.AMO_RATE_HOSPITAL: Unit.PERCENT,
        TariffCode.AMO_RATE_EXTERNAL: Unit.PERCENT,
        TariffCode.NON_OPTAM_CEILING: Unit.PERCENT,
        TariffCode.OPTAM_MARGIN: Unit.PERCENT,
    }
)


class TariffError(ValueError):
    """The tariff file is invalid; the message names the entry and the field."""


@dataclass(frozen=True, slots=True)
class TariffEntry:
    """One regulated amount: its value from a date on, and where it comes from."""

    code: TariffCode
    value: int
    effective: datetime.date
    #: The public text (decree, order, code article) that sets the value.
    source: str
    #: Where to read it (Légifrance, ameli.fr, service-public.fr...).
    url: str = ""
    #: What the project could not verify or chose, if anything.
    note: str = ""


@dataclass(frozen=True)
class TariffTable:
    """Every entry, and the amount in force on any day."""

    entries: tuple[TariffEntry, ...]
    _by_code: Mapping[TariffCode, tuple[TariffEntry, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_code: dict[TariffCode, list[TariffEntry]] = {}
        for entry in self.entries:
            by_code.setdefault(entry.code, []).append(entry)
        ordered = {
            code: tuple(sorted(rows, key=lambda e: e.effective)) for code, rows in by_code.items()
        }
        for code, rows in ordered.items():
            for earlier, later in itertools.pairwise(rows):
                if earlier.effective == later.effective:
                    raise TariffError(f"{code.value}: two entries take effect on {later.effective}")
        object.__setattr__(self, "_by_code", MappingProxyType(ordered))

    def entry(self, code: TariffCode, day: datetime.date) -> TariffEntry | None:
        """The entry of *code* in force on *day*, or None before the first one."""
        found = None
        for entry in self._by_code.get(code, ()):
            if entry.effective > day:
                break
            found = entry
        return found

    def value(self, code: TariffCode, day: datetime.date) -> int | None:
        entry = self.entry(code, day)
        return None if entry is None else entry.value

    def values_between(
        self, code: TariffCode, start: datetime.date, end: datetime.date
    ) -> set[int | None]:
        """Every amount of *code* in force on some day from *start* to *end* (None: a day
        before the first entry)."""
        values: set[int | None] = {self.value(code, start)}
        for entry in self._by_code.get(code, ()):
            if start < entry.effective <= end:
                values.add(entry.value)
        return values

    def history(self, code: TariffCode) -> tuple[TariffEntry, ...]:
        return self._by_code.get(code, ())

    def daily_charge(self, sector: Sector, day: datetime.date) -> int | None:
        """The forfait journalier of *sector* on *day* (None in HAD: there is none)."""
        code = daily_charge_code(sector)
        return None if code is None else self.value(code, day)

    def amo_rate(self, care_kind: CareKind, day: datetime.date) -> int | None:
        return self.value(amo_rate_code(care_kind), day)


def daily_charge_code(sector: Sector) -> TariffCode | None:
    """Which forfait journalier applies in *sector*; None for HAD, which has none."""
    if sector is Sector.HAD:
        return None
    if sector is Sector.PSY:
        return TariffCode.DAILY_CHARGE_PSYCHIATRY
    return TariffCode.DAILY_CHARGE


def amo_rate_code(care_kind: CareKind) -> TariffCode:
    if care_kind is CareKind.EXTERNAL:
        return TariffCode.AMO_RATE_EXTERNAL
    return TariffCode.AMO_RATE_HOSPITAL


_ENTRY_KEYS = {"code", "value", "effective", "source", "url", "note"}


def _entry(table: Mapping[str, Any], where: str) -> TariffEntry:
    unknown = sorted(set(table) - _ENTRY_KEYS)
    if unknown:
        raise TariffError(f"{where}.{unknown[0]}: unknown key")
    code_text = table.get("code")
    codes = {code.value: code for code in TariffCode}
    if code_text not in codes:
        raise TariffError(f"{where}.code: must be one of {', '.join(sorted(codes))}")
    code = codes[code_text]
    value = table.get("value")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise TariffError(f"{where}.value: must be an integer >= 0 ({UNITS[code].value})")
    if UNITS[code] is Unit.PERCENT and value > 1000:
        raise TariffError(f"{where}.value: a percentage must be at most 1000")
    effective = table.get("effective")
    if isinstance(effective, datetime.datetime) or not isinstance(effective, datetime.date):
        raise TariffError(f"{where}.effective: must be a date (YYYY-MM-DD)")
    texts = {}
    for key in ("source", "url", "note"):
        text = table.get(key, "")
        if not isinstance(text, str):
            raise TariffError(f"{where}.{key}: must be a string")
        texts[key] = text
    if not texts["source"].strip():
        raise TariffError(f"{where}.source: required (the public text the value comes from)")
    return TariffEntry(code, value, effective, texts["source"], texts["url"], texts["note"])


def parse_tariffs(text: str, name: str = TARIFFS_FILE) -> TariffTable:
    """The table in TOML *text*; every code must have at least one entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TariffError(f"{name}: not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"tariff"})
    if unknown:
        raise TariffError(f"{name}: {unknown[0]}: unknown key")
    rows = data.get("tariff", [])
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise TariffError(f"{name}: tariff: must be an array of tables")
    entries = tuple(_entry(row, f"{name}: tariff[{index}]") for index, row in enumerate(rows))
    missing = [code.value for code in TariffCode if not any(e.code is code for e in entries)]
    if missing:
        raise TariffError(f"{name}: no entry for {missing[0]}")
    try:
        return TariffTable(entries)
    except TariffError as exc:
        raise TariffError(f"{name}: {exc}") from None
