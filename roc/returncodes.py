"""ROC return codes (``CodeRetour``): French label, services, and whether it is a normal answer.

A return code is the AMC's *business* answer. ``00`` means yes; most others are normal answers
too (the beneficiary is unknown, the rights are closed: the establishment bills the patient or
asks for another document), not errors. A few say the establishment's workflow is wrong (a CLC
without an earlier IDB, a DEL of an unknown engagement): those are marked as errors, the
establishment's to fix. The labels are those the PiANO simulator answers (docs/catalogue.md),
the project's model of ROC, not the official tables.

Codes received that are not return codes (relay faults ``RPN-<status>-...``, the AMC's
faults) are described by :func:`describe_code` from their form, so a page never shows a bare
code; each relay fault's own message and "que faire" are in docs/errors.md (the relay's table,
which this shared module does not import).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NORMAL = "normal"
ERROR = "error"


@dataclass(frozen=True, slots=True)
class ReturnCode:
    code: str
    #: French label, as the AMC's LibelleRetour says it.
    label: str
    #: ROC services that answer this code.
    services: tuple[str, ...]
    #: NORMAL: a business answer the establishment acts on as usual; ERROR: its request or
    #: workflow is wrong and must be fixed.
    kind: str
    #: What the establishment does, in French.
    action: str


_IDB_SIM_CLC = ("IDB", "SIM", "CLC")
_ALL = ("IDB", "SIM", "CLC", "DEL")

RETURN_CODES: dict[str, ReturnCode] = {
    c.code: c
    for c in (
        ReturnCode("00", "Accepté (droits ouverts, prise en charge, annulation)", _ALL, NORMAL, ""),
        ReturnCode(
            "01",
            "Bénéficiaire inconnu de l'AMC",
            _ALL,
            NORMAL,
            "Vérifier l'identité (NIR, date et rang de naissance) et l'AMC sur l'attestation ; "
            "sinon facturer le patient.",
        ),
        ReturnCode(
            "02",
            "Droits fermés sur tout ou partie de la période",
            _IDB_SIM_CLC,
            NORMAL,
            "Facturer au patient la période sans droits, ou demander une attestation à jour.",
        ),
        ReturnCode(
            "03",
            "Secteur d'activité non couvert par le contrat",
            _IDB_SIM_CLC,
            NORMAL,
            "Facturer le patient pour ce secteur.",
        ),
        ReturnCode(
            "04",
            "Tiers payant non pratiqué par l'organisme",
            _IDB_SIM_CLC,
            NORMAL,
            "Facturer le patient, qui se fera rembourser par son organisme.",
        ),
        ReturnCode(
            "05",
            "Numéro d'adhérent incohérent",
            _ALL,
            ERROR,
            "Corriger le numéro d'adhérent saisi (celui de l'attestation du patient).",
        ),
        ReturnCode(
            "06",
            "Secteur non prévu par cette version de ROC",
            _IDB_SIM_CLC,
            ERROR,
            "Envoyer en version ROC V2 (PSY, HAD, SMR, OQN) : paramétrage du logiciel.",
        ),
        ReturnCode(
            "07",
            "Aucune IDB préalable pour ce bénéficiaire et cette période",
            ("CLC",),
            ERROR,
            "Faire une IDB couvrant le séjour avant le calcul (CLC).",
        ),
        ReturnCode(
            "08",
            "Prise en charge refusée : aucune part à la charge de l'AMC",
            ("SIM", "CLC"),
            NORMAL,
            "Rien à facturer à l'AMC : facturer le patient le cas échéant.",
        ),
        ReturnCode(
            "09",
            "Engagement déjà en cours pour ce séjour",
            ("CLC",),
            ERROR,
            "Reprendre l'engagement renvoyé, ou l'annuler (DEL) avant de recalculer.",
        ),
        ReturnCode(
            "10",
            "Engagement inconnu",
            ("DEL",),
            ERROR,
            "Vérifier le numéro d'engagement envoyé (celui de la réponse au CLC).",
        ),
        ReturnCode(
            "11",
            "Engagement déjà annulé",
            ("DEL",),
            NORMAL,
            "Rien à faire : l'engagement est déjà annulé.",
        ),
        ReturnCode(
            "12",
            "Engagement non annulable (déjà facturé ou délai dépassé)",
            ("DEL",),
            NORMAL,
            "Régulariser par la facturation (avoir) plutôt que par une annulation.",
        ),
        ReturnCode(
            "13",
            "Engagement en cours sur une période qui chevauche ce séjour",
            ("CLC",),
            ERROR,
            "Vérifier les dates du séjour, ou annuler (DEL) l'engagement qui chevauche.",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class CodeDescription:
    """What a page says of any code an establishment received."""

    code: str
    label: str
    #: NORMAL or ERROR.
    kind: str
    #: Who must act: "établissement", "AMC", "relais" or "" (nobody: a normal answer).
    who: str
    action: str


_AMC_CODES = {
    "AMC-REPONSE-ILLISIBLE": "Réponse de l'AMC illisible (XML tronqué ou mal formé)",
    "SOAP-SERVER": "Erreur technique de l'AMC (faute SOAP serveur)",
    "SOAP-CLIENT": "Demande refusée comme invalide par l'AMC (faute SOAP client)",
}
_RELAY_FAULT = re.compile(r"RPN-(?P<status>[45]\d\d)-[A-Z0-9-]+")
#: Relay faults that are not the establishment's although their status is 4xx, or that are
#: the relay's own failure although 5xx.
_RELAY_SIDE = {"RPN-500-INTERNE", "RPN-503-ANNUAIRE", "RPN-503-ARRET", "RPN-503-ARRET-COUPE"}
_RELAY_ACTION_ESTABLISHMENT = (
    "Corriger la demande selon le message de la faute du relais, qui nomme le champ ou la "
    "règle (docs/errors.md, « que faire » de chaque code)."
)
_RELAY_ACTION_OTHERS = (
    "Rien à corriger dans la demande ; renvoyer plus tard selon le message de la faute "
    "(docs/errors.md : pour les codes 502 et 504 la demande a pu atteindre l'AMC)."
)


def describe_code(code: str) -> CodeDescription:
    """The French description of *code*: a return code, a relay fault or an AMC fault."""
    known = RETURN_CODES.get(code)
    if known is not None:
        who = "" if known.kind == NORMAL else "établissement"
        return CodeDescription(code, known.label, known.kind, who, known.action)
    relay = _RELAY_FAULT.fullmatch(code)
    if relay is not None:
        status = relay["status"]
        if status.startswith("4") and code not in _RELAY_SIDE:
            label = f"Demande refusée par le relais (HTTP {status})"
            return CodeDescription(code, label, ERROR, "établissement", _RELAY_ACTION_ESTABLISHMENT)
        who = "relais" if code in _RELAY_SIDE else "relais ou AMC"
        label = f"Échange non abouti, signalé par le relais (HTTP {status})"
        return CodeDescription(code, label, ERROR, who, _RELAY_ACTION_OTHERS)
    if code.startswith("MUT-400-") or code == "SOAP-CLIENT":
        return CodeDescription(
            code,
            _AMC_CODES.get(code, "Demande refusée comme invalide par l'AMC"),
            ERROR,
            "établissement",
            "Corriger la demande selon le message de la faute de l'AMC (le champ est nommé).",
        )
    if code.startswith("HTTP-"):
        label = f"L'AMC a répondu une erreur HTTP {code[5:]} sans faute SOAP"
    else:
        label = _AMC_CODES.get(code, "Erreur technique de l'AMC")
    return CodeDescription(
        code,
        label,
        ERROR,
        "AMC",
        "Rien à corriger dans la demande ; renvoyer plus tard. Si cela dure, l'agence suit "
        "l'AMC (santé des AMC).",
    )
