"""The training page (pure): each trainee's exchanges, French reasons, reset forms, no script."""

from __future__ import annotations

from mutuelle.sandbox import JournalEntry, Violation
from mutuelle.training import training_page

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
