"""Trends (pure): daily volumes and rates over the window, this week against the previous one.

The success rate is business OK (code 00) over exchanges; the error rate is what someone must
fix (requests invalid for the AMC or refused by the relay, technical errors) over exchanges.
Other business answers (01, 02...) and abandoned exchanges are neither.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from indicators.model import (
    CLASSES,
    INVALID,
    OK,
    REJECTED,
    SERVICES,
    TECHNICAL,
    DailyCounts,
    outcome_class,
)

#: Classes counted in the error rate.
ERROR_CLASSES = (INVALID, REJECTED, TECHNICAL)


def _count(value: float) -> int:
    return round(value) if math.isfinite(value) else 0


@dataclass(frozen=True, slots=True)
class Rates:
    """Exchanges by outcome class, and the two rates read from them."""

    by_class: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_class.values())

    @property
    def success_rate(self) -> float | None:
        return self.by_class.get(OK, 0) / self.total if self.total else None

    @property
    def error_rate(self) -> float | None:
        errors = sum(self.by_class.get(c, 0) for c in ERROR_CLASSES)
        return errors / self.total if self.total else None


def rates_of(by_outcome: Mapping[str, float]) -> Rates:
    """Relay outcomes -> Rates by class."""
    found = dict.fromkeys(CLASSES, 0)
    for outcome, value in by_outcome.items():
        found[outcome_class(outcome)] += _count(value)
    return Rates(found)


@dataclass(frozen=True, slots=True)
class DayRates:
    day: str
    by_service: Mapping[str, int]
    rates: Rates

    @property
    def total(self) -> int:
        return sum(self.by_service.values())


def daily_rates(days: Sequence[DailyCounts], finess: str | None = None) -> tuple[DayRates, ...]:
    """Per day: volumes per service and rates, of one establishment or (None) of all."""
    result = []
    for day in days:
        services: dict[str, int] = defaultdict(int)
        outcomes: dict[str, float] = defaultdict(float)
        for (f, service, outcome), value in day.counts.items():
            if finess is None or f == finess:
                services[service] += _count(value)
                outcomes[outcome] += value
        ordered = (*SERVICES, *sorted(set(services) - set(SERVICES)))
        result.append(
            DayRates(day.day, {s: services.get(s, 0) for s in ordered}, rates_of(outcomes))
        )
    return tuple(result)


@dataclass(frozen=True, slots=True)
class WeekComparison:
    """The last 7 days against the 7 days before them."""

    this_week: Rates
    previous_week: Rates

    @staticmethod
    def change(now: float | None, before: float | None) -> float | None:
        """Difference in rate points (0.05 = +5 points), None when a week has no exchange."""
        if now is None or before is None:
            return None
        return now - before


def week_comparison(
    this_week: Mapping[tuple[str, str], float],
    previous_week: Mapping[tuple[str, str], float],
    finess: str | None = None,
) -> WeekComparison:
    def pick(counts: Mapping[tuple[str, str], float]) -> Rates:
        outcomes: dict[str, float] = defaultdict(float)
        for (f, outcome), value in counts.items():
            if finess is None or f == finess:
                outcomes[outcome] += value
        return rates_of(outcomes)

    return WeekComparison(pick(this_week), pick(previous_week))
