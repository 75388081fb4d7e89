"""The relay's AMC directory: a source behind a cache policy, plus a last-known-good snapshot.

The policy is pure: time comes from the injected clock, answers from the injected source, and
the snapshot store is the only I/O (small, synchronous, debounced).

Rules, with times in the clock's seconds:

* A positive answer is fresh for *ttl*; a fresh entry is answered without asking the source.
* An unknown AMC (the source answered None) fails with ``AMC_UNKNOWN``; that answer is
  remembered for *negative_ttl* and removes any entry held for the key.
* At most one source call per key at a time: lookups arriving meanwhile share its answer.
* An entry expired for less than *stale_while_revalidate* is answered at once while one
  background call refreshes it.
* When the source fails (unreachable, timeout, ``MalformedAnswer``), an entry expired for less
  than *stale_if_error* is answered instead and kept as it is (last-known-good); the source is
  then not asked again for that key for *retry_interval*, so an outage does not make every
  exchange wait for the annuaire's timeout. Without such an entry the lookup fails with
  ``ANNUAIRE_UNAVAILABLE``. Unknown-AMC answers are never served stale: refusing an exchange
  as unknown on old information is worse than asking the sender to retry.
* Snapshot entries loaded at start-up are already expired, so the source is asked first, but
  they stay usable for stale-if-error **whatever their age** until the source answers for
  their key. A relay restarted during an annuaire outage knows nothing better, AMC endpoints
  change rarely, and routing to the last endpoints the annuaire gave beats refusing every
  exchange. The first answer from the source replaces them and the normal rules apply.
* The snapshot is saved when the entries change (an AMC learnt, its endpoints changed, or
  dropped as unknown), at most once per *snapshot_interval*; ``flush()`` saves at shutdown.
  A refresh that brings the same answer writes nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet import defer, error
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from roc.identifiers import amc_number_error
from roc.model import AmcKey
from roc.reasons import Reason
from rpn.annuaire_sources import MalformedAnswer
from rpn.errors import RpnError, RpnFailure
from rpn.interfaces import AmcEntry, IAnnuaire, IAnnuaireSource, ISnapshotStore

#: The keys of ``CachedAnnuaire.lookups_total``; each answered lookup counts once, under:
#: hit (fresh entry, no source call), miss (answered by a source call it started), coalesced
#: (answered by a call another lookup started), stale (an expired entry: while it is refreshed
#: in the background, or because the source failed), negative (AMC_UNKNOWN), error
#: (ANNUAIRE_UNAVAILABLE). A lookup its caller cancelled is not counted.
LOOKUP_OUTCOMES = ("hit", "miss", "coalesced", "stale", "negative", "error")

_NEVER = float("-inf")


@dataclass(slots=True)
class _Cached:
    entry: AmcEntry
    expires_at: float
    #: Loaded from the snapshot and not answered by the source since: usable stale at any age.
    pinned: bool = False
    #: After a failed refresh, the stale entry is answered without asking the source until then.
    retry_at: float = _NEVER


@dataclass(slots=True, eq=False)
class _Waiter:
    coalesced: bool
    deferred: Deferred[AmcEntry] = field(init=False)


@dataclass(slots=True, eq=False)
class _Flight:
    """One source call in progress and the lookups waiting for it."""

    key: AmcKey
    waiters: list[_Waiter] = field(default_factory=list)
    #: False once ``invalidate`` ran: the answer is still delivered but not cached.
    current: bool = True


@implementer(IAnnuaire)
class CachedAnnuaire:
    """The annuaire policy described in this module's docstring, over *source*.

    Counters (plain attributes, read by the metrics layer): ``lookups_total`` by outcome (see
    ``LOOKUP_OUTCOMES``), ``source_errors_total`` (every failed source call, malformed answers
    included), ``malformed_total`` (the source answered garbage: the alert metric),
    ``last_success_time`` (clock seconds of the last answer from the source, or None) and
    ``size`` (AMC entries held).
    """

    log = Logger()

    def __init__(
        self,
        source: IAnnuaireSource,
        clock: IReactorTime,
        *,
        ttl: float = 300.0,
        negative_ttl: float = 60.0,
        stale_if_error: float = 86400.0,
        stale_while_revalidate: float = 10.0,
        retry_interval: float = 5.0,
        max_negative: int = 10_000,
        snapshot: ISnapshotStore | None = None,
        snapshot_interval: float = 30.0,
    ) -> None:
        for name, value in (
            ("ttl", ttl),
            ("snapshot_interval", snapshot_interval),
            ("max_negative", max_negative),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be > 0")
        for name, value in (
            ("negative_ttl", negative_ttl),
            ("stale_if_error", stale_if_error),
            ("stale_while_revalidate", stale_while_revalidate),
            ("retry_interval", retry_interval),
        ):
            if value < 0:
                raise ValueError(f"{name} must be >= 0")
        self._source = source
        self._clock = clock
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._stale_if_error = stale_if_error
        self._stale_while_revalidate = stale_while_revalidate
        self._retry_interval = retry_interval
        self._max_negative = max_negative
        self._snapshot = snapshot
        self._snapshot_interval = snapshot_interval

        self._entries: dict[AmcKey, _Cached] = {}
        #: Unknown AMCs and when that answer expires.
        self._negative: dict[AmcKey, float] = {}
        self._inflight: dict[AmcKey, _Flight] = {}
        self._dirty = False
        self._save_call: IDelayedCall | None = None

        self.lookups_total: dict[str, int] = dict.fromkeys(LOOKUP_OUTCOMES, 0)
        self.source_errors_total = 0
        self.malformed_total = 0
        self.last_success_time: float | None = None

        if snapshot is not None:
            for key, entry in snapshot.load().items():
                self._entries[key] = _Cached(entry, _NEVER, pinned=True)

    @property
    def size(self) -> int:
        """How many AMC entries the cache holds (fresh, stale or from the snapshot)."""
        return len(self._entries)

    def names(self) -> dict[str, str]:
        """The name of every AMC the cache knows, by AMC number (for pages and metrics)."""
        return {cached.entry.amc_number: cached.entry.name for cached in self._entries.values()}

    def fresh(self, key: AmcKey) -> AmcEntry | None:
        """The entry for *key* when ``resolve`` would answer it from the cache, fresh (counted
        as the same hit), else None: then ``resolve`` decides (unknown, stale, source)."""
        if key in self._negative:
            return None
        cached = self._entries.get(key)
        if cached is None or not self._clock.seconds() < cached.expires_at:
            return None
        self._count("hit")
        return cached.entry

    def resolve(self, key: AmcKey) -> Deferred[AmcEntry]:
        now = self._clock.seconds()
        negative_until = self._negative.get(key)
        if negative_until is not None:
            if now < negative_until:
                self._count("negative")
                return fail(_unknown(key))
            del self._negative[key]
        cached = self._entries.get(key)
        if cached is not None:
            if now < cached.expires_at:
                self._count("hit")
                return succeed(cached.entry)
            if now < cached.retry_at and self._usable_stale(cached, now):
                self._count("stale")
                return succeed(cached.entry)
            if now < cached.expires_at + self._stale_while_revalidate:
                if key not in self._inflight:
                    self._launch(self._register(key))
                self._count("stale")
                return succeed(cached.entry)
        flight = self._inflight.get(key)
        if flight is not None:
            return self._wait_for(flight, coalesced=True)
        flight = self._register(key)
        waiting = self._wait_for(flight, coalesced=False)
        self._launch(flight)
        return waiting

    def invalidate(self, key: AmcKey | None = None) -> None:
        """Forget what the source said (all keys, or *key*): the next lookup asks it again.

        Entries stay as last-known-good for stale-if-error; unknown-AMC answers are dropped;
        source calls already running still answer their callers but are not cached.
        """
        now = self._clock.seconds()
        keys = list(self._entries) if key is None else [key]
        for each in keys:
            cached = self._entries.get(each)
            if cached is not None:
                cached.expires_at = min(cached.expires_at, now)
                cached.retry_at = _NEVER
        flights = list(self._inflight.values()) if key is None else [self._inflight.get(key)]
        for flight in flights:
            if flight is not None:
                flight.current = False
                del self._inflight[flight.key]
        if key is None:
            self._negative.clear()
        else:
            self._negative.pop(key, None)

    def replace_source(self, source: IAnnuaireSource) -> None:
        """Ask *source* from now on (on reload); what the old one said stays last-known-good."""
        self._source = source
        self.invalidate()

    def flush(self) -> None:
        """Save the snapshot now if anything changed (at shutdown); cancels a pending save."""
        if self._save_call is not None and self._save_call.active():
            self._save_call.cancel()
        self._save_call = None
        self._save_now()

    # -- source calls ----------------------------------------------------------------------

    def _register(self, key: AmcKey) -> _Flight:
        flight = _Flight(key)
        self._inflight[key] = flight
        return flight

    def _wait_for(self, flight: _Flight, *, coalesced: bool) -> Deferred[AmcEntry]:
        """A Deferred of *flight*'s answer; cancelling it leaves the call and other callers be."""
        waiter = _Waiter(coalesced)

        def cancel(_: Deferred[AmcEntry]) -> None:
            if waiter in flight.waiters:
                flight.waiters.remove(waiter)

        waiter.deferred = Deferred(cancel)
        flight.waiters.append(waiter)
        return waiter.deferred

    def _launch(self, flight: _Flight) -> None:
        answer: Deferred[AmcEntry | None] = maybeDeferred(self._source.lookup, flight.key)
        answer.addBoth(self._settle, flight).addErrback(self._log_bug, flight.key)

    def _settle(self, result: AmcEntry | Failure | None, flight: _Flight) -> None:
        key = flight.key
        if self._inflight.get(key) is flight:
            del self._inflight[key]
        now = self._clock.seconds()
        if isinstance(result, Failure):
            entry = self._after_failure(flight, result, now)
            if entry is None:
                detail = _failure_reason(result).about(f"AMC {key.amc_number}")
                self._fail_waiters(flight, "error", RpnError.ANNUAIRE_UNAVAILABLE, detail)
            else:
                self._answer_waiters(flight, entry, stale=True)
        elif result is None:
            self.last_success_time = now
            if flight.current:
                self._remember_unknown(key, now)
            self.log.debug(
                "AMC {amc} unknown to the annuaire", amc=key.amc_number, outcome="negative"
            )
            self._fail_waiters(flight, "negative", RpnError.AMC_UNKNOWN, _unknown_detail(key))
        else:
            self.last_success_time = now
            if flight.current:
                self._remember(key, result, now)
            self._answer_waiters(flight, result, stale=False)

    def _after_failure(self, flight: _Flight, failure: Failure, now: float) -> AmcEntry | None:
        """Count and log a failed source call; the last-known-good entry to answer, if any."""
        self.source_errors_total += 1
        malformed = isinstance(failure.value, MalformedAnswer)
        if malformed:
            self.malformed_total += 1
        cached = self._entries.get(flight.key)
        usable = cached is not None and self._usable_stale(cached, now)
        outcome = "stale" if usable else "error"
        emit = self.log.error if malformed else self.log.warn
        emit(
            "annuaire lookup for AMC {amc} failed ({reason}: {error}); outcome {outcome}",
            amc=flight.key.amc_number,
            outcome=outcome,
            reason=_failure_reason(failure),
            error=failure.getErrorMessage(),
        )
        if cached is None or not usable:
            return None
        if flight.current:
            cached.retry_at = now + self._retry_interval
        return cached.entry

    def _usable_stale(self, cached: _Cached, now: float) -> bool:
        return cached.pinned or now < cached.expires_at + self._stale_if_error

    def _answer_waiters(self, flight: _Flight, entry: AmcEntry, *, stale: bool) -> None:
        waiters, flight.waiters = flight.waiters, []
        for waiter in waiters:
            self._count("stale" if stale else "coalesced" if waiter.coalesced else "miss")
            waiter.deferred.callback(entry)

    def _fail_waiters(self, flight: _Flight, outcome: str, error: RpnError, detail: str) -> None:
        waiters, flight.waiters = flight.waiters, []
        for waiter in waiters:
            self._count(outcome)
            waiter.deferred.errback(RpnFailure(error, detail))

    def _log_bug(self, failure: Failure, key: AmcKey) -> None:
        self.log.failure(
            "annuaire bug while settling a lookup for AMC {amc}",
            failure,
            amc=key.amc_number,
            outcome="bug",
        )

    def _count(self, outcome: str) -> None:
        self.lookups_total[outcome] += 1

    # -- cache contents --------------------------------------------------------------------

    def _remember(self, key: AmcKey, entry: AmcEntry, now: float) -> None:
        self._negative.pop(key, None)
        previous = self._entries.get(key)
        self._entries[key] = _Cached(entry, now + self._ttl)
        if previous is None or previous.entry != entry:
            self._changed()

    def _remember_unknown(self, key: AmcKey, now: float) -> None:
        if self._entries.pop(key, None) is not None:
            self._changed()
        self._negative.pop(key, None)
        self._negative[key] = now + self._negative_ttl
        if len(self._negative) > self._max_negative:
            for expired in [k for k, until in self._negative.items() if until <= now]:
                del self._negative[expired]
            while len(self._negative) > self._max_negative:
                del self._negative[next(iter(self._negative))]

    # -- snapshot --------------------------------------------------------------------------

    def _changed(self) -> None:
        if self._snapshot is None:
            return
        self._dirty = True
        if self._save_call is None or not self._save_call.active():
            self._save_call = self._clock.callLater(self._snapshot_interval, self._save_due)

    def _save_due(self) -> None:
        self._save_call = None
        self._save_now()

    def _save_now(self) -> None:
        if self._snapshot is None or not self._dirty:
            return
        self._dirty = False
        entries = {key: cached.entry for key, cached in self._entries.items()}
        try:
            self._snapshot.save(entries)
        except OSError:
            # Keep routing; the next change or flush tries again.
            self._dirty = True
            self.log.failure("could not save the annuaire snapshot", outcome="snapshot_error")
        else:
            self.log.debug("annuaire snapshot saved ({count} entries)", count=len(entries))


