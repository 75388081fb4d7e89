"""The agency's follow-up (pure): national totals and trends, AMC health, anomalies.

Anomalies are not computed here: they are the Prometheus alerts of
``etc/prometheus/rules/rpn-alerts.yml`` that carry an ``anomaly`` label (pending or firing),
so the alerts the agency receives and the list on its page are the same definitions, evaluated
continuously by Prometheus. This module only turns them into rows a supervisor reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from indicators.compute import Snapshot, count
from indicators.model import AMC_TECHNICAL, CLASSES, Alert, outcome_class
from indicators.trends import DayRates, WeekComparison, daily_rates, week_comparison

#: The anomaly rules, by the ``anomaly`` label of their alerts: French name and what to do.
ANOMALIES = {
    "error_rate": (
        "Taux d'erreurs au-dessus de son niveau habituel",
        "Regarder ses codes et ses erreurs techniques par AMC ; le contacter si les demandes "
        "sont en cause.",
    ),
    "silent": (
        "Établissement habituellement actif devenu silencieux",
        "Vérifier avec l'établissement son logiciel, son certificat et sa connexion au relais.",
    ),
    "certificate": (
        "Certificat client proche de l'expiration",
        "Rappeler à l'établissement de renouveler son certificat avant l'échéance.",
    ),
    "invalid_requests": (
        "Hausse soudaine des demandes refusées comme invalides",
        "Souvent une mise à jour du logiciel : voir ses codes MUT-400/SOAP-CLIENT et contacter "
        "l'éditeur.",
    ),
    # The tighter rules of production under watch (etc/prometheus/rules/rpn-watch.yml).
    "watch_error_rate": (
        "Sous surveillance : taux d'erreurs au-dessus de 5 % sur une heure",
        "Regarder ses codes et ses erreurs techniques ; contacter l'établissement et son "
        "éditeur avant que l'AMC ne le fasse.",
    ),
    "watch_invalid_requests": (
        "Sous surveillance : au moins 3 demandes refusées comme invalides en une heure",
        "Voir ses codes MUT-400/SOAP-CLIENT et contacter l'éditeur de son logiciel.",
    ),
    "watch_silent": (
        "Sous surveillance : silencieux aux heures ouvrées",
        "Aucun échange depuis une heure en journée : vérifier avec l'établissement son "
        "logiciel, son certificat et sa connexion au relais.",
    ),
    "watch_silent_day": (
        "Sous surveillance : aucun échange depuis un jour",
        "L'établissement passé en production n'envoie rien : vérifier qu'il utilise bien le "
        "relais de production.",
    ),
}
STATE_LABELS = {"firing": "confirmée", "pending": "à confirmer"}
SEVERITY_LABELS = {"critical": "critique", "warning": "à surveiller"}


@dataclass(frozen=True, slots=True)
class Anomaly:
    finess: str
    kind: str
    label: str
    action: str
    severity: str
    state: str
    since: float | None


def anomalies(alerts: tuple[Alert, ...]) -> tuple[Anomaly, ...]:
    """One row per establishment and rule (the most severe alert of a rule), confirmed first,
    then the oldest first."""
    best: dict[tuple[str, str], Alert] = {}
    rank = {"critical": 0, "warning": 1}
    for alert in alerts:
        if not alert.finess or not alert.anomaly:
            continue
        key = (alert.finess, alert.anomaly)
        kept = best.get(key)
        if kept is None or (
            (alert.state == "firing", -rank.get(alert.severity, 2))
            > (kept.state == "firing", -rank.get(kept.severity, 2))
        ):
            best[key] = alert
    rows = []
    for (finess, kind), alert in best.items():
        label, action = ANOMALIES.get(kind, (kind, ""))
        rows.append(Anomaly(finess, kind, label, action, alert.severity, alert.state, alert.since))
    rows.sort(key=lambda a: (a.state != "firing", a.since if a.since is not None else 0, a.finess))
    return tuple(rows)


@dataclass(frozen=True, slots=True)
class AmcHealth:
    amc: str
    name: str
    #: breaker state in the worst relay process: "open", "half_open", "closed" or "unknown"
    breaker: str
    exchanges: int
    technical_errors: int
    p50: float | None
    p95: float | None

    @property
    def error_rate(self) -> float | None:
        return self.technical_errors / self.exchanges if self.exchanges else None


def _worst_state(states: frozenset[str]) -> str:
    for state in ("open", "half_open", "closed"):
        if state in states:
            return state
    return "unknown"


def amc_health(snapshot: Snapshot) -> tuple[AmcHealth, ...]:
    """Every AMC with traffic in the window or a breaker: open breakers first, then the
    highest error rate."""
    observations = snapshot.observations
    totals: dict[str, int] = defaultdict(int)
    errors: dict[str, int] = defaultdict(int)
    for (amc, outcome), value in observations.amc_exchanges.items():
        if amc in ("", "none"):
            continue
        totals[amc] += count(value)
        if outcome in AMC_TECHNICAL:
            errors[amc] += count(value)
    rows = []
    for amc in sorted(set(totals) | set(observations.breakers)):
        p50, p95 = observations.amc_latency.get(amc, (None, None))
        rows.append(
            AmcHealth(
                amc,
                snapshot.amc_name(amc),
                _worst_state(observations.breakers.get(amc, frozenset())),
                totals.get(amc, 0),
                errors.get(amc, 0),
                p50,
                p95,
            )
        )
    order = {"open": 0, "half_open": 1}
    rows.sort(key=lambda r: (order.get(r.breaker, 2), -(r.error_rate or 0.0), r.amc))
    return tuple(rows)


@dataclass(frozen=True, slots=True)
class National:
    by_class: Mapping[str, int]
    daily: tuple[DayRates, ...]
    week: WeekComparison
    establishments: int

    @property
    def total(self) -> int:
        return sum(self.by_class.values())


def national(snapshot: Snapshot) -> National:
    """Every registered establishment's exchanges added up."""
    observations = snapshot.observations
    by_class = dict.fromkeys(CLASSES, 0)
    for (_, _, _, outcome), value in observations.exchanges.items():
        by_class[outcome_class(outcome)] += count(value)
    return National(
        by_class,
        daily_rates(observations.daily),
        week_comparison(observations.this_week, observations.previous_week),
        len(snapshot.peers),
    )
