"""The dated tariff table: amounts in force by day, sources, replacement through data_dir."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import pytest

from mutuelle.care import euros
from mutuelle.datafiles import DATA_FILES, DataError, load_data, render_data, shipped_tariffs_text
from mutuelle.model import CareKind, Sector
from mutuelle.tariffs import UNITS, TariffCode, TariffError, Unit, parse_tariffs

REPO = Path(__file__).resolve().parents[2]
TABLE = parse_tariffs(shipped_tariffs_text())
D = datetime.date


@pytest.mark.parametrize(
    ("code", "day", "value"),
    [
        (TariffCode.DAILY_CHARGE, D(2017, 12, 31), 1800),
        (TariffCode.DAILY_CHARGE, D(2018, 1, 1), 2000),
        (TariffCode.DAILY_CHARGE_PSYCHIATRY, D(2017, 12, 31), 1350),
        (TariffCode.DAILY_CHARGE_PSYCHIATRY, D(2026, 3, 2), 1500),
        (TariffCode.FLAT_PARTICIPATION, D(2018, 12, 31), 1800),
        (TariffCode.FLAT_PARTICIPATION, D(2019, 1, 1), 2400),
        (TariffCode.HEAVY_ACT_THRESHOLD, D(2011, 2, 23), 9100),
        (TariffCode.HEAVY_ACT_THRESHOLD, D(2011, 2, 24), 12000),
        (TariffCode.AMO_RATE_HOSPITAL, D(2026, 3, 2), 80),
        (TariffCode.AMO_RATE_EXTERNAL, D(2026, 3, 2), 70),
        (TariffCode.NON_OPTAM_CEILING, D(2016, 12, 31), 125),
        (TariffCode.NON_OPTAM_CEILING, D(2017, 1, 1), 100),
        (TariffCode.OPTAM_MARGIN, D(2026, 3, 2), 20),
        (TariffCode.DAILY_CHARGE, D(2009, 12, 31), None),
    ],
)
def test_the_amount_in_force_is_the_latest_entry_effective_that_day(
    code: TariffCode, day: datetime.date, value: int | None
) -> None:
    assert TABLE.value(code, day) == value


def test_sectors_and_kinds_of_care_pick_their_amounts() -> None:
    day = D(2026, 3, 2)
    assert TABLE.daily_charge(Sector.MCO, day) == TABLE.daily_charge(Sector.SMR, day) == 2000
    assert TABLE.daily_charge(Sector.OQN, day) == 2000
    assert TABLE.daily_charge(Sector.PSY, day) == 1500
    assert TABLE.daily_charge(Sector.HAD, day) is None
    assert TABLE.amo_rate(CareKind.PARTIAL, day) == 80
    assert TABLE.amo_rate(CareKind.EXTERNAL, day) == 70


def test_every_entry_names_its_public_source() -> None:
    for entry in TABLE.entries:
        assert entry.source.strip() and entry.url.startswith(("http://", "https://"))


def test_docs_roc_model_lists_every_regulated_amount_with_its_date() -> None:
    text = (REPO / "docs" / "roc-model.md").read_text("utf-8")
    rows = {
        (m.group(1), m.group(2), m.group(3))
        for m in re.finditer(
            r"^\| `([A-Z_]+)` \| ([0-9.]+)[^|]*\| (\d{4}-\d{2}-\d{2}) \|", text, re.M
        )
    }
    for entry in TABLE.entries:
        value = euros(entry.value) if UNITS[entry.code] is Unit.CENTS else str(entry.value)
        assert (entry.code.value, value, entry.effective.isoformat()) in rows, entry.code


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[[tariff]]\ncode = 'X'\n", "tariff[0].code: must be one of"),
        (
            "[[tariff]]\ncode = 'SEUIL_ACTE_LOURD'\nvalue = -1\neffective = 2020-01-01\n"
            "source = 's'\n",
            "tariff[0].value: must be an integer >= 0",
        ),
        (
            "[[tariff]]\ncode = 'SEUIL_ACTE_LOURD'\nvalue = 1\neffective = 2020-01-01\n",
            "tariff[0].source: required",
        ),
        (
            "[[tariff]]\ncode = 'SEUIL_ACTE_LOURD'\nvalue = 1\neffective = 'soon'\nsource = 's'\n",
            "tariff[0].effective: must be a date",
        ),
        ("[[tariff]]\ncolour = 1\n", "tariff[0].colour: unknown key"),
        ("", "no entry for FORFAIT_JOURNALIER_HOSPITALIER"),
    ],
)
def test_an_invalid_table_is_refused_naming_the_entry(text: str, says: str) -> None:
    with pytest.raises(TariffError, match=re.escape(says)):
        parse_tariffs(text)


def test_two_entries_of_one_code_on_one_day_are_refused() -> None:
    doubled = shipped_tariffs_text() + (
        "\n[[tariff]]\ncode = 'SEUIL_ACTE_LOURD'\nvalue = 1\neffective = 2011-02-24\nsource = 's'\n"
    )
    with pytest.raises(TariffError, match="two entries take effect on 2011-02-24"):
        parse_tariffs(doubled)


def test_a_data_dir_may_bring_its_own_tariffs(tmp_path: Path) -> None:
    shipped = load_data()
    for name, text in render_data(shipped).items():
        (tmp_path / name).write_text(text, "utf-8")
    assert set(DATA_FILES) <= {p.name for p in tmp_path.iterdir()}
    assert load_data(tmp_path).tariffs == shipped.tariffs  # none given: the shipped table
    higher = shipped_tariffs_text() + (
        "\n[[tariff]]\ncode = 'FORFAIT_JOURNALIER_HOSPITALIER'\nvalue = 2500\n"
        "effective = 2027-01-01\nsource = 'Arrêté fictif (essai)'\n"
    )
    (tmp_path / "tariffs.toml").write_text(higher, "utf-8")
    assert load_data(tmp_path).tariffs.value(TariffCode.DAILY_CHARGE, D(2027, 1, 1)) == 2500
    (tmp_path / "tariffs.toml").write_text("[[tariff]]\ncode = 'X'\n", "utf-8")
    with pytest.raises(DataError, match=re.escape("tariffs.toml: tariff[0].code")):
        load_data(tmp_path)
