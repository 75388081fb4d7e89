"""How each exchange ended, decided in one place from what was received (pure logic).

An outcome says who must act: the establishment (its request was refused or invalid), the
AMC (it failed), the relay (a bug), or nobody (a business answer, a client that hung up). The
AMC's answer is classified by reading it (a bounded parse of the whole document, not a search
for a pattern), so that a cut or garbled answer is never counted as a success, and an AMC's
SOAP Fault is split between "your request is invalid" and "the AMC failed".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from lxml import etree

from roc.model import SOAP11_NS, SOAP12_NS
from roc.xmlsafe import has_dtd, safe_parser
from rpn.errors import RpnError

__all__ = [
    "OUTCOMES",
    "AnswerVerdict",
    "Outcome",
    "classify_answer",
    "outcome_of_error",
]


class Who(Enum):
    ESTABLISHMENT = "establishment"
    AMC = "amc"
    RELAY = "relay"
    NOBODY = "nobody"


class Outcome(Enum):
    """Every way an exchange ends: a closed set, so metric labels stay bounded."""

    #: The AMC answered with business code 00.
    OK = ("ok", Who.NOBODY)
    #: The AMC answered with another business code (a normal business answer).
    REFUSED = ("refused", Who.NOBODY)
    #: The AMC refused the request as invalid (a SOAP Client/Sender fault).
    INVALID_REQUEST = ("invalid_request", Who.ESTABLISHMENT)
    #: The AMC answered a technical failure: a SOAP Server fault, an HTTP error, an answer
    #: that is not well-formed or has no return code.
    AMC_FAULT = ("amc_fault", Who.AMC)
    #: The relay refused the request (an RPN-4xx fault).
    REJECTED = ("rejected", Who.ESTABLISHMENT)
    #: The AMC's answer was cut or reset, or its TLS failed.
    AMC_ERROR = ("amc_error", Who.AMC)
    #: The AMC could not be reached; nothing was sent.
    AMC_UNAVAILABLE = ("amc_unavailable", Who.AMC)
    #: The AMC's breaker is open; nothing was sent.
    BREAKER_OPEN = ("breaker_open", Who.AMC)
    #: Too many exchanges wait for the AMC; nothing was sent.
    OVERLOADED = ("overloaded", Who.AMC)
    #: The AMC did not answer before the deadline.
    TIMEOUT = ("timeout", Who.AMC)
    #: The annuaire could not say where the AMC is.
    ANNUAIRE_UNAVAILABLE = ("annuaire_unavailable", Who.RELAY)
    #: The establishment hung up before the answer.
    CLIENT_GONE = ("client_gone", Who.NOBODY)
    #: The relay stopped (end of its drain time) before the AMC answered.
    CUT_BY_SHUTDOWN = ("cut_by_shutdown", Who.RELAY)
    #: The relay failed (a bug: see its log).
    RELAY_ERROR = ("relay_error", Who.RELAY)

    def __init__(self, label: str, who: Who) -> None:
        self.label = label
        self.who = who


#: The outcome labels, in the order above (the ``outcome`` label of the metrics).
OUTCOMES = tuple(outcome.label for outcome in Outcome)

_BY_ERROR = {
    RpnError.AMC_BAD_ANSWER: Outcome.AMC_ERROR,
    RpnError.AMC_TLS: Outcome.AMC_ERROR,
    RpnError.AMC_UNAVAILABLE: Outcome.AMC_UNAVAILABLE,
    RpnError.AMC_CIRCUIT_OPEN: Outcome.BREAKER_OPEN,
    RpnError.OVERLOADED: Outcome.OVERLOADED,
    RpnError.AMC_TIMEOUT: Outcome.TIMEOUT,
    RpnError.CUT_BY_SHUTDOWN: Outcome.CUT_BY_SHUTDOWN,
    RpnError.ANNUAIRE_UNAVAILABLE: Outcome.ANNUAIRE_UNAVAILABLE,
    RpnError.INTERNAL: Outcome.RELAY_ERROR,
    # The relay stopping before it read the request: not the establishment's doing.
    RpnError.SHUTTING_DOWN: Outcome.CUT_BY_SHUTDOWN,
}


def outcome_of_error(error: RpnError) -> Outcome:
    """The outcome of an exchange the relay answered with *error*'s fault."""
    return _BY_ERROR.get(error, Outcome.REJECTED)


