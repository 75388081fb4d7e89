"""The relay and Mutuelle ANS read one routing block by one set of rules (``roc.routing``).

The relay reads the block with its bounded streaming parser, the simulator from the parsed
document; both hand the texts to ``roc.routing.routing_key_from_fields``. Each mutation of a
valid block below must be accepted by both with the same key, or refused by both naming the
same field and the same rule.
"""

from __future__ import annotations

import pytest
from lxml import etree

from mutuelle.faults import MutuelleFault
from mutuelle.soap import envelope, read_envelope, read_routing
from roc.model import ROUTING_NS, AmcKey, RocVersion, RoutingKey, Service, SoapVersion
from roc.routing import routing_block
from rpn.errors import RpnFailure
from rpn.routing import RequestView, SoapHeaderExtractor

KEY = RoutingKey(
    service=Service.IDB,
    roc_version=RocVersion.V2,
    amc=AmcKey("990000101", "RO", "01"),
    sender_finess_legal="750000010",
    sender_finess_site="750000028",
    exchange_id="EX-1",
)
RT = f"{{{ROUTING_NS}}}"


def _document(edit: str, value: str | None) -> bytes:
    """A valid IDB envelope whose routing block has *edit* (a path) set to *value*, or removed
    when *value* is None."""
    block = routing_block(KEY)
    if edit:
        node = block.find("/".join(RT + name for name in edit.split("/")))
        assert node is not None, edit
        if value is None:
            parent = node.getparent()
            assert parent is not None
            parent.remove(node)
        else:
            node.text = value
    body = etree.Element("{urn:test}Demande")
    return envelope(body, SoapVersion.SOAP11, [block])


def _relay(document: bytes) -> RoutingKey | str:
    try:
        return SoapHeaderExtractor().extract(
            RequestView("/roc/IDB", {"content-type": "text/xml"}, document)
        )
    except RpnFailure as failure:
        return failure.detail_fr


def _mutuelle(document: bytes) -> RoutingKey | str:
    try:
        return read_routing(read_envelope(document, 1 << 20))
    except MutuelleFault as fault:
        return fault.detail


MUTATIONS = [
    ("", ""),
    ("Service", "XYZ"),
    ("Service", None),
    ("VersionROC", "V3"),
    ("VersionROC", " "),
    ("AMC/Numero", "99000010"),
    ("AMC/TypeConvention", "toolong"),
    ("AMC/TypeConvention", None),
    ("AMC/CritereSecondaire", None),
    ("AMC/CritereSecondaire", ""),
    ("AMC/CritereSecondaire", "ABCDEFGHIJK"),
    ("Emetteur/FinessJuridique", "750000011"),
    ("Emetteur/FinessGeographique", None),
    ("Emetteur/FinessGeographique", "2A0000001"),
    ("IdentifiantEchange", "a b"),
    ("IdentifiantEchange", None),
]


@pytest.mark.parametrize(("path", "value"), MUTATIONS)
def test_both_ends_agree_on_every_field_rule(path: str, value: str | None) -> None:
    document = _document(path, value)
    relay, mutuelle = _relay(document), _mutuelle(document)
    if isinstance(relay, RoutingKey):
        assert mutuelle == relay
        return
    assert isinstance(mutuelle, str), f"the relay refused ({relay}), the simulator accepted"
    field, _, rule = relay.partition(" : ")
    assert mutuelle == f"Routage/{field} : {rule}"


def test_a_missing_secondary_criterion_is_an_empty_one_at_both_ends() -> None:
    document = _document("AMC/CritereSecondaire", None)
    key = _mutuelle(document)
    assert isinstance(key, RoutingKey) and key.amc.secondary_criterion == ""
    assert _relay(document) == key


def test_the_built_block_reads_back_as_its_key() -> None:
    document = _document("", "")
    assert _relay(document) == KEY == _mutuelle(document)
