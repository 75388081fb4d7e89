"""Mutuelle ANS's check of request signatures: the policy, and the violation a defect is.

The checking itself is ``roc.signature`` (shared with publishers' tools); here a defect
becomes a conformance ``Violation`` with its French reason, and the policy (per configuration,
overridden per sandbox through the admin API) says what follows:

- ``require``: a request whose signature is missing or invalid gets the fault
  ``MUT-400-SIGNATURE`` naming the rule, and is not processed;
- ``report``: the request is served and the violation recorded in the sandbox's journal and
  conformance report;
- ``off``: signatures are not looked at.

Pure: the parsed request, the trusted authorities and the time in, a violation or None out.
"""

from __future__ import annotations

import datetime
from enum import StrEnum

from lxml import etree

from mutuelle.sandbox import Violation
from roc.model import RoutingKey
from roc.signature import Defect, SignatureInvalid, Trust, verify

#: The field a signature violation names in reports.
SIGNATURE_FIELD = "Header/Security/Signature"


class SignaturePolicy(StrEnum):
    """What Mutuelle ANS does with a request's signature (configuration, admin API)."""

    REQUIRE = "require"
    REPORT = "report"
    OFF = "off"


#: The French reason of each defect (hospitals read them in faults and reports).
REASONS: dict[Defect, str] = {
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


def violation_of(defect: Defect) -> Violation:
    """The conformance violation *defect* is (rule = the defect's stable code)."""
    return Violation(SIGNATURE_FIELD, defect.value, REASONS[defect])


def signature_violation(
    root: etree._Element, routing: RoutingKey, trust: Trust, now: datetime.datetime
) -> Violation | None:
    """The violation the signature of the request *root* commits, None when it is valid."""
    senders = (routing.sender_finess_legal, routing.sender_finess_site)
    try:
        verify(root, trust, now, senders)
    except SignatureInvalid as exc:
        return violation_of(exc.defect)
    return None
