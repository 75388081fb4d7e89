"""The relay's own error codes: one stable code, one HTTP status and one message each.

Business answers from an AMC are never relay errors; these are what the relay says when it
cannot (or must not) deliver an exchange. The table is rendered into docs/errors.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    code: str
    http_status: int
    #: SOAP fault role: "Client" (the sender must change its request) or "Server".
    fault_role: str
    message: str
    #: Whether the sender may send the same exchange again later unchanged.
    retryable: bool


class SpecEnum(Enum):
    """An enum of error specs (anything with ``code`` and ``http_status``), read through."""

    @property
    def code(self) -> str:
        code: str = self.value.code
        return code

    @property
    def http_status(self) -> int:
        status: int = self.value.http_status
        return status


class RpnError(SpecEnum):
    """Every fault the relay can answer with. Codes are stable: clients may match on them."""

    ROUTING_UNREADABLE = ErrorSpec(
        "RPN-400-ROUTAGE",
        400,
        "Client",
        "The routing block in the SOAP header is missing, incomplete or invalid.",
        False,
    )
    XML_FORBIDDEN = ErrorSpec(
        "RPN-400-XML",
        400,
        "Client",
        "The message is not well-formed XML, or uses a DTD or entities, which are refused.",
        False,
    )
    ROUTING_CONTRADICTORY = ErrorSpec(
        "RPN-400-INCOHERENT",
        400,
        "Client",
        "The SOAPAction header and the routing block name different services.",
        False,
    )
    AMC_UNKNOWN = ErrorSpec(
        "RPN-400-AMC-INCONNUE",
        400,
        "Client",
        "No AMC matches these routing identifiers in the AMC directory.",
        False,
    )
    SERVICE_NOT_OFFERED = ErrorSpec(
        "RPN-400-SERVICE-NON-OFFERT",
        400,
        "Client",
        "The AMC does not offer this service, or not in this ROC version.",
        False,
    )
    DRE_NOT_RELAYED = ErrorSpec(
        "RPN-400-DRE",
        400,
        "Client",
        "DRE-ES invoices are not relayed by the RPN: send them through the billing channel.",
        False,
    )
    CONTENT_TYPE = ErrorSpec(
        "RPN-415-TYPE",
        415,
        "Client",
        "The request must be SOAP: Content-Type text/xml or application/soap+xml.",
        False,
    )
    SENDER_NOT_REGISTERED = ErrorSpec(
        "RPN-403-NON-INSCRIT",
        403,
        "Client",
        "The establishment of the client certificate is not registered with the relay.",
        False,
    )
    SENDER_MISMATCH = ErrorSpec(
        "RPN-403-EMETTEUR",
        403,
        "Client",
        "The sender named in the message is not the establishment of the client certificate.",
        False,
    )
    NOT_FOUND = ErrorSpec(
        "RPN-404-CHEMIN", 404, "Client", "No ROC service is published at this path.", False
    )
    METHOD_NOT_ALLOWED = ErrorSpec(
        "RPN-405-METHODE", 405, "Client", "ROC services accept POST only.", False
    )
    HTTP_MALFORMED = ErrorSpec(
        "RPN-400-HTTP",
        400,
        "Client",
        "The HTTP request is malformed (request line, header field, length or transfer coding);"
        " the connection is closed.",
        False,
    )
    HEADERS_TOO_LARGE = ErrorSpec(
        "RPN-431-ENTETES",
        431,
        "Client",
        "The request's header fields are too large or too many; the connection is closed.",
        False,
    )
    BODY_TOO_LARGE = ErrorSpec(
        "RPN-413-TAILLE", 413, "Client", "The message is larger than the relay accepts.", False
    )
    REQUEST_TIMEOUT = ErrorSpec(
        "RPN-408-LECTURE",
        408,
        "Client",
        "The request was not received in time; the connection is closed.",
        True,
    )
    RATE_LIMITED = ErrorSpec(
        "RPN-429-DEBIT",
        429,
        "Client",
        "Too many exchanges from this establishment at once; retry later.",
        True,
    )
    INTERNAL = ErrorSpec(
        "RPN-500-INTERNE",
        500,
        "Server",
        "The relay failed unexpectedly; the exchange may not have been delivered.",
        False,
    )
    AMC_BAD_ANSWER = ErrorSpec(
        "RPN-502-AMC-REPONSE",
        502,
        "Server",
        "The AMC's answer was cut or unreadable; the exchange may have reached the AMC.",
        False,
    )
    AMC_TLS = ErrorSpec(
        "RPN-502-AMC-TLS",
        502,
        "Server",
        "The secure connection to the AMC failed (certificate not trusted, wrong name or expired).",
        True,
    )
    AMC_UNAVAILABLE = ErrorSpec(
        "RPN-503-AMC-INDISPONIBLE",
        503,
        "Server",
        "The AMC cannot be reached right now; the exchange was not delivered.",
        True,
    )
    AMC_CIRCUIT_OPEN = ErrorSpec(
        "RPN-503-AMC-SUSPENDUE",
        503,
        "Server",
        "The AMC is failing and traffic to it is paused; the exchange was not delivered.",
        True,
    )
    OVERLOADED = ErrorSpec(
        "RPN-503-SURCHARGE",
        503,
        "Server",
        "Too many exchanges are waiting for this AMC; the exchange was not delivered.",
        True,
    )
    ANNUAIRE_UNAVAILABLE = ErrorSpec(
        "RPN-503-ANNUAIRE",
        503,
        "Server",
        "The AMC directory cannot be reached and this AMC is not in the relay's cache.",
        True,
    )
    SHUTTING_DOWN = ErrorSpec(
        "RPN-503-ARRET",
        503,
        "Server",
        "The relay is stopping; the exchange was not delivered.",
        True,
    )
    CUT_BY_SHUTDOWN = ErrorSpec(
        "RPN-503-ARRET-COUPE",
        503,
        "Server",
        "The relay stopped before the AMC answered; the exchange may have reached the AMC.",
        False,
    )
    AMC_TIMEOUT = ErrorSpec(
        "RPN-504-AMC-DELAI",
        504,
        "Server",
        "The AMC did not answer in time; the exchange may have reached the AMC.",
        False,
    )

    @property
    def spec(self) -> ErrorSpec:
        return self.value


class RpnFailure(Exception):
    """An exchange the relay refuses or cannot deliver; *detail* is safe to show and log.

    *detail* must never contain personal data: name fields, not their values.
    """

    def __init__(self, error: RpnError, detail: str = "") -> None:
        super().__init__(f"{error.code}: {detail or error.spec.message}")
        self.error = error
        self.detail = detail
