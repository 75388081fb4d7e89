"""Exercises for a training room: named tasks and the journal entries that prove them done.

An exercise lists the catalogue cases a trainee must reach, in that order, each answered with
the case's expected code (at whichever fictitious AMC the trainee chose): the training view
(``mutuelle.training``) ticks those a trainee's journal shows done right. Titles and goals are
French (hospital-facing). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mutuelle.catalogue import Catalogue
from mutuelle.sandbox import JournalEntry


@dataclass(frozen=True, slots=True)
class Exercise:
    id: str
    title: str
    #: What success looks like, for the trainee.
    goal: str
    #: Catalogue case names to reach, in order, each with its expected code.
    cases: tuple[str, ...]


EXERCISES = (
    Exercise(
        "droits-fermes",
        "Admettre un patient dont les droits ont fermé",
        "Une IDB pour le bénéficiaire du cas IDB_KO_MCO_DROITS_FERMES, lue comme il faut : "
        "code 02, droits fermés à la date des soins.",
        ("IDB_KO_MCO_DROITS_FERMES",),
    ),
    Exercise(
        "sejour-engage",
        "Vérifier les droits puis obtenir l'engagement de la mutuelle",
        "Une IDB aux droits ouverts (code 00), puis le calcul final d'un séjour MCO (CLC, "
        "code 00, engagement reçu).",
        ("IDB_OK_MCO_DROITS_OUVERTS", "CLC_OK_MCO_ENGAGEMENT"),
    ),
    Exercise(
        "annuler-engagement",
        "Annuler l'engagement d'un séjour annulé",
        "Une DEL de l'engagement actif du cas DEL_OK_MCO_ANNULATION : code 00, engagement annulé.",
        ("DEL_OK_MCO_ANNULATION",),
    ),
    Exercise(
        "simulation-plafond",
        "Simuler un séjour avec chambre particulière et accompagnant",
        "Une SIM du cas SIM_OK_MCO_PLAFOND_ATTEINT acceptée (code 00), les plafonds de la "
        "garantie appliqués au décompte.",
        ("SIM_OK_MCO_PLAFOND_ATTEINT",),
    ),
)


def _right(entry: JournalEntry, name: str, catalogue: Catalogue) -> bool:
    if entry.case != name:
        return False
    case = catalogue.get(entry.amc, name)
    return case is not None and entry.outcome == case.expected_code


def done(exercise: Exercise, entries: Sequence[JournalEntry], catalogue: Catalogue) -> bool:
    """Whether *entries* (oldest first) reach *exercise*'s cases in order, each answered right."""
    wanted = list(exercise.cases)
    for entry in entries:
        if wanted and _right(entry, wanted[0], catalogue):
            wanted.pop(0)
    return not wanted


def progress(
    entries: Sequence[JournalEntry], catalogue: Catalogue, exercises: Sequence[Exercise] = EXERCISES
) -> list[tuple[Exercise, bool]]:
    """Every exercise and whether *entries* show it done."""
    return [(exercise, done(exercise, entries, catalogue)) for exercise in exercises]
