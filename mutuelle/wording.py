"""French wording of the XML parser's reasons (``roc.xmlsafe``), which are given in English.

Identifier reasons need none: ``roc.identifiers`` gives a ``roc.reasons.Reason`` carrying its
French text.

Hospitals read Mutuelle ANS's faults and conformance reports in French; ``roc`` is shared
with the relay and keeps its English reasons for logs. These translations are keyed on the
exact English text, with a generic French fallback, so a new reason in ``roc`` is never
shown untranslated. Field names stay as they are.
"""

from __future__ import annotations

_XML = {
    "DTD and entity declarations are refused": (
        "les DTD et les déclarations d'entités sont refusées"
    ),
    "entity references are refused": "les références d'entités sont refusées",
}


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
