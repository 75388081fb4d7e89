"""Property tests: whatever arrives, extraction answers with a routing key or an RpnFailure."""

from __future__ import annotations

import re
from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roc.model import RoutingKey
from rpn.errors import RpnError, RpnFailure
from rpn.routing import (
    HttpHeaderExtractor,
    RequestView,
    SoapHeaderExtractor,
    UrlPathExtractor,
)
from tests.unit.test_routing import (
    EXPECTED,
    HTTP_HEADERS,
    NIR,
    SENDER_HEADERS,
    VALID,
    envelope,
    routage,
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SOAP = SoapHeaderExtractor()
MESSAGE = envelope()
HEADER_END = MESSAGE.index(b"</soap:Header>") + len(b"</soap:Header>")
#: Prefixes that get random bytes past the first checks and into the parser.
PREFIXES = [b"", b"<", b'<?xml version="1.0"?>', MESSAGE[: MESSAGE.index(b"<rt:Service>")]]


def outcome(body: bytes, headers: dict[str, str] | None = None) -> RoutingKey | RpnFailure:
    """The key, or the RpnFailure; any other exception fails the test."""
    try:
        return SOAP.extract(RequestView("/roc", headers or {}, body))
    except RpnFailure as failure:
        return failure


def assert_no_personal_data(result: RoutingKey | RpnFailure) -> None:
    if isinstance(result, RpnFailure):
        assert NIR not in result.detail
        assert NIR not in str(result)


@FUZZ
@given(prefix=st.sampled_from(PREFIXES), noise=st.binary(max_size=2000))
def test_random_bytes_are_refused_as_rpn_failures(prefix: bytes, noise: bytes) -> None:
    result = outcome(prefix + noise)
    assert isinstance(result, (RoutingKey, RpnFailure))


_EDIT = st.tuples(
    st.integers(min_value=0, max_value=len(MESSAGE)),
    st.sampled_from(["delete", "insert", "replace"]),
    st.binary(min_size=1, max_size=8)
    | st.sampled_from([b"<", b">", b"&", b"/", b'"', b"<!DOCTYPE x>", b"&x;", b"]]>", b"\x00"]),
)


def _apply(message: bytes, edits: list[tuple[int, str, bytes]]) -> bytes:
    for position, kind, data in edits:
        position = min(position, len(message))
        if kind == "delete":
            message = message[:position] + message[position + len(data) :]
        elif kind == "insert":
            message = message[:position] + data + message[position:]
        else:
            message = message[:position] + data + message[position + len(data) :]
    return message


@FUZZ
@given(edits=st.lists(_EDIT, min_size=1, max_size=6))
def test_mutated_messages_never_fail_otherwise_nor_leak_personal_data(
    edits: list[tuple[int, str, bytes]],
) -> None:
    mutated = _apply(envelope(routage({**VALID, "exchange_id": NIR})), edits)
    assert_no_personal_data(outcome(mutated))


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=HEADER_END, max_value=len(MESSAGE)),
            st.sampled_from(["delete", "insert", "replace"]),
            st.binary(min_size=1, max_size=8),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_anything_after_the_header_leaves_the_key_unchanged(
    edits: list[tuple[int, str, bytes]],
) -> None:
    assert outcome(_apply(MESSAGE, edits)) == EXPECTED


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(MESSAGE)))
def test_truncated_messages_are_routed_only_once_the_header_is_whole(cut: int) -> None:
    result = outcome(MESSAGE[:cut])
    if cut >= HEADER_END:
        assert result == EXPECTED
    else:
        assert isinstance(result, RpnFailure)
        assert result.error in (RpnError.XML_FORBIDDEN, RpnError.ROUTING_UNREADABLE)


#: Bytes that a parse reads otherwise than as they are, or refuses, in text between tags; and
#: bytes it reads as they are.
_TEXT_BYTES = st.sampled_from(
    [
        *(b"&amp;", b"&#65;", b"&x;", b"\r", b"\r\n", b"\x00", b"\x7f", b"\xc3\xa9", b"\xff"),
        *(b"<", b">", b"]]>", b"<!--c-->", b"<![CDATA[c]]>", b"<?p?>", b"</rt:Service>", b"#1#"),
        *(b" ", b"\t", b"\n", b'"', b"'", b"IDB", b"SIM", b"990000102", b"x"),
    ]
)
#: Messages whose markup the shared extractor learns as the tests run.
_KNOWN = [
    MESSAGE,
    envelope(routage(prefix=""), prolog=""),
    envelope(routage().replace("><", ">\n<")),
]


def _texts(message: bytes) -> list[tuple[int, int]]:
    """Where the texts between tags are."""
    return [match.span(1) for match in re.finditer(rb">([^<>]*)(?=<)", message)]


@FUZZ
@given(
    known=st.sampled_from(_KNOWN),
    changes=st.lists(
        st.tuples(st.integers(min_value=0), st.lists(_TEXT_BYTES, max_size=4).map(b"".join)),
        min_size=1,
        max_size=4,
    ),
)
def test_messages_like_known_ones_are_read_as_if_seen_first(
    known: bytes, changes: list[tuple[int, bytes]]
) -> None:
    spans = _texts(known)
    chosen = {index % len(spans): text for index, text in changes}
    message, last = b"", 0
    for index, (start, end) in enumerate(spans):
        message += known[last:start] + chosen.get(index, known[start:end])
        last = end
    message += known[last:]
    # The shared extractor has read the known message often enough to know its markup.
    for _ in range(2):
        assert outcome(known) == SoapHeaderExtractor().extract(RequestView("/roc", {}, known))
    try:
        expected: RoutingKey | RpnFailure = SoapHeaderExtractor().extract(
            RequestView("/roc", {}, message)
        )
    except RpnFailure as failure:
        expected = failure
    result = outcome(message)
    if isinstance(expected, RpnFailure):
        assert isinstance(result, RpnFailure)
        assert (result.error, result.detail) == (expected.error, expected.detail)
    else:
        assert result == expected


_FIELD_TEXT = st.text(max_size=20) | st.just(NIR) | st.sampled_from(list(VALID.values()))


@FUZZ
@given(values=st.fixed_dictionaries({}, optional={key: _FIELD_TEXT for key in VALID}))
def test_random_field_texts_are_validated_without_echo(values: dict[str, str]) -> None:
    message = envelope(routage({key: escape(value) for key, value in values.items()}))
    assert_no_personal_data(outcome(message))


_LATIN1 = st.text(alphabet=st.characters(max_codepoint=255), max_size=30)


@FUZZ
@given(
    changes=st.dictionaries(st.sampled_from(sorted(HTTP_HEADERS)), _LATIN1 | st.just(NIR)),
    path=_LATIN1 | st.just("/roc/V1/IDB/990000101/TP/01"),
)
def test_random_http_headers_and_paths_are_refused_as_rpn_failures(
    changes: dict[str, str], path: str
) -> None:
    for extractor, headers in (
        (HttpHeaderExtractor(), {**HTTP_HEADERS, **changes}),
        (UrlPathExtractor(), {**SENDER_HEADERS, **changes}),
    ):
        try:
            extractor.extract(RequestView(path, headers, b""))
        except RpnFailure as failure:
            assert NIR not in failure.detail
