"""In-memory fakes for the indicators' seams; each passes ``verifyObject`` for its interface."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from indicators.progress import IProgressSource, Progress, ProgressError, parse_progress
from indicators.prometheus import IPrometheus, PrometheusError, Sample


@implementer(IPrometheus)
class FakePrometheus:
    """Answers each query with the samples of the first *answers* key found in the expression.

    Keys are substrings of PromQL (a metric name, ``by (finess, code)``...), tried in order;
    an expression no key matches answers an empty vector. ``error`` makes every query fail.
    """

    def __init__(
        self,
        answers: Mapping[str, list[Sample]] | None = None,
        answer: Callable[[str, float], list[Sample]] | None = None,
    ) -> None:
        self.answers = dict(answers or {})
        self._answer = answer
        self.queries: list[tuple[str, float]] = []
        self.error: str | None = None

    def query(self, expr: str, at: float) -> Deferred[list[Sample]]:
        self.queries.append((expr, at))
        if self.error is not None:
            return fail(PrometheusError(self.error))
        if self._answer is not None:
            return succeed(self._answer(expr, at))
        for key, samples in self.answers.items():
            if key in expr:
                return succeed(list(samples))
        return succeed([])


def sample(value: float, **labels: str) -> Sample:
    return Sample(dict(labels), value)


@implementer(IProgressSource)
class FakeProgress:
    """Answers each FINESS's progress from *documents* (contract-C JSON, parsed as the real
    client parses it); a FINESS in *errors* fails with that French reason, others with
    "bac à sable inconnu"."""

    def __init__(
        self,
        documents: Mapping[str, dict[str, Any]] | None = None,
        errors: Mapping[str, str] | None = None,
    ) -> None:
        self.documents = dict(documents or {})
        self.errors = dict(errors or {})
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def progress(self, finess: str, sectors: tuple[str, ...]) -> Deferred[Progress]:
        self.asked.append((finess, sectors))
        if finess in self.errors:
            return fail(ProgressError(self.errors[finess]))
        document = self.documents.get(finess)
        if document is None:
            return fail(ProgressError("Mutuelle ANS a répondu HTTP 404"))
        try:
            return succeed(parse_progress(json.dumps(document).encode()))
        except ProgressError as exc:
            return fail(exc)


def lifecycle_sample(
    finess: str,
    state: str,
    since: float,
    legal_entity: str | None = None,
    sectors: str = "MCO",
) -> Sample:
    """One series of rpn_establishment_lifecycle_since_timestamp_seconds (contract B)."""
    entity = legal_entity or finess
    return Sample(
        {
            "finess": finess,
            "legal_entity": entity,
            "role": "legal_entity" if entity == finess else "site",
            "state": state,
            "sectors": sectors,
        },
        since,
    )


def progress_document(
    sandbox: str,
    statuses: Sequence[str],
    sectors: Sequence[str] = ("MCO",),
    played_at: str = "2026-12-03T10:00:00+00:00",
) -> dict[str, Any]:
    """A contract-C progress document whose steps have *statuses* in order."""
    steps = []
    for i, status in enumerate(statuses):
        steps.append(
            {
                "id": f"STEP_{i + 1}",
                "title": f"Étape {i + 1}",
                "service": "IDB",
                "roc_version": "V1",
                "sector": sectors[0],
                "case": f"IDB_CASE_{i + 1}",
                "amc": "990000101",
                "expected_code": "00",
                "through_relay": True,
                "status": status,
                "played_at": None if status == "not_played" else played_at,
                "exchange_id": None if status == "not_played" else f"ex-{i + 1}",
                "attempts": 0 if status == "not_played" else 1,
                "reason": "code 05 reçu au lieu de 00" if status == "failed" else None,
                "fix": "renseigner le numéro d'adhérent" if status == "failed" else None,
            }
        )
    counts = {s: sum(1 for x in statuses if x == s) for s in ("passed", "failed", "not_played")}
    return {
        "sandbox": sandbox,
        "sectors": list(sectors),
        "roc_version": "V1",
        "suite": f"qualification-V1-{'-'.join(sectors)}",
        "qualified": bool(statuses) and all(s == "passed" for s in statuses),
        "counts": counts | {"total": len(statuses)},
        "steps": steps,
        "unmatched": [],
    }
