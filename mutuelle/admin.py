"""The admin API, in the spirit of WireMock's ``/__admin``: list, read, reset, seed sandboxes.

``AdminApi.handle`` takes a method, the path segments after ``/__admin``, the query and the
JSON body, checks them, and answers (a Deferred) a status and a JSON-able document, each
change one unit of work of the sandbox store (``mutuelle.storage``). ``mutuelle.server``
serves it on the loopback admin endpoint only. Answers carry codes and counts, never personal
data; seeding takes beneficiaries' identifiers (fictitious ones) but never echoes them.

Routes (``<F>`` is a FINESS, or ``<FINESS>.<trainee>`` a trainee's sandbox, ``mutuelle.trainees``):

- ``GET  /__admin/sandboxes``                  every sandbox's summary
- ``GET  /__admin/sandboxes/<F>``              one sandbox's summary
- ``POST /__admin/sandboxes/<F>/reset``        back to the seed (or ``DELETE`` the sandbox)
- ``GET  /__admin/sandboxes/<F>/journal``      last exchanges with their conformance report
                                               (``?limit=N``, default 100; ``&bodies=1``
                                               adds request and answer bodies, fictitious
                                               data, for ``mutuelle.suite record``)
- ``GET  /__admin/sandboxes/<F>/conformance``  conformance summary
- ``GET  /__admin/sandboxes/<F>/qualification?sectors=MCO,PSY``  progress in the
  qualification suite, computed from the journal (``mutuelle.qualification``)
- ``GET  /__admin/qualification/suites``        the suites of the usual sector profiles
- ``POST /__admin/sandboxes/<F>/seed``         add identifications and engagements (JSON)
- ``PUT  /__admin/sandboxes/<F>/fault``        ``{"fault": "HTTP_503"}``; ``DELETE`` switches off
- ``PUT  /__admin/sandboxes/<F>/signature``    ``{"policy": "require"}`` (or ``report``, ``off``);
                                               ``DELETE`` goes back to the configuration's
- ``PUT  /__admin/sandboxes/<F>/clock``        ``{"offset_days": 31}`` or ``{"offset_seconds": 60}``
- ``POST /__admin/sandboxes/<F>/returns``      billing: produce returns now (every pending 578R
                                               and 908R due at once); answers how many
- ``GET  /__admin/faults``                     the technical faults and what they do
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from mutuelle.catalogue import Catalogue, default_catalogue
from mutuelle.engagements import Engagement, EngagementState
from mutuelle.model import BeneficiaryKey, Sector
from mutuelle.qualification import UnknownSector, progress, standard_suites, suite_for
from mutuelle.sandbox import JOURNAL_SIZE, Identification
from mutuelle.storage import ISandbox, ISandboxStore, StorageUnavailable
from mutuelle.technical import TechnicalFault, by_name
from mutuelle.trainees import split_sandbox, trainee_error
from roc.identifiers import amc_number_error, finess_error, nir_error

Answer = tuple[int, dict[str, Any]]
#: Values of ``mutuelle.signatures.SignaturePolicy``.
_POLICIES = ("require", "report", "off")


class _BadRequest(ValueError):
    pass


def _error(status: int, message: str) -> Answer:
    return status, {"error": message}


def _summary_or_404(sandbox: ISandbox | None) -> Answer:
    if sandbox is None:
        return _error(404, "no sandbox for this FINESS yet")
    return 200, sandbox.summary()


class AdminApi:
    """Operations on the simulator's sandboxes, each one unit of work of the store."""

    log = Logger()

    def __init__(
        self,
        store: ISandboxStore,
        signatures_checkable: bool = True,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.store = store
        #: Whether trusted authorities are configured, so that a sandbox may check signatures.
        self.signatures_checkable = signatures_checkable
        self._catalogue = catalogue

    @property
    def catalogue(self) -> Catalogue:
        """The catalogue the qualification suites come from (built on first use)."""
        if self._catalogue is None:
            self._catalogue = default_catalogue()
        return self._catalogue

    def handle(
        self,
        method: str,
        segments: Sequence[str],
        query: Mapping[str, str],
        body: Any,
    ) -> Deferred[Answer]:
        """The answer; 400 for a bad request, 503 when the storage is unavailable."""
        try:
            answer = self._route(method, list(segments), query, body)
        except _BadRequest as exc:
            return succeed(_error(400, str(exc)))
        if not isinstance(answer, Deferred):
            return succeed(answer)
        return answer.addErrback(self._unavailable)

    def _unavailable(self, failure: Failure) -> Answer:
        failure.trap(StorageUnavailable)
        self.log.warn("Sandbox storage unavailable: {reason}", reason=failure.getErrorMessage())
        return _error(503, "sandbox storage unavailable; retry later")

    def _route(
        self, method: str, segments: list[str], query: Mapping[str, str], body: Any
    ) -> Answer | Deferred[Answer]:
        if segments == ["qualification", "suites"] and method == "GET":
            shown = [suite.as_dict() for suite in standard_suites(self.catalogue)]
            return 200, {"suites": shown}
        if segments == ["faults"] and method == "GET":
            return 200, {
                "faults": [{"name": f.value, "description": f.description} for f in TechnicalFault]
            }
        if not segments or segments[0] != "sandboxes":
            return _error(404, "unknown admin path")
        if len(segments) == 1:
            if method != "GET":
                return _error(405, "GET only")
            return self.store.summaries().addCallback(lambda all: (200, {"sandboxes": all}))
        finess = segments[1]
        establishment, trainee = split_sandbox(finess)
        if establishment != "anonyme" and finess_error(establishment) is not None:
            return _error(400, "sandbox: not a FINESS")
        if trainee is not None and trainee_error(trainee) is not None:
            return _error(400, "sandbox: not <FINESS>.<trainee> (a-z, 0-9, '-', 1 to 32)")
        action = segments[2] if len(segments) == 3 else None
        if len(segments) > 3:
            return _error(404, "unknown admin path")
        if action is None:
            if method == "DELETE":
                return self._reset(finess)
            if method != "GET":
                return _error(405, "GET or DELETE")
            return self.store.inspect(finess, _summary_or_404)
        if action == "reset" and method == "POST":
            return self._reset(finess)
        if action == "journal" and method == "GET":
            limit = _int(query.get("limit", "100"), "limit", 1, 10_000)
            bodies = query.get("bodies", "0") == "1"

            def journal(sandbox: ISandbox | None) -> Answer:
                entries = [] if sandbox is None else sandbox.journal_tail(limit)
                shown = [e.as_dict(bodies) for e in entries]
                return 200, {"finess": finess, "entries": shown}

            return self.store.inspect(finess, journal)
        if action == "qualification" and method == "GET":
            return self._qualification(finess, query)
        if action == "conformance" and method == "GET":

            def conformance(sandbox: ISandbox | None) -> Answer:
                if sandbox is None:
                    return _error(404, "no sandbox for this FINESS yet")
                return 200, {"finess": finess, **sandbox.conformance_summary()}

            return self.store.inspect(finess, conformance)
        if action == "seed" and method == "POST":
            return self._seed(finess, body)
        if action == "fault":
            return self._fault(finess, method, body)
        if action == "signature":
            return self._signature(finess, method, body)
        if action == "clock" and method == "PUT":
            return self._clock(finess, body)
        if action == "returns" and method == "POST":

            def release(sandbox: ISandbox) -> Answer:
                released = sandbox.release_returns()
                return 200, {"finess": finess, "released": released, **sandbox.summary()}

            return self.store.transact(finess, release)
        return _error(404, "unknown admin path or method")

    def _qualification(self, finess: str, query: Mapping[str, str]) -> Answer | Deferred[Answer]:
        """The sandbox's progress in the suite of ``?sectors=`` (MCO by default), from its
        journal (``mutuelle.qualification``); ``?since=`` (ISO time) ignores older entries."""
        try:
            suite = suite_for(query.get("sectors", "MCO"), self.catalogue)
        except UnknownSector as exc:
            return _error(400, str(exc))
        since = None
        if "since" in query:
            try:
                since = datetime.datetime.fromisoformat(query["since"]).timestamp()
            except ValueError:
                return _error(400, "since : une date et heure ISO 8601 est attendue")

        def measured(sandbox: ISandbox | None) -> Answer:
            journal = [] if sandbox is None else sandbox.journal_tail(JOURNAL_SIZE)
            return 200, progress(finess, suite, journal, since).as_dict()

        return self.store.inspect(finess, measured)

    def _change(self, finess: str, change: Callable[[ISandbox], None]) -> Deferred[Answer]:
        """Apply *change* to *finess*'s sandbox (created if new); answer its summary."""

        def work(sandbox: ISandbox) -> Answer:
            change(sandbox)
            return 200, sandbox.summary()

        return self.store.transact(finess, work)

    def _reset(self, finess: str) -> Deferred[Answer]:
        return self._change(finess, lambda sandbox: sandbox.reset())

    def _fault(self, finess: str, method: str, body: Any) -> Answer | Deferred[Answer]:
        if method == "DELETE":
            fault = None
        elif method != "PUT":
            return _error(405, "PUT or DELETE")
        else:
            name = _field(body, "fault", str, "body")
            fault = by_name(name)
            if fault is None:
                names = ", ".join(f.value for f in TechnicalFault)
                raise _BadRequest(f"fault: must be one of {names}")

        def switch(sandbox: ISandbox) -> None:
            sandbox.fault = fault

        return self._change(finess, switch)

    def _signature(self, finess: str, method: str, body: Any) -> Answer | Deferred[Answer]:
        if method == "DELETE":
            policy: str | None = None
        elif method != "PUT":
            return _error(405, "PUT or DELETE")
        else:
            policy = _field(body, "policy", str, "body")
            if policy not in _POLICIES:
                raise _BadRequest(f"policy: must be one of {', '.join(_POLICIES)}")
            if policy != "off" and not self.signatures_checkable:
                return _error(409, "no trusted CA configured (signatures.ca_certificates)")

        def choose(sandbox: ISandbox) -> None:
            sandbox.signature_policy = policy

        return self._change(finess, choose)

    def _clock(self, finess: str, body: Any) -> Deferred[Answer]:
        if not isinstance(body, dict):
            raise _BadRequest("body: must be a JSON object")
        if "offset_days" in body:
            offset = float(_field(body, "offset_days", int, "body")) * 86400
        else:
            value = body.get("offset_seconds")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _BadRequest("body: offset_days (integer) or offset_seconds (number)")
            offset = float(value)

        def move(sandbox: ISandbox) -> None:
            sandbox.clock_offset = offset

        return self._change(finess, move)

    def _seed(self, finess: str, body: Any) -> Deferred[Answer]:
        if not isinstance(body, dict):
            raise _BadRequest("body: must be a JSON object")
        unknown = sorted(set(body) - {"identifications", "engagements"})
        if unknown:
            raise _BadRequest(f"body.{unknown[0]}: unknown key")
        identifications = [
            _identification(item, f"identifications[{i}]")
            for i, item in enumerate(_list(body, "identifications"))
        ]
        engagements = [
            _engagement(item, f"engagements[{i}]")
            for i, item in enumerate(_list(body, "engagements"))
        ]

        def seed(sandbox: ISandbox) -> None:
            for identification in identifications:
                sandbox.identify(identification)
            for engagement in engagements:
                sandbox.add_engagement(engagement)

        return self._change(finess, seed)


def _list(body: Mapping[str, Any], key: str) -> list[Any]:
    value = body.get(key, [])
    if not isinstance(value, list):
        raise _BadRequest(f"{key}: must be a list")
    return value


def _field(item: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(item, dict):
        raise _BadRequest(f"{where}: must be a JSON object")
    value = item.get(key)
    if value is None:
        raise _BadRequest(f"{where}.{key}: required")
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise _BadRequest(f"{where}.{key}: must be of type {kind.__name__}")
    return value


def _int(text: str, where: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise _BadRequest(f"{where}: must be an integer") from None
    if not low <= value <= high:
        raise _BadRequest(f"{where}: must be between {low} and {high}")
    return value


def _date(item: Any, key: str, where: str) -> datetime.date:
    text = _field(item, key, str, where)
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise _BadRequest(f"{where}.{key}: must be a date YYYY-MM-DD") from None


def _beneficiary(item: Any, where: str) -> tuple[str, BeneficiaryKey]:
    amc = _field(item, "amc", str, where)
    if amc_number_error(amc) is not None:
        raise _BadRequest(f"{where}.amc: not an AMC number")
    nir = _field(item, "nir", str, where)
    if nir_error(nir) is not None:
        raise _BadRequest(f"{where}.nir: not a valid NIR")
    rank = _field(item, "birth_rank", int, where)
    if not 1 <= rank <= 9:
        raise _BadRequest(f"{where}.birth_rank: must be between 1 and 9")
    return amc, BeneficiaryKey(nir, _date(item, "birth_date", where), rank)


def _identification(item: Any, where: str) -> Identification:
    amc, key = _beneficiary(item, where)
    sector = _field(item, "sector", str, where)
    if sector not in {s.value for s in Sector}:
        raise _BadRequest(f"{where}.sector: must be one of MCO, PSY, HAD, SMR, OQN")
    start, end = _date(item, "start", where), _date(item, "end", where)
    if end < start:
        raise _BadRequest(f"{where}.end: before start")
    return Identification(amc, key, start, end, Sector(sector))


def _engagement(item: Any, where: str) -> Engagement:
    amc, key = _beneficiary(item, where)
    number = _field(item, "number", str, where)
    if not (1 <= len(number) <= 30 and all(c.isalnum() or c == "-" for c in number)):
        raise _BadRequest(f"{where}.number: 1 to 30 of A-Z a-z 0-9 -")
    state = item.get("state", EngagementState.ACTIVE.value)
    if state not in {s.value for s in EngagementState}:
        raise _BadRequest(f"{where}.state: must be one of ACTIF, ANNULE, FACTURE")
    reference = item.get("reference", "SEJ-SEED")
    if not isinstance(reference, str):
        raise _BadRequest(f"{where}.reference: must be a string")
    return Engagement(number, amc, key, reference, 0, None, EngagementState(state))
