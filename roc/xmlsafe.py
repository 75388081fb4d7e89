"""Parsing whole XML documents safely: no DTD, no entities, no network, bounded size."""

from __future__ import annotations

import re

from lxml import etree

#: A DOCTYPE or an entity declaration anywhere before the root element is refused outright.
_DTD = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)


class UnsafeXml(ValueError):
    """The document uses a DTD or entities."""


class MalformedXml(ValueError):
    """The document is not well-formed, or too large."""


def has_dtd(data: bytes) -> bool:
    """Whether *data* holds a DOCTYPE or an entity declaration (refused before any parse)."""
    return _DTD.search(data) is not None


def safe_parser() -> etree.XMLParser:
    """An lxml parser that resolves nothing, loads nothing and refuses huge trees."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
    )


def parse_document(data: bytes, max_bytes: int = 1 << 20) -> etree._Element:
    """The root element of *data*, refusing DTDs, entities and documents over *max_bytes*.

    Error messages describe the problem, never the document's content.
    """
    if len(data) > max_bytes:
        raise MalformedXml(f"document larger than {max_bytes} bytes")
    if _DTD.search(data):
        raise UnsafeXml("DTD and entity declarations are refused")
    try:
        root = etree.fromstring(data, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        # lxml's message names a line and column and the broken rule, not the content.
        raise MalformedXml(f"not well-formed XML: {exc.msg}") from None
    for node in root.iter():
        if isinstance(node, etree._Entity):
            raise UnsafeXml("entity references are refused")
    return root
