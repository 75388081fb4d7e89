"""Technical faults the simulator plays on demand: what goes wrong on the wire, not in the rules.

A fault is reached like any case, by a fictitious beneficiary (``IDB_KO_MCO_FAUTE_*`` in the
catalogue), or switched on for a whole sandbox through the admin API. The Twisted resource
(``mutuelle.server``) carries them out; this module only names them and builds the bytes.
"""

from __future__ import annotations

from enum import Enum


class TechnicalFault(Enum):
    """How an answer goes wrong. Values are the stable names used by the admin API."""

    TIMEOUT = "DELAI_DEPASSE"
    RESET = "CONNEXION_COUPEE"
    TRUNCATED = "XML_TRONQUE"
    WRONG_NAMESPACE = "MAUVAIS_NAMESPACE"
    HTTP_500 = "HTTP_500"
    HTTP_503 = "HTTP_503"
    SOAP_FAULT = "SOAP_FAULT"
    LATE = "REPONSE_TARDIVE"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]

    @property
    def processed(self) -> bool:
        """Whether the AMC processed the request before the fault (its state changed)."""
        return self in _PROCESSED


_DESCRIPTIONS = {
    TechnicalFault.TIMEOUT: (
        "No answer before `faults.timeout_delay` seconds (default 65 s), longer than a "
        "client's timeout; then the connection is closed without an answer."
    ),
    TechnicalFault.RESET: (
        "HTTP 200 headers and the first bytes of the answer, then the TCP connection is "
        "aborted mid-answer."
    ),
    TechnicalFault.TRUNCATED: (
        "HTTP 200 with a complete HTTP message whose XML stops half-way (not well-formed)."
    ),
    TechnicalFault.WRONG_NAMESPACE: (
        "HTTP 200 with the normal answer, but its body element in namespace "
        "`urn:piano:roc:autre:v0` instead of the service's."
    ),
    TechnicalFault.HTTP_500: "HTTP 500 with an HTML error page (not SOAP), as a crashed server.",
    TechnicalFault.HTTP_503: (
        "HTTP 503 with `Retry-After: 30` and an HTML page, as an AMC in maintenance."
    ),
    TechnicalFault.SOAP_FAULT: (
        "HTTP 500 with a SOAP Fault `MUT-500-SIMULE` (soap:Server) in the request's SOAP version."
    ),
    TechnicalFault.LATE: (
        "The normal answer, after `faults.late_delay` seconds (default 3 s): slow but within "
        "a usual timeout."
    ),
}

#: Faults on the way back: the request was processed, the answer is lost, late or garbled.
_PROCESSED = frozenset(
    {
        TechnicalFault.TIMEOUT,
        TechnicalFault.RESET,
        TechnicalFault.TRUNCATED,
        TechnicalFault.WRONG_NAMESPACE,
        TechnicalFault.LATE,
    }
)

#: Namespace the WRONG_NAMESPACE fault puts the answer's body element in.
WRONG_NAMESPACE = "urn:piano:roc:autre:v0"

HTTP_500_PAGE = (
    b"<html><head><title>500 Internal Server Error</title></head>"
    b"<body><h1>Internal Server Error</h1></body></html>\n"
)
HTTP_503_PAGE = (
    b"<html><head><title>503 Service Unavailable</title></head>"
    b"<body><h1>Service Unavailable</h1><p>Maintenance en cours.</p></body></html>\n"
)


def by_name(name: str) -> TechnicalFault | None:
    """The fault called *name* (``HTTP_503``), or None."""
    for fault in TechnicalFault:
        if fault.value == name:
            return fault
    return None


def with_wrong_namespace(document: bytes, namespace: str) -> bytes:
    """*document* with the service namespace replaced by ``WRONG_NAMESPACE``."""
    return document.replace(namespace.encode(), WRONG_NAMESPACE.encode())


def truncated(document: bytes) -> bytes:
    """The first half of *document*: an XML answer that stops in the middle."""
    return document[: max(1, len(document) // 2)]
