"""Building ROC messages of the project's model: the envelope and its routing block.

Used by the demo, the tests and publishers' scripts; the relay itself never builds messages.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from lxml import etree

from roc.model import SOAP11_NS, SOAP12_NS, SoapVersion
from roc.routing import routing_block_of_texts


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
    """The routing block of *r*, as XML text (built by ``roc.routing``, the one builder)."""
    block = routing_block_of_texts(
        {
            "service": r.service,
            "roc_version": r.version,
            "amc_number": r.amc_number,
            "convention_type": r.convention_type,
            "secondary_criterion": r.secondary_criterion,
            "sender_finess_legal": r.sender_finess_legal,
            "sender_finess_site": r.sender_finess_site,
            "exchange_id": r.exchange_id,
        }
    )
    return etree.tostring(block, encoding="unicode")


def envelope(routing: Routing, body: str, version: SoapVersion = SoapVersion.SOAP11) -> bytes:
    """A complete SOAP envelope: the routing block in the header, *body* (XML) in the body."""
    ns = SOAP12_NS if version is SoapVersion.SOAP12 else SOAP11_NS
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<soap:Envelope xmlns:soap="{ns}">'
        f"<soap:Header>{routing_header(routing)}</soap:Header>"
        f"<soap:Body>{body}</soap:Body></soap:Envelope>"
    ).encode()
