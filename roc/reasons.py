"""Reasons in two languages: English for logs and code, French for what establishments read.

A ``Reason`` *is* its English text (a ``str``), so logs, exceptions and tests read it as
before; its ``fr`` attribute is the text shown to hospitals (fault strings, pages). Neither
ever contains a value a request carried, only field names, rules and identifiers that are
not personal data (FINESS, AMC numbers, limits).
"""

from __future__ import annotations

import unicodedata

#: Longest reason and author an audited decision keeps (``rpn.lifecycle set``, the indicators'
#: promotion form): one rule for the command and for the page that prints it.
MAX_DECISION_REASON = 500
MAX_DECISION_AUTHOR = 200


class Reason(str):
    """An English reason carrying its French text."""

    fr: str

    def __new__(cls, en: str, fr: str) -> Reason:
        reason = super().__new__(cls, en)
        reason.fr = fr
        return reason

    def about(self, name: str) -> Reason:
        """The same reason, about the field or thing *name*."""
        return Reason(f"{name}: {self}", f"{name} : {self.fr}")


def french(text: str) -> str:
    """The French text of *text*: its ``fr`` if it is a ``Reason``, else itself."""
    return getattr(text, "fr", text)


def free_text_problem(value: str, what: str, longest: int) -> Reason | None:
    """Why *value* (free text a person typed, named *what*) cannot be kept in an audit line or
    a command: empty, longer than *longest*, or with control characters; None when it can."""
    if not value.strip():
        return Reason(f"{what} is empty", f"{what} est vide")
    if len(value) > longest:
        return Reason(
            f"{what} is longer than {longest} characters", f"{what} dépasse {longest} caractères"
        )
    if any(unicodedata.category(c).startswith("C") for c in value):
        return Reason(
            f"{what} contains control characters", f"{what} contient des caractères de contrôle"
        )
    return None
