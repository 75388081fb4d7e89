"""Reading the routing key of a request: what is accepted, and how each refusal is answered."""

from __future__ import annotations

import errno
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from lxml import etree
from twisted.plugin import IPlugin
from twisted.python.filepath import FilePath
from zope.interface.verify import verifyObject

import twisted.plugins
from roc.identifiers import make_nir
from roc.model import (
    ROUTING_NS,
    SOAP11_NS,
    SOAP12_NS,
    AmcKey,
    RocVersion,
    RoutingKey,
    Service,
    SoapVersion,
)
from roc.routing import DEFAULT_SOAP_PATHS
from rpn import _soapshape
from rpn._soapheader import _Walk
from rpn.errors import RpnError, RpnFailure
from rpn.interfaces import IRoutingExtractor, IRoutingPolicy
from rpn.routing import (
    HttpHeaderExtractor,
    RequestView,
    SoapHeaderExtractor,
    UrlPathExtractor,
    build_extractor,
    routing_policies,
)

REPO = Path(__file__).resolve().parents[2]
#: A fictitious beneficiary: born abroad (99), unassigned country 999.
NIR = make_nir("1850799999001")
VALID = {
    "service": "IDB",
    "roc_version": "V1",
    "amc_number": "990000101",
    "convention_type": "TP",
    "secondary_criterion": "01",
    "sender_finess_legal": "990000010",
    "sender_finess_site": "990000028",
    "exchange_id": "6f1c2a0e-9b1d-4c1e.a:1_2",
}
EXPECTED = RoutingKey(
    service=Service.IDB,
    roc_version=RocVersion.V1,
    amc=AmcKey("990000101", "TP", "01"),
    sender_finess_legal="990000010",
    sender_finess_site="990000028",
    exchange_id="6f1c2a0e-9b1d-4c1e.a:1_2",
    soap_version=SoapVersion.SOAP11,
)
BODY = f'<soap:Body><d:DemandeIDB xmlns:d="urn:piano:roc:idb:v1"><d:NIR>{NIR}</d:NIR>'
BODY += "</d:DemandeIDB></soap:Body>"
#: The element below the routing block that holds each field, by default.
ELEMENT = {key: path.rsplit("/", 1)[-1] for key, path in DEFAULT_SOAP_PATHS.items()}


def routage(values: Mapping[str, str | None] = VALID, prefix: str = "rt") -> str:
    """A routing block; a value of None leaves its element out."""
    p = f"{prefix}:" if prefix else ""
    xmlns = f"xmlns:{prefix}" if prefix else "xmlns"

    def element(key: str) -> str:
        value = values.get(key)
        return "" if value is None else f"<{p}{ELEMENT[key]}>{value}</{p}{ELEMENT[key]}>"

    return (
        f'<{p}Routage {xmlns}="{ROUTING_NS}">'
        + element("service")
        + element("roc_version")
        + f"<{p}AMC>"
        + element("amc_number")
        + element("convention_type")
        + element("secondary_criterion")
        + f"</{p}AMC><{p}Emetteur>"
        + element("sender_finess_legal")
        + element("sender_finess_site")
        + f"</{p}Emetteur>"
        + element("exchange_id")
        + f"</{p}Routage>"
    )


def envelope(
    header: str | None = None,
    body: str = BODY,
    ns: str = SOAP11_NS,
    prefix: str = "soap",
    prolog: str = '<?xml version="1.0" encoding="UTF-8"?>\n',
) -> bytes:
    """A SOAP message whose header holds *header* (a default routing block when None)."""
    header = routage() if header is None else header
    body = body.replace("soap:", f"{prefix}:")
    return (
        f'{prolog}<{prefix}:Envelope xmlns:{prefix}="{ns}">'
        f"<{prefix}:Header>{header}</{prefix}:Header>{body}</{prefix}:Envelope>"
    ).encode()


def request(
    body: bytes, headers: Mapping[str, str] | None = None, path: str = "/roc"
) -> RequestView:
    return RequestView(path, dict(headers or {}), body)


def extract(body: bytes, headers: Mapping[str, str] | None = None, **options: object) -> RoutingKey:
    return SoapHeaderExtractor(**options).extract(request(body, headers))  # type: ignore[arg-type]


def refusal(body: bytes, headers: Mapping[str, str] | None = None, **options: object) -> RpnFailure:
    with pytest.raises(RpnFailure) as caught:
        extract(body, headers, **options)
    return caught.value


def with_values(**changes: str | None) -> dict[str, str | None]:
    values: dict[str, str | None] = dict(VALID)
    values.update(changes)
    return values


# Accepted shapes.


def test_soap11_message_yields_its_routing_key() -> None:
    assert extract(envelope()) == EXPECTED


def test_soap12_message_is_read_and_answers_in_soap12() -> None:
    key = extract(envelope(ns=SOAP12_NS), {"content-type": "application/soap+xml"})
    assert key.soap_version is SoapVersion.SOAP12
    assert key.amc == EXPECTED.amc


@pytest.mark.parametrize(
    ("soap_prefix", "routing_prefix"),
    [("soap", "rt"), ("SOAP-ENV", "routage"), ("s", ""), ("env", "r0")],
)
def test_any_namespace_prefixes_are_accepted(soap_prefix: str, routing_prefix: str) -> None:
    message = envelope(routage(prefix=routing_prefix), prefix=soap_prefix)
    assert extract(message) == EXPECTED


