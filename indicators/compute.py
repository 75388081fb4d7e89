"""Pure indicator computations: an establishment's figures, the national median, its percentile.

Peers are the establishments with at least one exchange in the window. Nothing here does I/O or
reads a clock: the reading time comes with the observations.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from indicators.model import (
    CLASSES,
    OK,
    REFUSED,
    REJECTED,
    SERVICES,
    TECHNICAL,
    Observations,
    outcome_class,
)


@dataclass(frozen=True, slots=True)
class Indicator:
    key: str
    label: str
    unit: str  # "count", "ratio", "days", "hours"
    better: str  # "higher", "lower" or "neutral": how to read the percentile


INDICATORS = (
    Indicator("exchanges", "Exchanges", "count", "neutral"),
    Indicator("success_rate", "Success rate (business OK)", "ratio", "higher"),
    Indicator("refusal_rate", "Business refusal rate", "ratio", "lower"),
    Indicator("technical_error_rate", "Technical error rate", "ratio", "lower"),
    Indicator("rejection_rate", "Rejected by the relay", "ratio", "lower"),
    Indicator("idb_clc_ratio", "CLC per IDB", "ratio", "neutral"),
    Indicator("certificate_days_left", "Certificate expires in", "days", "higher"),
    Indicator("hours_since_last_success", "Last successful exchange", "hours", "lower"),
)
INDICATOR_KEYS = tuple(i.key for i in INDICATORS)


def median(values: Sequence[float]) -> float | None:
    """The median of *values*, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile_rank(value: float, ordered_peers: Sequence[float]) -> float | None:
    """Share (0-100) of *ordered_peers* (sorted) below *value*, ties counted half."""
    if not ordered_peers:
        return None
    below = bisect.bisect_left(ordered_peers, value)
    equal = bisect.bisect_right(ordered_peers, value) - below
    return 100.0 * (below + equal / 2) / len(ordered_peers)


@dataclass(frozen=True, slots=True)
class Comparison:
    """One figure of an establishment beside the same figure across its peers."""

    value: float | None
    national_median: float | None
    percentile: float | None
    peers: int


@dataclass(frozen=True, slots=True)
class DayVolume:
    day: str
    by_service: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_service.values())


@dataclass(frozen=True, slots=True)
class AmcLatency:
    amc: str
    exchanges: int
    p50: float | None
    p95: float | None


@dataclass(frozen=True, slots=True)
class EstablishmentReport:
    finess: str
    generated_at: float
    window_days: int
    #: service -> outcome class -> exchanges in the window
    counts: Mapping[str, Mapping[str, int]]
    daily: tuple[DayVolume, ...]
    top_codes: tuple[tuple[str, int], ...]
    figures: Mapping[str, Comparison]
    certificate_expiry: float | None
    last_success: float | None

    def total(self, outcome: str | None = None) -> int:
        """Exchanges in the window, all of them or those of one outcome class."""
        return sum(
            n
            for by_class in self.counts.values()
            for c, n in by_class.items()
            if outcome in (None, c)
        )


def _count(value: float) -> int:
    return round(value) if math.isfinite(value) else 0


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


