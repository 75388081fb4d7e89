"""Property tests: whatever arrives, extraction answers with a routing key or an RpnFailure."""

from __future__ import annotations

from xml.sax.saxutils import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roc.errors import RpnError, RpnFailure
from roc.model import RoutingKey
from roc.routing import (
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