def _unknown_detail(key: AmcKey) -> Reason:
    return Reason(
        f"AMC {key.amc_number}, convention {key.convention_type}, criterion "
        f"{key.secondary_criterion or '(none)'}",
        f"AMC {key.amc_number}, type de convention {key.convention_type}, critère secondaire "
        f"{key.secondary_criterion or '(aucun)'}",
    )


def _unknown(key: AmcKey) -> RpnFailure:
    return RpnFailure(RpnError.AMC_UNKNOWN, _unknown_detail(key))


def _failure_reason(failure: Failure) -> Reason:
    """A short, content-free reason for a failed source call (safe in faults and logs)."""
    if isinstance(failure.value, MalformedAnswer):
        return Reason("malformed annuaire answer", "réponse de l'annuaire inutilisable")
    if isinstance(failure.value, defer.TimeoutError | error.TimeoutError | TimeoutError):
        return Reason("annuaire timed out", "l'annuaire n'a pas répondu à temps")
    return Reason("annuaire unreachable", "annuaire injoignable")


# -- JSON snapshot file ------------------------------------------------------------------------

_SNAPSHOT_FORMAT = "piano-annuaire-snapshot"
_SNAPSHOT_VERSION = 1


@implementer(ISnapshotStore)
class JsonFileSnapshot:
    """Last-known-good entries in a JSON file, replaced atomically on every save."""

    log = Logger()

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)

    def load(self) -> dict[AmcKey, AmcEntry]:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            self.log.warn(
                "no annuaire snapshot at {path}: no last-known-good entries until the "
                "annuaire answers",
                path=str(self._path),
                outcome="snapshot_missing",
            )
            return {}
        except OSError as exc:
            return self._unusable(f"cannot read it: {exc.strerror}")
        try:
            document = json.loads(raw)
        except ValueError:
            return self._unusable("not valid JSON")
        if (
            not isinstance(document, dict)
            or document.get("format") != _SNAPSHOT_FORMAT
            or document.get("version") != _SNAPSHOT_VERSION
            or not isinstance(document.get("entries"), list)
        ):
            return self._unusable("not an annuaire snapshot of a known version")
        entries: dict[AmcKey, AmcEntry] = {}
        skipped = 0
        for item in document["entries"]:
            parsed = _entry_from_json(item)
            if parsed is None:
                skipped += 1
            else:
                entries[parsed[0]] = parsed[1]
        if skipped:
            self.log.warn(
                "annuaire snapshot {path}: skipped {skipped} invalid entries",
                path=str(self._path),
                skipped=skipped,
                outcome="snapshot_corrupt",
            )
        self.log.info(
            "annuaire snapshot {path}: {count} last-known-good entries",
            path=str(self._path),
            count=len(entries),
        )
        return entries

    def _unusable(self, reason: str) -> dict[AmcKey, AmcEntry]:
        self.log.warn(
            "annuaire snapshot {path} ignored ({reason}): no last-known-good entries until the "
            "annuaire answers",
            path=str(self._path),
            reason=reason,
            outcome="snapshot_corrupt",
        )
        return {}

    def save(self, entries: dict[AmcKey, AmcEntry]) -> None:
        document = {
            "format": _SNAPSHOT_FORMAT,
            "version": _SNAPSHOT_VERSION,
            "entries": [
                _entry_to_json(key, entries[key])
                for key in sorted(
                    entries,
                    key=lambda k: (k.amc_number, k.convention_type, k.secondary_criterion),
                )
            ],
        }
        data = json.dumps(document, ensure_ascii=False, indent=1).encode("utf-8")
        directory = self._path.parent
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{self._path.name}.", suffix=".tmp", dir=directory
        )
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self._path)
        except BaseException:
            with suppress(OSError):
                os.unlink(temporary)
            raise
        _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable; some platforms cannot open a directory, which is fine."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _entry_to_json(key: AmcKey, entry: AmcEntry) -> dict[str, Any]:
    return {
        "key": {
            "amc_number": key.amc_number,
            "convention_type": key.convention_type,
            "secondary_criterion": key.secondary_criterion,
        },
        "amc_number": entry.amc_number,
        "name": entry.name,
        "endpoints": dict(sorted(entry.endpoints.items())),
    }


def _entry_from_json(item: object) -> tuple[AmcKey, AmcEntry] | None:
    """The key and entry *item* holds, or None when any part is missing or of the wrong type."""
    if not isinstance(item, dict):
        return None
    raw_key = item.get("key")
    if not isinstance(raw_key, dict):
        return None
    amc, convention, criterion = (
        raw_key.get("amc_number"),
        raw_key.get("convention_type"),
        raw_key.get("secondary_criterion"),
    )
    number, name, endpoints = item.get("amc_number"), item.get("name"), item.get("endpoints")
    if (
        not isinstance(amc, str)
        or not isinstance(convention, str)
        or not isinstance(criterion, str)
        or not isinstance(number, str)
        or amc_number_error(number) is not None
        or not isinstance(name, str)
        or not isinstance(endpoints, dict)
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in endpoints.items())
    ):
        return None
    return AmcKey(amc, convention, criterion), AmcEntry(number, name, dict(endpoints))
