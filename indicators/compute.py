"""Pure indicator computations: an establishment's figures, its peers, and the agency's view.

Peers are the establishments with at least one exchange in the window. Nothing here does I/O or
reads a clock: the reading time comes with the observations. Trends and the agency's tables are
in ``indicators.trends`` and ``indicators.agency``.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from indicators.model import (
    AMC_TECHNICAL,
    CLASSES,
    INVALID,
    OK,
    REFUSED,
    REJECTED,
    SERVICES,
    TECHNICAL,
    Observations,
    outcome_class,
)
from indicators.progress import ProgressReading
from indicators.trends import DayRates, WeekComparison, daily_rates, week_comparison
from roc.returncodes import CodeDescription, describe_code

#: Certificate deadlines (days): renew before the first, urgently before the second.
CERTIFICATE_WARNING_DAYS = 30
CERTIFICATE_CRITICAL_DAYS = 7


@dataclass(frozen=True, slots=True)
class Indicator:
    key: str
    label: str
    unit: str  # "count", "ratio"
    better: str  # "higher", "lower" or "neutral": how to read the position among peers
    #: Anchor of the glossary entry that defines the figure.
    glossary: str


INDICATORS = (
    Indicator("exchanges", "Échanges", "count", "neutral", "echanges"),
    Indicator("success_rate", "Taux de réponses positives (00)", "ratio", "higher", "positives"),
    Indicator("refusal_rate", "Taux d'autres réponses de l'AMC", "ratio", "neutral", "autres"),
    Indicator(
        "invalid_rate", "Taux de demandes refusées comme invalides", "ratio", "lower", "invalides"
    ),
    Indicator("rejection_rate", "Taux de refus par le relais", "ratio", "lower", "relais"),
    Indicator("technical_error_rate", "Taux d'erreurs techniques", "ratio", "lower", "techniques"),
    Indicator("idb_clc_ratio", "CLC par IDB", "ratio", "neutral", "clc-idb"),
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


BETTER = "better"
WORSE = "worse"
SAME = "same"


@dataclass(frozen=True, slots=True)
class Comparison:
    """One figure of an establishment beside the same figure across its peers.

    ``shown`` is False when there are fewer peers than the configured minimum: a position among
    two or three establishments says nothing and would name them. ``position`` (0-100) is the
    share of peers this establishment does better than, ties counted half (so equal scores sit
    in the middle, never at an end); ``verdict`` is better, worse or same than the median."""

    value: float | None
    national_median: float | None
    percentile: float | None
    peers: int
    shown: bool = False
    position: float | None = None
    verdict: str | None = None


def compare(
    indicator: Indicator,
    value: float | None,
    ordered_peers: Sequence[float],
    minimum_peers: int,
) -> Comparison:
    """*value* among *ordered_peers*, read in the indicator's direction."""
    middle = median(ordered_peers)
    rank = percentile_rank(value, ordered_peers) if value is not None else None
    shown = len(ordered_peers) >= minimum_peers and indicator.better != "neutral"
    if not shown or rank is None or value is None or middle is None:
        return Comparison(value, middle, rank, len(ordered_peers), shown)
    position = rank if indicator.better == "higher" else 100.0 - rank
    if math.isclose(value, middle, abs_tol=1e-9):
        verdict = SAME
    elif (value > middle) == (indicator.better == "higher"):
        verdict = BETTER
    else:
        verdict = WORSE
    return Comparison(value, middle, rank, len(ordered_peers), True, position, verdict)


@dataclass(frozen=True, slots=True)
class CodeRow:
    """A code an establishment received, for one service and AMC, described in French."""

    code: str
    service: str
    amc: str
    amc_name: str
    count: int
    description: CodeDescription


@dataclass(frozen=True, slots=True)
class AmcErrors:
    """The technical errors an establishment met with one AMC ("none": before routing)."""

    amc: str
    name: str
    exchanges: int
    #: outcome -> exchanges (amc_fault, amc_error, timeout, amc_unavailable...)
    errors: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.errors.values())

    @property
    def rate(self) -> float | None:
        return self.total / self.exchanges if self.exchanges else None


@dataclass(frozen=True, slots=True)
class Certificate:
    expiry: float | None
    days_left: float | None
    #: "ok", "warning" (< 30 days), "critical" (< 7 days), "expired" or "unknown"
    status: str


def certificate_status(expiry: float | None, at: float) -> Certificate:
    """The client certificate against the 30- and 7-day deadlines (not against peers)."""
    if expiry is None:
        return Certificate(None, None, "unknown")
    days = (expiry - at) / 86400
    if days < 0:
        status = "expired"
    elif days < CERTIFICATE_CRITICAL_DAYS:
        status = "critical"
    elif days < CERTIFICATE_WARNING_DAYS:
        status = "warning"
    else:
        status = "ok"
    return Certificate(expiry, days, status)


@dataclass(frozen=True, slots=True)
class EstablishmentReport:
    finess: str
    generated_at: float
    window_days: int
    #: False when nothing at all is known of this FINESS (no exchange, no certificate seen)
    known: bool
    #: service -> outcome class -> exchanges in the window
    counts: Mapping[str, Mapping[str, int]]
    #: per day: service -> exchanges (volumes), and the day's rates
    daily: tuple[DayRates, ...]
    week: WeekComparison
    codes: tuple[CodeRow, ...]
    amc_errors: tuple[AmcErrors, ...]
    #: technical errors on the relay's side (annuaire, relay failure, cut by a shutdown)
    relay_errors: Mapping[str, int]
    figures: Mapping[str, Comparison]
    certificate: Certificate
    last_success: float | None

    def total(self, outcome: str | None = None) -> int:
        """Exchanges in the window, all of them or those of one outcome class."""
        return sum(
            n
            for by_class in self.counts.values()
            for c, n in by_class.items()
            if outcome in (None, c)
        )


