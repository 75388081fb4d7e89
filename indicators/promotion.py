"""The agency's promotion form (pure): checks a move and prints the command that makes it.

The page never writes the relays' configuration: it prints the ``python -m rpn.lifecycle set``
command (contract A) that the relays' operator runs on each relay host, and the TOML change
it makes, then the reload (docs/indicators.md, "Promotion: why a printed command").
"""

from __future__ import annotations

import datetime
import shlex
from dataclasses import dataclass

from indicators import french
from indicators.lifecycle import (
    PRODUCTION,
    STATE_LABELS,
    STATES,
    TRANSITIONS,
    UNDER_WATCH,
)
from indicators.progress import Progress, Unavailable
from indicators.raccordement import Entity
from roc.reasons import MAX_DECISION_AUTHOR, MAX_DECISION_REASON, free_text_problem

#: Longest reason and agent name, as rpn.lifecycle set keeps them.
MAX_REASON, MAX_AGENT = MAX_DECISION_REASON, MAX_DECISION_AUTHOR


def text_problem(value: str, what: str, longest: int) -> str | None:
    """Why *value* cannot be carried in the command (French), or None."""
    problem = free_text_problem(value, what, longest)
    return None if problem is None else problem.fr


def _label(state: str) -> str:
    return STATE_LABELS.get(state, state)


def move_problem(entity: Entity, target: str, at: float, watch_days: int | None) -> str | None:
    """Why legal entity *entity* may not move to *target* now (French), or None."""
    current = entity.lifecycle.state
    if target not in STATES:
        return f"état demandé inconnu : {target!r}"
    if target == current:
        return f"l'entité juridique {entity.finess} est déjà en « {_label(current)} »"
    allowed = TRANSITIONS.get(current, frozenset())
    if target not in allowed:
        names = ", ".join(f"« {_label(s)} »" for s in STATES if s in allowed) or "aucun"
        return (
            f"passage de « {_label(current)} » à « {_label(target)} » non permis ; depuis "
            f"« {_label(current)} », seulement vers : {names}"
        )
    if target == UNDER_WATCH and not entity.qualified:
        progress = entity.best_progress
        if isinstance(progress, Unavailable):
            return (
                "la qualification ne peut pas être vérifiée : progression indisponible "
                f"({progress.reason})"
            )
        assert isinstance(progress, Progress)
        step = progress.blocking
        remains = f" ; étape à faire : « {step.title} »" if step is not None else ""
        return f"pas encore qualifiée : {progress.passed}/{progress.total} étapes réussies{remains}"
    if target == PRODUCTION and current == UNDER_WATCH:
        ends = entity.lifecycle.watch_end(watch_days)
        if ends is None:
            return (
                "fin de la période de surveillance inconnue (date de début absente de "
                "l'inscription, ou durée non exportée par les relais)"
            )
        if at < ends:
            return (
                "la période de surveillance n'est pas terminée : elle dure jusqu'au "
                f"{french.utc_date(ends - 1)} inclus"
            )
        firing = entity.firing_watch_alerts
        if firing:
            names = ", ".join(sorted({f"{a.label} ({a.finess})" for a in firing}))
            return f"des alertes de surveillance sont en cours : {names}"
    return None


@dataclass(frozen=True, slots=True)
class Change:
    """What the operator runs, and what it changes."""

    command: str
    toml: str
    reload: str


def command(relay_config: str, finess: str, state: str, agent: str, reason: str) -> str:
    """The exact ``rpn.lifecycle set`` command, every argument shell-quoted."""
    words = [
        "python",
        "-m",
        "rpn.lifecycle",
        "set",
        "--config",
        relay_config,
        "--finess",
        finess,
        "--state",
        state,
        "--by",
        agent,
        "--reason",
        reason,
    ]
    return " ".join(shlex.quote(w) for w in words)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def toml_change(entity: Entity, state: str, at: float) -> str:
    """The lines of the registration the command changes (``since`` defaults to today)."""
    lifecycle = entity.lifecycle
    day = datetime.datetime.fromtimestamp(at, datetime.UTC).date().isoformat()
    before_since = (
        _toml_string(
            datetime.datetime.fromtimestamp(lifecycle.since, datetime.UTC).date().isoformat()
        )
        if lifecycle.since is not None
        else "(absent)"
    )
    return "\n".join(
        (
            "[[establishments.legal_entities]]",
            f"finess = {_toml_string(entity.finess)}",
            f"state = {_toml_string(state)}  # avant : {_toml_string(lifecycle.state)}",
            f"since = {_toml_string(day)}  # avant : {before_since}",
        )
    )


def change(
    entity: Entity,
    state: str,
    agent: str,
    reason: str,
    at: float,
    relay_config: str,
    reload: str,
) -> Change:
    return Change(
        command(relay_config, entity.finess, state, agent, reason),
        toml_change(entity, state, at),
        reload,
    )
