"""The training view: a trainer reads the room's exchanges and resets trainees, over TLS.

``GET /formation/<FINESS>`` on the simulator's public TLS site, readable only with a client
certificate naming that FINESS (another establishment's, or one naming none, gets 403): for
the establishment's own sandbox and each trainee's (``mutuelle.trainees``), the exchanges in
order with the answer's code, a French reason saying what to check, the case reached and the
conformance violations; a form resets one trainee, another the whole room (``POST
/formation/<FINESS>/reinitialiser`` with ``stagiaire=<name>`` or ``salle=1``, answered 303 back
to the page), and ticks the exercises each trainee has done (``mutuelle.exercises``). Plain
HTML, no JavaScript. A POST whose ``Origin`` is another site is refused
(a form elsewhere cannot reset a room through a trainer's browser). ``training_page`` is pure.
"""

from __future__ import annotations

import datetime
import html
import urllib.parse
from collections.abc import Sequence
from typing import Any

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import Request
from twisted.web.server import NOT_DONE_YET

from mutuelle.catalogue import Catalogue
from mutuelle.exercises import progress
from mutuelle.sandbox import JournalEntry
from mutuelle.storage import ISandbox, ISandboxStore
from mutuelle.trainees import split_sandbox, trainee_error, trainee_sandbox
from roc.identifiers import finess_error
from roc.returncodes import describe_code

PREFIX = b"formation"
#: Exchanges shown per sandbox, the latest.
SHOWN = 200

Room = tuple[str | None, Sequence[JournalEntry]]

_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
    "margin:.5em 0 1.5em}td,th{border:1px solid #bbb;padding:.25em .5em;text-align:left;"
    "vertical-align:top}th{background:#eee}.ok{color:#176117}.ko{color:#a11}"
)


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _reset_form(establishment: str, field: str, value: str, label: str) -> str:
    return (
        f'<form method="post" action="/formation/{_e(establishment)}/reinitialiser">'
        f'<input type="hidden" name="{_e(field)}" value="{_e(value)}">'
        f'<button type="submit">{_e(label)}</button></form>'
    )


