"""French wording of reasons given in English: the XML parser's (``roc.xmlsafe``) and the
signature check's (``roc.signature``).

Identifier reasons need none: ``roc.identifiers`` gives a ``roc.reasons.Reason`` carrying its
French text.

Hospitals read Mutuelle ANS's faults and conformance reports in French; ``roc`` is shared
with the relay and keeps its English reasons for logs. These translations are keyed on the
exact English text (signature refusals on their stable rule), with a generic French
fallback, so a new reason in ``roc`` is never shown untranslated. Field names stay as they are.
"""

from __future__ import annotations

from roc.signature import Defect

_XML = {
    "DTD and entity declarations are refused": (
        "les DTD et les déclarations d'entités sont refusées"
    ),
    "entity references are refused": "les références d'entités sont refusées",
}


#: The French reason of each defect (hospitals read them in faults and reports).
SIGNATURE_REASONS: dict[Defect, str] = {
    Defect.MISSING: (
        "le message ne porte pas de signature : l'en-tête SOAP doit contenir un bloc "
        "wsse:Security avec une ds:Signature"
    ),
    Defect.MALFORMED: (
        "la signature n'a pas la forme attendue : un seul certificat "
        "wsse:BinarySecurityToken, une ds:Signature en c14n exclusive, RSA-SHA256 et SHA-256, "
        "dont les références (wsu:Id) couvrent le Body et le bloc de routage, identifiants "
        "uniques"
    ),
    Defect.DIGEST: (
        "l'empreinte (DigestValue) d'une partie signée ne correspond pas : le Body ou le bloc "
        "de routage a été modifié après la signature"
    ),
    Defect.VALUE: (
        "la valeur de la signature (SignatureValue) ne correspond pas à la clé du certificat "
        "joint : SignedInfo a été modifié, ou signé avec une autre clé"
    ),
    Defect.UNTRUSTED: (
        "le certificat du signataire n'est pas délivré par une autorité de confiance de "
        "Mutuelle ANS (IGC-Santé en production, l'AC de développement ici)"
    ),
    Defect.EXPIRED: "le certificat du signataire est expiré ou pas encore valide",
    Defect.FINESS: (
        "le FINESS du certificat du signataire n'est pas celui de l'émetteur "
        "(Routage/Emetteur/FinessGeographique ou FinessJuridique) : un établissement ne signe "
        "pas pour un autre"
    ),
}


def signature_reason(defect: Defect) -> str:
    """The French reason for a signature refusal of ``roc.signature`` (by its rule)."""
    return SIGNATURE_REASONS.get(defect, "signature invalide")


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