def test_whitespace_around_field_text_is_stripped() -> None:
    spaced = {key: f"\n\t  {value}  \r\n" for key, value in VALID.items()}
    assert extract(envelope(routage(spaced))) == EXPECTED


def test_pretty_printed_message_with_comments_and_bom_is_read() -> None:
    pretty = textwrap.indent(routage().replace("><", ">\n<"), "    ")
    message = b"\xef\xbb\xbf" + envelope(
        f"<!-- routing -->\n{pretty}\n<?trace on?>",
        prolog='<?xml version="1.0" encoding="UTF-8"?>\n<!-- a client -->\n',
    )
    assert extract(message) == EXPECTED


def test_latin1_message_is_read() -> None:
    message = envelope(
        '<w:Note xmlns:w="urn:w">é</w:Note>' + routage(),
        prolog="<?xml version='1.0' encoding='ISO-8859-1'?>",
    )
    assert extract(message.decode().encode("latin-1")) == EXPECTED


def test_events_of_a_restarted_parse_never_complete_a_routing_key() -> None:
    # lxml ends a parse silently on an undefined entity and the next feed starts a new
    # document; the screens keep such input out, and this is the check behind them.
    reader = SoapHeaderExtractor()._reader
    walk = _Walk(reader)
    interrupted = etree.XMLPullParser(events=("start", "end"))
    interrupted.feed(envelope().split(b"<rt:Routage")[0])
    assert not walk.consume(interrupted.read_events())  # type: ignore[arg-type]
    restarted = etree.XMLPullParser(events=("start", "end"))
    restarted.feed(routage().encode())
    with pytest.raises(RpnFailure) as caught:
        walk.consume(restarted.read_events())  # type: ignore[arg-type]
    assert caught.value.error is RpnError.XML_FORBIDDEN
    assert "interrupted" in caught.value.detail


def test_cdata_and_character_references_in_fields_are_text() -> None:
    values = with_values(service="<![CDATA[IDB]]>", exchange_id="ab&#45;cd&#x2e;1")
    key = extract(envelope(routage(values)))
    assert (key.service, key.exchange_id) == (Service.IDB, "ab-cd.1")


def test_predefined_entities_elsewhere_in_the_header_are_accepted() -> None:
    other = '<w:To xmlns:w="urn:wsa">https://amc.example/roc?a=1&amp;b=&lt;2&gt;&quot;&apos;</w:To>'
    assert extract(envelope(other + routage())) == EXPECTED


def test_the_secondary_criterion_may_be_left_out() -> None:
    key = extract(envelope(routage(with_values(secondary_criterion=None))))
    assert key.amc.secondary_criterion == ""
    assert key.sender_finess == frozenset({"990000010", "990000028"})


def test_an_empty_secondary_criterion_counts_as_absent() -> None:
    key = extract(envelope(routage(with_values(secondary_criterion=""))))
    assert key.amc.secondary_criterion == ""


def test_dre_is_read_so_the_relay_can_refuse_it_precisely() -> None:
    assert extract(envelope(routage(with_values(service="DRE")))).service is Service.DRE


def test_other_header_blocks_and_unknown_routing_elements_are_ignored() -> None:
    security = (
        '<wsse:Security xmlns:wsse="urn:wsse"><wsse:Service>SIM</wsse:Service>'
        "<deep><deeper><Service>CLC</Service></deeper></deep></wsse:Security>"
    )
    block = routage().replace(
        "</rt:Routage>", "<rt:Extension><rt:Service>SIM</rt:Service></rt:Extension></rt:Routage>"
    )
    assert extract(envelope(security + block)) == EXPECTED


def test_configured_paths_are_followed() -> None:
    header = (
        f'<r:Routage xmlns:r="{ROUTING_NS}" xmlns:o="urn:other">'
        "<r:Service>SIM</r:Service><r:VersionROC>V2</r:VersionROC>"
        "<o:Organisme><o:Code>990000101</o:Code></o:Organisme>"
        "<r:AMC><r:TypeConvention>TP</r:TypeConvention></r:AMC>"
        "<r:Site>990000028</r:Site><r:Entite>990000010</r:Entite>"
        "<r:IdentifiantEchange>x1</r:IdentifiantEchange></r:Routage>"
    )
    paths = {
        "amc_number": "{urn:other}Organisme/{urn:other}Code",
        "sender_finess_site": "Site",
        "sender_finess_legal": "Entite",
    }
    key = extract(envelope(header), paths=paths)
    assert key.amc == AmcKey("990000101", "TP", "")
    assert (key.service, key.roc_version, key.sender_finess_site) == (
        Service.SIM,
        RocVersion.V2,
        "990000028",
    )


@pytest.mark.parametrize(
    "headers",
    [
        {"soapaction": '"urn:piano:roc:IDB"'},
        {"soapaction": "urn:piano:roc:IDB"},
        {"soapaction": '""'},
        {"content-type": 'application/soap+xml; charset=utf-8; action="urn:piano:roc:IDB"'},
        {"content-type": "application/soap+xml;action=urn:piano:roc:IDB"},
    ],
)
def test_soap_action_naming_the_same_service_is_accepted(headers: dict[str, str]) -> None:
    assert extract(envelope(), headers).service is Service.IDB


