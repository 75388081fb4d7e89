"""What the indicators are computed from: counts read from Prometheus, no personal data.

Outcomes are the relay's closed set (``rpn_establishment_exchanges_total{outcome}``), grouped
into the classes an establishment reads: business OK, business refusal, technical error on the
AMC or network side, rejection by the relay (the request itself was wrong), and abandonment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from indicators.lifecycle import Lifecycle

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

#: The relay's outcomes (the ``outcome`` label of its metrics, defined with who must act in
#: ``rpn.outcomes``; a unit test holds the two in step, since a service does not import
#: another): class, and what each says in French.
_OUTCOMES = {
    "ok": (OK, "réponse 00"),
    "refused": (REFUSED, "autre réponse métier"),
    "invalid_request": (INVALID, "demande refusée comme invalide par l'AMC"),
    "amc_fault": (TECHNICAL, "faute technique de l'AMC (ou réponse illisible)"),
    "rejected": (REJECTED, "refusée par le relais"),
    "amc_error": (TECHNICAL, "réponse de l'AMC coupée, ou erreur TLS"),
    "amc_unavailable": (TECHNICAL, "AMC injoignable"),
    "breaker_open": (TECHNICAL, "AMC suspendue (disjoncteur ouvert)"),
    "overloaded": (TECHNICAL, "AMC saturée"),
    "timeout": (TECHNICAL, "AMC trop lente (délai dépassé)"),
    "annuaire_unavailable": (TECHNICAL, "annuaire des AMC indisponible"),
    "client_gone": (ABANDONED, "abandon par l'établissement"),
    "cut_by_shutdown": (TECHNICAL, "coupé par l'arrêt du relais"),
    "relay_error": (TECHNICAL, "erreur du relais"),
}
OUTCOME_LABELS = {outcome: label for outcome, (_, label) in _OUTCOMES.items()}
#: Technical outcomes that are the AMC's failures (counted per AMC on the pages); the others
#: (annuaire, shutdown, relay error) are the relay's.
AMC_TECHNICAL = frozenset(
    {"amc_fault", "amc_error", "amc_unavailable", "breaker_open", "overloaded", "timeout"}
)


def outcome_class(outcome: str) -> str:
    """The class of a relay outcome; an outcome this version does not know counts as technical."""
    known = _OUTCOMES.get(outcome)
    return TECHNICAL if known is None else known[0]


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
    #: Every FINESS (site or legal entity) a relay's registration admits now
    registered: frozenset[str] = frozenset()
    #: finess -> its legal entity's state (rpn_establishment_lifecycle_since_timestamp_seconds)
    lifecycles: Mapping[str, Lifecycle] = field(default_factory=dict)
    #: The relays' lifecycle.watch_days (None: not exported)
    watch_days: int | None = None
