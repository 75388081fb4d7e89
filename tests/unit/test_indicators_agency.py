"""The agency's follow-up: anomaly rows from the alerts, AMC health, national totals."""

from __future__ import annotations

from indicators.agency import amc_health, anomalies, national
from indicators.compute import Snapshot
from indicators.model import Alert, DailyCounts, Observations

A, B = "990000028", "990000044"
ALPHA, GAMMA = "990000101", "990000303"
NOW = 1_780_000_000.0


def test_one_anomaly_row_per_establishment_and_rule_most_severe_confirmed_first() -> None:
    rows = anomalies(
        (
            Alert("RpnClientCertificateExpiringSoon", "certificate", A, "warning", "firing", 10.0),
            Alert("RpnClientCertificateExpiringSoon", "certificate", A, "critical", "firing", 50.0),
            Alert(
                "RpnEstablishmentInvalidRequestsRising",
                "invalid_requests",
                B,
                "warning",
                "pending",
                5.0,
            ),
            Alert("RpnAmcBreakerOpen", "", "", "warning", "firing", 1.0),  # not an anomaly
        )
    )
    assert [(r.finess, r.kind, r.severity, r.state) for r in rows] == [
        (A, "certificate", "critical", "firing"),
        (B, "invalid_requests", "warning", "pending"),
    ]
    assert rows[1].label == "Hausse soudaine des demandes refusées comme invalides"
    assert rows[0].since == 50.0


def snapshot() -> Snapshot:
    return Snapshot(
        Observations(
            at=NOW,
            window_days=30,
            exchanges={
                (A, "IDB", ALPHA, "ok"): 8.0,
                (A, "IDB", ALPHA, "invalid_request"): 2.0,
                (B, "IDB", GAMMA, "timeout"): 1.0,
            },
            daily=(DailyCounts("2026-05-28", {(A, "IDB", "ok"): 8.0}),),
            amc_exchanges={
                (ALPHA, "ok"): 90.0,
                (ALPHA, "amc_fault"): 10.0,
                (ALPHA, "invalid_request"): 5.0,  # the establishment's, not the AMC's
                (GAMMA, "timeout"): 1.0,
                ("none", "rejected"): 4.0,
            },
            amc_names={ALPHA: "Mutuelle Alpha", GAMMA: "Mutuelle Gamma"},
            breakers={GAMMA: frozenset({"open", "closed"}), ALPHA: frozenset({"closed"})},
            amc_latency={ALPHA: (0.1, 0.4)},
        )
    )


def test_an_amc_whose_breaker_is_open_somewhere_comes_first_with_its_name() -> None:
    rows = amc_health(snapshot())
    assert [(h.amc, h.name, h.breaker) for h in rows] == [
        (GAMMA, "Mutuelle Gamma", "open"),
        (ALPHA, "Mutuelle Alpha", "closed"),
    ]
    alpha = rows[1]
    assert (alpha.exchanges, alpha.technical_errors) == (105, 10)
    assert (alpha.p50, alpha.p95) == (0.1, 0.4)


def test_national_totals_add_every_establishment() -> None:
    nation = national(snapshot())
    assert nation.total == 11 and nation.by_class["invalid"] == 2
    assert nation.establishments == 2
    assert nation.daily[0].rates.success_rate == 1.0