# The body is never parsed.


def test_body_is_never_parsed() -> None:
    garbage = '<soap:Body><unclosed a="&undefined;"><!DOCTYPE x [<!ENTITY e "e">]>&e; \x01'
    message = envelope(body=garbage) + b"\xff\xfe\x00 not xml at all </soap:Envelope>"
    assert extract(message) == EXPECTED


def test_message_cut_right_after_the_header_is_still_routed() -> None:
    message = envelope()
    cut = message.index(b"</soap:Header>") + len(b"</soap:Header>")
    assert extract(message[:cut]) == EXPECTED


def test_large_body_after_a_small_header_is_routed() -> None:
    message = envelope(body="<soap:Body>" + "<x>" + "y" * 500_000 + "</x></soap:Body>")
    assert extract(message, max_header_bytes=4096) == EXPECTED


def test_header_split_across_many_chunks_is_read() -> None:
    assert extract(envelope(), chunk_size=7) == EXPECTED


@pytest.mark.parametrize(
    "message",
    [
        envelope().replace(b"<soap:Header>", b"<!-- c --><?p i?><soap:Header>"),
        envelope('<w:Header xmlns:w="urn:w">x</w:Header>' + routage()),
        envelope("<!-- </soap:Header> -->" + routage()),
        envelope('<w:Body xmlns:w="urn:w"/>' + routage()),
    ],
    ids=["comment-before-header", "other-header", "header-end-in-comment", "other-body"],
)
@pytest.mark.parametrize("chunk_size", [7, 4096])
def test_unusual_headers_are_read_in_any_chunks(message: bytes, chunk_size: int) -> None:
    assert extract(message, chunk_size=chunk_size) == EXPECTED


# Headers whose markup is known: read without a parse, with the parse's answer.

OTHER = {
    "service": "SIM",
    "roc_version": "V2",
    "amc_number": "990000202",
    "convention_type": "RO",
    "secondary_criterion": "",
    "sender_finess_legal": "990000028",
    "sender_finess_site": "990000010",
    "exchange_id": "x-1",
}


def learnt(*messages: bytes) -> SoapHeaderExtractor:
    """An extractor that has read each of *messages* often enough to know its markup."""
    extractor = SoapHeaderExtractor()
    for message in messages:
        for _ in range(2):
            extractor.extract(request(message))
    return extractor


def outcome(extractor: SoapHeaderExtractor, message: bytes) -> RoutingKey | tuple[RpnError, str]:
    try:
        return extractor.extract(request(message))
    except RpnFailure as failure:
        return failure.error, failure.detail


def test_message_with_a_known_markup_is_read_with_its_own_texts() -> None:
    extractor = learnt(envelope())
    key = extractor.extract(request(envelope(routage(OTHER))))
    assert (key.service, key.roc_version, key.exchange_id) == (Service.SIM, RocVersion.V2, "x-1")
    assert key.amc == AmcKey("990000202", "RO", "")
    assert (key.sender_finess_legal, key.sender_finess_site) == ("990000028", "990000010")
    assert extractor.extract(request(envelope())) == EXPECTED


@pytest.mark.parametrize(
    ("values", "header"),
    [
        (with_values(exchange_id="ab&#45;cd&#x2e;1"), ""),
        (with_values(service="&#73;DB"), ""),
        (VALID, '<w:To xmlns:w="urn:w">a&amp;b</w:To>'),
        (with_values(service="<![CDATA[IDB]]>"), ""),
        (with_values(service="\r\nIDB\r\n"), ""),
        (with_values(exchange_id="<!-- x -->x1"), ""),
    ],
    ids=["character-references", "reference-in-service", "entity", "cdata", "crlf", "comment"],
)
def test_texts_a_parse_would_change_are_not_taken_as_they_are(
    values: Mapping[str, str | None], header: str
) -> None:
    message = envelope(header + routage(values))
    plain = envelope(header + routage(VALID))
    assert outcome(learnt(plain), message) == outcome(SoapHeaderExtractor(), message)


@pytest.mark.parametrize(
    "message",
    [
        envelope(routage(with_values(service="XYZ"))),
        envelope(routage(with_values(exchange_id=""))),
        envelope(routage(with_values(amc_number=NIR))),
        envelope(routage(with_values(service="&svc;"))),
        envelope(routage(with_values(service="ID\x00B"))),
        envelope(routage(with_values(service="a>b"))),
        envelope(routage(with_values(service="</rt:Service><rt:Service>SIM"))),
        envelope(routage() + routage()),
        envelope(routage(), body="").replace(b"</soap:Header>", b"</soap:Header >"),
        envelope(routage(with_values(service="IDB~"))).replace(b"IDB~", b"IDB\xff"),
        envelope(routage()).replace(b"<rt:Service>", b">rt:Service<"),
        envelope("<d>" * 40 + "</d>" * 40 + routage()),
        b"x" + envelope(),
        b"\x00" + envelope(),
        envelope(prolog='<?xml version="1.0" encoding="UTF-8"?>x\n'),
    ],
)
def test_refusals_are_the_same_once_a_markup_is_known(message: bytes) -> None:
    extractor = learnt(envelope(), envelope(routage(OTHER)))
    assert outcome(extractor, message) == outcome(SoapHeaderExtractor(), message)
    assert outcome(extractor, message) == outcome(SoapHeaderExtractor(), message)


