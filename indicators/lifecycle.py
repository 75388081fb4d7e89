"""Where each establishment stands on its path to production, as the relays export it (pure).

The relays export one series per registered FINESS,
``rpn_establishment_lifecycle_since_timestamp_seconds{finess, legal_entity, role, state,
sectors}`` (value: the state's ``since``, the day's start UTC, 0 when not given), and
``rpn_lifecycle_watch_days``. The state is the legal entity's; its sites share it. The
states, what each allows and the moves the agency may make are the relay's (``rpn.lifecycle``,
section A of docs/raccordement.md); a service does not import another, so they are restated
here in French for the pages.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from indicators.prometheus import Sample

QUALIFICATION = "qualification"
UNDER_WATCH = "production_sous_surveillance"
PRODUCTION = "production"
SUSPENDED = "suspendue"
#: The states, in the order of the path.
STATES = (QUALIFICATION, UNDER_WATCH, PRODUCTION, SUSPENDED)

STATE_LABELS = {
    QUALIFICATION: "Qualification",
    UNDER_WATCH: "Production sous surveillance",
    PRODUCTION: "Production",
    SUSPENDED: "Suspendue",
}
#: What each state lets the establishment do, as it reads it.
STATE_ALLOWS = {
    QUALIFICATION: "en qualification : seules les AMC fictives de Mutuelle ANS sont joignables ; "
    "jouer la suite de qualification jusqu'à ce que chaque étape soit réussie, puis demander "
    "à l'ANS le passage en production sous surveillance.",
    UNDER_WATCH: "en production sous surveillance : toutes les AMC sont joignables ; pendant la "
    "période de surveillance, des règles d'anomalie plus strictes s'appliquent et l'agence est "
    "alertée la première.",
    PRODUCTION: "en production : toutes les AMC sont joignables.",
    SUSPENDED: "suspendue : seules les AMC fictives de Mutuelle ANS sont joignables ; corriger ce "
    "que l'ANS a signalé, puis lui demander la reprise.",
}

#: The moves the agency may make, from each state (contract A: any state -> suspendue).
TRANSITIONS: Mapping[str, frozenset[str]] = {
    QUALIFICATION: frozenset({UNDER_WATCH, SUSPENDED}),
    UNDER_WATCH: frozenset({PRODUCTION, QUALIFICATION, SUSPENDED}),
    PRODUCTION: frozenset({SUSPENDED}),
    SUSPENDED: frozenset({QUALIFICATION, UNDER_WATCH}),
}

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """One registered FINESS (a site or its legal entity) and its legal entity's state."""

    finess: str
    legal_entity: str
    role: str  # "legal_entity" or "site"
    state: str
    #: Unix time the state began (the day's start, UTC), None when the registration omits it
    since: float | None
    sectors: tuple[str, ...]

    @property
    def label(self) -> str:
        return STATE_LABELS.get(self.state, self.state)

    @property
    def allows(self) -> str:
        return STATE_ALLOWS.get(self.state, "")

    def days_in_state(self, at: float) -> int | None:
        """Whole days since the state began (None when its start is not known)."""
        if self.since is None:
            return None
        return max(0, int((at - self.since) // DAY))

    def watch_end(self, watch_days: int | None) -> float | None:
        """When the watch ends (since + watch_days), for an establishment under watch."""
        if self.state != UNDER_WATCH or self.since is None or watch_days is None:
            return None
        return self.since + watch_days * DAY

    def under_watch(self, at: float, watch_days: int | None) -> bool:
        """Whether the tighter rules apply now (etc/prometheus/rules/rpn-watch.yml)."""
        end = self.watch_end(watch_days)
        return end is not None and at < end


def lifecycles_of(samples: Iterable[Sample]) -> dict[str, Lifecycle]:
    """finess -> Lifecycle from the relays' series; several relay processes agree (the same
    registration), so the first wins unless a later one has a more recent ``since``."""
    found: dict[str, Lifecycle] = {}
    for sample in samples:
        labels = sample.labels
        finess = labels.get("finess", "")
        if not finess:
            continue
        sectors = tuple(s for s in labels.get("sectors", "").split(",") if s)
        lifecycle = Lifecycle(
            finess=finess,
            legal_entity=labels.get("legal_entity", "") or finess,
            role=labels.get("role", ""),
            state=labels.get("state", ""),
            since=sample.value if sample.value > 0 else None,
            sectors=sectors or ("MCO",),
        )
        kept = found.get(finess)
        if kept is None or (lifecycle.since or 0) > (kept.since or 0):
            found[finess] = lifecycle
    return found


def iso_day(timestamp: float) -> str:
    """The UTC day a ``since`` stands for ('2026-12-01'), as the registration writes it."""
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).date().isoformat()
