"""Each establishment's *raccordement* (pure): its state, its qualification progress, whether
it is stuck, and while under watch the daily summary and the watch alerts.

Read from one Snapshot (the relays' lifecycle series, the daily counts and the alerts read
from Prometheus, and the progress read from Mutuelle ANS); nothing here does I/O.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from indicators import french
from indicators.agency import Anomaly, anomalies
from indicators.compute import Snapshot
from indicators.lifecycle import (
    DAY,
    PRODUCTION,
    QUALIFICATION,
    STATES,
    SUSPENDED,
    UNDER_WATCH,
    Lifecycle,
    iso_day,
)
from indicators.model import INVALID, REJECTED, Alert
from indicators.progress import Progress, ProgressReading, Unavailable
from indicators.trends import ERROR_CLASSES, daily_rates

#: The anomaly kinds of etc/prometheus/rules/rpn-watch.yml (the tighter rules of the watch).
WATCH_PREFIX = "watch_"

NOT_CONFIGURED = Unavailable(
    "le suivi de la qualification n'est pas configuré ([qualification] mutuelle_admin_url)"
)
NOT_READ = Unavailable("pas encore lue auprès de Mutuelle ANS")


def is_watch_alert(alert: Alert | Anomaly) -> bool:
    kind = alert.anomaly if isinstance(alert, Alert) else alert.kind
    return kind.startswith(WATCH_PREFIX)


@dataclass(frozen=True, slots=True)
class WatchDay:
    """One Paris day of the watch: what the establishment sent and how it went."""

    day: str
    exchanges: int
    error_rate: float | None
    #: exchanges counted in the error rate (invalid, refused by the relay, technical)
    errors: int
    invalid: int  # requests the AMCs refused as invalid
    rejected: int  # requests the relay refused

    @property
    def silent(self) -> bool:
        return self.exchanges == 0


@dataclass(frozen=True, slots=True)
class Watch:
    since: float
    ends: float | None
    #: Days of the period elapsed so far, read (the daily counts cover ``daily_days``)
    days: tuple[WatchDay, ...]
    #: Days of the period elapsed before the first day read (older than ``daily_days``)
    days_not_read: int
    #: Watch anomalies for this FINESS, firing or pending
    alerts: tuple[Anomaly, ...]

    @property
    def firing(self) -> tuple[Anomaly, ...]:
        return tuple(a for a in self.alerts if a.state == "firing")

    @property
    def silent_days(self) -> int:
        return sum(1 for d in self.days if d.silent)


@dataclass(frozen=True, slots=True)
class Standing:
    """One FINESS on the agency's list and on its own page."""

    lifecycle: Lifecycle
    progress: ProgressReading
    days_in_state: int | None
    watch: Watch | None
    #: Why the agency should look first (French), None when nothing is stuck
    stuck: str | None
    #: What the agency may do now (French), e.g. "qualifié : à passer en production sous
    #: surveillance", None when nothing awaits it
    awaiting: str | None

    @property
    def finess(self) -> str:
        return self.lifecycle.finess


def _day_of(timestamp: float) -> str:
    return french.local(timestamp).date().isoformat()


def watch_of(snapshot: Snapshot, lifecycle: Lifecycle) -> Watch | None:
    """The watch of an establishment in production_sous_surveillance (None otherwise)."""
    if lifecycle.state != UNDER_WATCH or lifecycle.since is None:
        return None
    observations = snapshot.observations
    ends = lifecycle.watch_end(observations.watch_days)
    first = iso_day(lifecycle.since)
    last = iso_day(ends - 1) if ends is not None else None
    days = []
    for day in daily_rates(observations.daily, lifecycle.finess):
        if day.day < first or (last is not None and day.day > last):
            continue
        days.append(
            WatchDay(
                day.day,
                day.rates.total,
                day.rates.error_rate,
                sum(day.rates.by_class.get(c, 0) for c in ERROR_CLASSES),
                day.rates.by_class.get(INVALID, 0),
                day.rates.by_class.get(REJECTED, 0),
            )
        )
    today = _day_of(snapshot.generated_at)
    end = min(today, last) if last is not None else today
    elapsed = (
        (datetime.date.fromisoformat(end) - datetime.date.fromisoformat(first)).days + 1
        if end >= first
        else 0
    )
    not_read = max(0, elapsed - len(days))
    alerts = tuple(
        a
        for a in anomalies(observations.alerts)
        if a.finess == lifecycle.finess and is_watch_alert(a)
    )
    return Watch(lifecycle.since, ends, tuple(days), not_read, alerts)


def _entity_progress(snapshot: Snapshot, legal_entity: str) -> list[Progress]:
    """The progress read for every FINESS of *legal_entity* (itself and its sites)."""
    lifecycles = snapshot.observations.lifecycles
    return [
        p
        for finess, p in snapshot.progress.items()
        if isinstance(p, Progress)
        and finess in lifecycles
        and lifecycles[finess].legal_entity == legal_entity
    ]