@pytest.mark.parametrize(
    "prolog",
    [
        "<!-- a client -->\n",
        '<?xml version="1.0"?>\n<!-- a client -->\n',
        '<?xml version="1.0"?>\n<?trace on?>\n',
        "<?trace on?>\n<?trace off?>\n",
    ],
)
def test_text_before_the_envelope_is_never_read_as_a_field(prolog: str) -> None:
    extractor = learnt(envelope(prolog=prolog))
    assert extractor.extract(request(envelope(prolog=prolog))) == EXPECTED
    junk = envelope(prolog=prolog.replace(">\n", ">junk\n"))
    assert outcome(extractor, junk) == outcome(SoapHeaderExtractor(), junk)
    assert isinstance(outcome(extractor, junk), tuple)


def test_a_refused_message_leaves_nothing_behind_for_the_next() -> None:
    # The parser is reused from message to message, and put aside after an error.
    extractor = SoapHeaderExtractor()
    refused = [
        envelope(routage().replace("</rt:Service>", "</rt:Servic>")),
        envelope(routage(with_values(service="&svc;"))),
        envelope()[:300],
        envelope(routage() + routage()),
        envelope(routage(with_values(exchange_id="a & b"))),
        b"<Envelope/>",
    ]
    for message in refused:
        with pytest.raises(RpnFailure):
            extractor.extract(request(message))
        assert extractor.extract(request(envelope())) == EXPECTED
        assert extractor.extract(request(envelope(routage(OTHER)))).exchange_id == "x-1"


def test_known_markups_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_soapshape, "MAX_SHAPES", 8)
    extractor = SoapHeaderExtractor()
    for index in range(40):
        message = envelope(f'<w:N{index} xmlns:w="urn:w"/>' + routage())
        for _ in range(3):
            assert extractor.extract(request(message)) == EXPECTED
    assert len(extractor._reader._shapes) == 8


# Refused as forbidden or malformed XML.

DTD_BODY = envelope().replace(b"<soap:Envelope", b"<!DOCTYPE soap:Envelope>\n<soap:Envelope")
ENTITY = envelope(routage(with_values(service="&svc;"))).replace(
    b"<soap:Envelope", b'<!DOCTYPE soap:Envelope [<!ENTITY svc "IDB">]><soap:Envelope'
)
XXE = envelope(routage(with_values(exchange_id="&xxe;"))).replace(
    b"<soap:Envelope",
    b'<!DOCTYPE soap:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><soap:Envelope',
)
LAUGHS = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i else "lol"}">' for i in range(10))
BILLION_LAUGHS = envelope(routage(with_values(exchange_id="&lol9;"))).replace(
    b"<soap:Envelope", f"<!DOCTYPE soap:Envelope [{LAUGHS}]><soap:Envelope".encode()
)


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        (DTD_BODY, "DTD and entity declarations are refused"),
        (ENTITY, "DTD and entity declarations are refused"),
        (XXE, "DTD and entity declarations are refused"),
        (BILLION_LAUGHS, "DTD and entity declarations are refused"),
        (envelope(routage(with_values(service="&svc;"))), "entity references other than"),
        (envelope('<w:To xmlns:w="urn:w">&nbsp;</w:To>' + routage()), "entity references"),
        (envelope(routage(with_values(exchange_id="a & b"))), "entity references other than"),
        (envelope(routage().replace("</rt:Service>", "</rt:Servic>")), "ERR_TAG_NAME_MISMATCH"),
        (envelope(routage().replace("rt:Routage x", 'rt:Routage a="1" a="2" x')), "not well"),
        (envelope(routage(with_values(service="ID\x00B"))), "not well-formed XML"),
        (b"", "the message is empty"),
        (b" \r\n\t", "the message is empty"),
        (b"hello", "must be UTF-8 XML starting with '<'"),
        (envelope().decode().encode("utf-16"), "must be UTF-8 XML"),
        (envelope().decode().encode("utf-16-le"), "must be UTF-8 XML"),
        (envelope()[:300], "the message ends before its SOAP Header does"),
        (
            envelope(
                '<w:X xmlns:w="urn:w">+ACY-foo;</w:X>' + routage(),
                prolog='<?xml version="1.0" encoding="UTF-7"?>',
            ),
            "the XML declaration must name UTF-8 or an ASCII-based encoding",
        ),
    ],
    ids=[
        "doctype",
        "internal-entity",
        "xxe-external-entity",
        "billion-laughs",
        "undefined-entity-in-field",
        "undefined-entity-elsewhere",
        "bare-ampersand",
        "mismatched-tag",
        "duplicate-attribute",
        "nul-character",
        "empty",
        "blank",
        "not-xml",
        "utf16-bom",
        "utf16-no-bom",
        "truncated-in-header",
        "utf7-hidden-entity",
    ],
)
def test_forbidden_or_malformed_xml_is_refused(message: bytes, detail: str) -> None:
    failure = refusal(message)
    assert failure.error is RpnError.XML_FORBIDDEN
    assert detail in failure.detail


def test_malformed_xml_detail_gives_the_position_only() -> None:
    failure = refusal(envelope(f"<a{NIR}x></b{NIR}x>" + routage()))
    assert failure.error is RpnError.XML_FORBIDDEN
    assert failure.detail.startswith("not well-formed XML (ERR_TAG_NAME_MISMATCH) at line 2,")
    assert NIR not in str(failure)


