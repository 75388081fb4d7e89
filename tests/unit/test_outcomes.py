"""How an exchange ended, decided from what was received: the AMC's answer read whole."""

from __future__ import annotations

import pytest

from rpn.errors import RpnError
from rpn.outcomes import OUTCOMES, Outcome, classify_answer, outcome_of_error

S11 = "http://schemas.xmlsoap.org/soap/envelope/"
S12 = "http://www.w3.org/2003/05/soap-envelope"


def envelope(content: str, ns: str = S11) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{ns}"><soap:Header/>'
        f"<soap:Body>{content}</soap:Body></soap:Envelope>"
    ).encode()


def answer(code: str) -> bytes:
    return envelope(
        '<i:ReponseIDB xmlns:i="urn:piano:roc:idb:v1"><!-- trace -->'
        f"<i:CodeRetour> {code} </i:CodeRetour><i:LibelleRetour>x</i:LibelleRetour></i:ReponseIDB>"
    )


def fault11(role: str, code: str | None = None) -> bytes:
    detail = (
        f'<detail><m:ErreurMutuelle xmlns:m="urn:piano:mutuelle:erreurs:v1"><m:Code>{code}</m:Code>'
        "</m:ErreurMutuelle></detail>"
        if code
        else ""
    )
    return envelope(
        f"<soap:Fault><faultcode>soap:{role}</faultcode><faultstring>x</faultstring>{detail}"
        "</soap:Fault>"
    )


def fault12(role: str, code: str | None = None) -> bytes:
    detail = f"<soap:Detail><e:E xmlns:e='urn:e'><e:Code>{code}</e:Code></e:E></soap:Detail>"
    return envelope(
        f"<soap:Fault><soap:Code><soap:Value>soap:{role}</soap:Value></soap:Code>"
        f"<soap:Reason><soap:Text xml:lang='fr'>x</soap:Text></soap:Reason>"
        f"{detail if code else ''}</soap:Fault>",
        S12,
    )


@pytest.mark.parametrize(
    ("status", "body", "outcome", "code"),
    [
        (200, answer("00"), Outcome.OK, "00"),
        (200, answer("02"), Outcome.REFUSED, "02"),
        (
            200,
            envelope(
                '<r:ReponseSIM xmlns:r="urn:x"><r:CodeRetour>00</r:CodeRetour></r:ReponseSIM>', S12
            ),
            Outcome.OK,
            "00",
        ),
        # The establishment's to fix: the AMC refused the request itself.
        (500, fault11("Client", "MUT-400-DEMANDE"), Outcome.INVALID_REQUEST, "MUT-400-DEMANDE"),
        (400, fault11("Client.Validation"), Outcome.INVALID_REQUEST, "SOAP-CLIENT"),
        (
            400,
            fault12("Sender", "MUT-400-CONFORMITE"),
            Outcome.INVALID_REQUEST,
            "MUT-400-CONFORMITE",
        ),
        # The AMC's: it failed.
        (500, fault11("Server", "MUT-500-SIMULE"), Outcome.AMC_FAULT, "MUT-500-SIMULE"),
        (500, fault11("Server"), Outcome.AMC_FAULT, "SOAP-SERVER"),
        (500, fault12("Receiver"), Outcome.AMC_FAULT, "SOAP-SERVER"),
        (503, b"<html><body>Service Unavailable</body></html>", Outcome.AMC_FAULT, "HTTP-503"),
        (502, b"Bad gateway", Outcome.AMC_FAULT, "HTTP-502"),
        (200, b"<html>proxy error</html>", Outcome.AMC_FAULT, "AMC-REPONSE-ILLISIBLE"),
        (200, b"", Outcome.AMC_FAULT, "AMC-REPONSE-ILLISIBLE"),
        (200, envelope("<r:Reponse xmlns:r='urn:x'/>"), Outcome.AMC_FAULT, "AMC-REPONSE-ILLISIBLE"),
        (200, envelope(""), Outcome.AMC_FAULT, "AMC-REPONSE-ILLISIBLE"),
        (503, answer("00"), Outcome.AMC_FAULT, "HTTP-503"),
    ],
)
def test_the_answer_is_classified_from_its_whole_document(
    status: int, body: bytes, outcome: Outcome, code: str
) -> None:
    verdict = classify_answer(status, body)
    assert (verdict.outcome, verdict.code) == (outcome, code)


def test_a_truncated_answer_that_still_shows_code_00_is_a_technical_error_not_a_success() -> None:
    whole = answer("00")
    cut = whole[: whole.index(b"</i:ReponseIDB>")]
    assert b"<i:CodeRetour> 00 </" in cut
    verdict = classify_answer(200, cut)
    assert (verdict.outcome, verdict.code) == (Outcome.AMC_FAULT, "AMC-REPONSE-ILLISIBLE")


def test_an_answer_with_a_dtd_or_entities_is_never_read_as_a_success() -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "00">]>' + answer("&e;")[21:]
    assert classify_answer(200, body).outcome is Outcome.AMC_FAULT


def test_a_business_code_is_only_a_short_code() -> None:
    assert classify_answer(200, answer("00; DROP")).outcome is Outcome.AMC_FAULT


def test_each_relay_error_has_its_outcome_and_refusals_are_rejected() -> None:
    assert outcome_of_error(RpnError.AMC_TIMEOUT) is Outcome.TIMEOUT
    assert outcome_of_error(RpnError.AMC_CIRCUIT_OPEN) is Outcome.BREAKER_OPEN
    assert outcome_of_error(RpnError.CUT_BY_SHUTDOWN) is Outcome.CUT_BY_SHUTDOWN
    assert outcome_of_error(RpnError.SENDER_MISMATCH) is Outcome.REJECTED
    assert outcome_of_error(RpnError.BODY_TOO_LARGE) is Outcome.REJECTED
    assert {outcome_of_error(e).label for e in RpnError} <= set(OUTCOMES)


def test_every_outcome_says_who_must_act() -> None:
    assert Outcome.INVALID_REQUEST.who.value == "establishment"
    assert Outcome.AMC_FAULT.who.value == "amc"
    assert Outcome.RELAY_ERROR.who.value == "relay"
    assert len(set(OUTCOMES)) == len(Outcome)
