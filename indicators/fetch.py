"""One reading of Prometheus: the queries of ``indicators.queries`` turned into Observations."""

from __future__ import annotations

import datetime

from twisted.internet.defer import Deferred, FirstError, gatherResults

from indicators import queries
from indicators.model import DailyCounts, Observations
from indicators.prometheus import IPrometheus, Sample, finite

DAY = 86400


def day_windows(at: float, days: int) -> list[tuple[str, float, float]]:
    """(ISO date, evaluation time, window seconds) of the last *days* UTC days, oldest first;
    today's window ends at *at*."""
    now = datetime.datetime.fromtimestamp(at, datetime.UTC)
    midnight = datetime.datetime.combine(now.date(), datetime.time(), datetime.UTC).timestamp()
    windows = []
    for back in range(days - 1, -1, -1):
        start = midnight - back * DAY
        end = min(start + DAY, at)
        day = datetime.datetime.fromtimestamp(start, datetime.UTC).date().isoformat()
        windows.append((day, end, max(1.0, end - start)))
    return windows


def _by(samples: list[Sample], *labels: str) -> dict[tuple[str, ...], float]:
    found: dict[tuple[str, ...], float] = {}
    for sample in samples:
        key = tuple(sample.labels.get(label, "") for label in labels)
        found[key] = found.get(key, 0.0) + sample.value
    return found


def _by_one(samples: list[Sample], label: str) -> dict[str, float]:
    return {key[0]: value for key, value in _by(samples, label).items()}


async def _observe(
    prometheus: IPrometheus, at: float, window_days: int, daily_days: int
) -> Observations:
    window = queries.duration(window_days * DAY)
    days = day_windows(at, daily_days)
    asked: list[Deferred[list[Sample]]] = [
        prometheus.query(queries.exchanges(window), at),
        prometheus.query(queries.codes(window), at),
        prometheus.query(queries.amc_exchanges(window), at),
        prometheus.query(queries.amc_latency(0.5, window), at),
        prometheus.query(queries.amc_latency(0.95, window), at),
        prometheus.query(queries.certificate_expiry(window), at),
        prometheus.query(queries.last_success(window), at),
    ]
    asked += [
        prometheus.query(queries.daily_exchanges(queries.duration(seconds)), end)
        for _, end, seconds in days
    ]
    try:
        answers = await gatherResults(asked, consumeErrors=True)
    except FirstError as exc:
        exc.subFailure.raiseException()
    exchanges, codes, amc_exchanges, p50, p95, expiry, success, *daily = answers
    p50s, p95s = _by_one(p50, "amc"), _by_one(p95, "amc")
    return Observations(
        at=at,
        window_days=window_days,
        exchanges={
            (f, s, o): v for (f, s, o), v in _by(exchanges, "finess", "service", "outcome").items()
        },
        daily=tuple(
            DailyCounts(day, {(f, s): v for (f, s), v in _by(samples, "finess", "service").items()})
            for (day, _, _), samples in zip(days, daily, strict=True)
        ),
        codes={(f, c): v for (f, c), v in _by(codes, "finess", "code").items()},
        amc_latency={
            amc: (_finite_or_none(p50s.get(amc)), _finite_or_none(p95s.get(amc)))
            for amc in sorted(set(p50s) | set(p95s))
        },
        amc_exchanges=_by_one(amc_exchanges, "amc"),
        certificate_expiry=_by_one(expiry, "finess"),
        last_success=_by_one(success, "finess"),
    )


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None else finite(value)


def observe(
    prometheus: IPrometheus, at: float, window_days: int, daily_days: int
) -> Deferred[Observations]:
    """Read every figure at Unix time *at*; fails with the first query's failure."""
    return Deferred.fromCoroutine(_observe(prometheus, at, window_days, daily_days))
