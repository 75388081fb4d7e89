"""One reading of Prometheus: the queries of ``indicators.queries`` turned into Observations."""

from __future__ import annotations

import datetime
from zoneinfo import ZoneInfo

from twisted.internet.defer import Deferred, FirstError, gatherResults

from indicators import queries
from indicators.lifecycle import lifecycles_of
from indicators.model import Alert, DailyCounts, Observations
from indicators.prometheus import IPrometheus, Sample, finite

DAY = 86400
WEEK = 7 * DAY
#: Days, and times on the pages, are those of the establishments' users.
PARIS = ZoneInfo("Europe/Paris")


def day_windows(at: float, days: int) -> list[tuple[str, float, float]]:
    """(ISO date, evaluation time, window seconds) of the last *days* local (Europe/Paris)
    days, oldest first; today's window ends at *at*. A day is 23 or 25 hours at a DST change."""
    today = datetime.datetime.fromtimestamp(at, PARIS).date()
    windows = []
    for back in range(days - 1, -1, -1):
        day = today - datetime.timedelta(days=back)
        start = datetime.datetime.combine(day, datetime.time(), PARIS).timestamp()
        following = day + datetime.timedelta(days=1)
        end = min(datetime.datetime.combine(following, datetime.time(), PARIS).timestamp(), at)
        windows.append((day.isoformat(), end, max(1.0, end - start)))
    return windows


def _by(samples: list[Sample], *labels: str) -> dict[tuple[str, ...], float]:
    found: dict[tuple[str, ...], float] = {}
    for sample in samples:
        key = tuple(sample.labels.get(label, "") for label in labels)
        found[key] = found.get(key, 0.0) + sample.value
    return found


def _by_one(samples: list[Sample], label: str) -> dict[str, float]:
    return {key[0]: value for key, value in _by(samples, label).items()}


def _pairs(samples: list[Sample], a: str, b: str) -> dict[tuple[str, str], float]:
    return {(x, y): v for (x, y), v in _by(samples, a, b).items()}


def _quads(samples: list[Sample], *labels: str) -> dict[tuple[str, str, str, str], float]:
    return {(w, x, y, z): v for (w, x, y, z), v in _by(samples, *labels).items()}


def alerts_of(states: list[Sample], since: list[Sample]) -> tuple[Alert, ...]:
    """The anomaly alerts from ``ALERTS`` (state) and ``ALERTS_FOR_STATE`` (since when)."""

    def key(sample: Sample) -> tuple[str, str, str]:
        labels = sample.labels
        return labels.get("alertname", ""), labels.get("finess", ""), labels.get("severity", "")

    started = {key(s): s.value for s in since}
    found: dict[tuple[str, str, str], Alert] = {}
    for sample in states:
        labels = sample.labels
        k = key(sample)
        state = labels.get("alertstate", "")
        if k in found and found[k].state == "firing":
            continue  # one row per alert: firing wins over pending
        found[k] = Alert(
            name=k[0],
            anomaly=labels.get("anomaly", ""),
            finess=k[1],
            severity=k[2],
            state=state,
            since=started.get(k),
        )
    return tuple(sorted(found.values(), key=lambda a: (a.finess, a.anomaly, a.severity)))


async def _observe(
    prometheus: IPrometheus, at: float, window_days: int, daily_days: int
) -> Observations:
    window = queries.duration(window_days * DAY)
    week = queries.duration(WEEK)
    days = day_windows(at, daily_days)
    asked: list[Deferred[list[Sample]]] = [
        prometheus.query(queries.exchanges(window), at),
        prometheus.query(queries.codes(window), at),
        prometheus.query(queries.amc_exchanges(window), at),
        prometheus.query(queries.amc_latency(0.5, window), at),
        prometheus.query(queries.amc_latency(0.95, window), at),
        prometheus.query(queries.certificate_expiry(window), at),
        prometheus.query(queries.last_success(window), at),
        prometheus.query(queries.weekly_exchanges(week), at),
        prometheus.query(queries.weekly_exchanges(week), at - WEEK),
        prometheus.query(queries.amc_names(), at),
        prometheus.query(queries.breaker_states(), at),
        prometheus.query(queries.anomalies(), at),
        prometheus.query(queries.anomalies_since(), at),
        prometheus.query(queries.registered(), at),
        prometheus.query(queries.lifecycles(), at),
        prometheus.query(queries.watch_days(), at),
    ]
    asked += [
        prometheus.query(queries.daily_exchanges(queries.duration(seconds)), end)
        for _, end, seconds in days
    ]
    try:
        answers = await gatherResults(asked, consumeErrors=True)
    except FirstError as exc:
        exc.subFailure.raiseException()
    (exchanges, codes, amc_exchanges, p50, p95, expiry, success) = answers[:7]
    (this_week, previous_week, names, breakers, alerts, alerts_since, registered) = answers[7:14]
    lifecycles, watch_days = answers[14:16]
    daily = answers[16:]
    p50s, p95s = _by_one(p50, "amc"), _by_one(p95, "amc")
    states: dict[str, set[str]] = {}
    for sample in breakers:
        states.setdefault(sample.labels.get("amc", ""), set()).add(sample.labels.get("state", ""))
    return Observations(
        at=at,
        window_days=window_days,
        exchanges=_quads(exchanges, "finess", "service", "amc", "outcome"),
        daily=tuple(
            DailyCounts(
                day,
                {
                    (f, s, o): v
                    for (f, s, o), v in _by(samples, "finess", "service", "outcome").items()
                },
            )
            for (day, _, _), samples in zip(days, daily, strict=True)
        ),
        this_week=_pairs(this_week, "finess", "outcome"),
        previous_week=_pairs(previous_week, "finess", "outcome"),
        codes=_quads(codes, "finess", "service", "amc", "code"),
        amc_latency={
            amc: (_finite_or_none(p50s.get(amc)), _finite_or_none(p95s.get(amc)))
            for amc in sorted(set(p50s) | set(p95s))
        },
        amc_exchanges=_pairs(amc_exchanges, "amc", "outcome"),
        amc_names={s.labels["amc"]: s.labels["name"] for s in names if "amc" in s.labels},
        breakers={amc: frozenset(found) for amc, found in states.items()},
        certificate_expiry=_by_one(expiry, "finess"),
        last_success=_by_one(success, "finess"),
        alerts=alerts_of(alerts, alerts_since),
        registered=frozenset(s.labels["finess"] for s in registered if "finess" in s.labels),
        lifecycles=lifecycles_of(lifecycles),
        watch_days=_watch_days(watch_days),
    )


def _watch_days(samples: list[Sample]) -> int | None:
    values = [v for s in samples if (v := finite(s.value)) is not None and v > 0]
    return round(max(values)) if values else None


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None else finite(value)


def observe(
    prometheus: IPrometheus, at: float, window_days: int, daily_days: int
) -> Deferred[Observations]:
    """Read every figure at Unix time *at*; fails with the first query's failure."""
    return Deferred.fromCoroutine(_observe(prometheus, at, window_days, daily_days))