# Refused as an unreadable routing block.

REQUIRED = ["service", "roc_version", "amc_number", "convention_type", "exchange_id"]


@pytest.mark.parametrize("key", REQUIRED)
def test_missing_required_field_is_named(key: str) -> None:
    failure = refusal(envelope(routage(with_values(**{key: None}))))
    assert failure.error is RpnError.ROUTING_UNREADABLE
    assert failure.detail == f"{DEFAULT_SOAP_PATHS[key]}: missing"


@pytest.mark.parametrize("key", REQUIRED)
def test_empty_required_field_is_named(key: str) -> None:
    failure = refusal(envelope(routage(with_values(**{key: "  "}))))
    assert failure.detail == f"{DEFAULT_SOAP_PATHS[key]}: empty"


@pytest.mark.parametrize(
    ("field", "name"),
    [
        ("sender_finess_legal", "Emetteur/FinessJuridique"),
        ("sender_finess_site", "Emetteur/FinessGeographique"),
    ],
)
def test_each_sender_finess_is_required(field: str, name: str) -> None:
    # One rule for both ends: the relay checks the pair, the simulator its sandbox.
    failure = refusal(envelope(routage(with_values(**{field: None}))))
    assert failure.error is RpnError.ROUTING_UNREADABLE
    assert failure.detail == f"{name}: missing"
    assert failure.detail_fr == f"{name} : absent"
    assert failure.exchange_id == EXPECTED.exchange_id  # readable: the fault carries it


BAD_VALUES = [
    ("service", "XYZ", "must be one of IDB, SIM, CLC, DEL, ANN, DRE"),
    ("service", "idb", "must be one of"),
    ("roc_version", "V3", "must be V1 or V2"),
    ("amc_number", "99000010", "AMC number must be 9 digits"),
    ("amc_number", "99000010Z", "AMC number must be 9 digits"),
    ("amc_number", "९९००००१०१", "AMC number must be 9 digits"),
    ("convention_type", "TPTPTP", "must be 1 to 5 characters of A-Z, 0-9"),
    ("convention_type", "tp", "must be 1 to 5 characters of A-Z, 0-9"),
    ("secondary_criterion", "ABCDEFGHIJK", "must be 0 to 10 characters of A-Z, a-z, 0-9"),
    ("secondary_criterion", "A_B", "must be 0 to 10 characters"),
    ("sender_finess_legal", "990000011", "FINESS check digit is wrong"),
    ("sender_finess_site", "96000001X", "FINESS must be a department code then 7 digits"),
    ("sender_finess_site", "99000002", "FINESS must be 9 characters"),
    ("exchange_id", "Ab/cd", "must be 1 to 64 characters of A-Z, a-z, 0-9, . _ : -"),
    ("exchange_id", "X" * 65, "must be 1 to 64 characters"),
]


@pytest.mark.parametrize(("key", "value", "rule"), BAD_VALUES)
def test_invalid_field_is_named_with_the_rule_it_breaks(key: str, value: str, rule: str) -> None:
    failure = refusal(envelope(routage(with_values(**{key: value}))))
    assert failure.error is RpnError.ROUTING_UNREADABLE
    assert failure.detail.startswith(f"{DEFAULT_SOAP_PATHS[key]}: ")
    assert rule in failure.detail
    assert value not in failure.detail


def test_field_given_twice_is_refused() -> None:
    block = routage().replace("</rt:Routage>", "<rt:Service>SIM</rt:Service></rt:Routage>")
    failure = refusal(envelope(block))
    assert failure.error is RpnError.ROUTING_UNREADABLE
    assert failure.detail == "Service: given more than once"


def test_nested_field_given_twice_in_repeated_groups_is_refused() -> None:
    block = routage().replace(
        "<rt:Emetteur>", "<rt:AMC><rt:Numero>990000102</rt:Numero></rt:AMC><rt:Emetteur>"
    )
    assert refusal(envelope(block)).detail == "AMC/Numero: given more than once"


def test_second_routing_block_is_refused() -> None:
    failure = refusal(envelope(routage() + routage()))
    assert failure.error is RpnError.ROUTING_UNREADABLE
    assert failure.detail == "Routage: given more than once"


def test_field_holding_elements_is_refused() -> None:
    block = routage(with_values(service="<rt:Code>IDB</rt:Code>"))
    assert refusal(envelope(block)).detail == "Service: must hold text only"


def test_header_larger_than_the_limit_is_refused() -> None:
    padding = '<w:Pad xmlns:w="urn:w">' + "x" * 2000 + "</w:Pad>"
    failure = refusal(envelope(padding + routage()), max_header_bytes=1024)
    assert failure.error is RpnError.ROUTING_UNREADABLE
    assert failure.detail == "the SOAP Header must end within the first 1024 bytes"


def test_header_nested_too_deep_is_refused() -> None:
    deep = "<d>" * 40 + "</d>" * 40
    failure = refusal(envelope(deep + routage()))
    assert failure.error is RpnError.ROUTING_UNREADABLE
    assert failure.detail == "elements are nested deeper than 32 levels"


