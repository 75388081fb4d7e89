"""Reasons in two languages: English for logs and code, French for what establishments read.

A ``Reason`` *is* its English text (a ``str``), so logs, exceptions and tests read it as
before; its ``fr`` attribute is the text shown to hospitals (fault strings, pages). Neither
ever contains a value a request carried, only field names, rules and identifiers that are
not personal data (FINESS, AMC numbers, limits).
"""

from __future__ import annotations


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
