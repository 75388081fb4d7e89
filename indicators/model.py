"""What the indicators are computed from: counts read from Prometheus, no personal data.

Outcomes are the relay's closed set (``rpn_establishment_exchanges_total{outcome}``), grouped
into the classes an establishment reads: business OK, business refusal, technical error on the
AMC or network side, rejection by the relay (the request itself was wrong), and abandonment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SERVICES = ("IDB", "SIM", "CLC", "DEL")

OK = "ok"
REFUSED = "refused"
TECHNICAL = "technical"
REJECTED = "rejected"
ABANDONED = "abandoned"
#: Outcome classes, in the order pages show them.
CLASSES = (OK, REFUSED, TECHNICAL, REJECTED, ABANDONED)
CLASS_LABELS = {
    OK: "Business OK",
    REFUSED: "Business refusals",
    TECHNICAL: "Technical errors",
    REJECTED: "Rejected by the relay",
    ABANDONED: "Abandoned by the establishment",
}

_OUTCOME_CLASS = {
    "ok": OK,
    "refused": REFUSED,
    "rejected": REJECTED,
    "client_gone": ABANDONED,
    "amc_fault": TECHNICAL,
    "amc_error": TECHNICAL,
    "amc_unavailable": TECHNICAL,
    "breaker_open": TECHNICAL,
    "overloaded": TECHNICAL,
    "timeout": TECHNICAL,
    "annuaire_unavailable": TECHNICAL,
    "relay_error": TECHNICAL,
    "cut_by_shutdown": TECHNICAL,
}


def outcome_class(outcome: str) -> str:
    """The class of a relay outcome; an outcome this version does not know counts as technical."""
    return _OUTCOME_CLASS.get(outcome, TECHNICAL)


@dataclass(frozen=True, slots=True)
class DailyCounts:
    """Exchanges per (FINESS, service) during one UTC day (today: so far)."""

    day: str  # ISO date
    counts: Mapping[tuple[str, str], float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Observations:
    """One reading of Prometheus at ``at`` (Unix time) over the last ``window_days``."""

    at: float
    window_days: int
    #: (finess, service, outcome) -> exchanges in the window
    exchanges: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    daily: tuple[DailyCounts, ...] = ()
    #: (finess, code) -> exchanges answered with that business or relay error code
    codes: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: amc -> (p50, p95) upstream latency in seconds over the window
    amc_latency: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: amc -> exchanges forwarded to it in the window
    amc_exchanges: Mapping[str, float] = field(default_factory=dict)
    certificate_expiry: Mapping[str, float] = field(default_factory=dict)
    last_success: Mapping[str, float] = field(default_factory=dict)
