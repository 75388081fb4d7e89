"""Trends: daily success and error rates, this week against the previous one."""

from __future__ import annotations

import pytest

from indicators.model import DailyCounts
from indicators.trends import WeekComparison, daily_rates, week_comparison

A, B = "990000028", "990000044"


def test_daily_rates_count_what_must_be_fixed_as_errors_and_leave_empty_days_empty() -> None:
    days = (
        DailyCounts(
            "2026-05-27",
            {
                (A, "IDB", "ok"): 6.0,
                (A, "IDB", "refused"): 2.0,  # a normal business answer: not an error
                (A, "IDB", "invalid_request"): 1.0,
                (A, "CLC", "timeout"): 1.0,
                (B, "IDB", "rejected"): 5.0,
            },
        ),
        DailyCounts("2026-05-28", {(B, "IDB", "ok"): 1.0}),
    )
    first, second = daily_rates(days, A)
    assert first.by_service["IDB"] == 9 and first.by_service["CLC"] == 1
    assert first.rates.success_rate == pytest.approx(0.6)
    assert first.rates.error_rate == pytest.approx(0.2)
    assert second.total == 0 and second.rates.success_rate is None
    national = daily_rates(days)
    assert national[0].rates.total == 15 and national[1].rates.success_rate == 1.0


def test_this_week_against_the_previous_one() -> None:
    week = week_comparison(
        {(A, "ok"): 8.0, (A, "amc_fault"): 2.0, (B, "ok"): 5.0},
        {(A, "ok"): 9.0, (A, "amc_fault"): 1.0},
        A,
    )
    assert week.this_week.error_rate == pytest.approx(0.2)
    assert week.previous_week.error_rate == pytest.approx(0.1)
    assert WeekComparison.change(
        week.this_week.error_rate, week.previous_week.error_rate
    ) == pytest.approx(0.1)
    empty = week_comparison({}, {(A, "ok"): 1.0}, A)
    assert WeekComparison.change(empty.this_week.success_rate, 1.0) is None
