"""Exchange statistics: the metrics an operator scrapes and the access log an auditor reads."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.logger import LogLevel, capturedLogs, formatEvent
from zope.interface import implementer
from zope.interface.verify import verifyObject

from piano.testing import StrictClock
from rpn.interfaces import IStatsSink
from rpn.metric_tables import exposition
from rpn.outcomes import OUTCOMES
from rpn.stats import (
    AccessLog,
    ExchangeRecord,
    PrometheusStats,
    StatsFanout,
)

ANSWERED = ExchangeRecord(
    exchange_id="ex-1",
    finess="990000028",
    amc="990000101",
    service="IDB",
    version="V1",
    outcome="answered",
    status=200,
    upstream_seconds=0.3,
    total_seconds=0.35,
    bytes_in=1200,
    bytes_out=800,
)
REFUSED_EARLY = ExchangeRecord(code="RPN-413-TAILLE", status=413, bytes_out=500)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.mark.parametrize(
    "sink",
    [
        lambda: PrometheusStats(CollectorRegistry(), StrictClock()),
        lambda: AccessLog(io.StringIO()),
        lambda: StatsFanout(),
    ],
    ids=["prometheus", "access-log", "fanout"],
)
def test_every_sink_is_a_stats_sink(sink: object) -> None:
    assert verifyObject(IStatsSink, sink())  # type: ignore[operator]


# PrometheusStats


def test_an_answered_exchange_is_counted_by_service_amc_and_outcome(
    registry: CollectorRegistry,
) -> None:
    stats = PrometheusStats(registry, StrictClock())
    stats.record(ANSWERED)
    stats.record(ANSWERED)
    labels = {"service": "IDB", "amc": "990000101", "outcome": "answered"}
    assert sample(registry, "rpn_exchanges_total", **labels) == 2
    assert sample(registry, "rpn_relay_errors_total", code="") == 0


def test_a_relay_fault_is_counted_by_its_code(registry: CollectorRegistry) -> None:
    stats = PrometheusStats(registry, StrictClock())
    stats.record(REFUSED_EARLY)
    assert sample(registry, "rpn_relay_errors_total", code="RPN-413-TAILLE") == 1
    labels = {"service": "unknown", "amc": "none", "outcome": "rejected"}
    assert sample(registry, "rpn_exchanges_total", **labels) == 1


def test_exchange_durations_land_in_the_histogram_buckets(registry: CollectorRegistry) -> None:
    stats = PrometheusStats(registry, StrictClock())
    stats.record(ANSWERED)
    name = "rpn_exchange_duration_seconds"
    assert sample(registry, f"{name}_count", service="IDB") == 1
    assert sample(registry, f"{name}_sum", service="IDB") == pytest.approx(0.35)
    assert sample(registry, f"{name}_bucket", service="IDB", le="0.25") == 0
    assert sample(registry, f"{name}_bucket", service="IDB", le="0.5") == 1


def test_upstream_time_is_observed_only_for_exchanges_that_reached_an_amc(
    registry: CollectorRegistry,
) -> None:
    stats = PrometheusStats(registry, StrictClock())
    stats.record(ANSWERED)
    stats.record(dataclasses.replace(ANSWERED, upstream_seconds=None, outcome="breaker_open"))
    name = "rpn_upstream_duration_seconds"
    assert sample(registry, f"{name}_count", amc="990000101") == 1
    assert sample(registry, f"{name}_sum", amc="990000101") == pytest.approx(0.3)


def test_body_bytes_are_counted_by_direction(registry: CollectorRegistry) -> None:
    stats = PrometheusStats(registry, StrictClock())
    stats.record(ANSWERED)
    stats.record(REFUSED_EARLY)
    assert sample(registry, "rpn_exchange_bytes_total", direction="request") == 1200
    assert sample(registry, "rpn_exchange_bytes_total", direction="response") == 1300


def test_metric_help_texts_are_written(registry: CollectorRegistry) -> None:
    PrometheusStats(registry, StrictClock())
    families = list(registry.collect())
    assert {f.name for f in families} >= {
        "rpn_exchanges",
        "rpn_relay_errors",
        "rpn_exchange_duration_seconds",
        "rpn_upstream_duration_seconds",
        "rpn_exchange_bytes",
    }
    assert all(len(family.documentation) > 20 for family in families)


def test_a_record_starts_with_a_documented_outcome() -> None:
    assert ExchangeRecord().outcome in OUTCOMES


# AccessLog


def test_the_access_log_writes_one_json_line_per_exchange_with_the_record_fields() -> None:
    stream = io.StringIO()
    log = AccessLog(stream)
    log.record(ANSWERED)
    log.record(REFUSED_EARLY)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    internal = {"registered", "certificate_expiry", "amc_name"}  # for metrics and faults only
    expected = {k: v for k, v in dataclasses.asdict(ANSWERED).items() if k not in internal}
    assert first == expected
    assert set(second) == {f.name for f in dataclasses.fields(ExchangeRecord)} - internal
    assert second["code"] == "RPN-413-TAILLE"


def test_the_access_log_holds_identifiers_never_message_content() -> None:
    stream = io.StringIO()
    AccessLog(stream).record(ANSWERED)
    entry = json.loads(stream.getvalue())
    assert set(entry) == {
        "exchange_id",
        "finess",
        "amc",
        "service",
        "version",
        "outcome",
        "code",
        "business_code",
        "amc_code",
        "status",
        "upstream_seconds",
        "total_seconds",
        "bytes_in",
        "bytes_out",
    }


def test_the_access_log_file_is_appended_to_and_created_with_its_folder(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "access.log"
    first = AccessLog.to_file(path)
    first.record(ANSWERED)
    first.close()
    second = AccessLog.to_file(path)
    second.record(REFUSED_EARLY)
    second.close()
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["exchange_id"] for e in entries] == ["ex-1", ""]


def test_with_a_clock_the_lines_of_one_reactor_turn_are_written_together_after_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "access.log"
    clock = StrictClock()
    log = AccessLog.to_file(path, clock)
    log.record(ANSWERED)
    log.record(REFUSED_EARLY)
    assert path.read_text() == ""  # still in the reactor turn that recorded them
    clock.advance(0)
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["exchange_id"] for e in entries] == ["ex-1", ""]
    log.record(ANSWERED)
    clock.advance(0)
    assert len(path.read_text().splitlines()) == 3
    log.close()


def test_a_batched_access_log_loses_nothing_on_close_or_reopen(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    clock = StrictClock()
    log = AccessLog.to_file(path, clock)
    log.record(ANSWERED)
    rotated = tmp_path / "access.log.1"
    path.rename(rotated)
    log.reopen()  # what was pending goes to the file it was recorded for
    assert len(rotated.read_text().splitlines()) == 1
    log.record(REFUSED_EARLY)
    log.close()
    assert [json.loads(line)["exchange_id"] for line in path.read_text().splitlines()] == [""]
    assert clock.getDelayedCalls() == []
    with capturedLogs() as events:
        log.record(ANSWERED)  # after the close: the service log gets it
    assert [e["exchange_id"] for e in events] == ["ex-1"]


def test_a_failed_batched_write_is_logged_and_the_next_lines_are_still_written() -> None:
    class Flaky(io.StringIO):
        fail = True

        def write(self, text: str) -> int:
            if self.fail:
                self.fail = False
                raise OSError(28, "No space left on device")
            return super().write(text)

    stream = Flaky()
    clock = StrictClock()
    log = AccessLog(stream, clock=clock)
    log.record(ANSWERED)
    with capturedLogs() as events:
        clock.advance(0)
    [event] = [e for e in events if "log_failure" in e]
    assert event["log_failure"].check(OSError)
    log.record(REFUSED_EARLY)
    clock.advance(0)
    assert [json.loads(line)["exchange_id"] for line in stream.getvalue().splitlines()] == [""]


def test_without_a_file_each_exchange_is_an_event_in_the_service_log() -> None:
    with capturedLogs() as events:
        AccessLog().record(ANSWERED)
    [event] = events
    assert event["log_level"] is LogLevel.info
    assert event["exchange_id"] == "ex-1"
    text = formatEvent(event)
    assert "finess=990000028" in text
    assert "outcome=answered" in text
    assert "elapsed=0.3500" in text


# StatsFanout


@implementer(IStatsSink)
class Collecting:
    def __init__(self) -> None:
        self.records: list[ExchangeRecord] = []

    def record(self, exchange: ExchangeRecord) -> None:
        self.records.append(exchange)


@implementer(IStatsSink)
class Broken:
    def record(self, exchange: ExchangeRecord) -> None:
        raise OSError(28, "No space left on device")


def test_fanout_gives_each_record_to_every_sink() -> None:
    first, second = Collecting(), Collecting()
    StatsFanout(first, second).record(ANSWERED)
    assert first.records == [ANSWERED]
    assert second.records == [ANSWERED]


def test_a_failing_sink_does_not_lose_the_record_for_the_others_and_is_logged() -> None:
    before, after = Collecting(), Collecting()
    with capturedLogs() as events:
        StatsFanout(before, Broken(), after).record(ANSWERED)
    assert before.records == [ANSWERED]
    assert after.records == [ANSWERED]
    [event] = [e for e in events if "log_failure" in e]
    assert event["exchange_id"] == "ex-1"
    assert event["log_failure"].check(OSError)


def test_registered_establishments_get_their_own_counts_codes_and_certificate_expiry() -> None:
    registry = CollectorRegistry()
    clock = StrictClock()
    clock.advance(1_800_000_000)
    stats = PrometheusStats(registry, clock)
    base = {"finess": "990000028", "service": "IDB", "amc": "990000101", "registered": True}
    stats.record(
        ExchangeRecord(**base, outcome="ok", business_code="00", certificate_expiry=1_900_000_000.0)
    )
    stats.record(ExchangeRecord(**base, outcome="refused", business_code="02"))
    stats.record(ExchangeRecord(**base, outcome="timeout", code="RPN-504-AMC-DELAI"))
    stats.record(ExchangeRecord(**base, outcome="invalid_request", amc_code="MUT-400-DEMANDE"))
    early = {"finess": "990000028", "registered": True, "status": 413}
    stats.record(ExchangeRecord(**early, outcome="rejected", code="RPN-413-TAILLE"))

    assert [
        stats.by_establishment.get(("990000028", "IDB", "990000101", o))
        for o in ("ok", "refused", "timeout", "invalid_request")
    ] == [1.0, 1.0, 1.0, 1.0]
    assert stats.by_establishment.get(("990000028", "unknown", "none", "rejected")) == 1.0
    assert stats.codes.get(("990000028", "IDB", "990000101", "02")) == 1.0
    assert stats.codes.get(("990000028", "IDB", "990000101", "RPN-504-AMC-DELAI")) == 1.0
    assert stats.codes.get(("990000028", "IDB", "990000101", "MUT-400-DEMANDE")) == 1.0
    assert stats.codes.get(("990000028", "unknown", "none", "RPN-413-TAILLE")) == 1.0
    assert stats.last_success.get(("990000028",)) == 1_800_000_000
    assert stats.certificate_expiry.get(("990000028",)) == 1_900_000_000.0
    # What Prometheus reads: the registry and the tables, one valid text exposition.
    text = (generate_latest(registry) + exposition(stats.tables)).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for s in families["rpn_establishment_exchanges"].samples
    }
    assert (
        samples[
            (
                "rpn_establishment_exchanges_total",
                (
                    ("amc", "990000101"),
                    ("finess", "990000028"),
                    ("outcome", "refused"),
                    ("service", "IDB"),
                ),
            )
        ]
        == 1.0
    )


def test_an_unregistered_certificate_never_creates_an_establishment_label() -> None:
    registry = CollectorRegistry()
    stats = PrometheusStats(registry, StrictClock())
    stats.record(ExchangeRecord(finess="990000051", code="RPN-403-NON-INSCRIT", registered=False))
    text = (generate_latest(registry) + exposition(stats.tables)).decode()
    assert "990000051" not in text


def test_access_log_lines_stay_valid_json_whatever_the_identifiers_hold() -> None:
    stream = io.StringIO()
    odd = dataclasses.replace(
        ANSWERED, exchange_id='a"b\\c\n\x00é\u2028', upstream_seconds=None, total_seconds=1e-7
    )
    AccessLog(stream).record(odd)
    [line] = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["exchange_id"] == odd.exchange_id
    assert entry["upstream_seconds"] is None
    assert entry["total_seconds"] == 1e-7
    assert line.isascii()