def _when(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%d/%m/%Y %H:%M:%S")


def _rows(entries: Sequence[JournalEntry]) -> str:
    if not entries:
        return "<p>Aucun échange pour l'instant.</p>"
    out = [
        "<table><thead><tr><th>N°</th><th>Heure (UTC)</th><th>Service</th><th>Cas atteint</th>"
        "<th>Code</th><th>Réponse</th><th>À vérifier</th><th>Écarts de conformité</th></tr>"
        "</thead><tbody>"
    ]
    for entry in entries:
        described = describe_code(entry.outcome)
        good = entry.outcome == "00"
        check = "Rien : la demande est acceptée." if good else described.action
        violations = "".join(
            f"<li><code>{_e(v.field)}</code> ({_e(v.rule)}) : {_e(v.reason)}</li>"
            for v in entry.violations
        )
        out.append(
            f"<tr><td>{entry.sequence}</td><td>{_when(entry.time)}</td><td>{_e(entry.service)}</td>"
            f"<td>{_e(entry.case or '—')}</td>"
            f'<td class="{"ok" if good else "ko"}">{_e(entry.outcome)}</td>'
            f"<td>{_e(described.label)}</td><td>{_e(check)}</td>"
            f"<td>{'<ul>' + violations + '</ul>' if violations else 'aucun'}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _exercises(entries: Sequence[JournalEntry], catalogue: Catalogue) -> str:
    items = "".join(
        f'<li class="{"ok" if ok else "ko"}">{"✓ réussi" if ok else "☐ à faire"} : '
        f"<strong>{_e(exercise.title)}</strong> — {_e(exercise.goal)}</li>"
        for exercise, ok in progress(entries, catalogue)
    )
    return f'<h3>Exercices</h3><ul class="exercices">{items}</ul>'


def training_page(
    establishment: str, rooms: Sequence[Room], catalogue: Catalogue | None = None
) -> bytes:
    """The page for *establishment*: its own sandbox (trainee None) and each trainee's, with
    the exercises (``mutuelle.exercises``) each has done when *catalogue* is given."""
    parts = [
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">',
        f"<title>Salle de formation — {_e(establishment)}</title><style>{_STYLE}</style></head>",
        f"<body><h1>Salle de formation de l'établissement {_e(establishment)}</h1>",
        "<p>Les échanges de chaque stagiaire avec Mutuelle ANS (données fictives), dans "
        "l'ordre. Un stagiaire se nomme par l'en-tête SOAP <code>Stagiaire</code> ou le chemin "
        f"<code>/bac/{_e(establishment)}/&lt;stagiaire&gt;/roc/&lt;SERVICE&gt;</code>.</p>",
        _reset_form(establishment, "salle", "1", "Réinitialiser toute la salle"),
    ]
    for trainee, entries in rooms:
        title = (
            "Bac à sable de l'établissement (sans stagiaire)"
            if trainee is None
            else f"Stagiaire {trainee}"
        )
        anchor = "etablissement" if trainee is None else f"stagiaire-{trainee}"
        parts.append(f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>')
        parts.append(f"<p>{len(entries)} échange(s).</p>")
        if catalogue is not None:
            parts.append(_exercises(entries, catalogue))
        parts.append(_rows(entries))
        parts.append(
            _reset_form(
                establishment,
                "stagiaire",
                trainee or "",
                "Réinitialiser ce stagiaire" if trainee else "Réinitialiser ce bac à sable",
            )
        )
        parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts).encode("utf-8")


def _form(request: Request) -> dict[str, list[str]]:
    """The fields of a posted form (``application/x-www-form-urlencoded``), blanks kept."""
    body = request.content.read() if request.content is not None else b""
    text = body.decode("utf-8", "replace")
    return urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=10)


def _refusal(status: int, text: str) -> bytes:
    page = (
        '<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Refusé</title></head>'
        f"<body><h1>Accès refusé</h1><p>{_e(text)}</p></body></html>"
    )
    return page.encode("utf-8")


class TrainingView:
    """The glue: reads the certificate, the store, writes the page or redirects."""

    log = Logger()

    def __init__(self, store: ISandboxStore, catalogue: Catalogue | None = None) -> None:
        self.store = store
        self.catalogue = catalogue

    def render(self, request: Request, segments: Sequence[bytes], certified: str | None) -> Any:
        method = request.method or b""
        if not segments or len(segments) > 2:
            return self._answer(request, 404, "Page inconnue : /formation/<FINESS>.")
        establishment = segments[0].decode("ascii", "replace")
        if finess_error(establishment) is not None:
            return self._answer(request, 404, "Page inconnue : /formation/<FINESS>.")
        if certified != establishment:
            return self._answer(
                request,
                403,
                "Cette salle de formation n'est lisible qu'avec le certificat de l'établissement "
                f"{establishment}.",
            )
        if len(segments) == 1 and method in (b"GET", b"HEAD"):
            done = self._rooms(establishment)
            done.addCallback(lambda rooms: self._page(request, establishment, rooms))
        elif len(segments) == 2 and segments[1] == b"reinitialiser" and method == b"POST":
            origin = request.getHeader(b"origin")
            host = request.getHeader(b"host")
            if origin is not None and urllib.parse.urlsplit(origin.decode("latin-1")).netloc != (
                (host or b"").decode("latin-1")
            ):
                return self._answer(request, 403, "Formulaire venu d'un autre site : refusé.")
            try:
                done = self._reset(establishment, _form(request))
            except ValueError as bad:
                return self._answer(request, 400, str(bad))
            done.addCallback(lambda _: self._back(request, establishment))
        else:
            return self._answer(request, 405, "Méthode non permise.")
        done.addErrback(self._failed, request)
        return NOT_DONE_YET

    def _names(self, establishment: str) -> Deferred[list[str]]:
        def mine(summaries: list[dict[str, Any]]) -> list[str]:
            names = {str(s.get("finess", "")) for s in summaries}
            ours = [n for n in names if split_sandbox(n)[0] == establishment]
            return sorted(ours, key=lambda n: (n != establishment, n))

        return self.store.summaries().addCallback(mine)

    def _rooms(self, establishment: str) -> Deferred[list[Room]]:
        def journals(names: list[str]) -> Deferred[list[Room]]:
            def tail(sandbox: ISandbox | None) -> list[JournalEntry]:
                return [] if sandbox is None else sandbox.journal_tail(SHOWN)

            def pair(name: str) -> Deferred[Room]:
                trainee = split_sandbox(name)[1]
                return self.store.inspect(name, tail).addCallback(lambda e: (trainee, e))

            return gatherResults([pair(n) for n in names], consumeErrors=True)

        return self._names(establishment).addCallback(journals)

    def _reset(self, establishment: str, args: dict[str, list[str]]) -> Deferred[Any]:
        def reset(sandbox: ISandbox) -> None:
            sandbox.reset()

        if args.get("salle") == ["1"]:

            def every(names: list[str]) -> Deferred[Any]:
                return gatherResults([self.store.transact(n, reset) for n in names])

            return self._names(establishment).addCallback(every)
        values = args.get("stagiaire", [])
        if len(values) != 1:
            raise ValueError("Indiquer le stagiaire à réinitialiser.")
        trainee = values[0] or None
        if trainee is not None and trainee_error(trainee) is not None:
            raise ValueError("Nom de stagiaire invalide.")
        return self.store.transact(trainee_sandbox(establishment, trainee), reset)

    def _page(self, request: Request, establishment: str, rooms: list[Room]) -> None:
        self._write(request, 200, training_page(establishment, rooms, self.catalogue))

    def _back(self, request: Request, establishment: str) -> None:
        request.setResponseCode(303)
        request.setHeader(b"location", f"/formation/{establishment}".encode("ascii"))
        self._write(request, 303, b"")

    def _answer(self, request: Request, status: int, text: str) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return _refusal(status, text)

    def _write(self, request: Request, status: int, body: bytes) -> None:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"content-length", str(len(body)).encode("ascii"))
        request.write(body)
        request.finish()

    def _failed(self, failure: Failure, request: Request) -> None:
        self.log.failure("Training view failed", failure)
        self._write(request, 503, _refusal(503, "Bac à sable momentanément indisponible."))