def count(value: float) -> int:
    return round(value) if math.isfinite(value) else 0


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _ordered_services(found: Sequence[str] | set[str]) -> tuple[str, ...]:
    return (*SERVICES, *sorted(set(found) - set(SERVICES)))


class Snapshot:
    """Every establishment's figures from one reading, with the peer distributions."""

    def __init__(
        self,
        observations: Observations,
        top_codes: int = 20,
        minimum_peers: int = 5,
        *,
        progress: Mapping[str, ProgressReading] | None = None,
        qualification_configured: bool = False,
        stuck_days: int = 7,
    ) -> None:
        self.observations = observations
        #: finess -> its qualification progress read from Mutuelle ANS, or why not
        self.progress: Mapping[str, ProgressReading] = dict(progress or {})
        self.qualification_configured = qualification_configured
        self.stuck_days = stuck_days
        self.generated_at = observations.at
        self.window_days = observations.window_days
        self.minimum_peers = minimum_peers
        self._top_codes = top_codes
        self.amc_names = dict(observations.amc_names)
        counts: dict[str, dict[str, dict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: dict.fromkeys(CLASSES, 0))
        )
        #: finess -> amc -> outcome -> exchanges
        self._by_amc: dict[str, dict[str, dict[str, int]]] = defaultdict(
            lambda: defaultdict(lambda: defaultdict(int))
        )
        for (finess, service, amc, outcome), value in observations.exchanges.items():
            counts[finess][service][outcome_class(outcome)] += count(value)
            self._by_amc[finess][amc][outcome] += count(value)
        self._counts = {f: {s: dict(c) for s, c in by.items()} for f, by in counts.items()}
        self._codes: dict[str, list[CodeRow]] = defaultdict(list)
        for (finess, service, amc, code), value in observations.codes.items():
            if count(value) > 0:
                self._codes[finess].append(
                    CodeRow(
                        code,
                        service,
                        amc,
                        self.amc_name(amc),
                        count(value),
                        describe_code(code),
                    )
                )
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

    def amc_name(self, amc: str) -> str:
        if amc in ("", "none"):
            return "avant routage (aucune AMC)"
        return self.amc_names.get(amc, "nom inconnu de l'annuaire")

    def distribution(self, key: str) -> list[float]:
        """The peers' values of indicator *key*, sorted."""
        return self._distributions[key]

    def known(self, finess: str) -> bool:
        """Whether the relays know this FINESS: registered now, or reported in the window
        (an exchange or a certificate)."""
        return (
            finess in self.observations.registered
            or finess in self.observations.lifecycles
            or finess in self._counts
            or finess in self.observations.certificate_expiry
        )

    def _figure_values(self, finess: str) -> dict[str, float | None]:
        by_service = self._counts.get(finess, {})
        total = sum(sum(c.values()) for c in by_service.values())

        def of_class(cls: str) -> int:
            return sum(c[cls] for c in by_service.values())

        def of_service(service: str) -> int:
            return sum(by_service.get(service, {}).values())

        return {
            "exchanges": float(total),
            "success_rate": _ratio(of_class(OK), total),
            "refusal_rate": _ratio(of_class(REFUSED), total),
            "invalid_rate": _ratio(of_class(INVALID), total),
            "rejection_rate": _ratio(of_class(REJECTED), total),
            "technical_error_rate": _ratio(of_class(TECHNICAL), total),
            "idb_clc_ratio": _ratio(of_service("CLC"), of_service("IDB")),
        }

    def _amc_errors(self, finess: str) -> tuple[tuple[AmcErrors, ...], dict[str, int]]:
        rows = []
        relay: dict[str, int] = defaultdict(int)
        for amc, outcomes in self._by_amc.get(finess, {}).items():
            errors = {o: n for o, n in outcomes.items() if o in AMC_TECHNICAL and n}
            for outcome, n in outcomes.items():
                if n and outcome_class(outcome) == TECHNICAL and outcome not in AMC_TECHNICAL:
                    relay[outcome] += n
            if errors:
                rows.append(AmcErrors(amc, self.amc_name(amc), sum(outcomes.values()), errors))
        rows.sort(key=lambda r: (-r.total, r.amc))
        return tuple(rows), dict(relay)

    def report(self, finess: str) -> EstablishmentReport:
        """*finess*'s page; an establishment without traffic gets zeros and no comparison."""
        values = self._values.get(finess) or self._figure_values(finess)
        figures = {
            i.key: compare(i, values[i.key], self._distributions[i.key], self.minimum_peers)
            for i in INDICATORS
        }
        by_service = self._counts.get(finess, {})
        counts = {
            s: dict(by_service.get(s, dict.fromkeys(CLASSES, 0)))
            for s in _ordered_services(set(by_service))
        }
        codes = sorted(
            self._codes.get(finess, ()), key=lambda r: (-r.count, r.code, r.service, r.amc)
        )
        amc_errors, relay_errors = self._amc_errors(finess)
        return EstablishmentReport(
            finess=finess,
            generated_at=self.generated_at,
            window_days=self.window_days,
            known=self.known(finess),
            counts=counts,
            daily=daily_rates(self.observations.daily, finess),
            week=week_comparison(
                self.observations.this_week, self.observations.previous_week, finess
            ),
            codes=tuple(codes[: self._top_codes]),
            amc_errors=amc_errors,
            relay_errors=relay_errors,
            figures=figures,
            certificate=certificate_status(
                self.observations.certificate_expiry.get(finess), self.generated_at
            ),
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