#: Code of an answer that is not a well-formed SOAP message or has no return code.
UNREADABLE = "AMC-REPONSE-ILLISIBLE"
_CODE = re.compile(r"[0-9A-Za-z][0-9A-Za-z_.:-]{0,39}")
_BUSINESS_CODE = re.compile(r"[0-9A-Za-z]{1,4}")
#: Envelope tag -> (namespace, Body tag, Fault tag) of each SOAP version.
_SOAP_TAGS = {
    f"{{{ns}}}Envelope": (ns, f"{{{ns}}}Body", f"{{{ns}}}Fault") for ns in (SOAP11_NS, SOAP12_NS)
}


@dataclass(frozen=True, slots=True)
class AnswerVerdict:
    """What an AMC's answer says: its outcome, and the code that explains it.

    ``business_code`` is the answer's return code (``CodeRetour``) when it is a business
    answer; ``amc_code`` the AMC's fault code otherwise: the code its SOAP Fault detail
    names, ``SOAP-CLIENT``/``SOAP-SERVER`` when it names none, ``HTTP-<status>`` for a
    non-SOAP HTTP error, ``AMC-REPONSE-ILLISIBLE`` for a 200 answer that cannot be read.
    """

    outcome: Outcome
    business_code: str = ""
    amc_code: str = ""

    @property
    def code(self) -> str:
        return self.business_code or self.amc_code


#: The verdict on a business answer with code 00 (the most frequent by far).
_OK = AnswerVerdict(Outcome.OK, business_code="00")


def _local(tag: object) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _unreadable(status: int) -> AnswerVerdict:
    return AnswerVerdict(
        Outcome.AMC_FAULT, amc_code=UNREADABLE if status == 200 else f"HTTP-{status}"
    )


#: One parser for every answer (the reactor thread is the only one parsing answers): it
#: resolves nothing, loads nothing and refuses huge trees.
_PARSER = safe_parser()


def classify_answer(status: int, body: bytes) -> AnswerVerdict:
    """The verdict on an AMC's answer (*status*, *body*), from a parse of the whole body.

    Business OK only from a well-formed SOAP envelope whose Body holds a response with a
    return code, and an HTTP 200. A DTD is refused before parsing; without one, any entity
    but the five predefined ones is a well-formedness error, so nothing is ever expanded.
    The body's size is bounded by the relay's ``http.max_response_bytes``.
    """
    if has_dtd(body):
        return _unreadable(status)
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        return _unreadable(status)
    tags = _SOAP_TAGS.get(root.tag) if isinstance(root.tag, str) else None
    if tags is None:
        return _unreadable(status)
    ns, body_tag, fault_tag = tags
    # The Envelope's first Body child, then the Body's first element (comments and processing
    # instructions skipped); tag filters run in lxml, without a proxy per node skipped.
    soap_body = next(root.iterchildren(body_tag), None)
    content = next(soap_body.iterchildren(etree.Element), None) if soap_body is not None else None
    if content is None:
        return _unreadable(status)
    if content.tag == fault_tag:
        return _fault_verdict(content, ns)
    # The first CodeRetour child, in any namespace or none.
    returned = next(content.iterchildren("{*}CodeRetour"), None)
    code = (returned.text or "").strip() if returned is not None else ""
    if status == 200:
        if code == "00":
            return _OK
        if _BUSINESS_CODE.fullmatch(code):
            return AnswerVerdict(Outcome.REFUSED, business_code=code)
    return _unreadable(status)


def _fault_verdict(fault: etree._Element, ns: str) -> AnswerVerdict:
    if ns == SOAP11_NS:
        role = (fault.findtext("faultcode") or "").strip().rpartition(":")[2]
        client = role.split(".", 1)[0] == "Client"
        detail = fault.find("detail")
    else:
        role = (fault.findtext(f"{{{ns}}}Code/{{{ns}}}Value") or "").strip().rpartition(":")[2]
        client = role == "Sender"
        detail = fault.find(f"{{{ns}}}Detail")
    code = ""
    if detail is not None:
        for node in detail.iter():
            if _local(node.tag) == "Code":
                text = (node.text or "").strip()
                if _CODE.fullmatch(text):
                    code = text
                    break
    if client:
        return AnswerVerdict(Outcome.INVALID_REQUEST, amc_code=code or "SOAP-CLIENT")
    return AnswerVerdict(Outcome.AMC_FAULT, amc_code=code or "SOAP-SERVER")
