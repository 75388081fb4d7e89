"""An establishment's qualification progress, as Mutuelle ANS computes it from its sandbox's
journal (contract C): parsing and reading, pure.

``GET <mutuelle_admin_url>/sandboxes/<FINESS>/qualification?sectors=MCO,PSY`` answers the
suite chosen by the sectors and each step: passed, failed (with what was wrong and what to
change, in French) or not yet played. Nothing in it is personal data: steps, cases, codes,
times and exchange ids.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Interface

PASSED = "passed"
FAILED = "failed"
NOT_PLAYED = "not_played"
STATUSES = (PASSED, FAILED, NOT_PLAYED)
STATUS_LABELS = {PASSED: "réussie", FAILED: "échouée", NOT_PLAYED: "pas encore jouée"}


class ProgressError(Exception):
    """The progress could not be read; the message says why, in French (shown on the pages)."""


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    title: str
    service: str
    case: str
    amc: str
    expected_code: str
    status: str
    played_at: float | None
    attempts: int
    reason: str | None
    fix: str | None


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A non-conforming exchange of the sandbox that played no step: what to fix."""

    time: float | None
    service: str
    reason: str
    fix: str


@dataclass(frozen=True, slots=True)
class Progress:
    sandbox: str
    suite: str
    sectors: tuple[str, ...]
    qualified: bool
    steps: tuple[Step, ...]
    unmatched: tuple[Unmatched, ...] = ()

    def count(self, status: str | None = None) -> int:
        return sum(1 for s in self.steps if status in (None, s.status))

    @property
    def passed(self) -> int:
        return self.count(PASSED)

    @property
    def total(self) -> int:
        return len(self.steps)

    @property
    def blocking(self) -> Step | None:
        """The step to work on: the first failed one, else the first not yet played."""
        for status in (FAILED, NOT_PLAYED):
            for step in self.steps:
                if step.status == status:
                    return step
        return None

    @property
    def last_passed(self) -> float | None:
        """When a step was last passed (None: none yet)."""
        times = [s.played_at for s in self.steps if s.status == PASSED and s.played_at]
        return max(times) if times else None


@dataclass(frozen=True, slots=True)
class Unavailable:
    """Why the progress is not shown ("progression indisponible : <reason>")."""

    reason: str


ProgressReading = Progress | Unavailable


class IProgressSource(Interface):
    def progress(finess: str, sectors: tuple[str, ...]) -> Deferred[Progress]:
        """*finess*'s sandbox progress on the suite of *sectors*; fails with ProgressError."""


def _time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.timestamp()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _optional(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _step(item: Mapping[str, Any]) -> Step:
    status = item.get("status")
    if status not in STATUSES:
        raise ProgressError(f"étape {_text(item.get('id'))!r} : statut {status!r} inconnu")
    attempts = item.get("attempts")
    return Step(
        id=_text(item.get("id")),
        title=_text(item.get("title")) or _text(item.get("id")),
        service=_text(item.get("service")),
        case=_text(item.get("case")),
        amc=_text(item.get("amc")),
        expected_code=_text(item.get("expected_code")),
        status=status,
        played_at=_time(item.get("played_at")),
        attempts=attempts if isinstance(attempts, int) and attempts >= 0 else 0,
        reason=_optional(item.get("reason")),
        fix=_optional(item.get("fix")),
    )


def parse_progress(body: bytes) -> Progress:
    """The progress document of contract C, or ProgressError saying what is wrong."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ProgressError("réponse de Mutuelle ANS illisible (pas du JSON)") from None
    if not isinstance(document, dict) or not isinstance(document.get("steps"), list):
        raise ProgressError("réponse de Mutuelle ANS sans liste d'étapes")
    steps = []
    for item in document["steps"]:
        if not isinstance(item, dict):
            raise ProgressError("réponse de Mutuelle ANS : étape mal formée")
        steps.append(_step(item))
    unmatched = tuple(
        Unmatched(
            _time(u.get("time")),
            _text(u.get("service")),
            _text(u.get("reason")),
            _text(u.get("fix")),
        )
        for u in document.get("unmatched") or ()
        if isinstance(u, dict)
    )[:20]
    sectors = document.get("sectors")
    return Progress(
        sandbox=_text(document.get("sandbox")),
        suite=_text(document.get("suite")),
        sectors=tuple(s for s in sectors if isinstance(s, str))
        if isinstance(sectors, list)
        else (),
        # Qualified only if Mutuelle ANS says so and every step is indeed passed.
        qualified=document.get("qualified") is True and all(s.status == PASSED for s in steps),
        steps=tuple(steps),
        unmatched=unmatched,
    )


def error_message(body: bytes) -> str:
    """The French message of a refusal from Mutuelle ANS's admin API, if it carries one."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ""
    if isinstance(document, dict):
        for key in ("message", "error", "reason"):
            value = document.get(key)
            if isinstance(value, str):
                return value[:300]
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])[:300]
    return ""
