"""ROC return codes and other received codes, described in French with who must act."""

from __future__ import annotations

from roc.returncodes import ERROR, NORMAL, RETURN_CODES, describe_code
from rpn.errors import RpnError
from rpn.outcomes import Who, outcome_of_error


def test_unknown_beneficiary_and_closed_rights_are_normal_answers_not_errors() -> None:
    for code in ("00", "01", "02"):
        described = describe_code(code)
        assert described.kind == NORMAL and described.who == ""
    assert describe_code("01").label == "Bénéficiaire inconnu de l'AMC"


def test_workflow_codes_are_the_establishments_errors() -> None:
    for code in ("07", "09", "10"):
        assert describe_code(code).kind == ERROR
        assert describe_code(code).who == "établissement"
    assert RETURN_CODES["07"].services == ("CLC",)


def test_an_invalid_request_is_the_establishments_and_a_garbled_answer_the_amcs() -> None:
    assert describe_code("MUT-400-DEMANDE").who == "établissement"
    assert describe_code("SOAP-CLIENT").who == "établissement"
    for code in ("AMC-REPONSE-ILLISIBLE", "SOAP-SERVER", "HTTP-503", "MUT-500-INTERNE"):
        assert describe_code(code).who == "AMC", code
    assert "503" in describe_code("HTTP-503").label


def test_every_relay_fault_is_blamed_on_whom_the_relay_says_must_act() -> None:
    # The relay's table (its codes and outcomes) is the definition; the shared description
    # reads the code's form, and this holds the two in step.
    for error in RpnError:
        who = outcome_of_error(error).who
        described = describe_code(error.code)
        assert described.kind == ERROR and described.action, error.code
        if who is Who.ESTABLISHMENT:
            assert described.who == "établissement", error.code
        elif who is Who.RELAY:
            assert described.who == "relais", error.code
        else:
            assert described.who == "relais ou AMC", error.code
    assert "HTTP 403" in describe_code("RPN-403-EMETTEUR").label
