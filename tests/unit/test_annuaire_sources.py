"""Annuaire sources: the static TOML directory, the operator override and the ANN web service."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from zope.interface.verify import verifyObject

from piano.testing import StrictClock
from roc.model import SOAP11_NS, AmcKey
from roc.xmlsafe import parse_document
from rpn.annuaire_sources import (
    MAX_ANSWER_BYTES,
    ConfigError,
    MalformedAnswer,
    OverrideSource,
    SoapAnnuaireSource,
    StaticAnnuaireSource,
    ann_request,
    parse_ann_answer,
)
from rpn.http.common import AnswerCut
from rpn.interfaces import AmcEntry, IAnnuaireSource, IHttpClient
from rpn.testing import FakeAnnuaireSource, FakeAnswer, FakeHttpClient
from tests.deferreds import assert_no_result, failure_result_of, success_result_of

DEV_DIRECTORY = Path(__file__).resolve().parents[2] / "etc" / "dev" / "annuaire.toml"
ANN_URL = "https://127.0.0.1:8444/roc/ANN"
KEY = AmcKey("990000101", "TP", "01")
ALPHA = AmcEntry("990000101", "Mutuelle Alpha (fictive)", {"IDB": "https://127.0.0.1:8444/roc/IDB"})


def amc(number: str = "990000101", **extra: Any) -> dict[str, Any]:
    table: dict[str, Any] = {
        "number": number,
        "name": f"Mutuelle {number} (fictive)",
        "endpoints": {"IDB": "https://127.0.0.1:8444/roc/IDB"},
    }
    table.update(extra)
    return table


def lookup(source: IAnnuaireSource, key: AmcKey) -> AmcEntry | None:
    result: AmcEntry | None = success_result_of(source.lookup(key))
    return result


# -- static directory --------------------------------------------------------------------------


def test_dev_directory_lists_the_four_fictive_amcs_with_every_service() -> None:
    source = StaticAnnuaireSource.from_file(DEV_DIRECTORY)
    by_number = {entry.amc_number: entry for entry in source.entries}
    assert sorted(by_number) == ["990000101", "990000202", "990000303", "990000404"]
    for number, port in [("990000101", 8444), ("990000303", 8444), ("990000404", 8449)]:
        assert by_number[number].endpoints == {
            service: f"https://127.0.0.1:{port}/roc/{service}"
            for service in ("IDB", "SIM", "CLC", "DEL")
        }
    assert by_number["990000202"].name == "Mutuelle Beta (fictive)"
    assert lookup(source, AmcKey("990000404", "TP", "")) == by_number["990000404"]


def test_static_lookup_matches_number_convention_type_and_secondary_criterion() -> None:
    source = StaticAnnuaireSource.from_mapping(
        {"amc": [amc(convention_types=["TP", "HO"], secondary_criteria=["01"])]}
    )
    assert lookup(source, KEY) is not None
    assert lookup(source, AmcKey("990000101", "HO", "01")) is not None
    assert lookup(source, AmcKey("990000101", "TP", "02")) is None
    assert lookup(source, AmcKey("990000101", "XX", "01")) is None
    assert lookup(source, AmcKey("990000999", "TP", "01")) is None


@pytest.mark.parametrize("filters", [{}, {"convention_types": [], "secondary_criteria": []}])
def test_absent_or_empty_filters_match_any_identifiers(filters: dict[str, Any]) -> None:
    source = StaticAnnuaireSource.from_mapping({"amc": [amc(**filters)]})
    assert lookup(source, AmcKey("990000101", "ZZ", "")) is not None
    assert lookup(source, AmcKey("990000101", "TP", "abc123")) is not None


def test_version_specific_endpoint_is_kept_and_wins_for_its_version() -> None:
    endpoints = {
        "IDB": "https://127.0.0.1:8444/roc/IDB",
        "IDB/V2": "https://127.0.0.1:8444/roc/v2/IDB",
    }
    source = StaticAnnuaireSource.from_mapping({"amc": [amc(endpoints=endpoints)]})
    entry = lookup(source, KEY)
    assert entry is not None
    assert entry.endpoint_for("IDB", "V2") == "https://127.0.0.1:8444/roc/v2/IDB"
    assert entry.endpoint_for("IDB", "V1") == "https://127.0.0.1:8444/roc/IDB"
    assert entry.endpoint_for("SIM", "V1") is None


def test_empty_directory_knows_no_amc() -> None:
    assert lookup(StaticAnnuaireSource.from_mapping({}), KEY) is None


def _with(path: str, value: Any, *, delete: bool = False) -> dict[str, Any]:
    """A valid three-AMC directory with *path* (``amc.2.number``) set to *value*."""
    data: dict[str, Any] = {"amc": [amc("990000101"), amc("990000202"), amc("990000303")]}
    *parents, last = path.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if delete:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with("amc.2.number", "99000030"), "amc[2].number: AMC number must be 9 digits"),
        (_with("amc.0.number", "99000010A"), "amc[0].number: AMC number must be 9 digits"),
        (_with("amc.0.number", 990000101), "amc[0].number: must be a string"),
        (_with("amc.1.number", None, delete=True), "amc[1].number: required"),
        (_with("amc.1.number", "990000101"), "amc[1].number: duplicate AMC number (also amc[0])"),
        (_with("amc.0.name", None, delete=True), "amc[0].name: required"),
        (_with("amc.0.name", "  "), "amc[0].name: must not be empty"),
        (_with("amc.0.adresse", "1 rue"), "amc[0].adresse: unknown key"),
        (_with("amcs", []), "amcs: unknown key"),
        (_with("amc", {"number": "990000101"}), "amc: must be an array of tables"),
        (_with("amc.1", "990000202"), "amc[1]: must be a table"),
        (_with("amc.0.endpoints", None, delete=True), "amc[0].endpoints: required"),
        (_with("amc.0.endpoints", {}), "amc[0].endpoints: must be a table naming"),
        (_with("amc.0.endpoints", "https://x"), "amc[0].endpoints: must be a table naming"),
        (_with("amc.0.endpoints.FOO", "https://x/FOO"), "amc[0].endpoints.FOO: unknown service"),
        (_with("amc.0.endpoints.DRE", "https://x/DRE"), "amc[0].endpoints.DRE: unknown service"),
        (
            _with("amc.0.endpoints.IDB/V9", "https://x/IDB"),
            'amc[0].endpoints."IDB/V9": unknown ROC version',
        ),
        (
            _with("amc.0.endpoints.IDB", "http://127.0.0.1:8444/roc/IDB"),
            "amc[0].endpoints.IDB: endpoint must be an https URL",
        ),
        (
            _with("amc.0.endpoints.IDB", "127.0.0.1:8444/roc/IDB"),
            "amc[0].endpoints.IDB: endpoint must be an https URL",
        ),
        (_with("amc.0.endpoints.IDB", 8444), "amc[0].endpoints.IDB: must be a string"),
        (
            _with("amc.0.endpoints.IDB", "https:///roc/IDB"),
            "amc[0].endpoints.IDB: endpoint URL must name a host",
        ),
        (
            _with("amc.0.endpoints.IDB", "https://u:p@h/IDB"),
            "amc[0].endpoints.IDB: endpoint URL must not carry credentials",
        ),
        (
            _with("amc.0.endpoints.IDB", "https://h/IDB#x"),
            "amc[0].endpoints.IDB: endpoint URL must not have a fragment",
        ),
        (
            _with("amc.0.endpoints.IDB", "https://h:99999/IDB"),
            "amc[0].endpoints.IDB: endpoint must be an https URL",
        ),
        (
            _with("amc.0.endpoints.IDB", "https://h/ IDB"),
            "amc[0].endpoints.IDB: endpoint must be an https URL (ASCII, no spaces",
        ),
        (_with("amc.0.convention_types", "TP"), "amc[0].convention_types: must be an array"),
        (
            _with("amc.0.convention_types", ["TP", "tp"]),
            "amc[0].convention_types[1]: must be 1 to 5 characters of A-Z, 0-9",
        ),
        (
            _with("amc.0.secondary_criteria", ["01", "trop-long-critere"]),
            "amc[0].secondary_criteria[1]: must be 0 to 10 characters of",
        ),
    ],
)
def test_invalid_directory_is_refused_naming_the_path(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        StaticAnnuaireSource.from_mapping(data)
    assert str(raised.value).startswith(message), str(raised.value)


def test_http_endpoints_are_accepted_only_when_allowed() -> None:
    data = _with("amc.0.endpoints.IDB", "http://127.0.0.1:8444/roc/IDB")
    source = StaticAnnuaireSource.from_mapping(data, allow_http=True)
    entry = lookup(source, KEY)
    assert entry is not None
    assert entry.endpoints["IDB"] == "http://127.0.0.1:8444/roc/IDB"
    with pytest.raises(ConfigError, match="endpoint must be an http or https URL"):
        StaticAnnuaireSource.from_mapping(
            _with("amc.0.endpoints.IDB", "ftp://127.0.0.1/IDB"), allow_http=True
        )


def test_directory_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "annuaire.toml"
    path.write_text('[[amc]]\nnumber = "123"\nname = "X"\n[amc.endpoints]\nIDB = "https://h/"\n')
    with pytest.raises(ConfigError) as raised:
        StaticAnnuaireSource.from_file(path)
    assert str(raised.value) == f"{path}: amc[0].number: AMC number must be 9 digits"


def test_directory_file_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "annuaire.toml"
    path.write_text("[[amc]\nnumber = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        StaticAnnuaireSource.from_file(path)


def test_missing_directory_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"absent\.toml: cannot read"):
        StaticAnnuaireSource.from_file(tmp_path / "absent.toml")


def test_duplicate_numbers_are_refused_when_built_directly() -> None:
    amcs = StaticAnnuaireSource.from_mapping({"amc": [amc()]})._by_number.values()
    with pytest.raises(ConfigError, match="duplicate AMC number 990000101"):
        StaticAnnuaireSource([*amcs, *amcs])


# -- override ----------------------------------------------------------------------------------


def test_override_answers_first() -> None:
    moved = AmcEntry(ALPHA.amc_number, ALPHA.name, {"IDB": "https://10.0.0.1/roc/IDB"})
    override = FakeAnnuaireSource({KEY: moved})
    fallback = FakeAnnuaireSource({KEY: ALPHA})
    source = OverrideSource(override, fallback)
    assert verifyObject(IAnnuaireSource, source)
    assert lookup(source, KEY) == moved
    assert fallback.calls == []


def test_fallback_is_asked_when_the_override_does_not_know_the_amc() -> None:
    override = FakeAnnuaireSource()
    fallback = FakeAnnuaireSource({KEY: ALPHA})
    source = OverrideSource(override, fallback)
    assert lookup(source, KEY) == ALPHA
    assert override.calls == fallback.calls == [KEY]


def test_amc_unknown_to_both_is_unknown() -> None:
    assert lookup(OverrideSource(FakeAnnuaireSource(), FakeAnnuaireSource()), KEY) is None


def test_fallback_failure_is_the_lookup_failure() -> None:
    fallback = FakeAnnuaireSource()
    fallback.error = MalformedAnswer("HTTP status 500")
    source = OverrideSource(FakeAnnuaireSource(), fallback)
    failure_result_of(source.lookup(KEY), MalformedAnswer)


def test_static_file_overrides_the_web_service() -> None:
    static = StaticAnnuaireSource.from_file(DEV_DIRECTORY)
    remote = FakeAnnuaireSource()
    source = OverrideSource(static, remote)
    entry = lookup(source, AmcKey("990000404", "TP", ""))
    assert entry is not None
    assert entry.endpoint_for("IDB", "V1") == "https://127.0.0.1:8449/roc/IDB"
    assert remote.calls == []


# -- ANN documents -----------------------------------------------------------------------------

ANN = "urn:piano:roc:ann:v1"


def envelope(body: str) -> bytes:
    return (
        f'<soap:Envelope xmlns:soap="{SOAP11_NS}"><soap:Body>{body}</soap:Body></soap:Envelope>'
    ).encode()


def answer(code: str = "00", amc_xml: str | None = None) -> bytes:
    if amc_xml is None:
        amc_xml = (
            "<ann:AMC><ann:Numero>990000101</ann:Numero>"
            "<ann:Nom>Mutuelle Alpha (fictive)</ann:Nom>"
            '<ann:Service code="IDB">https://127.0.0.1:8444/roc/IDB</ann:Service>'
            '<ann:Service code="IDB" version="V2">https://127.0.0.1:8444/roc/v2/IDB</ann:Service>'
            '<ann:Service code="SIM"> https://127.0.0.1:8444/roc/SIM\n</ann:Service>'
            "</ann:AMC>"
        )
    return envelope(
        f'<ann:ReponseANN xmlns:ann="{ANN}"><ann:CodeRetour>{code}</ann:CodeRetour>'
        f"<ann:LibelleRetour>AMC trouvée</ann:LibelleRetour>{amc_xml}</ann:ReponseANN>"
    )


def amc_answer(services: str, number: str = "990000101", name: str = "Alpha") -> bytes:
    return answer(
        amc_xml=f"<ann:AMC><ann:Numero>{number}</ann:Numero><ann:Nom>{name}</ann:Nom>"
        f"{services}</ann:AMC>"
    )


FAULT = envelope(
    "<soap:Fault><faultcode>soap:Server</faultcode>"
    "<faultstring>annuaire en maintenance</faultstring></soap:Fault>"
)
FOUND = AmcEntry(
    "990000101",
    "Mutuelle Alpha (fictive)",
    {
        "IDB": "https://127.0.0.1:8444/roc/IDB",
        "IDB/V2": "https://127.0.0.1:8444/roc/v2/IDB",
        "SIM": "https://127.0.0.1:8444/roc/SIM",
    },
)


def test_ann_request_carries_the_three_routing_identifiers() -> None:
    root = parse_document(ann_request(KEY))
    assert root.tag == f"{{{SOAP11_NS}}}Envelope"
    body = root.find(f"{{{SOAP11_NS}}}Body")
    assert body is not None
    [demand] = body
    assert demand.tag == f"{{{ANN}}}DemandeANN"
    assert [(child.tag.split("}")[1], child.text) for child in demand] == [
        ("NumeroAMC", "990000101"),
        ("TypeConvention", "TP"),
        ("CritereSecondaire", "01"),
    ]


def test_ann_request_escapes_what_it_is_given() -> None:
    root = parse_document(ann_request(AmcKey("990000101", "<&>", "")))
    assert root.findtext(f".//{{{ANN}}}TypeConvention") == "<&>"
    assert root.findtext(f".//{{{ANN}}}CritereSecondaire") in ("", None)


def test_found_answer_is_parsed_into_an_entry() -> None:
    assert parse_ann_answer(answer()) == FOUND


def test_unknown_amc_answer_is_none() -> None:
    assert parse_ann_answer(answer("01", amc_xml="")) is None


def test_http_endpoint_in_an_answer_is_accepted_only_when_allowed() -> None:
    body = amc_answer('<ann:Service code="IDB">http://127.0.0.1:8444/roc/IDB</ann:Service>')
    entry = parse_ann_answer(body, allow_http=True)
    assert entry is not None
    assert entry.endpoints == {"IDB": "http://127.0.0.1:8444/roc/IDB"}
    with pytest.raises(MalformedAnswer, match="https"):
        parse_ann_answer(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "unreadable answer"),
        (b"<html><body>502 Bad Gateway</body>", "unreadable answer"),
        (b'<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>', "unreadable answer"),
        (b"<ReponseANN/>", "not a SOAP 1.1 envelope"),
        (
            b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"/>',
            "not a SOAP 1.1 envelope",
        ),
        (f'<soap:Envelope xmlns:soap="{SOAP11_NS}"/>'.encode(), "no Body"),
        (envelope(""), "exactly one ReponseANN"),
        (envelope(f'<ann:ReponseIDB xmlns:ann="{ANN}"/>'), "exactly one ReponseANN"),
        (FAULT, "SOAP Fault soap:Server"),
        (answer("99", amc_xml=""), "unexpected CodeRetour 99"),
        (answer("<![CDATA[1850799999999]]>", amc_xml=""), "unexpected CodeRetour (invalid)"),
        (answer("00", amc_xml=""), "CodeRetour 00 without an AMC"),
        (amc_answer("", number="12345"), "AMC/Numero: AMC number must be 9 digits"),
        (amc_answer("", name=""), "AMC/Nom is missing or empty"),
        (
            amc_answer('<ann:Service code="FOO">https://h/FOO</ann:Service>'),
            "unknown service code",
        ),
        (
            amc_answer('<ann:Service code="IDB" version="V7">https://h/IDB</ann:Service>'),
            "unknown service code or ROC version",
        ),
        (amc_answer("<ann:Service>https://h/IDB</ann:Service>"), "unknown service code"),
        (
            amc_answer('<ann:Service code="IDB">http://h/IDB</ann:Service>'),
            "AMC/Service: endpoint must be an https URL",
        ),
        (amc_answer('<ann:Service code="IDB"/>'), "AMC/Service: endpoint must be an https URL"),
        (
            amc_answer(
                '<ann:Service code="IDB">https://h/1</ann:Service>'
                '<ann:Service code="IDB">https://h/2</ann:Service>'
            ),
            "listed twice",
        ),
    ],
)
def test_invalid_answer_is_malformed(body: bytes, message: str) -> None:
    with pytest.raises(MalformedAnswer, match=re.escape(message)):
        parse_ann_answer(body)


def test_malformed_answer_messages_do_not_repeat_the_content() -> None:
    secret = "1850799999999"
    bodies = [
        f"<html>{secret}</html".encode(),
        envelope(f"<x>{secret}</x>"),
        answer(secret, amc_xml=""),
        amc_answer("", number=secret),
        amc_answer(f'<ann:Service code="{secret}">https://h/</ann:Service>'),
        amc_answer(f'<ann:Service code="IDB">http://{secret}/</ann:Service>'),
    ]
    for body in bodies:
        with pytest.raises(MalformedAnswer) as raised:
            parse_ann_answer(body)
        assert secret not in str(raised.value)


# -- SoapAnnuaireSource ------------------------------------------------------------------------


def soap_source(
    *answers: FakeAnswer | Exception, timeout: float = 5.0, **options: Any
) -> tuple[SoapAnnuaireSource, FakeHttpClient, StrictClock]:
    client = FakeHttpClient(answers)
    clock = StrictClock()
    return SoapAnnuaireSource(client, ANN_URL, timeout, clock, **options), client, clock


def test_http_fakes_provide_their_interfaces() -> None:
    assert verifyObject(IHttpClient, FakeHttpClient())
    assert verifyObject(IAnnuaireSource, soap_source()[0])


def test_soap_source_posts_a_demande_ann_and_returns_the_entry() -> None:
    source, client, _ = soap_source(FakeAnswer(200, answer()))
    assert success_result_of(source.lookup(KEY)) == FOUND
    [request] = client.requests
    assert request.url == ANN_URL
    headers = dict(request.headers)
    assert headers[b"Content-Type"] == b"text/xml; charset=utf-8"
    assert headers[b"SOAPAction"] == b'"urn:piano:roc:ANN"'
    assert request.body == ann_request(KEY)


def test_soap_source_unknown_amc_is_none() -> None:
    source, _, _ = soap_source(FakeAnswer(200, answer("01", amc_xml="")))
    assert success_result_of(source.lookup(KEY)) is None


def test_soap_fault_is_malformed() -> None:
    source, _, _ = soap_source(FakeAnswer(500, FAULT))
    failure = failure_result_of(source.lookup(KEY), MalformedAnswer)
    assert failure.getErrorMessage() == "HTTP status 500 (SOAP Fault soap:Server)"


def test_soap_fault_with_status_200_is_malformed() -> None:
    source, _, _ = soap_source(FakeAnswer(200, FAULT))
    failure = failure_result_of(source.lookup(KEY), MalformedAnswer)
    assert failure.getErrorMessage() == "SOAP Fault soap:Server"


def test_non_200_status_is_malformed() -> None:
    source, _, _ = soap_source(FakeAnswer(503, b"<html>busy</html>"))
    failure = failure_result_of(source.lookup(KEY), MalformedAnswer)
    assert failure.getErrorMessage() == "HTTP status 503"


def test_garbage_answer_is_malformed() -> None:
    source, _, _ = soap_source(FakeAnswer(200, b"\x00\x01garbage"))
    failure_result_of(source.lookup(KEY), MalformedAnswer)


def test_answer_for_another_amc_is_malformed() -> None:
    source, _, _ = soap_source(FakeAnswer(200, answer()))
    failure = failure_result_of(source.lookup(AmcKey("990000202", "TP", "")), MalformedAnswer)
    assert "another AMC" in failure.getErrorMessage()


def test_oversized_answer_is_malformed_and_the_connection_is_dropped() -> None:
    source, client, _ = soap_source(FakeAnswer(200, answer() + b" " * MAX_ANSWER_BYTES))
    failure = failure_result_of(source.lookup(KEY), MalformedAnswer)
    assert failure.getErrorMessage() == f"answer larger than {MAX_ANSWER_BYTES} bytes"
    assert client.dropped == 1


def test_answer_size_cap_is_configurable() -> None:
    source, _, _ = soap_source(FakeAnswer(200, answer()), max_answer_bytes=100)
    failure_result_of(source.lookup(KEY), MalformedAnswer)


def test_transport_error_is_not_malformed() -> None:
    source, _, _ = soap_source(ConnectionRefusedError("127.0.0.1:8444"))
    failure_result_of(source.lookup(KEY), ConnectionRefusedError)


def test_body_cut_by_the_connection_is_a_transport_error() -> None:
    source, _, _ = soap_source(FakeAnswer(200, answer()[:50], cut=True))
    failure_result_of(source.lookup(KEY), AnswerCut)


def test_annuaire_that_never_answers_times_out_and_its_request_is_dropped() -> None:
    source, client, clock = soap_source(timeout=5.0)
    d = source.lookup(KEY)
    clock.advance(4.9)
    assert_no_result(d)
    clock.advance(0.1)
    failure_result_of(d, defer.TimeoutError)
    assert client.cancelled == 1


def test_answered_lookup_leaves_no_timer_behind() -> None:
    source, _, clock = soap_source(FakeAnswer(200, answer()))
    success_result_of(source.lookup(KEY))
    assert clock.getDelayedCalls() == []


def test_soap_source_refuses_a_nonsensical_timeout() -> None:
    with pytest.raises(ValueError, match="timeout"):
        soap_source(timeout=0)


def test_directory_data_is_not_shared_between_sources() -> None:
    data = {"amc": [amc()]}
    source = StaticAnnuaireSource.from_mapping(copy.deepcopy(data))
    data["amc"][0]["endpoints"]["IDB"] = "https://elsewhere/IDB"
    entry = lookup(source, KEY)
    assert entry is not None
    assert entry.endpoints["IDB"] == "https://127.0.0.1:8444/roc/IDB"
