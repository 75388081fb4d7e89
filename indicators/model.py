"""What the indicators are computed from: counts read from Prometheus, no personal data.

Outcomes are the relay's closed set (``rpn_establishment_exchanges_total{outcome}``), grouped
into the classes an establishment reads: business OK, business refusal, technical error on the
AMC or network side, rejection by the relay (the request itself was wrong), and abandonment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from rpn.outcomes import Outcome, Who

SERVICES = ("IDB", "SIM", "CLC", "DEL")

OK = "ok"
REFUSED = "refused"
INVALID = "invalid"
REJECTED = "rejected"
TECHNICAL = "technical"
ABANDONED = "abandoned"
#: Outcome classes, in the order pages show them.
CLASSES = (OK, REFUSED, INVALID, REJECTED, TECHNICAL, ABANDONED)
CLASS_LABELS = {
    OK: "Réponses positives (code 00)",
    REFUSED: "Autres réponses de l'AMC",
    INVALID: "Demandes refusées comme invalides par l'AMC",
    REJECTED: "Demandes refusées par le relais",
    TECHNICAL: "Erreurs techniques (AMC ou relais)",
    ABANDONED: "Abandonnés par l'établissement",
}
#: Who must act on each class (docs/indicators.md).
CLASS_ACTOR = {
    OK: "personne",
    REFUSED: "personne (réponse métier normale)",
    INVALID: "l'établissement",
    REJECTED: "l'établissement",
    TECHNICAL: "l'AMC ou le relais",
    ABANDONED: "l'établissement (son logiciel a raccroché)",
}

#: Each relay outcome in French, for the details of a class.
OUTCOME_LABELS = {
    Outcome.OK.label: "réponse 00",
    Outcome.REFUSED.label: "autre réponse métier",
    Outcome.INVALID_REQUEST.label: "demande refusée comme invalide par l'AMC",
    Outcome.AMC_FAULT.label: "faute technique de l'AMC (ou réponse illisible)",
    Outcome.REJECTED.label: "refusée par le relais",
    Outcome.AMC_ERROR.label: "réponse de l'AMC coupée, ou erreur TLS",
    Outcome.AMC_UNAVAILABLE.label: "AMC injoignable",
    Outcome.BREAKER_OPEN.label: "AMC suspendue (disjoncteur ouvert)",
    Outcome.OVERLOADED.label: "AMC saturée",
    Outcome.TIMEOUT.label: "AMC trop lente (délai dépassé)",
    Outcome.ANNUAIRE_UNAVAILABLE.label: "annuaire des AMC indisponible",
    Outcome.CLIENT_GONE.label: "abandon par l'établissement",
    Outcome.CUT_BY_SHUTDOWN.label: "coupé par l'arrêt du relais",
    Outcome.RELAY_ERROR.label: "erreur du relais",
}

#: The relay's outcomes (rpn.outcomes, the one definition) grouped into the classes.
_OUTCOME_CLASS = {
    Outcome.OK.label: OK,
    Outcome.REFUSED.label: REFUSED,
    Outcome.INVALID_REQUEST.label: INVALID,
    Outcome.REJECTED.label: REJECTED,
    Outcome.CLIENT_GONE.label: ABANDONED,
} | {o.label: TECHNICAL for o in Outcome if o.who in (Who.AMC, Who.RELAY)}
#: Outcomes that are the AMC's technical failures (counted per AMC on the pages).
AMC_TECHNICAL = frozenset(o.label for o in Outcome if o.who is Who.AMC)


def outcome_class(outcome: str) -> str:
    """The class of a relay outcome; an outcome this version does not know counts as technical."""
    return _OUTCOME_CLASS.get(outcome, TECHNICAL)


@dataclass(frozen=True, slots=True)
class DailyCounts:
    """Exchanges per (FINESS, service, outcome) during one local day (today: so far)."""

    day: str  # ISO date, Europe/Paris
    counts: Mapping[tuple[str, str, str], float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Alert:
    """An anomaly alert of the Prometheus rules, as ``ALERTS`` and ``ALERTS_FOR_STATE`` say."""

    name: str
    anomaly: str  # the rule's ``anomaly`` label: error_rate, silent, certificate, invalid
    finess: str
    severity: str
    state: str  # "pending" (condition true, not yet for its whole duration) or "firing"
    since: float | None  # Unix time the condition became true


@dataclass(frozen=True, slots=True)
class Observations:
    """One reading of Prometheus at ``at`` (Unix time) over the last ``window_days``."""

    at: float
    window_days: int
    #: (finess, service, amc, outcome) -> exchanges in the window
    exchanges: Mapping[tuple[str, str, str, str], float] = field(default_factory=dict)
    daily: tuple[DailyCounts, ...] = ()
    #: (finess, outcome) -> exchanges in the last 7 days, and in the 7 days before
    this_week: Mapping[tuple[str, str], float] = field(default_factory=dict)
    previous_week: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: (finess, service, amc, code) -> exchanges answered with that code
    codes: Mapping[tuple[str, str, str, str], float] = field(default_factory=dict)
    #: amc -> (p50, p95) upstream latency in seconds over the window
    amc_latency: Mapping[str, tuple[float | None, float | None]] = field(default_factory=dict)
    #: (amc, outcome) -> exchanges with it in the window, every establishment included
    amc_exchanges: Mapping[tuple[str, str], float] = field(default_factory=dict)
    #: amc -> name in the relays' annuaire
    amc_names: Mapping[str, str] = field(default_factory=dict)
    #: amc -> breaker states now in some relay process ("closed", "open", "half_open")
    breakers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    certificate_expiry: Mapping[str, float] = field(default_factory=dict)
    last_success: Mapping[str, float] = field(default_factory=dict)
    alerts: tuple[Alert, ...] = ()
