"""Building ROC messages of the project's model: the envelope and its routing block.

Used by the demo, the tests and publishers' scripts; the relay itself never builds messages.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from roc.model import ROUTING_NS, SOAP11_NS, SOAP12_NS, SoapVersion


@dataclass(frozen=True, slots=True)
class Routing:
    """The routing block's values (see docs/roc-model.md)."""

    service: str
    amc_number: str
    sender_finess_legal: str
    sender_finess_site: str
    version: str = "V1"
    convention_type: str = "TP"
    secondary_criterion: str = "01"
    exchange_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def routing_header(r: Routing) -> str:
    return (
        f'<rt:Routage xmlns:rt="{ROUTING_NS}">'
        f"<rt:Service>{escape(r.service)}</rt:Service>"
        f"<rt:VersionROC>{escape(r.version)}</rt:VersionROC>"
        f"<rt:AMC><rt:Numero>{escape(r.amc_number)}</rt:Numero>"
        f"<rt:TypeConvention>{escape(r.convention_type)}</rt:TypeConvention>"
        f"<rt:CritereSecondaire>{escape(r.secondary_criterion)}</rt:CritereSecondaire></rt:AMC>"
        f"<rt:Emetteur><rt:FinessJuridique>{escape(r.sender_finess_legal)}</rt:FinessJuridique>"
        f"<rt:FinessGeographique>{escape(r.sender_finess_site)}</rt:FinessGeographique>"
        f"</rt:Emetteur>"
        f"<rt:IdentifiantEchange>{escape(r.exchange_id)}</rt:IdentifiantEchange>"
        f"</rt:Routage>"
    )


def envelope(routing: Routing, body: str, version: SoapVersion = SoapVersion.SOAP11) -> bytes:
    """A complete SOAP envelope: the routing block in the header, *body* (XML) in the body."""
    ns = SOAP12_NS if version is SoapVersion.SOAP12 else SOAP11_NS
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soap:Envelope xmlns:soap="{ns}">'
        f"<soap:Header>{routing_header(routing)}</soap:Header>"
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()
