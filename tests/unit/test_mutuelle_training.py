"""The training page (pure): each trainee's exchanges, French reasons, reset forms, no script."""

from __future__ import annotations

from mutuelle.catalogue import default_catalogue
from mutuelle.exercises import EXERCISES, done
from mutuelle.sandbox import JournalEntry, Violation
from mutuelle.training import training_page

CATALOGUE = default_catalogue()

ENTRY = JournalEntry(1, 0.0, "CLC", "x", "990000101", "V1", 200, "07", "CLC_KO_X")


def test_the_page_shows_each_trainee_with_reasons_and_reset_forms() -> None:
    bad = JournalEntry(
        2, 60.0, "SIM", "y", "990000101", "V1", 400, "MUT-400-CONFORMITE", "",
        (Violation("Demande/Sejour", "PERIODE", "la fin précède le début"),),
    )  # fmt: skip
    page = training_page("990000028", [(None, []), ("poste-1", [ENTRY, bad]), ("poste-2", [])])
    text = page.decode()
    assert "Stagiaire poste-1" in text and "Stagiaire poste-2" in text
    assert "Faire une IDB couvrant le séjour" in text  # what the trainee should check, in French
    assert "PERIODE" in text and "la fin précède le début" in text
    assert text.count('name="stagiaire" value="poste-1"') == 1
    assert "Réinitialiser toute la salle" in text and "<script" not in text


def test_what_a_page_shows_is_escaped() -> None:
    odd = JournalEntry(1, 0.0, "IDB", "x", "990000101", "V1", 200, "<b>", "<i>case</i>")
    text = training_page("990000028", [("poste-1", [odd])]).decode()
    assert "<i>case</i>" not in text and "&lt;i&gt;case&lt;/i&gt;" in text


def _played(sequence: int, case: str, outcome: str, amc: str = "990000101") -> JournalEntry:
    return JournalEntry(sequence, 0.0, case[:3], "x", amc, "V1", 200, outcome, case)


def test_an_exercise_is_done_only_with_its_cases_in_order_each_answered_right() -> None:
    engaged = next(e for e in EXERCISES if e.id == "sejour-engage")
    idb, clc = (
        _played(1, "IDB_OK_MCO_DROITS_OUVERTS", "00"),
        _played(2, "CLC_OK_MCO_ENGAGEMENT", "00"),
    )
    assert done(engaged, [idb, clc], CATALOGUE)
    assert not done(engaged, [clc, idb], CATALOGUE)  # the CLC came first
    assert not done(engaged, [idb, _played(2, "CLC_OK_MCO_ENGAGEMENT", "07")], CATALOGUE)
    other_amc = [
        _played(1, "IDB_OK_MCO_DROITS_OUVERTS", "00", "990000202"),
        _played(2, "CLC_OK_MCO_ENGAGEMENT", "00", "990000202"),
    ]
    assert done(engaged, other_amc, CATALOGUE)


def test_the_page_ticks_the_exercises_a_trainee_did() -> None:
    entries = [_played(1, "DEL_OK_MCO_ANNULATION", "00")]
    text = training_page("990000028", [("poste-1", entries), ("poste-2", [])], CATALOGUE).decode()
    first, second = text.split("Stagiaire poste-2")
    assert first.count("✓ réussi") == 1 and "Annuler l&#x27;engagement" in first
    assert second.count("✓ réussi") == 0 and second.count("☐ à faire") == len(EXERCISES)
