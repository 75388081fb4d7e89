"""French formats: numbers, percentages, Paris time, durations (never "0.0 h ago")."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from indicators import french

NNBSP = "\u202f"


def test_numbers_and_percentages_are_written_the_french_way() -> None:
    assert french.number(1234567) == f"1{NNBSP}234{NNBSP}567"
    assert french.number(12.345, 1) == "12,3"
    assert french.percent(0.175) == f"17,5{NNBSP}%"
    assert french.percent(None) == "—"


def test_times_are_shown_in_paris_time_summer_and_winter() -> None:
    summer = datetime.datetime(2026, 7, 1, 6, 30, tzinfo=datetime.UTC).timestamp()
    winter = datetime.datetime(2026, 12, 3, 6, 30, tzinfo=datetime.UTC).timestamp()
    assert french.date_time(summer) == "01/07/2026 à 08:30"
    assert french.date_time(winter) == "03/12/2026 à 07:30"
    assert french.iso_local(winter) == "2026-12-03T07:30:00+01:00"
    assert french.local(winter).tzinfo == ZoneInfo("Europe/Paris")


def test_elapsed_time_reads_as_words_never_zero_hours() -> None:
    assert french.elapsed(5) == "à l'instant"
    assert french.elapsed(300) == "il y a 5 min"
    assert french.elapsed(3 * 3600 + 60) == "il y a 3 h"
    assert french.elapsed(5 * 86400) == "il y a 5 jours"
    assert french.days_left(-1) == "expiré"
    assert french.days_left(0.5) == "moins d'un jour"
    assert french.days_left(12.7) == "12 jours"
