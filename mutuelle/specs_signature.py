"""Signature cases: an ordinary IDB whose XML signature breaks one rule (``roc.signature``).

Each case is reached by its own fictitious beneficiary (rights open, so the business answer
is 00) and by *how the request is signed*; what Mutuelle ANS does depends on the signature
policy (``signatures.policy``, or the sandbox's through the admin API): under ``require`` the
fault ``MUT-400-SIGNATURE`` naming the rule, under ``report`` the answer 00 with the violation
in the conformance report, under ``off`` nothing. Any request signed that way (any
beneficiary, any service) breaks the same rule; the case's beneficiary makes the exchange
show up under the case's name in the journal.
"""

from __future__ import annotations

from mutuelle.idb import IdbOutcome
from mutuelle.model import CareKind, Sector
from mutuelle.specs import CaseSpec
from roc.model import RocVersion, Service
from roc.signature import Defect

#: How each case's request is signed (what a publisher does to reproduce it).
HOW_SENT: dict[Defect, str] = {
    Defect.MISSING: "sent without a wsse:Security header (not signed).",
    Defect.MALFORMED: (
        "signed with the sender's certificate, then the Body's wsu:Id renamed: the signature "
        "no longer covers the Body."
    ),
    Defect.DIGEST: (
        "signed with the sender's certificate, then one character added inside the Body "
        "(a space before the request element): the Body's digest no longer matches."
    ),
    Defect.VALUE: (
        "signed with the sender's certificate, then one character of the SignatureValue changed."
    ),
    Defect.UNTRUSTED: (
        "signed with a certificate from a CA Mutuelle ANS does not trust (the development "
        "PKI's untrusted-hospital)."
    ),
    Defect.EXPIRED: (
        "signed with the sender's certificate after it expired (the development PKI's "
        "hospital-a-expired)."
    ),
    Defect.FINESS: (
        "signed with another establishment's valid certificate (hospital B's for a request "
        "sent by hospital A)."
    ),
}

_SUFFIXES: dict[Defect, str] = {
    Defect.MISSING: "SIGNATURE_ABSENTE",
    Defect.MALFORMED: "SIGNATURE_FORME",
    Defect.DIGEST: "SIGNATURE_EMPREINTE",
    Defect.VALUE: "SIGNATURE_VALEUR",
    Defect.UNTRUSTED: "SIGNATURE_CERTIFICAT_INCONNU",
    Defect.EXPIRED: "SIGNATURE_CERTIFICAT_EXPIRE",
    Defect.FINESS: "SIGNATURE_FINESS",
}


def _case(defect: Defect) -> CaseSpec:
    return CaseSpec(
        _SUFFIXES[defect],
        Service.IDB,
        RocVersion.V1,
        Sector.MCO,
        CareKind.HOSPITALISATION,
        f"An IDB for a beneficiary with open rights, {HOW_SENT[defect]}",
        f"Rule {defect.value}. Under signatures.policy 'require': fault MUT-400-SIGNATURE "
        f"naming the rule, nothing processed; under 'report': CodeRetour 00 and the violation "
        f"{defect.value} in the conformance report; under 'off': CodeRetour 00.",
        IdbOutcome.RIGHTS_OPEN,
        signature=defect,
    )


#: One case per signature rule, in the order of ``roc.signature.Defect``.
SIGNATURE_SPECS: tuple[CaseSpec, ...] = tuple(_case(defect) for defect in Defect)
