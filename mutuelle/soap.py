"""SOAP envelopes for the simulator: read a request, its routing block, and write answers.

Pure: bytes and header values in, elements or a ``MutuelleFault`` out. The routing block is
read from the parsed document with the project model's default paths (docs/roc-model.md);
the relay reads the same block with its own bounded streaming parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from mutuelle.faults import MutuelleError, MutuelleFault
from mutuelle.wording import xml_reason
from roc.model import (
    ROUTING_NS,
    SOAP11_NS,
    SOAP12_NS,
    RoutingKey,
    Service,
    SoapVersion,
    soap_action,
)
from roc.routing import RoutingProblem, block_texts, routing_key_from_block
from roc.xmlsafe import MalformedXml, UnsafeXml, parse_document

_ENVELOPE_NS = {SOAP11_NS: SoapVersion.SOAP11, SOAP12_NS: SoapVersion.SOAP12}
_MEDIA_TYPES = {"text/xml": SoapVersion.SOAP11, "application/soap+xml": SoapVersion.SOAP12}
_ACTION_PARAM = re.compile(r'(?:^|;)\s*action\s*=\s*"?([^";]*)"?', re.IGNORECASE)


XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


@dataclass(frozen=True, slots=True)
class SoapRequest:
    """A parsed SOAP request: its version, the header element if any, and the body's child."""

    version: SoapVersion
    header: etree._Element | None
    body: etree._Element


def soap_version_of_content_type(content_type: str | None) -> SoapVersion | None:
    """The SOAP version a Content-Type announces, None when it is not a SOAP media type."""
    if not content_type:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    return _MEDIA_TYPES.get(media_type)


def action_of(content_type: str | None, soap_action_header: str | None) -> str | None:
    """The SOAP action the client announced (SOAPAction header, or SOAP 1.2 action=)."""
    if soap_action_header is not None:
        action = soap_action_header.strip().strip('"').strip()
        return action or None
    if content_type:
        match = _ACTION_PARAM.search(content_type)
        if match and match.group(1).strip():
            return match.group(1).strip()
    return None


def read_envelope(data: bytes, max_bytes: int) -> SoapRequest:
    """The envelope in *data*; faults name the broken rule, never the content."""
    try:
        root = parse_document(data, max_bytes=max_bytes)
    except UnsafeXml as exc:
        raise MutuelleFault(MutuelleError.XML_FORBIDDEN, xml_reason(str(exc))) from None
    except MalformedXml as exc:
        raise MutuelleFault(MutuelleError.XML_FORBIDDEN, xml_reason(str(exc))) from None
    namespace = etree.QName(root).namespace
    version = _ENVELOPE_NS.get(namespace or "")
    if version is None or etree.QName(root).localname != "Envelope":
        raise MutuelleFault(MutuelleError.NOT_SOAP, "l'élément racine n'est pas une Envelope SOAP")
    children = _elements(root)
    header: etree._Element | None = None
    if children and children[0].tag == f"{{{namespace}}}Header":
        header = children.pop(0)
    if len(children) != 1 or children[0].tag != f"{{{namespace}}}Body":
        raise MutuelleFault(
            MutuelleError.NOT_SOAP, "l'Envelope contient un Header facultatif et un Body"
        )
    payload = _elements(children[0])
    if len(payload) != 1:
        raise MutuelleFault(MutuelleError.NOT_SOAP, "le Body contient exactement un élément")
    return SoapRequest(version, header, payload[0])


def _elements(parent: etree._Element) -> list[etree._Element]:
    return [child for child in parent if isinstance(child.tag, str)]


def read_routing(request: SoapRequest) -> RoutingKey:
    """The routing block of *request*, checked field by field by the relay's own rules."""
    element = None if request.header is None else request.header.find(f"{{{ROUTING_NS}}}Routage")
    if element is None:
        raise MutuelleFault(
            MutuelleError.ROUTING_INVALID, "pas de bloc Routage dans le Header SOAP"
        )
    try:
        return routing_key_from_block(block_texts(element), request.version)
    except RoutingProblem as problem:
        raise MutuelleFault(MutuelleError.ROUTING_INVALID, problem.reason.fr) from None


def envelope(
    body: etree._Element,
    version: SoapVersion,
    headers: Iterable[etree._Element] = (),
    pretty: bool = False,
) -> bytes:
    """A complete SOAP document in *version* holding *body* (and *headers*, if any)."""
    soap_ns = SOAP12_NS if version is SoapVersion.SOAP12 else SOAP11_NS
    root = etree.Element(f"{{{soap_ns}}}Envelope", nsmap={"soap": soap_ns})
    header_elements = list(headers)
    if header_elements:
        header = etree.SubElement(root, f"{{{soap_ns}}}Header")
        header.extend(header_elements)
    etree.SubElement(root, f"{{{soap_ns}}}Body").append(body)
    return XML_DECLARATION + etree.tostring(root, encoding="UTF-8", pretty_print=pretty)


def request_headers(service: Service, version: SoapVersion) -> dict[str, str]:
    """HTTP headers a client sends with a *service* request in SOAP *version*."""
    action = soap_action(service)
    if version is SoapVersion.SOAP12:
        return {"Content-Type": f'application/soap+xml; charset=utf-8; action="{action}"'}
    return {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
