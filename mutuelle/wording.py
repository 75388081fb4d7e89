"""French wording of reasons the shared package (``roc``) gives in English.

Hospitals read Mutuelle ANS's faults and conformance reports in French; ``roc`` is shared
with the relay and keeps its English reasons for logs. These translations are keyed on the
exact English text, with a generic French fallback, so a new reason in ``roc`` is never
shown untranslated. Field names stay as they are.
"""

from __future__ import annotations

_IDENTIFIERS = {
    "FINESS must be 9 characters": "le FINESS compte 9 caractères",
    "FINESS must be a department code then 7 digits": (
        "le FINESS est un code de département suivi de 7 chiffres"
    ),
    "FINESS check digit is wrong": "la clé de contrôle du FINESS est fausse",
    "NIR must be 15 characters (13 plus a 2-digit key)": (
        "le NIR compte 15 caractères (13 et une clé de 2 chiffres)"
    ),
    "NIR format is invalid": "le format du NIR est invalide",
    "NIR key is wrong": "la clé du NIR est fausse",
    "AMC number must be 9 digits": "le numéro d'AMC compte 9 chiffres",
}

_XML = {
    "DTD and entity declarations are refused": (
        "les DTD et les déclarations d'entités sont refusées"
    ),
    "entity references are refused": "les références d'entités sont refusées",
}


def identifier_reason(reason: str) -> str:
    """The French reason for an identifier check of ``roc.identifiers``."""
    return _IDENTIFIERS.get(reason, "identifiant invalide")


def xml_reason(reason: str) -> str:
    """The French reason for a refusal of ``roc.xmlsafe`` (the parser's own words kept)."""
    if reason in _XML:
        return _XML[reason]
    if reason.startswith("not well-formed XML: "):
        return "XML mal formé (analyseur : " + reason.removeprefix("not well-formed XML: ") + ")"
    if reason.startswith("document larger than "):
        size = reason.removeprefix("document larger than ").removesuffix(" bytes")
        return f"document de plus de {size} octets"
    return "XML refusé"