@pytest.mark.parametrize(
    ("message", "detail"),
    [
        (
            f'<soap:Envelope xmlns:soap="{SOAP11_NS}">{BODY}</soap:Envelope>'.encode(),
            "no routing block: the SOAP Body comes before any SOAP Header",
        ),
        (
            f'<s:Envelope xmlns:s="{SOAP12_NS}"><s:Body>&broken;<x></s:Body>'.encode(),
            "no routing block: the SOAP Body comes before any SOAP Header",
        ),
        (
            f'<soap:Envelope xmlns:soap="{SOAP11_NS}"/>'.encode(),
            "no routing block: the SOAP Envelope has no Header",
        ),
        (envelope(""), "Routage: no routing block in the SOAP Header"),
        (envelope(routage().replace(ROUTING_NS, "urn:other")), "Routage: no routing block"),
        (
            envelope(f'<w:Wrap xmlns:w="urn:w">{routage()}</w:Wrap>'),
            "Routage: no routing block",
        ),
        (envelope(ns="urn:not-soap"), "the root element must be a SOAP 1.1 or SOAP 1.2 Envelope"),
        (b"<Envelope/>", "the root element must be a SOAP"),
        (
            f'<soap:Envelope xmlns:soap="{SOAP11_NS}"><soap:Other/></soap:Envelope>'.encode(),
            "the first child of the SOAP Envelope must be its Header",
        ),
        (
            envelope().replace(b"<soap:Header>", b"<!-- c --><soap:Other/><soap:Header>"),
            "the first child of the SOAP Envelope must be its Header",
        ),
        (
            f'<s:Envelope xmlns:s="{SOAP12_NS}" xmlns:o="{SOAP11_NS}"><o:Header>'.encode()
            + routage().encode()
            + b"</o:Header></s:Envelope>",
            "the first child of the SOAP Envelope must be its Header",
        ),
    ],
    ids=[
        "body-before-header",
        "body-before-header-malformed-body",
        "empty-envelope",
        "empty-header",
        "routing-block-in-another-namespace",
        "routing-block-not-a-header-block",
        "unknown-envelope-namespace",
        "envelope-without-namespace",
        "unknown-first-child",
        "element-before-header",
        "header-of-the-other-soap-version",
    ],
)
def test_message_without_a_readable_routing_block_is_refused(message: bytes, detail: str) -> None:
    failure = refusal(message)
    assert failure.error is RpnError.ROUTING_UNREADABLE
    assert detail in failure.detail


# Refused as contradictory.


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({"soapaction": '"urn:piano:roc:SIM"'}, "SOAPAction: does not name the service"),
        ({"soapaction": "urn:piano:roc:idb"}, "SOAPAction: does not name the service"),
        ({"soapaction": '"urn:other:IDB"'}, "SOAPAction: does not name the service"),
        (
            {"content-type": 'application/soap+xml; charset=utf-8; action="urn:piano:roc:DEL"'},
            "Content-Type action: does not name the service",
        ),
        (
            {"content-type": "application/soap+xml; ACTION=urn:piano:roc:CLC"},
            "Content-Type action: does not name the service",
        ),
    ],
)
def test_soap_action_naming_another_service_is_contradictory(
    headers: dict[str, str], detail: str
) -> None:
    failure = refusal(envelope(), headers)
    assert failure.error is RpnError.ROUTING_CONTRADICTORY
    assert failure.detail == f"{detail} given by Service"


# Personal data never reaches a detail.


def _leaky_messages() -> Iterator[tuple[str, bytes]]:
    for key in VALID:
        value = NIR if key != "exchange_id" else f"{NIR} Dupont"
        yield key, envelope(routage(with_values(**{key: value})))
    yield "cut", envelope(routage(with_values(exchange_id=NIR)))[: -len(BODY) - 80]
    yield "tag", envelope(f"<Dupont{NIR}></Dupond{NIR}>" + routage())
    yield "entity", envelope(routage(with_values(service=f"&N{NIR};")))
    yield "root", f"<N{NIR}>{NIR}</N{NIR}>".encode()
    yield "attribute", envelope(f'<w:X xmlns:w="urn:w" a="{NIR}" a="{NIR}"/>' + routage())
    yield "encoding", envelope(prolog=f'<?xml version="1.0" encoding="{NIR}"?>')


@pytest.mark.parametrize(("where", "message"), list(_leaky_messages()))
def test_failure_details_never_echo_personal_data(where: str, message: bytes) -> None:
    failure = refusal(message)
    for text in (failure.detail, str(failure)):
        assert NIR not in text
        assert "Dupont" not in text


