"""Pure indicator computations: counts by outcome class, rates, national median, percentile."""

from __future__ import annotations

import pytest

from indicators.compute import Snapshot, median, percentile_rank
from indicators.model import DailyCounts, Observations, outcome_class

A, B, C = "990000028", "990000044", "990000069"
NOW = 1_780_000_000.0


def observations(**overrides: object) -> Observations:
    values: dict[str, object] = {
        "at": NOW,
        "window_days": 30,
        "exchanges": {
            (A, "IDB", "ok"): 6.0,
            (A, "IDB", "refused"): 2.0,
            (A, "CLC", "ok"): 3.0,
            (A, "CLC", "timeout"): 1.0,
            (B, "IDB", "ok"): 1.0,
            (B, "IDB", "rejected"): 1.0,
            (B, "IDB", "client_gone"): 2.0,
            (C, "IDB", "ok"): 10.0,
        },
        "daily": (
            DailyCounts("2026-05-27", {(A, "IDB"): 5.0, (B, "IDB"): 4.0}),
            DailyCounts("2026-05-28", {(A, "IDB"): 3.0, (A, "CLC"): 4.0, (C, "IDB"): 10.0}),
        ),
        "codes": {
            (A, "00"): 9.0,
            (A, "02"): 1.0,
            (A, "01"): 1.0,
            (A, "RPN-504-AMC-DELAI"): 1.0,
            (B, "RPN-403-EMETTEUR"): 1.0,
        },
        "certificate_expiry": {A: NOW + 10 * 86400, B: NOW + 100 * 86400},
        "last_success": {A: NOW - 7200, B: NOW - 3600, C: NOW},
        "amc_latency": {"990000101": (0.2, 0.8), "990000202": (0.1, None)},
        "amc_exchanges": {"990000101": 5.0, "990000202": 9.0},
    }
    values.update(overrides)
    return Observations(**values)  # type: ignore[arg-type]


def test_median_of_odd_even_and_empty_samples() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5
    assert median([]) is None


def test_percentile_rank_counts_ties_half() -> None:
    peers = [1.0, 2.0, 2.0, 3.0]
    assert percentile_rank(0.5, peers) == 0.0
    assert percentile_rank(2.0, peers) == 50.0
    assert percentile_rank(3.0, peers) == 87.5
    assert percentile_rank(9.0, peers) == 100.0
    assert percentile_rank(1.0, []) is None


def test_relay_outcomes_fall_into_the_classes_an_establishment_reads() -> None:
    assert [outcome_class(o) for o in ("ok", "refused", "rejected", "client_gone")] == [
        "ok",
        "refused",
        "rejected",
        "abandoned",
    ]
    for technical in ("amc_fault", "timeout", "breaker_open", "overloaded", "a_future_outcome"):
        assert outcome_class(technical) == "technical"


def test_an_establishment_report_holds_exactly_its_own_counts() -> None:
    report = Snapshot(observations()).report(A)
    assert report.counts["IDB"]["ok"] == 6 and report.counts["IDB"]["refused"] == 2
    assert report.counts["CLC"] == {
        "ok": 3,
        "refused": 0,
        "technical": 1,
        "rejected": 0,
        "abandoned": 0,
    }
    assert report.counts["SIM"] == dict.fromkeys(report.counts["SIM"], 0)
    assert report.total() == 12 and report.total("technical") == 1


def test_rates_and_idb_to_clc_ratio() -> None:
    figures = Snapshot(observations()).report(A).figures
    assert figures["success_rate"].value == pytest.approx(9 / 12)
    assert figures["refusal_rate"].value == pytest.approx(2 / 12)
    assert figures["technical_error_rate"].value == pytest.approx(1 / 12)
    assert figures["rejection_rate"].value == 0.0
    assert figures["idb_clc_ratio"].value == pytest.approx(4 / 8)
    assert figures["certificate_days_left"].value == pytest.approx(10.0)
    assert figures["hours_since_last_success"].value == pytest.approx(2.0)


def test_figures_are_compared_with_the_national_median_and_peers() -> None:
    snapshot = Snapshot(observations())
    exchanges = snapshot.report(A).figures["exchanges"]
    # Peers' volumes: A 12, B 4, C 10.
    assert (exchanges.value, exchanges.national_median, exchanges.peers) == (12.0, 10.0, 3)
    assert exchanges.percentile == pytest.approx(100 * 2.5 / 3)
    success = snapshot.report(B).figures["success_rate"]
    assert success.value == pytest.approx(0.25)
    assert success.national_median == pytest.approx(0.75)
    assert success.percentile == pytest.approx(100 * 0.5 / 3)
    # C has no CLC: its ratio is 0, and only establishments with IDB have one.
    assert snapshot.report(C).figures["idb_clc_ratio"].value == 0.0
    assert snapshot.report(B).figures["idb_clc_ratio"].peers == 3


def test_an_establishment_without_traffic_gets_zeros_still_compared() -> None:
    report = Snapshot(observations()).report("990000077")
    assert report.total() == 0
    assert report.figures["exchanges"].value == 0.0
    assert report.figures["exchanges"].percentile == 0.0
    assert report.figures["success_rate"].value is None
    assert report.figures["success_rate"].national_median is not None
    assert [d.total for d in report.daily] == [0, 0]


def test_daily_volumes_per_service_keep_every_day_in_order() -> None:
    report = Snapshot(observations()).report(A)
    assert [(d.day, d.by_service["IDB"], d.by_service["CLC"]) for d in report.daily] == [
        ("2026-05-27", 5, 0),
        ("2026-05-28", 3, 4),
    ]


def test_top_codes_leave_out_the_success_code_and_are_most_frequent_first() -> None:
    snapshot = Snapshot(
        observations(
            codes={
                (A, "00"): 9.0,
                (A, "02"): 4.0,
                (A, "01"): 1.0,
                (A, "05"): 1.0,
                (A, "RPN-504-AMC-DELAI"): 2.0,
            }
        ),
        top_codes=3,
    )
    assert snapshot.report(A).top_codes == (("02", 4), ("RPN-504-AMC-DELAI", 2), ("01", 1))


def test_agency_lists_peers_worst_success_rate_first() -> None:
    assert [r.finess for r in Snapshot(observations()).reports()] == [B, A, C]


def test_amc_latency_busiest_first_with_the_median_across_amcs() -> None:
    snapshot = Snapshot(observations())
    assert [(a.amc, a.exchanges, a.p95) for a in snapshot.amc_latency] == [
        ("990000202", 9, None),
        ("990000101", 5, 0.8),
    ]
    assert snapshot.amc_latency_median == (pytest.approx(0.15), 0.8)


def test_counts_read_as_floats_are_rounded_and_nan_is_zero() -> None:
    snapshot = Snapshot(
        observations(exchanges={(A, "IDB", "ok"): 2.9999999, (A, "IDB", "refused"): float("nan")})
    )
    assert snapshot.report(A).total() == 3
