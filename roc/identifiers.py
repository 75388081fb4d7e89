"""Checks for the identifiers ROC messages carry: FINESS, NIR and AMC number.

Each check returns ``None`` when the value is valid, or a short reason that names the rule
broken, never the value (a NIR is personal data).
"""

from __future__ import annotations

import re

_FINESS = re.compile(r"(?:0[1-9]|[1-8][0-9]|9[0-5]|2[AB]|9[7-9])[0-9]{7}")
_NIR = re.compile(r"[12378][0-9]{2}(?:0[1-9]|1[0-2]|[2-9][0-9])(?:[0-9]{2}|2[AB])[0-9]{6}[0-9]{2}")
_AMC = re.compile(r"[0-9]{9}")


def luhn_key(digits: str) -> int:
    """The Luhn check digit completing *digits*."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def _finess_digits(finess: str) -> str:
    return finess.replace("2A", "20").replace("2B", "20")


def finess_error(finess: str) -> str | None:
    """Why *finess* is not a valid FINESS number, or None."""
    if len(finess) != 9:
        return "FINESS must be 9 characters"
    if not _FINESS.fullmatch(finess):
        return "FINESS must be a department code then 7 digits"
    digits = _finess_digits(finess)
    if luhn_key(digits[:8]) != int(digits[8]):
        return "FINESS check digit is wrong"
    return None


def make_finess(first_eight: str) -> str:
    """Complete an 8-character FINESS prefix with its Luhn key (for fictitious data)."""
    return first_eight + str(luhn_key(_finess_digits(first_eight)))


def nir_key(nir13: str) -> int:
    """The 2-digit key of a 13-character NIR (Corsica's 2A/2B count as 19/18)."""
    number = int(nir13.replace("2A", "19").replace("2B", "18"))
    return 97 - number % 97


def nir_error(nir: str) -> str | None:
    """Why *nir* (13 characters plus a 2-digit key) is not a valid NIR, or None."""
    if len(nir) != 15:
        return "NIR must be 15 characters (13 plus a 2-digit key)"
    if not _NIR.fullmatch(nir):
        return "NIR format is invalid"
    if nir_key(nir[:13]) != int(nir[13:]):
        return "NIR key is wrong"
    return None


def make_nir(nir13: str) -> str:
    """Complete a 13-character NIR with its key (for fictitious data)."""
    return f"{nir13}{nir_key(nir13):02d}"


def amc_number_error(amc: str) -> str | None:
    """Why *amc* is not a valid AMC number, or None."""
    if not _AMC.fullmatch(amc):
        return "AMC number must be 9 digits"
    return None