# Construction.


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"paths": {"nir": "Patient/NIR"}}, "routing path 'nir': not a routing field"),
        ({"paths": {"service": ""}}, "routing path 'service': must be a non-empty string"),
        ({"paths": {"service": "a//b"}}, "routing path 'service': must be element names"),
        ({"paths": {"service": "rt:Service"}}, "routing path 'service': unexpected character"),
        ({"paths": {"service": "VersionROC"}}, "routing path 'roc_version': same element as"),
        ({"paths": {"service": "AMC"}}, "routing path 'service': contains the path of"),
        ({"max_header_bytes": 0}, "max_header_bytes: must be a positive integer"),
        ({"max_depth": 4}, "max_depth: must be at least 5"),
        ({"chunk_size": True}, "chunk_size: must be a positive integer"),
    ],
)
def test_bad_soap_header_configuration_fails_at_construction(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        SoapHeaderExtractor(**options)  # type: ignore[arg-type]


# The HTTP header extractor.

HTTP_HEADERS = {
    "x-roc-service": "IDB",
    "x-roc-version": "V1",
    "x-roc-amc": "990000101",
    "x-roc-convention": "TP",
    "x-roc-critere": "01",
    "x-roc-finess-juridique": "990000010",
    "x-roc-finess-geographique": "990000028",
    "x-roc-echange": "6f1c2a0e-9b1d-4c1e.a:1_2",
}


def test_http_headers_yield_the_routing_key_without_reading_the_body() -> None:
    key = HttpHeaderExtractor().extract(request(b"not xml", HTTP_HEADERS))
    assert key == EXPECTED


def test_http_headers_soap12_content_type_and_custom_prefix() -> None:
    headers = {name.replace("x-roc-", "x-acme-"): value for name, value in HTTP_HEADERS.items()}
    headers["content-type"] = "application/soap+xml; charset=utf-8"
    key = HttpHeaderExtractor(prefix="X-Acme-").extract(request(b"", headers))
    assert key.soap_version is SoapVersion.SOAP12


def test_http_headers_are_stripped_and_optional_ones_may_be_absent() -> None:
    headers = {name: f" {value}\t" for name, value in HTTP_HEADERS.items()}
    del headers["x-roc-critere"]
    key = HttpHeaderExtractor().extract(request(b"", headers))
    assert (key.amc.secondary_criterion, key.sender_finess_site) == ("", "990000028")


@pytest.mark.parametrize(
    ("change", "error", "detail"),
    [
        ({"x-roc-amc": None}, RpnError.ROUTING_UNREADABLE, "x-roc-amc: missing"),
        ({"x-roc-amc": NIR}, RpnError.ROUTING_UNREADABLE, "x-roc-amc: AMC number must be 9 digits"),
        ({"x-roc-version": "v1"}, RpnError.ROUTING_UNREADABLE, "x-roc-version: must be V1 or V2"),
        (
            {"x-roc-finess-juridique": None, "x-roc-finess-geographique": None},
            RpnError.ROUTING_UNREADABLE,
            "x-roc-finess-juridique: missing",
        ),
        (
            {"soapaction": "urn:piano:roc:SIM"},
            RpnError.ROUTING_CONTRADICTORY,
            "SOAPAction: does not name the service given by x-roc-service",
        ),
    ],
)
def test_http_header_refusals_name_the_header(
    change: dict[str, str | None], error: RpnError, detail: str
) -> None:
    headers = {**HTTP_HEADERS, **change}
    present = {name: value for name, value in headers.items() if value is not None}
    with pytest.raises(RpnFailure) as caught:
        HttpHeaderExtractor().extract(request(b"", present))
    assert caught.value.error is error
    assert caught.value.detail.startswith(detail)
    assert NIR not in caught.value.detail


def test_http_header_prefix_must_be_a_header_name() -> None:
    with pytest.raises(ValueError, match="prefix"):
        HttpHeaderExtractor(prefix="x roc:")


# The URL path extractor.

SENDER_HEADERS = {
    "x-roc-finess-juridique": "990000010",
    "x-roc-finess-geographique": "990000028",
    "x-roc-echange": "6f1c2a0e-9b1d-4c1e.a:1_2",
}


@pytest.mark.parametrize(
    ("path", "criterion"),
    [
        ("/roc/V1/IDB/990000101/TP/01", "01"),
        ("/roc/V1/IDB/990000101/TP/01?trace=1", "01"),
        ("/roc/V1/IDB/990000101/TP/", ""),
        ("/roc/V1/IDB/990000101/TP", ""),
    ],
)
def test_url_path_yields_the_routing_key(path: str, criterion: str) -> None:
    key = UrlPathExtractor().extract(request(b"", SENDER_HEADERS, path))
    assert key.amc == AmcKey("990000101", "TP", criterion)
    assert (key.service, key.roc_version, key.exchange_id) == (
        Service.IDB,
        RocVersion.V1,
        EXPECTED.exchange_id,
    )


@pytest.mark.parametrize(
    ("path", "error", "detail"),
    [
        ("/other/V1/IDB/990000101/TP/01", RpnError.NOT_FOUND, "path: not under /roc/"),
        ("/roc/V1/IDB/990000101", RpnError.ROUTING_UNREADABLE, "path: must be /roc/<version>/"),
        ("/roc/V1/IDB/990000101/TP/01/x", RpnError.ROUTING_UNREADABLE, "path: must be"),
        (f"/roc/V1/IDB/{NIR}/TP/01", RpnError.ROUTING_UNREADABLE, "path <amc>: AMC number must"),
        ("/roc/V1/XYZ/990000101/TP/01", RpnError.ROUTING_UNREADABLE, "path <service>: must be"),
        ("/roc/V1/IDB/990000101/tp/01", RpnError.ROUTING_UNREADABLE, "path <convention>: must"),
        ("/roc//IDB/990000101/TP/01", RpnError.ROUTING_UNREADABLE, "path <version>: empty"),
    ],
)
def test_url_path_refusals_name_the_segment(path: str, error: RpnError, detail: str) -> None:
    with pytest.raises(RpnFailure) as caught:
        UrlPathExtractor().extract(request(b"", SENDER_HEADERS, path))
    assert caught.value.error is error
    assert caught.value.detail.startswith(detail)
    assert NIR not in caught.value.detail


def test_url_path_takes_sender_and_exchange_from_http_headers() -> None:
    with pytest.raises(RpnFailure) as caught:
        UrlPathExtractor().extract(request(b"", {}, "/roc/V1/IDB/990000101/TP/01"))
    assert caught.value.detail == "x-roc-finess-juridique: missing"


def test_url_path_checks_soap_action_too() -> None:
    headers = {**SENDER_HEADERS, "soapaction": '"urn:piano:roc:SIM"'}
    with pytest.raises(RpnFailure) as caught:
        UrlPathExtractor().extract(request(b"", headers, "/roc/V1/IDB/990000101/TP/01"))
    assert caught.value.error is RpnError.ROUTING_CONTRADICTORY


# Policies as Twisted plugins.


@pytest.fixture
def no_plugin_cache_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """getPlugins writes dropin.cache beside every plugin directory, the virtualenv's included;
    tests must leave the environment as they found it."""
    real = FilePath.setContent

    def refuse(self: FilePath[str], content: bytes, ext: bytes = b".new") -> None:
        if self.basename() == "dropin.cache":
            raise OSError(errno.EROFS, "tests write no plugin cache")
        real(self, content, ext)

    monkeypatch.setattr(FilePath, "setContent", refuse)


@pytest.fixture
def third_party_plugins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_plugin_cache_writes: None
) -> Iterator[Path]:
    """A plugin directory outside the project, as a third party would install one."""
    directory = tmp_path / "twisted" / "plugins"
    directory.mkdir(parents=True)
    monkeypatch.setattr(twisted.plugins, "__path__", [*twisted.plugins.__path__, str(directory)])
    yield directory
    for name in list(sys.modules):
        if name.startswith("twisted.plugins.acme_"):
            del sys.modules[name]


