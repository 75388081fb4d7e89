"""The training view over TLS: a trainer of hospital A reads its room in headless Chromium,
resets one trainee; hospital B's certificate is refused. Real processes, real TLS."""

from __future__ import annotations

import http.client
import ssl
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import SoapClient, client_context
from tests.integration.indicators_stack import ClientCertificateForwarder, chromium_dom
from tests.integration.test_mutuelle_cases import Stack, start_stack
from tests.integration.test_trainees import _case, _play

pytestmark = pytest.mark.integration

SITE = "990000028"


@pytest.fixture(scope="module")
def stack(pki: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    started = start_stack(pki, tmp_path_factory.mktemp("training-stack"))
    yield started
    started.stop()


def _request(
    stack: Stack,
    context: ssl.SSLContext,
    method: str,
    path: str,
    form: dict[str, str] | None = None,
    origin: str | None = None,
) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", stack.mutuelle_port, context=context, timeout=10
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if form else {}
    if origin is not None:
        headers["Origin"] = origin
    try:
        body = urllib.parse.urlencode(form or {}).encode() if form is not None else None
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def test_the_trainer_reads_the_room_in_chromium_and_resets_one_trainee(
    stack: Stack, pki: Path, tmp_path: Path
) -> None:
    for sandbox in (SITE, f"{SITE}.poste-1", f"{SITE}.poste-2"):
        stack.admin("POST", f"sandboxes/{sandbox}/reset")
    relay = SoapClient(stack.relay_port, client_context(pki, "hospital-a"))
    delete = _case("DEL_OK_MCO_ANNULATION")
    assert _play(relay, delete, "poste-1")[1] == "00"
    assert _play(relay, delete, "poste-1")[1] == "11"
    assert _play(relay, _case("CLC_KO_MCO_SANS_IDB_PREALABLE"), "poste-2")[1] == "07"
    relay.close()

    a = client_context(pki, "hospital-a")
    with ClientCertificateForwarder(stack.mutuelle_port, a) as forwarder:
        dom = chromium_dom(
            f"http://127.0.0.1:{forwarder.port}/formation/{SITE}", tmp_path / "chromium"
        )
    assert "Salle de formation de l'établissement 990000028" in dom
    assert "Stagiaire poste-1" in dom and "Stagiaire poste-2" in dom
    assert "DEL_OK_MCO_ANNULATION" in dom and "Engagement déjà annulé" in dom
    assert "CLC_KO_MCO_SANS_IDB_PREALABLE" in dom  # the case reached, code 07 explained
    assert "<script" not in dom.lower()
    # poste-1 cancelled the engagement right: that exercise, and only it, is ticked.
    poste_1, poste_2 = dom.split("Stagiaire poste-2")[0], dom.split("Stagiaire poste-2")[1]
    assert poste_1.count("✓ réussi") == 1 and "Annuler l'engagement" in poste_1
    assert "✓ réussi" not in poste_2
    assert dom.count("Réinitialiser ce stagiaire") == 2 and "Réinitialiser toute la salle" in dom

    # Another establishment's certificate is refused, whatever it asks.
    b = client_context(pki, "hospital-b")
    status, _, text = _request(stack, b, "GET", f"/formation/{SITE}")
    assert status == 403 and "certificat de l&#x27;établissement 990000028" in text
    assert _request(stack, b, "POST", f"/formation/{SITE}/reinitialiser", {"salle": "1"})[0] == 403
    # A form posted from another site is refused; the trainer's own form resets poste-1 only.
    path = f"/formation/{SITE}/reinitialiser"
    status, _, _ = _request(stack, a, "POST", path, {"stagiaire": "poste-1"}, "https://evil.test")
    assert status == 403
    status, headers, _ = _request(stack, a, "POST", path, {"stagiaire": "poste-1"})
    assert status == 303 and headers.get("Location") == f"/formation/{SITE}"
    assert stack.admin("GET", f"sandboxes/{SITE}.poste-1/journal")[1]["entries"] == []
    assert len(stack.admin("GET", f"sandboxes/{SITE}.poste-2/journal")[1]["entries"]) == 1
    status, _, page = _request(stack, a, "GET", f"/formation/{SITE}")
    assert status == 200 and "Stagiaire poste-1" in page and "Aucun échange" in page
    # The whole room.
    assert _request(stack, a, "POST", path, {"salle": "1"})[0] == 303
    assert stack.admin("GET", f"sandboxes/{SITE}.poste-2/journal")[1]["entries"] == []
