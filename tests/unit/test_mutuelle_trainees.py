"""Trainees apart: naming a trainee's sandbox, reading the Stagiaire SOAP header, the admin
API on a trainee's sandbox."""

from __future__ import annotations

import pytest

from mutuelle.examples import body_element, routing_for
from mutuelle.soap import envelope
from mutuelle.trainees import (
    BadTrainee,
    split_sandbox,
    trainee_header,
    trainee_of_body,
    trainee_sandbox,
)
from roc.model import SoapVersion
from roc.routing import routing_block
from tests.unit.test_mutuelle_sandbox import HOSPITAL_A, admin, case, fresh


def _request(trainee: str | None, version: SoapVersion = SoapVersion.SOAP11) -> bytes:
    played = case("DEL_OK_MCO_ANNULATION")
    headers = [routing_block(routing_for(played, "x-1"))]
    if trainee is not None:
        headers.append(trainee_header(trainee))
    return envelope(body_element(played), version, headers)


@pytest.mark.parametrize("version", list(SoapVersion))
def test_the_stagiaire_header_names_the_trainee(version: SoapVersion) -> None:
    assert trainee_of_body(_request("poste-03", version)) == "poste-03"
    assert trainee_of_body(_request(None, version)) is None


def test_a_trainee_name_that_is_not_one_is_refused_in_french() -> None:
    body = _request("poste-03").replace(b">poste-03<", b">Jean Dupont<")
    with pytest.raises(BadTrainee, match="nom de stagiaire"):
        trainee_of_body(body)
    with pytest.raises(BadTrainee):
        trainee_sandbox(HOSPITAL_A, "a" * 33)


def test_a_body_that_does_not_parse_is_left_to_the_simulator() -> None:
    assert trainee_of_body(b"<Stagiaire>not closed") is None


def test_a_trainee_sandbox_sits_inside_its_establishment() -> None:
    assert trainee_sandbox(HOSPITAL_A, None) == HOSPITAL_A
    name = trainee_sandbox(HOSPITAL_A, "poste-03")
    assert split_sandbox(name) == (HOSPITAL_A, "poste-03")
    assert split_sandbox(HOSPITAL_A) == (HOSPITAL_A, None)


def test_the_admin_api_reads_and_resets_a_trainee_sandbox_and_refuses_bad_names() -> None:
    api = admin(fresh())
    name = f"{HOSPITAL_A}.poste-03"
    assert api.handle("POST", ["sandboxes", name, "reset"], {}, None)[0] == 200
    assert api.handle("GET", ["sandboxes", name, "journal"], {}, None)[1]["entries"] == []
    assert api.handle("GET", ["sandboxes", f"{HOSPITAL_A}.Poste 3"], {}, None)[0] == 400
    assert api.handle("GET", ["sandboxes", "12.poste-03"], {}, None)[0] == 400