def test_routing_policies_finds_the_three_project_policies(no_plugin_cache_writes: None) -> None:
    policies = routing_policies()
    assert {"soap-header", "http-header", "url-path"} <= set(policies)
    for name in ("soap-header", "http-header", "url-path"):
        policy = policies[name]
        assert verifyObject(IRoutingPolicy, policy)
        assert verifyObject(IPlugin, policy)
        assert policy.name == name
        assert policy.description
        assert verifyObject(IRoutingExtractor, policy.build({}))


def test_plugin_directory_is_a_dropin_not_a_package() -> None:
    assert (REPO / "twisted" / "plugins" / "piano_routing.py").exists()
    assert not (REPO / "twisted" / "__init__.py").exists()
    assert not (REPO / "twisted" / "plugins" / "__init__.py").exists()


def test_build_extractor_builds_each_policy_with_its_options(
    no_plugin_cache_writes: None,
) -> None:
    soap = build_extractor(
        "soap-header", {"paths": {"exchange_id": "Id"}, "max_header_bytes": 2048}
    )
    message = envelope(routage().replace("IdentifiantEchange", "Id"))
    assert soap.extract(request(message)) == EXPECTED
    http = build_extractor("http-header", {"prefix": "x-roc-"})
    assert http.extract(request(b"", HTTP_HEADERS)) == EXPECTED
    url = build_extractor("url-path")
    path = "/roc/V1/IDB/990000101/TP/01"
    assert url.extract(request(b"", SENDER_HEADERS, path)) == EXPECTED


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("xml-path", {}, "unknown routing policy 'xml-path'; known: .*http-header"),
        ("soap-header", {"max_body": 1}, "unknown option 'max_body'; known: paths, "),
        ("http-header", {"path": "/"}, "unknown option 'path'; known: prefix"),
        ("url-path", {"prefix": 3}, "prefix: must be a string"),
        ("soap-header", {"paths": ["Service"]}, "paths: must be a table"),
        ("soap-header", {"max_header_bytes": "64k"}, "max_header_bytes: must be a positive"),
    ],
)
def test_build_extractor_refuses_unknown_names_and_bad_options(
    no_plugin_cache_writes: None, name: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_extractor(name, options)


def test_third_party_policy_is_found_without_forking(third_party_plugins: Path) -> None:
    (third_party_plugins / "acme_routing.py").write_text(
        textwrap.dedent(
            """
            from rpn.routing import HttpHeaderExtractor, RoutingPolicy

            acme = RoutingPolicy(
                "acme-header", "ACME's own headers.", lambda options: HttpHeaderExtractor("x-acme-")
            )
            """
        )
    )
    assert "acme-header" in routing_policies()
    extractor = build_extractor("acme-header")
    headers = {name.replace("x-roc-", "x-acme-"): value for name, value in HTTP_HEADERS.items()}
    assert extractor.extract(request(b"", headers)) == EXPECTED


def test_two_policies_with_one_name_fail_loudly(third_party_plugins: Path) -> None:
    (third_party_plugins / "acme_clash.py").write_text(
        "from rpn.routing import RoutingPolicy, HttpHeaderExtractor\n"
        "clash = RoutingPolicy('soap-header', 'Not ours.', HttpHeaderExtractor.from_options)\n"
    )
    with pytest.raises(ValueError, match="two routing policies are named 'soap-header'"):
        routing_policies()