class Snapshot:
    """Every establishment's figures from one reading, with the peer distributions."""

    def __init__(self, observations: Observations, top_codes: int = 5) -> None:
        self.observations = observations
        self.generated_at = observations.at
        self.window_days = observations.window_days
        self._top_codes = top_codes
        counts: dict[str, dict[str, dict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: dict.fromkeys(CLASSES, 0))
        )
        for (finess, service, outcome), value in observations.exchanges.items():
            counts[finess][service][outcome_class(outcome)] += _count(value)
        self._counts = {f: {s: dict(c) for s, c in by.items()} for f, by in counts.items()}
        self._codes: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for (finess, code), value in observations.codes.items():
            if code != "00" and _count(value) > 0:
                self._codes[finess].append((code, _count(value)))
        self._daily: dict[str, list[dict[str, int]]] = defaultdict(
            lambda: [{} for _ in observations.daily]
        )
        for i, day in enumerate(observations.daily):
            for (finess, service), value in day.counts.items():
                self._daily[finess][i][service] = _count(value)
        #: FINESS numbers with at least one exchange in the window, sorted.
        self.peers = sorted(
            f for f, by in self._counts.items() if any(sum(c.values()) for c in by.values())
        )
        self._values = {f: self._figure_values(f) for f in self.peers}
        self._distributions: dict[str, list[float]] = {
            key: sorted(
                v for v in (values[key] for values in self._values.values()) if v is not None
            )
            for key in INDICATOR_KEYS
        }
        self.national_median = {k: median(d) for k, d in self._distributions.items()}
        self.amc_latency = tuple(
            sorted(
                (
                    AmcLatency(amc, _count(observations.amc_exchanges.get(amc, 0.0)), p50, p95)
                    for amc, (p50, p95) in observations.amc_latency.items()
                ),
                key=lambda a: (-a.exchanges, a.amc),
            )
        )
        p50s = [a.p50 for a in self.amc_latency if a.p50 is not None]
        p95s = [a.p95 for a in self.amc_latency if a.p95 is not None]
        self.amc_latency_median = (median(p50s), median(p95s))

    def distribution(self, key: str) -> list[float]:
        """The peers' values of indicator *key*, sorted."""
        return self._distributions[key]

    def _figure_values(self, finess: str) -> dict[str, float | None]:
        by_service = self._counts.get(finess, {})
        total = sum(sum(c.values()) for c in by_service.values())

        def of_class(cls: str) -> int:
            return sum(c[cls] for c in by_service.values())

        def of_service(service: str) -> int:
            return sum(by_service.get(service, {}).values())

        at = self.generated_at
        expiry = self.observations.certificate_expiry.get(finess)
        success = self.observations.last_success.get(finess)
        return {
            "exchanges": float(total),
            "success_rate": _ratio(of_class(OK), total),
            "refusal_rate": _ratio(of_class(REFUSED), total),
            "technical_error_rate": _ratio(of_class(TECHNICAL), total),
            "rejection_rate": _ratio(of_class(REJECTED), total),
            "idb_clc_ratio": _ratio(of_service("CLC"), of_service("IDB")),
            "certificate_days_left": (expiry - at) / 86400 if expiry is not None else None,
            "hours_since_last_success": max(0.0, (at - success) / 3600)
            if success is not None
            else None,
        }

    def report(self, finess: str) -> EstablishmentReport:
        """*finess*'s page; an establishment without traffic gets zeros, still compared."""
        values = self._values.get(finess) or self._figure_values(finess)
        figures = {}
        for key in INDICATOR_KEYS:
            value = values[key]
            peers = self._distributions[key]
            figures[key] = Comparison(
                value,
                self.national_median[key],
                percentile_rank(value, peers) if value is not None else None,
                len(peers),
            )
        by_service = self._counts.get(finess, {})
        counts = {
            s: dict(by_service.get(s, dict.fromkeys(CLASSES, 0)))
            for s in (*SERVICES, *sorted(set(by_service) - set(SERVICES)))
        }
        days = self._daily.get(finess) or [{} for _ in self.observations.daily]
        daily = tuple(
            DayVolume(
                d.day, {s: by.get(s, 0) for s in (*SERVICES, *sorted(set(by) - set(SERVICES)))}
            )
            for d, by in zip(self.observations.daily, days, strict=True)
        )
        codes = sorted(self._codes.get(finess, ()), key=lambda item: (-item[1], item[0]))
        return EstablishmentReport(
            finess=finess,
            generated_at=self.generated_at,
            window_days=self.window_days,
            counts=counts,
            daily=daily,
            top_codes=tuple(codes[: self._top_codes]),
            figures=figures,
            certificate_expiry=self.observations.certificate_expiry.get(finess),
            last_success=self.observations.last_success.get(finess),
        )

    def reports(self) -> list[EstablishmentReport]:
        """Every peer's report, worst success rate first (the agency's reading order)."""
        reports = [self.report(f) for f in self.peers]
        return sorted(
            reports,
            key=lambda r: (
                r.figures["success_rate"].value
                if r.figures["success_rate"].value is not None
                else 2.0,
                r.finess,
            ),
        )
