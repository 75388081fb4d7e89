"""How figures read in French: numbers, percentages, local dates and durations (pure).

Times are shown in Europe/Paris, the establishments' time; numbers with a comma as decimal
separator and a narrow no-break space between thousands, as French readers write them.
"""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
#: Narrow no-break space: thousands separator, and before % (French typography).
NNBSP = "\u202f"


def number(value: float, decimals: int = 0) -> str:
    """1234.5 -> '1 234,5' (narrow no-break spaces between thousands)."""
    text = f"{value:,.{decimals}f}"
    return text.replace(",", NNBSP).replace(".", ",")


def percent(ratio: float | None, decimals: int = 1) -> str:
    """0.125 -> '12,5 %'; None -> '—'."""
    if ratio is None:
        return "—"
    return f"{number(ratio * 100, decimals)}{NNBSP}%"


def local(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, PARIS)


def date_time(timestamp: float | None) -> str:
    """'03/12/2026 à 08:15' in Paris time; None -> '—'."""
    if timestamp is None:
        return "—"
    return local(timestamp).strftime("%d/%m/%Y à %H:%M")


def date(timestamp: float | None) -> str:
    """'03/12/2026' (the Paris day); None -> '—'."""
    if timestamp is None:
        return "—"
    return local(timestamp).strftime("%d/%m/%Y")


def utc_date(timestamp: float | None) -> str:
    """'01/12/2026': the UTC day a registration's ``since`` names (its start, UTC)."""
    if timestamp is None:
        return "—"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%d/%m/%Y")


def days(n: int) -> str:
    """'0 jour', '1 jour', '12 jours'."""
    return f"{number(n)} jour" if n <= 1 else f"{number(n)} jours"


def iso_local(timestamp: float | None) -> str | None:
    """ISO 8601 with the Paris offset (what JSON carries)."""
    if timestamp is None:
        return None
    return local(timestamp).isoformat(timespec="seconds")


def day_label(iso_day: str) -> str:
    """'2026-12-03' -> '03/12'."""
    return f"{iso_day[8:10]}/{iso_day[5:7]}"


def elapsed(seconds: float) -> str:
    """How long ago, in words a reader uses: 'il y a 5 min', 'il y a 3 h', 'il y a 2 jours'.

    Never '0,0 h': under a minute is 'à l'instant'."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return "à l'instant"
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"il y a {minutes} min"
    hours = int(minutes // 60)
    if hours < 48:
        return f"il y a {hours} h"
    days = hours // 24
    return f"il y a {number(days)} jours"


def days_left(days: float) -> str:
    """A certificate's remaining validity: 'expiré', 'moins d'un jour', '1 jour', '12 jours'."""
    if days < 0:
        return "expiré"
    if days < 1:
        return "moins d'un jour"
    whole = int(days)
    return "1 jour" if whole == 1 else f"{number(whole)} jours"