def _stuck(
    snapshot: Snapshot, lifecycle: Lifecycle, progress: ProgressReading
) -> tuple[str | None, str | None]:
    """(why it is stuck, what awaits the agency). Stuck: in qualification, and no step passed
    by any FINESS of its legal entity (its sites play the suite) for ``stuck_days`` since the
    state began or since the last step passed, whichever is later."""
    if lifecycle.state != QUALIFICATION or not isinstance(progress, Progress):
        return None, None
    members = _entity_progress(snapshot, lifecycle.legal_entity)
    if progress.qualified or any(p.qualified for p in members):
        return None, "qualifié : à passer en production sous surveillance"
    passed = [t for p in members if (t := p.last_passed)]
    moments = [t for t in (lifecycle.since, max(passed, default=None)) if t is not None]
    if not moments:
        return None, None
    reference = max(moments)
    if snapshot.generated_at - reference < snapshot.stuck_days * DAY:
        return None, None
    idle = int((snapshot.generated_at - reference) // DAY)
    step = progress.blocking
    where = f" ; bloqué sur « {step.title} »" if step is not None else ""
    what = "aucune nouvelle étape réussie" if passed else "aucune étape réussie"
    return f"{what} depuis {idle} jours{where}", None


def standing(snapshot: Snapshot, lifecycle: Lifecycle) -> Standing:
    at = snapshot.generated_at
    progress = snapshot.progress.get(lifecycle.finess, _default_progress(snapshot, lifecycle))
    stuck, awaiting = _stuck(snapshot, lifecycle, progress)
    watch = watch_of(snapshot, lifecycle)
    if watch is not None and watch.ends is not None and at >= watch.ends:
        if watch.firing:
            stuck = "surveillance terminée, mais des alertes de surveillance sont en cours"
        else:
            awaiting = "surveillance terminée : à passer en production"
    return Standing(
        lifecycle,
        progress,
        lifecycle.days_in_state(at),
        watch,
        stuck,
        awaiting,
    )


def _default_progress(snapshot: Snapshot, lifecycle: Lifecycle) -> ProgressReading:
    if not snapshot.qualification_configured:
        return NOT_CONFIGURED
    if lifecycle.state == PRODUCTION:
        return Unavailable("non lue : l'établissement est en production")
    return NOT_READ


def standings(snapshot: Snapshot) -> tuple[Standing, ...]:
    """Every registered FINESS, stuck ones first (the longest in their state first), then
    those awaiting the agency or with a watch alert firing, then by state along the path, then
    legal entity and FINESS."""
    rows = [standing(snapshot, lc) for lc in snapshot.observations.lifecycles.values()]
    order = {s: i for i, s in enumerate(STATES)}

    def key(s: Standing) -> tuple[int, int, int, str, str]:
        alerting = s.watch is not None and bool(s.watch.firing)
        group = 0 if s.stuck else (1 if s.awaiting or alerting else 2)
        return (
            group,
            -(s.days_in_state or 0) if group < 2 else 0,
            order.get(s.lifecycle.state, len(order)),
            s.lifecycle.legal_entity,
            s.finess,
        )

    return tuple(sorted(rows, key=key))


@dataclass(frozen=True, slots=True)
class Entity:
    """A legal entity as the promotion form sees it: its state and its FINESS's standings."""

    finess: str
    lifecycle: Lifecycle
    members: tuple[Standing, ...]

    @property
    def qualified(self) -> bool:
        """Some FINESS of the entity (itself or a site) passed every step of its suite."""
        return any(isinstance(m.progress, Progress) and m.progress.qualified for m in self.members)

    @property
    def best_progress(self) -> ProgressReading:
        readings = [m.progress for m in self.members]
        known = [p for p in readings if isinstance(p, Progress)]
        if known:
            return max(known, key=lambda p: (p.qualified, p.passed))
        return readings[0] if readings else NOT_READ

    @property
    def firing_watch_alerts(self) -> tuple[Anomaly, ...]:
        return tuple(a for m in self.members if m.watch for a in m.watch.firing)


def entities(snapshot: Snapshot) -> dict[str, Entity]:
    """legal entity FINESS -> Entity, for every registered legal entity."""
    members: dict[str, list[Standing]] = {}
    for s in standings(snapshot):
        members.setdefault(s.lifecycle.legal_entity, []).append(s)
    found = {}
    for entity, rows in sorted(members.items()):
        own = next((r for r in rows if r.finess == entity), rows[0])
        found[entity] = Entity(entity, own.lifecycle, tuple(rows))
    return found


def progress_targets(lifecycles: Mapping[str, Lifecycle]) -> list[Lifecycle]:
    """The FINESS whose progress is read from Mutuelle ANS: those not in production (the
    suite matters before going live, and again after a suspension)."""
    return [
        lc
        for finess, lc in sorted(lifecycles.items())
        if lc.state in (QUALIFICATION, UNDER_WATCH, SUSPENDED)
    ]
