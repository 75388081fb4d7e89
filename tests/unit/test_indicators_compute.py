"""Pure indicator computations: classes, rates, codes, errors per AMC, peers, certificate."""

from __future__ import annotations

import pytest

from indicators.compute import (
    INDICATORS,
    Snapshot,
    certificate_status,
    compare,
    median,
    percentile_rank,
)
from indicators.model import (
    AMC_TECHNICAL,
    OUTCOME_LABELS,
    DailyCounts,
    Observations,
    outcome_class,
)
from rpn.outcomes import OUTCOMES, Outcome, Who

A, B, C = "990000028", "990000044", "990000069"
ALPHA, UNREACHABLE = "990000101", "990000404"
NOW = 1_780_000_000.0
SUCCESS = next(i for i in INDICATORS if i.key == "success_rate")
TECHNICAL = next(i for i in INDICATORS if i.key == "technical_error_rate")


def observations(**overrides: object) -> Observations:
    values: dict[str, object] = {
        "at": NOW,
        "window_days": 30,
        "exchanges": {
            (A, "IDB", ALPHA, "ok"): 6.0,
            (A, "IDB", ALPHA, "refused"): 2.0,
            (A, "IDB", ALPHA, "invalid_request"): 1.0,
            (A, "CLC", ALPHA, "ok"): 3.0,
            (A, "CLC", ALPHA, "amc_fault"): 1.0,
            (A, "IDB", UNREACHABLE, "amc_unavailable"): 2.0,
            (A, "IDB", "none", "rejected"): 1.0,
            (A, "IDB", "none", "annuaire_unavailable"): 1.0,
            (B, "IDB", ALPHA, "ok"): 1.0,
            (B, "IDB", "none", "rejected"): 1.0,
            (B, "IDB", ALPHA, "client_gone"): 2.0,
            (C, "IDB", ALPHA, "ok"): 10.0,
        },
        "daily": (
            DailyCounts("2026-05-27", {(A, "IDB", "ok"): 5.0, (B, "IDB", "ok"): 4.0}),
            DailyCounts("2026-05-28", {(A, "IDB", "ok"): 3.0, (A, "CLC", "amc_fault"): 4.0}),
        ),
        "codes": {
            (A, "IDB", ALPHA, "00"): 6.0,
            (A, "IDB", ALPHA, "02"): 2.0,
            (A, "IDB", ALPHA, "MUT-400-DEMANDE"): 1.0,
            (A, "CLC", ALPHA, "AMC-REPONSE-ILLISIBLE"): 1.0,
            (A, "IDB", UNREACHABLE, "RPN-503-AMC-INDISPONIBLE"): 2.0,
            (B, "IDB", "none", "RPN-403-EMETTEUR"): 1.0,
        },
        "amc_names": {ALPHA: "Mutuelle Alpha (fictive)"},
        "certificate_expiry": {A: NOW + 10 * 86400, B: NOW + 100 * 86400},
        "last_success": {A: NOW - 7200, B: NOW - 3600, C: NOW},
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
    assert percentile_rank(1.0, []) is None


def test_the_indicators_know_every_relay_outcome_and_blame_whom_the_relay_does() -> None:
    # rpn.outcomes is the definition; the indicators service does not import the relay.
    assert set(OUTCOME_LABELS) == set(OUTCOMES)
    for outcome in Outcome:
        cls = outcome_class(outcome.label)
        if outcome.who in (Who.AMC, Who.RELAY):
            assert cls == "technical", outcome
            assert (outcome.label in AMC_TECHNICAL) == (outcome.who is Who.AMC), outcome
        elif outcome.who is Who.ESTABLISHMENT:
            assert cls in ("invalid", "rejected"), outcome
        else:
            assert cls in ("ok", "refused", "abandoned"), outcome


def test_every_relay_outcome_falls_in_the_class_of_who_must_act() -> None:
    classes = {o: outcome_class(o) for o in OUTCOMES}
    assert classes["ok"] == "ok" and classes["refused"] == "refused"
    # The establishment's to fix: its request invalid for the AMC, or refused by the relay.
    assert classes["invalid_request"] == "invalid" and classes["rejected"] == "rejected"
    assert classes["client_gone"] == "abandoned"
    for technical in ("amc_fault", "amc_error", "timeout", "breaker_open", "cut_by_shutdown"):
        assert classes[technical] == "technical"
    assert outcome_class("a_future_outcome") == "technical"


def test_an_establishment_report_holds_exactly_its_own_counts() -> None:
    report = Snapshot(observations()).report(A)
    assert report.counts["IDB"] == {
        "ok": 6,
        "refused": 2,
        "invalid": 1,
        "rejected": 1,
        "technical": 3,
        "abandoned": 0,
    }
    assert report.counts["SIM"] == dict.fromkeys(report.counts["SIM"], 0)
    assert report.total() == 17 and report.total("technical") == 4


def test_rates_split_what_the_establishment_must_fix_from_technical_errors() -> None:
    figures = Snapshot(observations()).report(A).figures
    assert figures["success_rate"].value == pytest.approx(9 / 17)
    assert figures["refusal_rate"].value == pytest.approx(2 / 17)
    assert figures["invalid_rate"].value == pytest.approx(1 / 17)
    assert figures["rejection_rate"].value == pytest.approx(1 / 17)
    assert figures["technical_error_rate"].value == pytest.approx(4 / 17)
    assert figures["idb_clc_ratio"].value == pytest.approx(4 / 13)


def test_codes_are_described_in_french_with_service_amc_and_nature() -> None:
    codes = {(r.code, r.service, r.amc): r for r in Snapshot(observations()).report(A).codes}
    closed = codes[("02", "IDB", ALPHA)]
    assert closed.description.kind == "normal" and "Droits fermés" in closed.description.label
    assert closed.amc_name == "Mutuelle Alpha (fictive)"
    invalid = codes[("MUT-400-DEMANDE", "IDB", ALPHA)].description
    assert (invalid.kind, invalid.who) == ("error", "établissement")
    garbled = codes[("AMC-REPONSE-ILLISIBLE", "CLC", ALPHA)].description
    assert (garbled.kind, garbled.who) == ("error", "AMC")
    unreachable = codes[("RPN-503-AMC-INDISPONIBLE", "IDB", UNREACHABLE)]
    assert unreachable.amc_name == "nom inconnu de l'annuaire"
    assert [r.count for r in Snapshot(observations()).report(A).codes][:2] == [6, 2]


def test_technical_errors_are_tied_to_their_amc_with_its_name() -> None:
    report = Snapshot(observations()).report(A)
    rows = [(a.amc, a.name, a.exchanges, dict(a.errors)) for a in report.amc_errors]
    assert rows == [
        (UNREACHABLE, "nom inconnu de l'annuaire", 2, {"amc_unavailable": 2}),
        (ALPHA, "Mutuelle Alpha (fictive)", 13, {"amc_fault": 1}),
    ]
    assert report.relay_errors == {"annuaire_unavailable": 1}


def test_no_position_among_too_few_peers() -> None:
    figures = Snapshot(observations(), minimum_peers=5).report(A).figures
    assert not figures["success_rate"].shown and figures["success_rate"].position is None
    assert Snapshot(observations(), minimum_peers=3).report(A).figures["success_rate"].shown


def test_position_reads_in_the_figures_direction_and_equal_scores_sit_in_the_middle() -> None:
    peers = [0.1, 0.2, 0.3, 0.4, 0.5]
    best = compare(SUCCESS, 0.5, peers, 5)
    assert (best.position, best.verdict) == (90.0, "better")
    worst_errors = compare(TECHNICAL, 0.5, peers, 5)
    assert (worst_errors.position, worst_errors.verdict) == (10.0, "worse")
    equal = compare(SUCCESS, 0.9, [0.9] * 6, 5)
    assert (equal.position, equal.verdict) == (50.0, "same")


def test_certificate_is_read_against_30_and_7_days() -> None:
    assert certificate_status(NOW + 40 * 86400, NOW).status == "ok"
    assert certificate_status(NOW + 20 * 86400, NOW).status == "warning"
    assert certificate_status(NOW + 3 * 86400, NOW).status == "critical"
    assert certificate_status(NOW - 1, NOW).status == "expired"
    assert certificate_status(None, NOW).status == "unknown"
    assert Snapshot(observations()).report(A).certificate.days_left == pytest.approx(10.0)


def test_a_finess_never_seen_is_unknown_and_one_without_traffic_in_the_window_known() -> None:
    snapshot = Snapshot(observations(certificate_expiry={"990000077": NOW + 86400}))
    assert not snapshot.report("990000099").known
    quiet = snapshot.report("990000077")
    assert quiet.known and quiet.total() == 0
    assert quiet.figures["success_rate"].value is None


def test_a_registered_finess_that_never_sent_is_known_with_an_empty_report() -> None:
    snapshot = Snapshot(observations(registered=frozenset({"990000085"})))
    registered = snapshot.report("990000085")
    assert registered.known and registered.total() == 0
    assert not snapshot.report("990000093").known
    assert "990000085" not in [r.finess for r in snapshot.reports()]  # not a peer without traffic


def test_agency_lists_peers_worst_success_rate_first() -> None:
    assert [r.finess for r in Snapshot(observations()).reports()] == [B, A, C]


def test_counts_read_as_floats_are_rounded_and_nan_is_zero() -> None:
    snapshot = Snapshot(
        observations(
            exchanges={
                (A, "IDB", ALPHA, "ok"): 2.9999999,
                (A, "IDB", ALPHA, "refused"): float("nan"),
            }
        )
    )
    assert snapshot.report(A).total() == 3
