"""An establishment's path to production: its state, what the state lets it reach, the moves.

A legal entity (and so each of its sites) is in one state of its *raccordement*:

- ``qualification``: it plays the qualification suite on Mutuelle ANS; it reaches only the
  fictitious AMCs Mutuelle ANS plays (a real AMC is refused with the step that remains);
- ``production_sous_surveillance``: live, every AMC, under tighter anomaly rules for the
  first days (the agency is alerted first);
- ``production``: live, every AMC;
- ``suspendue``: suspended by the agency; like qualification, only Mutuelle ANS's AMCs.

Pure logic: the relay asks which AMC an establishment may reach (``reach_refusal``), the
``rpn.lifecycle`` command asks which move is allowed (``transition_problem``). ``python -m
rpn.lifecycle`` is the operator's command (``rpn.lifecycle_cli``).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from roc.reasons import Reason

__all__ = [
    "SECTORS",
    "Lifecycle",
    "State",
    "changes",
    "reach_refusal",
    "transition_problem",
]

#: The sectors a qualification suite is chosen by (ROC V1: MCO; V2 adds the others).
SECTORS = ("MCO", "PSY", "HAD", "SMR", "OQN")


class State(Enum):
    QUALIFICATION = "qualification"
    UNDER_WATCH = "production_sous_surveillance"
    PRODUCTION = "production"
    SUSPENDED = "suspendue"

    @property
    def label(self) -> str:
        """The state as an establishment reads it."""
        return _LABELS[self]

    @property
    def live(self) -> bool:
        """Whether the state reaches every AMC (real ones included)."""
        return self in (State.UNDER_WATCH, State.PRODUCTION)


_LABELS = {
    State.QUALIFICATION: "qualification",
    State.UNDER_WATCH: "production sous surveillance",
    State.PRODUCTION: "production",
    State.SUSPENDED: "suspendue",
}

#: The moves the agency may make, from each state.
TRANSITIONS: Mapping[State, frozenset[State]] = {
    State.QUALIFICATION: frozenset({State.UNDER_WATCH, State.SUSPENDED}),
    State.UNDER_WATCH: frozenset({State.PRODUCTION, State.QUALIFICATION, State.SUSPENDED}),
    State.PRODUCTION: frozenset({State.SUSPENDED}),
    State.SUSPENDED: frozenset({State.QUALIFICATION, State.UNDER_WATCH}),
}


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """Where one legal entity stands: its state, since when, and its sectors."""

    state: State = State.PRODUCTION
    since: datetime.date | None = None
    sectors: tuple[str, ...] = ("MCO",)

    @property
    def since_timestamp(self) -> float:
        """``since`` as unix seconds (the day's start, UTC); 0 when not given."""
        if self.since is None:
            return 0.0
        start = datetime.datetime.combine(self.since, datetime.time(), datetime.UTC)
        return start.timestamp()


def reach_refusal(
    lifecycle: Lifecycle, entity: str, amc: str, simulated_amcs: frozenset[str]
) -> Reason | None:
    """Why legal entity *entity* in *lifecycle* may not reach *amc*, or None.

    The reason names the state, the AMCs it reaches and the step that remains, so that the
    establishment's IT team knows what to do without calling anyone.
    """
    if lifecycle.state.live or amc in simulated_amcs:
        return None
    reachable = ", ".join(sorted(simulated_amcs)) or "aucune"
    if lifecycle.state is State.QUALIFICATION:
        return Reason(
            f"legal entity {entity} is in qualification: it reaches only Mutuelle ANS's "
            f"fictitious AMCs ({reachable}), not AMC {amc}",
            f"l'entité juridique {entity} est en qualification : elle n'atteint que les AMC "
            f"fictives de Mutuelle ANS ({reachable}), pas l'AMC {amc}. Étape restante : jouer "
            "la suite de qualification sur Mutuelle ANS jusqu'à ce que chaque étape soit "
            "réussie, puis demander à l'ANS le passage en production sous surveillance "
            "(docs/raccordement.md)",
        )
    return Reason(
        f"legal entity {entity} is suspended: it reaches only Mutuelle ANS's fictitious AMCs "
        f"({reachable}), not AMC {amc}",
        f"l'entité juridique {entity} est suspendue : elle n'atteint que les AMC fictives de "
        f"Mutuelle ANS ({reachable}), pas l'AMC {amc}. Pour reprendre : corriger ce que l'ANS a "
        "signalé, puis lui demander la reprise (docs/raccordement.md)",
    )


def transition_problem(current: State, wanted: State) -> str | None:
    """Why *current* may not move to *wanted*, or None."""
    if wanted is current:
        return f"already {current.value}"
    allowed = TRANSITIONS[current]
    if wanted in allowed:
        return None
    names = ", ".join(sorted(s.value for s in allowed))
    return f"{current.value} -> {wanted.value} is not allowed (from {current.value}: {names})"


def changes(
    before: Mapping[str, Lifecycle], after: Mapping[str, Lifecycle]
) -> list[tuple[str, State | None, State | None]]:
    """(legal entity, state before, state after) for each entity whose state changed.

    None stands for "not registered": an entity added or removed is a change too.
    """
    moved = []
    for entity in sorted(set(before) | set(after)):
        old, new = before.get(entity), after.get(entity)
        old_state = None if old is None else old.state
        new_state = None if new is None else new.state
        if old_state is not new_state:
            moved.append((entity, old_state, new_state))
    return moved


if __name__ == "__main__":  # ``python -m rpn.lifecycle``: the command lives apart
    from rpn.lifecycle_cli import main

    raise SystemExit(main())
