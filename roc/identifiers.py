"""Checks for the identifiers and codes ROC messages carry: FINESS, NIR, AMC number,
convention type, secondary criterion and exchange id.

Each check returns ``None`` when the value is valid, or a short reason that names the rule
broken, never the value (a NIR is personal data): a ``Reason``, English as a string, with
its French text in ``.fr``. These are the one definition of each identifier rule: the
relay, the simulator and the tools all check identifiers here.
"""

from __future__ import annotations

import re

from roc.reasons import Reason

_FINESS = re.compile(r"(?:0[1-9]|[1-8][0-9]|9[0-5]|2[AB]|9[7-9])[0-9]{7}")
_NIR = re.compile(r"[12378][0-9]{2}(?:0[1-9]|1[0-2]|[2-9][0-9])(?:[0-9]{2}|2[AB])[0-9]{6}[0-9]{2}")
_AMC = re.compile(r"[0-9]{9}")
_CONVENTION_TYPE = re.compile(r"[A-Z0-9]{1,5}")
_SECONDARY_CRITERION = re.compile(r"[A-Za-z0-9]{0,10}")
_EXCHANGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

CONVENTION_TYPE_RULE = Reason(
    "must be 1 to 5 characters of A-Z, 0-9", "doit compter 1 à 5 caractères parmi A-Z, 0-9"
)
SECONDARY_CRITERION_RULE = Reason(
    "must be 0 to 10 characters of A-Z, a-z, 0-9",
    "doit compter 0 à 10 caractères parmi A-Z, a-z, 0-9",
)
EXCHANGE_ID_RULE = Reason(
    "must be 1 to 64 characters of A-Z, a-z, 0-9, . _ : -",
    "doit compter 1 à 64 caractères parmi A-Z, a-z, 0-9, . _ : -",
)


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


def finess_error(finess: str) -> Reason | None:
    """Why *finess* is not a valid FINESS number, or None."""
    if len(finess) != 9:
        return Reason("FINESS must be 9 characters", "un FINESS compte 9 caractères")
    if not _FINESS.fullmatch(finess):
        return Reason(
            "FINESS must be a department code then 7 digits",
            "un FINESS est un code de département suivi de 7 chiffres",
        )
    digits = _finess_digits(finess)
    if luhn_key(digits[:8]) != int(digits[8]):
        return Reason("FINESS check digit is wrong", "la clé de contrôle du FINESS est fausse")
    return None


def make_finess(first_eight: str) -> str:
    """Complete an 8-character FINESS prefix with its Luhn key (for fictitious data)."""
    return first_eight + str(luhn_key(_finess_digits(first_eight)))


def nir_key(nir13: str) -> int:
    """The 2-digit key of a 13-character NIR (Corsica's 2A/2B count as 19/18)."""
    number = int(nir13.replace("2A", "19").replace("2B", "18"))
    return 97 - number % 97


def nir_error(nir: str) -> Reason | None:
    """Why *nir* (13 characters plus a 2-digit key) is not a valid NIR, or None."""
    if len(nir) != 15:
        return Reason(
            "NIR must be 15 characters (13 plus a 2-digit key)",
            "le NIR compte 15 caractères (13 et une clé de 2 chiffres)",
        )
    if not _NIR.fullmatch(nir):
        return Reason("NIR format is invalid", "le format du NIR est invalide")
    if nir_key(nir[:13]) != int(nir[13:]):
        return Reason("NIR key is wrong", "la clé du NIR est fausse")
    return None


def make_nir(nir13: str) -> str:
    """Complete a 13-character NIR with its key (for fictitious data)."""
    return f"{nir13}{nir_key(nir13):02d}"


def amc_number_error(amc: str) -> Reason | None:
    """Why *amc* is not a valid AMC number, or None."""
    if not _AMC.fullmatch(amc):
        return Reason("AMC number must be 9 digits", "un numéro d'AMC compte 9 chiffres")
    return None


def convention_type_error(convention_type: str) -> Reason | None:
    """Why *convention_type* is not a valid convention type (``TypeConvention``), or None."""
    return None if _CONVENTION_TYPE.fullmatch(convention_type) else CONVENTION_TYPE_RULE


def secondary_criterion_error(criterion: str) -> Reason | None:
    """Why *criterion* is not a valid secondary criterion (empty is valid), or None."""
    return None if _SECONDARY_CRITERION.fullmatch(criterion) else SECONDARY_CRITERION_RULE


def exchange_id_error(exchange_id: str) -> Reason | None:
    """Why *exchange_id* is not a valid exchange id (``IdentifiantEchange``), or None."""
    return None if _EXCHANGE_ID.fullmatch(exchange_id) else EXCHANGE_ID_RULE
