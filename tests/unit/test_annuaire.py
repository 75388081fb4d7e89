"""The annuaire cache policy and its snapshot, driven by a fake source and a fake clock."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import LogLevel, capturedLogs
from zope.interface.verify import verifyObject

from piano.testing import StrictClock
from roc.model import AmcKey
from rpn.annuaire import LOOKUP_OUTCOMES, CachedAnnuaire, JsonFileSnapshot
from rpn.annuaire_sources import MalformedAnswer
from rpn.errors import RpnError, RpnFailure
from rpn.interfaces import AmcEntry, IAnnuaire, IAnnuaireSource, ISnapshotStore
from rpn.testing import FakeAnnuaireSource, MemorySnapshotStore
from tests.deferreds import assert_no_result, failure_result_of, success_result_of

KEY = AmcKey("990000101", "TP", "01")
OTHER_KEY = AmcKey("990000202", "TP", "01")
THIRD_KEY = AmcKey("990000303", "TP", "")
ALPHA = AmcEntry("990000101", "Mutuelle Alpha (fictive)", {"IDB": "https://127.0.0.1:8444/roc/IDB"})
ALPHA_MOVED = AmcEntry(
    "990000101", "Mutuelle Alpha (fictive)", {"IDB": "https://127.0.0.1:8445/roc/IDB"}
)
BETA = AmcEntry("990000202", "Mutuelle Beta (fictive)", {"SIM": "https://127.0.0.1:8444/roc/SIM"})
GAMMA = AmcEntry("990000303", "Mutuelle Gamma (fictive)", {"DEL": "https://127.0.0.1:8444/roc/DEL"})


def make(
    entries: dict[AmcKey, AmcEntry] | None = None, *, manual: bool = False, **options: Any
) -> tuple[CachedAnnuaire, FakeAnnuaireSource, StrictClock]:
    clock = StrictClock()
    source = FakeAnnuaireSource(entries, manual=manual)
    options.setdefault("stale_while_revalidate", 0.0)
    return CachedAnnuaire(source, clock, **options), source, clock


def counts(annuaire: CachedAnnuaire) -> dict[str, int]:
    """The non-zero lookup counters."""
    return {outcome: n for outcome, n in annuaire.lookups_total.items() if n}


def rpn_error(d: Deferred[AmcEntry]) -> RpnFailure:
    failure = failure_result_of(d, RpnFailure)
    assert isinstance(failure.value, RpnFailure)
    return failure.value


# -- interfaces --------------------------------------------------------------------------------


def test_annuaire_and_its_fakes_provide_their_interfaces(tmp_path: Path) -> None:
    annuaire, source, _ = make()
    assert verifyObject(IAnnuaire, annuaire)
    assert verifyObject(IAnnuaireSource, source)
    assert verifyObject(ISnapshotStore, MemorySnapshotStore())
    assert verifyObject(ISnapshotStore, JsonFileSnapshot(tmp_path / "snapshot.json"))


def test_counters_start_at_zero_for_every_outcome() -> None:
    annuaire, _, _ = make()
    assert annuaire.lookups_total == dict.fromkeys(LOOKUP_OUTCOMES, 0)
    assert (annuaire.source_errors_total, annuaire.malformed_total, annuaire.size) == (0, 0, 0)
    assert annuaire.last_success_time is None


@pytest.mark.parametrize(
    "option", ["ttl", "snapshot_interval", "max_negative", "negative_ttl", "stale_if_error"]
)
def test_nonsensical_settings_are_refused(option: str) -> None:
    options: dict[str, Any] = {option: -1}
    with pytest.raises(ValueError, match=option):
        make(**options)


# -- hits, misses, expiry ----------------------------------------------------------------------


def test_first_lookup_asks_the_source_and_the_next_is_answered_from_cache() -> None:
    annuaire, source, clock = make({KEY: ALPHA})
    clock.advance(1000)
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert source.calls == [KEY]
    assert counts(annuaire) == {"miss": 1, "hit": 1}
    assert annuaire.size == 1
    assert annuaire.last_success_time == 1000


def test_fresh_gives_a_cached_entry_at_once_counted_as_the_hit_resolve_would_count() -> None:
    annuaire, source, clock = make({KEY: ALPHA}, ttl=300)
    assert annuaire.fresh(KEY) is None  # not cached yet: resolve asks the source
    success_result_of(annuaire.resolve(KEY))
    assert annuaire.fresh(KEY) == ALPHA
    assert counts(annuaire) == {"miss": 1, "hit": 1}
    clock.advance(300)
    assert annuaire.fresh(KEY) is None  # stale: resolve decides (refresh, stale-if-error)
    failure_result_of(annuaire.resolve(OTHER_KEY), RpnFailure)  # unknown, remembered
    assert annuaire.fresh(OTHER_KEY) is None
    assert counts(annuaire)["hit"] == 1  # fresh counts only the hits it gives
    assert source.calls == [KEY, OTHER_KEY]


def test_keys_are_cached_separately() -> None:
    annuaire, source, _ = make({KEY: ALPHA, OTHER_KEY: BETA})
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert success_result_of(annuaire.resolve(OTHER_KEY)) == BETA
    assert source.calls == [KEY, OTHER_KEY]


def test_entry_is_asked_again_once_its_ttl_has_passed() -> None:
    annuaire, source, clock = make({KEY: ALPHA}, ttl=300)
    success_result_of(annuaire.resolve(KEY))
    clock.advance(299.9)
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert len(source.calls) == 1
    source.entries[KEY] = ALPHA_MOVED
    clock.advance(0.1)
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA_MOVED
    assert len(source.calls) == 2
    assert counts(annuaire) == {"miss": 2, "hit": 1}


def test_recently_expired_entry_is_answered_at_once_while_it_is_refreshed() -> None:
    annuaire, source, clock = make(manual=True, ttl=300, stale_while_revalidate=10)
    first = annuaire.resolve(KEY)
    source.answer_next(ALPHA)
    success_result_of(first)
    clock.advance(305)

    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert len(source.calls) == 2, "one background refresh, not one per lookup"
    source.answer_next(ALPHA_MOVED)
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA_MOVED
    assert counts(annuaire) == {"miss": 1, "stale": 2, "hit": 1}


def test_entry_expired_past_the_revalidation_grace_waits_for_the_source() -> None:
    annuaire, source, clock = make(manual=True, ttl=300, stale_while_revalidate=10)
    first = annuaire.resolve(KEY)
    source.answer_next(ALPHA)
    success_result_of(first)
    clock.advance(311)
    waiting = annuaire.resolve(KEY)
    assert_no_result(waiting)
    source.answer_next(ALPHA_MOVED)
    assert success_result_of(waiting) == ALPHA_MOVED


def test_failed_background_refresh_keeps_the_entry() -> None:
    annuaire, source, clock = make(manual=True, ttl=300, stale_while_revalidate=10)
    first = annuaire.resolve(KEY)
    source.answer_next(ALPHA)
    success_result_of(first)
    clock.advance(305)
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    source.fail_next(ConnectionRefusedError())
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert annuaire.source_errors_total == 1


# -- coalescing --------------------------------------------------------------------------------


def test_concurrent_lookups_of_one_key_share_one_source_call() -> None:
    annuaire, source, _ = make(manual=True)
    waiting = [annuaire.resolve(KEY) for _ in range(5)]
    assert len(source.calls) == 1
    for d in waiting:
        assert_no_result(d)
    source.answer_next(ALPHA)
    assert [success_result_of(d) for d in waiting] == [ALPHA] * 5
    assert counts(annuaire) == {"miss": 1, "coalesced": 4}


def test_concurrent_lookups_of_different_keys_are_not_coalesced() -> None:
    annuaire, source, _ = make(manual=True)
    annuaire.resolve(KEY)
    annuaire.resolve(OTHER_KEY)
    assert source.calls == [KEY, OTHER_KEY]


def test_cancelling_one_waiting_lookup_leaves_the_others_and_the_source_call() -> None:
    annuaire, source, _ = make(manual=True)
    first, second, third = (annuaire.resolve(KEY) for _ in range(3))
    second.cancel()
    failure_result_of(second, CancelledError)
    assert source.cancelled == []
    assert_no_result(first)
    assert_no_result(third)
    source.answer_next(ALPHA)
    assert success_result_of(first) == ALPHA
    assert success_result_of(third) == ALPHA
    assert counts(annuaire) == {"miss": 1, "coalesced": 1}


def test_answer_is_cached_even_when_every_caller_cancelled() -> None:
    annuaire, source, _ = make(manual=True)
    waiting = annuaire.resolve(KEY)
    waiting.cancel()
    failure_result_of(waiting, CancelledError)
    source.answer_next(ALPHA)
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert len(source.calls) == 1


def test_a_new_call_starts_once_the_shared_one_has_answered() -> None:
    annuaire, source, clock = make(manual=True, ttl=10)
    waiting = annuaire.resolve(KEY)
    source.answer_next(ALPHA)
    success_result_of(waiting)
    clock.advance(10)
    annuaire.resolve(KEY)
    assert len(source.calls) == 2


# -- unknown AMCs ------------------------------------------------------------------------------


def test_unknown_amc_fails_with_amc_unknown_and_the_answer_is_remembered() -> None:
    annuaire, source, clock = make(negative_ttl=60)
    error = rpn_error(annuaire.resolve(KEY))
    assert error.error is RpnError.AMC_UNKNOWN
    assert "990000101" in error.detail
    clock.advance(59)
    assert rpn_error(annuaire.resolve(KEY)).error is RpnError.AMC_UNKNOWN
    assert len(source.calls) == 1
    assert counts(annuaire) == {"negative": 2}
    assert annuaire.size == 0


def test_unknown_answer_expires_after_negative_ttl() -> None:
    annuaire, source, clock = make(negative_ttl=60)
    rpn_error(annuaire.resolve(KEY))
    clock.advance(60)
    source.entries[KEY] = ALPHA
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert len(source.calls) == 2


def test_every_coalesced_caller_gets_the_unknown_answer() -> None:
    annuaire, source, _ = make(manual=True)
    waiting = [annuaire.resolve(KEY) for _ in range(3)]
    source.answer_next(None)
    assert [rpn_error(d).error for d in waiting] == [RpnError.AMC_UNKNOWN] * 3
    assert counts(annuaire) == {"negative": 3}


def test_unknown_answer_replaces_an_entry_the_annuaire_no_longer_lists() -> None:
    annuaire, source, clock = make({KEY: ALPHA}, ttl=300)
    success_result_of(annuaire.resolve(KEY))
    del source.entries[KEY]
    clock.advance(300)
    assert rpn_error(annuaire.resolve(KEY)).error is RpnError.AMC_UNKNOWN
    assert annuaire.size == 0
    source.error = ConnectionRefusedError()
    clock.advance(60)
    assert rpn_error(annuaire.resolve(KEY)).error is RpnError.ANNUAIRE_UNAVAILABLE


def test_expired_unknown_answer_is_not_served_when_the_source_fails() -> None:
    annuaire, source, clock = make(negative_ttl=60)
    rpn_error(annuaire.resolve(KEY))
    clock.advance(60)
    source.error = ConnectionRefusedError()
    assert rpn_error(annuaire.resolve(KEY)).error is RpnError.ANNUAIRE_UNAVAILABLE


def test_unknown_answers_held_are_bounded() -> None:
    annuaire, source, _ = make(max_negative=3)
    keys = [AmcKey(f"99000000{n}", "TP", "") for n in range(5)]
    for key in keys:
        rpn_error(annuaire.resolve(key))
    rpn_error(annuaire.resolve(keys[-1]))
    assert len(source.calls) == 5, "the newest answers are kept"
    rpn_error(annuaire.resolve(keys[0]))
    assert len(source.calls) == 6, "the oldest answer was dropped"


# -- source failures ---------------------------------------------------------------------------


def test_source_failure_without_an_entry_is_annuaire_unavailable() -> None:
    annuaire, source, _ = make()
    source.error = ConnectionRefusedError("127.0.0.1:8444")
    error = rpn_error(annuaire.resolve(KEY))
    assert error.error is RpnError.ANNUAIRE_UNAVAILABLE
    assert error.detail == "AMC 990000101: annuaire unreachable"
    assert counts(annuaire) == {"error": 1}
    assert annuaire.source_errors_total == 1
    assert annuaire.last_success_time is None


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (defer.TimeoutError(5, "Deferred"), "annuaire timed out"),
        (MalformedAnswer("HTTP status 500"), "malformed annuaire answer"),
        (RuntimeError("bug in a source"), "annuaire unreachable"),
    ],
)
def test_unavailable_detail_names_the_reason_not_the_content(error: Exception, reason: str) -> None:
    annuaire, source, _ = make()
    source.error = error
    assert rpn_error(annuaire.resolve(KEY)).detail == f"AMC 990000101: {reason}"


def test_source_raising_instead_of_failing_is_a_source_failure() -> None:
    class Raising(FakeAnnuaireSource):
        def lookup(self, key: AmcKey) -> Deferred[AmcEntry | None]:
            raise OSError("no route")

    annuaire = CachedAnnuaire(Raising(), StrictClock())
    assert rpn_error(annuaire.resolve(KEY)).error is RpnError.ANNUAIRE_UNAVAILABLE


def test_every_coalesced_caller_gets_the_failure() -> None:
    annuaire, source, _ = make(manual=True)
    waiting = [annuaire.resolve(KEY) for _ in range(3)]
    source.fail_next(ConnectionRefusedError())
    assert [rpn_error(d).error for d in waiting] == [RpnError.ANNUAIRE_UNAVAILABLE] * 3
    assert annuaire.source_errors_total == 1


def test_source_failure_serves_an_entry_expired_within_the_stale_window() -> None:
    annuaire, source, clock = make({KEY: ALPHA}, ttl=300, stale_if_error=3600)
    success_result_of(annuaire.resolve(KEY))
    clock.advance(300 + 3599)
    source.error = ConnectionRefusedError()
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert counts(annuaire) == {"miss": 1, "stale": 1}
    assert annuaire.source_errors_total == 1


def test_source_failure_past_the_stale_window_is_annuaire_unavailable() -> None:
    annuaire, source, clock = make({KEY: ALPHA}, ttl=300, stale_if_error=3600)
    success_result_of(annuaire.resolve(KEY))
    clock.advance(300 + 3600)
    source.error = ConnectionRefusedError()
    assert rpn_error(annuaire.resolve(KEY)).error is RpnError.ANNUAIRE_UNAVAILABLE


def test_after_a_failure_the_stale_entry_is_answered_without_waiting_for_the_source() -> None:
    annuaire, source, clock = make({KEY: ALPHA}, ttl=300, retry_interval=5)
    success_result_of(annuaire.resolve(KEY))
    clock.advance(300)
    source.error = ConnectionRefusedError()
    success_result_of(annuaire.resolve(KEY))
    clock.advance(4.9)
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert len(source.calls) == 2
    clock.advance(0.1)
    source.error = None
    source.entries[KEY] = ALPHA_MOVED
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA_MOVED
    assert len(source.calls) == 3


def test_malformed_answer_keeps_the_last_known_good_entry_and_is_counted() -> None:
    store = MemorySnapshotStore()
    annuaire, source, clock = make({KEY: ALPHA}, ttl=300, snapshot=store)
    success_result_of(annuaire.resolve(KEY))
    clock.advance(300)
    source.error = MalformedAnswer("AMC/Service: endpoint must be an https URL")
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert annuaire.malformed_total == 1
    assert annuaire.source_errors_total == 1
    assert annuaire.size == 1
    annuaire.flush()
    assert store.entries == {KEY: ALPHA}


def test_malformed_answer_is_logged_as_an_error_with_amc_and_outcome() -> None:
    annuaire, source, _ = make()
    source.error = MalformedAnswer("SOAP Fault soap:Server")
    with capturedLogs() as events:
        rpn_error(annuaire.resolve(KEY))
    [event] = [e for e in events if e.get("outcome") == "error"]
    assert event["log_level"] is LogLevel.error
    assert event["amc"] == "990000101"
    assert event["reason"] == "malformed annuaire answer"


def test_transport_failure_is_logged_as_a_warning() -> None:
    annuaire, source, _ = make()
    source.error = ConnectionRefusedError()
    with capturedLogs() as events:
        rpn_error(annuaire.resolve(KEY))
    [event] = [e for e in events if e.get("amc") == "990000101"]
    assert event["log_level"] is LogLevel.warn
    assert event["outcome"] == "error"


# -- invalidation ------------------------------------------------------------------------------


def test_invalidate_makes_the_next_lookup_ask_the_source() -> None:
    annuaire, source, _ = make({KEY: ALPHA, OTHER_KEY: BETA})
    success_result_of(annuaire.resolve(KEY))
    success_result_of(annuaire.resolve(OTHER_KEY))
    source.entries[KEY] = ALPHA_MOVED
    annuaire.invalidate()
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA_MOVED
    success_result_of(annuaire.resolve(OTHER_KEY))
    assert len(source.calls) == 4


def test_invalidating_one_key_leaves_the_others_cached() -> None:
    annuaire, source, _ = make({KEY: ALPHA, OTHER_KEY: BETA})
    success_result_of(annuaire.resolve(KEY))
    success_result_of(annuaire.resolve(OTHER_KEY))
    annuaire.invalidate(KEY)
    success_result_of(annuaire.resolve(KEY))
    success_result_of(annuaire.resolve(OTHER_KEY))
    assert source.calls == [KEY, OTHER_KEY, KEY]


def test_invalidate_drops_unknown_answers() -> None:
    annuaire, source, _ = make()
    rpn_error(annuaire.resolve(KEY))
    source.entries[KEY] = ALPHA
    annuaire.invalidate(KEY)
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA


def test_invalidated_entries_still_serve_while_the_source_fails() -> None:
    annuaire, source, _ = make({KEY: ALPHA})
    success_result_of(annuaire.resolve(KEY))
    annuaire.invalidate()
    source.error = ConnectionRefusedError()
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA


def test_answer_of_a_call_started_before_invalidate_is_delivered_but_not_cached() -> None:
    annuaire, source, _ = make(manual=True)
    before = annuaire.resolve(KEY)
    annuaire.invalidate()
    after = annuaire.resolve(KEY)
    assert len(source.calls) == 2, "a lookup after invalidate does not join the old call"
    source.answer_next(ALPHA)
    assert success_result_of(before) == ALPHA
    assert annuaire.size == 0
    source.answer_next(ALPHA_MOVED)
    assert success_result_of(after) == ALPHA_MOVED
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA_MOVED


# -- snapshot ----------------------------------------------------------------------------------


def test_restart_with_the_source_down_routes_from_the_snapshot_whatever_its_age() -> None:
    store = MemorySnapshotStore({KEY: ALPHA})
    annuaire, source, clock = make(stale_if_error=3600, snapshot=store)
    assert annuaire.size == 1
    source.error = ConnectionRefusedError()
    clock.advance(10 * 3600)
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    assert counts(annuaire) == {"stale": 1}
    assert rpn_error(annuaire.resolve(OTHER_KEY)).error is RpnError.ANNUAIRE_UNAVAILABLE


def test_snapshot_entries_are_not_used_while_the_source_answers() -> None:
    store = MemorySnapshotStore({KEY: ALPHA})
    annuaire, source, _ = make({KEY: ALPHA_MOVED}, snapshot=store)
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA_MOVED
    assert source.calls == [KEY]


def test_snapshot_entry_answered_by_the_source_follows_the_normal_stale_window() -> None:
    store = MemorySnapshotStore({KEY: ALPHA})
    annuaire, source, clock = make({KEY: ALPHA}, ttl=300, stale_if_error=3600, snapshot=store)
    success_result_of(annuaire.resolve(KEY))
    clock.advance(300 + 3600)
    source.error = ConnectionRefusedError()
    assert rpn_error(annuaire.resolve(KEY)).error is RpnError.ANNUAIRE_UNAVAILABLE


def test_snapshot_entry_the_source_calls_unknown_is_dropped() -> None:
    store = MemorySnapshotStore({KEY: ALPHA})
    annuaire, _, clock = make(snapshot=store, snapshot_interval=30)
    assert rpn_error(annuaire.resolve(KEY)).error is RpnError.AMC_UNKNOWN
    assert annuaire.size == 0
    clock.advance(30)
    assert store.entries == {}


def test_changes_are_saved_at_most_once_per_interval() -> None:
    store = MemorySnapshotStore()
    annuaire, _, clock = make(
        {KEY: ALPHA, OTHER_KEY: BETA, THIRD_KEY: GAMMA}, snapshot=store, snapshot_interval=30
    )
    success_result_of(annuaire.resolve(KEY))
    clock.advance(29)
    success_result_of(annuaire.resolve(OTHER_KEY))
    assert store.saves == 0
    clock.advance(1)
    assert store.saves == 1
    assert store.entries == {KEY: ALPHA, OTHER_KEY: BETA}
    success_result_of(annuaire.resolve(THIRD_KEY))
    clock.advance(29.9)
    assert store.saves == 1
    clock.advance(0.1)
    assert store.saves == 2
    assert store.entries == {KEY: ALPHA, OTHER_KEY: BETA, THIRD_KEY: GAMMA}


def test_nothing_is_saved_when_nothing_changed() -> None:
    store = MemorySnapshotStore()
    annuaire, _, clock = make({KEY: ALPHA}, ttl=10, snapshot=store, snapshot_interval=30)
    success_result_of(annuaire.resolve(KEY))
    clock.advance(30)
    assert store.saves == 1
    for _ in range(10):
        clock.advance(10)
        success_result_of(annuaire.resolve(KEY))
    assert clock.getDelayedCalls() == []
    assert store.saves == 1


def test_changed_endpoint_is_saved() -> None:
    store = MemorySnapshotStore()
    annuaire, source, clock = make({KEY: ALPHA}, ttl=10, snapshot=store, snapshot_interval=30)
    success_result_of(annuaire.resolve(KEY))
    clock.advance(30)
    source.entries[KEY] = ALPHA_MOVED
    success_result_of(annuaire.resolve(KEY))
    clock.advance(30)
    assert store.entries == {KEY: ALPHA_MOVED}


def test_flush_saves_pending_changes_now() -> None:
    store = MemorySnapshotStore()
    annuaire, _, clock = make({KEY: ALPHA}, snapshot=store)
    success_result_of(annuaire.resolve(KEY))
    annuaire.flush()
    assert store.saves == 1
    assert store.entries == {KEY: ALPHA}
    assert clock.getDelayedCalls() == [], "the debounced save was cancelled"
    annuaire.flush()
    assert store.saves == 1, "nothing changed since"


def test_failed_save_keeps_routing_and_is_tried_again_on_flush() -> None:
    store = MemorySnapshotStore()
    store.fail_saves = True
    annuaire, _, clock = make({KEY: ALPHA}, snapshot=store, snapshot_interval=30)
    success_result_of(annuaire.resolve(KEY))
    with capturedLogs() as events:
        clock.advance(30)
    assert [e["outcome"] for e in events if e.get("outcome")] == ["snapshot_error"]
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    store.fail_saves = False
    annuaire.flush()
    assert store.entries == {KEY: ALPHA}


def test_restart_during_an_outage_routes_from_the_json_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "annuaire-snapshot.json"
    before, _, _ = make({KEY: ALPHA}, snapshot=JsonFileSnapshot(path))
    success_result_of(before.resolve(KEY))
    before.flush()

    after, source, clock = make(snapshot=JsonFileSnapshot(path))
    source.error = defer.TimeoutError(5, "Deferred")
    clock.advance(7 * 86400)
    assert success_result_of(after.resolve(KEY)) == ALPHA


# -- JsonFileSnapshot --------------------------------------------------------------------------


def test_json_snapshot_round_trip(tmp_path: Path) -> None:
    store = JsonFileSnapshot(tmp_path / "snapshot.json")
    entries = {
        KEY: AmcEntry(ALPHA.amc_number, ALPHA.name, {**ALPHA.endpoints, "IDB/V2": "https://x/v2"}),
        OTHER_KEY: BETA,
        THIRD_KEY: GAMMA,
    }
    store.save(entries)
    assert store.load() == entries
    store.save({KEY: ALPHA})
    assert store.load() == {KEY: ALPHA}


def test_json_snapshot_leaves_no_temporary_file(tmp_path: Path) -> None:
    JsonFileSnapshot(tmp_path / "snapshot.json").save({KEY: ALPHA})
    assert os.listdir(tmp_path) == ["snapshot.json"]


def test_json_snapshot_keeps_the_previous_file_when_replacing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "snapshot.json"
    store = JsonFileSnapshot(path)
    store.save({KEY: ALPHA})

    def failing_replace(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        store.save({KEY: ALPHA_MOVED})
    monkeypatch.undo()
    assert store.load() == {KEY: ALPHA}
    assert os.listdir(tmp_path) == ["snapshot.json"]


def test_json_snapshot_save_into_a_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        JsonFileSnapshot(tmp_path / "missing" / "snapshot.json").save({KEY: ALPHA})


def test_missing_json_snapshot_loads_empty_with_a_warning(tmp_path: Path) -> None:
    with capturedLogs() as events:
        assert JsonFileSnapshot(tmp_path / "absent.json").load() == {}
    assert [e["log_level"] for e in events] == [LogLevel.warn]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{not json",
        b"\xff\xfe garbage",
        b"[]",
        b'{"format": "piano-annuaire-snapshot", "version": 99, "entries": []}',
        b'{"format": "something-else", "version": 1, "entries": []}',
        b'{"format": "piano-annuaire-snapshot", "version": 1, "entries": {}}',
    ],
)
def test_corrupt_json_snapshot_loads_empty_with_a_warning(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "snapshot.json"
    path.write_bytes(content)
    with capturedLogs() as events:
        assert JsonFileSnapshot(path).load() == {}
    assert [e["log_level"] for e in events] == [LogLevel.warn]
    assert events[0]["outcome"] == "snapshot_corrupt"


def test_invalid_entries_of_a_json_snapshot_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    JsonFileSnapshot(path).save({KEY: ALPHA, OTHER_KEY: BETA})
    document = json.loads(path.read_text())
    document["entries"][1]["amc_number"] = "not-a-number"
    document["entries"].append({"key": "nonsense"})
    document["entries"].append(42)
    path.write_text(json.dumps(document))
    with capturedLogs() as events:
        assert JsonFileSnapshot(path).load() == {KEY: ALPHA}
    assert [e.get("skipped") for e in events if e["log_level"] is LogLevel.warn] == [3]


def test_corrupt_snapshot_does_not_stop_the_annuaire(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    path.write_bytes(b"\x00\x01 truncated")
    annuaire, _, _ = make({KEY: ALPHA}, snapshot=JsonFileSnapshot(path))
    assert annuaire.size == 0
    assert success_result_of(annuaire.resolve(KEY)) == ALPHA
    annuaire.flush()
    assert JsonFileSnapshot(path).load() == {KEY: ALPHA}
