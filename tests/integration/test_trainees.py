"""Trainees apart: two trainees of one establishment, through the relay (a ``Stagiaire`` SOAP
header the relay forwards untouched) and straight to the simulator (a path segment), each in
its own sandbox. Real ``twistd mutuelle`` and ``twistd rpn``, real TLS."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from mutuelle.catalogue import Case, default_catalogue
from mutuelle.examples import body_element, routing_for
from mutuelle.soap import envelope, request_headers
from mutuelle.trainees import trainee_header
from roc.model import SERVICE_NS, SoapVersion
from roc.routing import routing_block
from tests.integration.harness import SoapClient, client_context
from tests.integration.test_mutuelle_cases import Stack, start_stack

pytestmark = pytest.mark.integration

CATALOGUE = default_catalogue()
SITE = "990000028"


@pytest.fixture(scope="module")
def stack(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(pki, tmp_path_factory.mktemp("trainees-stack"))
    yield started
    started.stop()


def _document(case: Case, trainee: str | None) -> bytes:
    headers = [routing_block(routing_for(case, str(uuid.uuid4())))]
    if trainee is not None:
        headers.append(trainee_header(trainee))
    return envelope(body_element(case), SoapVersion.SOAP11, headers)


def _play(
    client: SoapClient, case: Case, trainee: str | None, path: str = "/roc"
) -> tuple[int, str]:
    answer = client.post(
        _document(case, trainee), path, request_headers(case.service, SoapVersion.SOAP11)
    )
    root = etree.fromstring(answer.body)
    ns = SERVICE_NS[case.service.value]
    return answer.status, root.findtext(f".//{{{ns}}}CodeRetour") or answer.body.decode()


def _case(name: str) -> Case:
    case = CATALOGUE.get("990000101", name)
    assert case is not None
    return case


def test_two_trainees_of_one_establishment_both_play_the_one_shot_cases(
    stack: Stack, pki: Path
) -> None:
    for sandbox in (SITE, f"{SITE}.poste-1", f"{SITE}.poste-2"):
        assert stack.admin("POST", f"sandboxes/{sandbox}/reset")[0] == 200
    relay = SoapClient(stack.relay_port, client_context(pki, "hospital-a"))
    clc, delete = _case("CLC_OK_MCO_ENGAGEMENT"), _case("DEL_OK_MCO_ANNULATION")
    assert _play(relay, clc, "poste-1") == (200, "00")
    assert _play(relay, clc, "poste-2") == (200, "00")
    # The one-shot cancellation: each trainee cancels its own copy of the engagement.
    assert _play(relay, delete, "poste-1") == (200, "00")
    assert _play(relay, delete, "poste-2") == (200, "00")
    assert _play(relay, delete, "poste-1") == (200, "11")  # poste-1 already cancelled it
    assert _play(relay, delete, None) == (200, "00")  # the establishment's sandbox, as before
    relay.close()
    # Straight to the simulator, the trainee in the path.
    direct = SoapClient(stack.mutuelle_port, client_context(pki, "hospital-a"))
    assert _play(direct, delete, None, f"/bac/{SITE}/poste-3/roc/DEL") == (200, "00")
    assert _play(direct, delete, None, f"/bac/{SITE}/poste-3/roc/DEL") == (200, "11")
    # A trainee name that is not one is refused, saying why, and nothing is played.
    status, text = _play(direct, delete, None, f"/bac/{SITE}/Jean%20Dupont/roc/DEL")
    assert status == 400 and "MUT-400-DEMANDE" in text and "nom de stagiaire" in text
    direct.close()

    journals = {
        t: [e["outcome"] for e in stack.admin("GET", f"sandboxes/{SITE}.{t}/journal")[1]["entries"]]
        for t in ("poste-1", "poste-2", "poste-3")
    }
    assert journals == {
        "poste-1": ["00", "00", "11"],
        "poste-2": ["00", "00"],
        "poste-3": ["00", "11"],
    }
    # Resetting one trainee leaves the other's work alone.
    assert stack.admin("POST", f"sandboxes/{SITE}.poste-1/reset")[0] == 200
    assert stack.admin("GET", f"sandboxes/{SITE}.poste-1/journal")[1]["entries"] == []
    assert len(stack.admin("GET", f"sandboxes/{SITE}.poste-2/journal")[1]["entries"]) == 2
    assert stack.admin("GET", "sandboxes/990000028.Bad_Name/journal")[0] == 400
