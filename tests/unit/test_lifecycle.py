"""An establishment's lifecycle: what each state reaches, the moves, the audited command."""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from piano.config import ConfigError
from rpn.admin import _lifecycle_metrics
from rpn.config import load_config
from rpn.lifecycle import (
    TRANSITIONS,
    Lifecycle,
    State,
    changes,
    reach_refusal,
    transition_problem,
)
from rpn.lifecycle_cli import main, set_state
from rpn.registration import Registration
from rpn.service import registration

SIMULATED = frozenset({"990000101", "990000202"})
REAL_AMC = "990000909"
A_LEGAL, A_SITE, B_LEGAL, B_SITE = "990000010", "990000028", "990000036", "990000044"


# What each state reaches


@pytest.mark.parametrize("state", [State.QUALIFICATION, State.SUSPENDED])
def test_a_state_before_production_reaches_only_mutuelle_ans(state: State) -> None:
    lifecycle = Lifecycle(state)
    assert reach_refusal(lifecycle, A_LEGAL, "990000101", SIMULATED) is None
    reason = reach_refusal(lifecycle, A_LEGAL, REAL_AMC, SIMULATED)
    assert reason is not None
    # The French text names the entity, the refused AMC, the ones it reaches and what to do.
    for word in (A_LEGAL, REAL_AMC, "990000101, 990000202", "docs/raccordement.md"):
        assert word in reason.fr
    assert REAL_AMC in str(reason)


def test_the_qualification_refusal_names_the_step_that_remains() -> None:
    reason = reach_refusal(Lifecycle(State.QUALIFICATION), A_LEGAL, REAL_AMC, SIMULATED)
    assert reason is not None
    assert "suite de qualification" in reason.fr
    assert "production sous surveillance" in reason.fr


@pytest.mark.parametrize("state", [State.UNDER_WATCH, State.PRODUCTION])
def test_a_live_state_reaches_every_amc(state: State) -> None:
    assert reach_refusal(Lifecycle(state), A_LEGAL, REAL_AMC, SIMULATED) is None


def test_sites_share_their_legal_entity_s_state() -> None:
    reg = Registration.of(
        [(A_LEGAL, [A_SITE]), (B_LEGAL, [B_SITE])],
        {A_LEGAL: Lifecycle(State.QUALIFICATION)},
        SIMULATED,
    )
    for certificate in (A_SITE, A_LEGAL):
        refusal = reg.reach_refusal(certificate, REAL_AMC)
        assert refusal is not None and refusal[0] is State.QUALIFICATION
    # An entity given no lifecycle is in production; an unknown FINESS is not this check's.
    assert reg.reach_refusal(B_SITE, REAL_AMC) is None
    assert reg.lifecycle(B_LEGAL).state is State.PRODUCTION
    assert reg.reach_refusal("990000051", REAL_AMC) is None


def test_a_lifecycle_for_an_entity_not_registered_is_refused() -> None:
    with pytest.raises(ValueError, match=r"990000036.*not registered"):
        Registration.of([(A_LEGAL, [A_SITE])], {B_LEGAL: Lifecycle()})


# The moves


@pytest.mark.parametrize(
    ("current", "wanted"),
    [
        (State.QUALIFICATION, State.UNDER_WATCH),
        (State.UNDER_WATCH, State.PRODUCTION),
        (State.UNDER_WATCH, State.QUALIFICATION),
        (State.PRODUCTION, State.SUSPENDED),
        (State.QUALIFICATION, State.SUSPENDED),
        (State.SUSPENDED, State.QUALIFICATION),
        (State.SUSPENDED, State.UNDER_WATCH),
    ],
)
def test_the_agency_s_moves_are_allowed(current: State, wanted: State) -> None:
    assert transition_problem(current, wanted) is None


@pytest.mark.parametrize(
    ("current", "wanted", "problem"),
    [
        (
            State.QUALIFICATION,
            State.PRODUCTION,
            "qualification -> production is not allowed "
            "(from qualification: production_sous_surveillance, suspendue)",
        ),
        (State.PRODUCTION, State.QUALIFICATION, "production -> qualification is not allowed"),
        (State.SUSPENDED, State.PRODUCTION, "suspendue -> production is not allowed"),
        (State.PRODUCTION, State.PRODUCTION, "already production"),
    ],
)
def test_other_moves_are_refused_with_the_allowed_ones(
    current: State, wanted: State, problem: str
) -> None:
    found = transition_problem(current, wanted)
    assert found is not None and found.startswith(problem)


def test_changes_lists_each_entity_whose_state_moved() -> None:
    before = {A_LEGAL: Lifecycle(State.QUALIFICATION), B_LEGAL: Lifecycle(State.PRODUCTION)}
    after = {
        A_LEGAL: Lifecycle(State.UNDER_WATCH, datetime.date(2026, 12, 3)),
        B_LEGAL: Lifecycle(State.PRODUCTION, datetime.date(2026, 1, 1)),  # same state
        "990000069": Lifecycle(State.QUALIFICATION),
    }
    assert changes(before, after) == [
        (A_LEGAL, State.QUALIFICATION, State.UNDER_WATCH),
        ("990000069", None, State.QUALIFICATION),
    ]
    assert changes(after, {}) == [(e, after[e].state, None) for e in sorted(after)]


# The configuration


def _config(tmp_path: Path, entity: str, lifecycle: str = "") -> Path:
    for name in ("server.pem", "server.key", "ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("")
    path = tmp_path / "rpn.toml"
    path.write_text(
        "# The relay of the tests.\n"
        '[tls]\ncertificate = "server.pem"\nprivate_key = "server.key"\n'
        'ca_certificates = ["ca.pem"]\n\n'
        '[upstream]\ncertificate = "client.pem"\nprivate_key = "client.key"\n'
        'ca_certificates = ["ca.pem"]\n\n'
        '[annuaire]\nstatic_file = "annuaire.toml"\n\n'
        f"[lifecycle]\n{lifecycle}\n"
        "# Hospital A: qualified on 2026-11-30 (ticket 1234).\n"
        f"[[establishments.legal_entities]]\n{entity}\n"
        "[[establishments.legal_entities]]\n"
        'finess = "990000036"\nsites = ["990000044"]\n'
    )
    return path


A_QUALIFYING = (
    'finess = "990000010"\nsites = ["990000028"]  # the only site\n'
    'state = "qualification"\nsince = 2026-11-02\nsectors = ["MCO", "PSY"]\n'
)
LIFECYCLE = 'simulated_amcs = ["990000101"]\nwatch_days = 21\naudit_log = "audit.jsonl"\n'


def test_the_registration_carries_each_entity_s_lifecycle(tmp_path: Path) -> None:
    config = load_config(_config(tmp_path, A_QUALIFYING, LIFECYCLE))
    reg = registration(config)
    assert reg.lifecycle(A_LEGAL) == Lifecycle(
        State.QUALIFICATION, datetime.date(2026, 11, 2), ("MCO", "PSY")
    )
    # Defaults: production, no date, MCO; the watch and Mutuelle ANS's AMCs as configured.
    assert reg.lifecycle(B_LEGAL) == Lifecycle(State.PRODUCTION, None, ("MCO",))
    assert (reg.simulated_amcs, reg.watch_days) == (frozenset({"990000101"}), 21)


@pytest.mark.parametrize(
    ("entity", "lifecycle", "problem"),
    [
        (
            A_QUALIFYING.replace("qualification", "qualifie"),
            LIFECYCLE,
            "legal_entities[0].state: must be one of qualification, "
            "production_sous_surveillance, production, suspendue",
        ),
        (
            A_QUALIFYING.replace("2026-11-02", '"2 novembre"'),
            LIFECYCLE,
            "legal_entities[0].since: must be a date (YYYY-MM-DD)",
        ),
        (
            A_QUALIFYING.replace('"PSY"', '"USLD"'),
            LIFECYCLE,
            "legal_entities[0].sectors: 'USLD': must be one of MCO, PSY, HAD, SMR, OQN",
        ),
        (A_QUALIFYING, "", "lifecycle.simulated_amcs: empty, so legal entity 990000010"),
        (
            A_QUALIFYING,
            'simulated_amcs = ["99000010"]',
            "lifecycle.simulated_amcs: [0]:",
        ),
    ],
)
def test_a_bad_lifecycle_is_refused_at_load(
    tmp_path: Path, entity: str, lifecycle: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(_config(tmp_path, entity, lifecycle))
    assert problem in str(caught.value)


def test_a_quoted_date_is_read_as_a_date(tmp_path: Path) -> None:
    entity = A_QUALIFYING.replace("2026-11-02", '"2026-11-02"')
    config = load_config(_config(tmp_path, entity, LIFECYCLE))
    assert config.establishments.legal_entities[0].since == datetime.date(2026, 11, 2)


# What the relay exports


def test_every_registered_finess_is_exported_with_its_state_and_since(tmp_path: Path) -> None:
    reg = registration(load_config(_config(tmp_path, A_QUALIFYING, LIFECYCLE)))

    class Collector:
        def collect(self):  # type: ignore[no-untyped-def]
            return _lifecycle_metrics(reg)

    registry = CollectorRegistry()
    registry.register(Collector())  # type: ignore[arg-type]
    families = {
        f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
    }
    series = {
        s.labels["finess"]: (s.labels, s.value)
        for s in families["rpn_establishment_lifecycle_since_timestamp_seconds"].samples
    }
    since = datetime.datetime(2026, 11, 2, tzinfo=datetime.UTC).timestamp()
    assert series[A_SITE] == (
        {
            "finess": A_SITE,
            "legal_entity": A_LEGAL,
            "role": "site",
            "state": "qualification",
            "sectors": "MCO,PSY",
        },
        since,
    )
    assert series[A_LEGAL][0]["role"] == "legal_entity" and series[A_LEGAL][1] == since
    assert series[B_SITE][0]["state"] == "production" and series[B_SITE][1] == 0
    assert families["rpn_lifecycle_watch_days"].samples[0].value == 21


# The audited command


NOW = datetime.datetime(2026, 12, 3, 9, 30, tzinfo=datetime.UTC)


def test_set_moves_the_entity_keeps_the_file_s_comments_and_audits(tmp_path: Path) -> None:
    path = _config(tmp_path, A_QUALIFYING, LIFECYCLE)
    before = path.read_text()
    out = io.StringIO()
    set_state(path, A_LEGAL, State.UNDER_WATCH, "Agent ANS", "suite réussie", None, False, out, NOW)
    after = path.read_text()
    # Only the two lines of that entity changed; comments and the other entity are kept.
    assert after == before.replace(
        'state = "qualification"\nsince = 2026-11-02',
        'state = "production_sous_surveillance"\nsince = 2026-12-03',
    )
    assert registration(load_config(path)).lifecycle(A_LEGAL).state is State.UNDER_WATCH
    [line] = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert json.loads(line) == {
        "time": "2026-12-03T09:30:00+00:00",
        "event": "lifecycle_set",
        "finess": A_LEGAL,
        "from": "qualification",
        "to": "production_sous_surveillance",
        "since": "2026-12-03",
        "by": "Agent ANS",
        "reason": "suite réussie",
        "config": str(path),
    }
    shown = out.getvalue()
    assert '-state = "qualification"' in shown
    assert '+state = "production_sous_surveillance"' in shown
    assert "systemctl reload piano-rpn" in shown


def test_set_adds_the_state_to_an_entity_that_had_none(tmp_path: Path) -> None:
    path = _config(tmp_path, A_QUALIFYING, LIFECYCLE)
    set_state(
        path,
        B_LEGAL,
        State.SUSPENDED,
        "Agent ANS",
        "anomalies",
        datetime.date(2026, 12, 4),
        False,
        io.StringIO(),
        NOW,
    )
    assert registration(load_config(path)).lifecycle(B_LEGAL) == Lifecycle(
        State.SUSPENDED, datetime.date(2026, 12, 4)
    )


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--finess", A_LEGAL, "--state", "production"], "qualification -> production"),
        (["--finess", A_SITE, "--state", "suspendue"], "site of legal entity 990000010"),
        (["--finess", "990000051", "--state", "suspendue"], "990000051 is not registered"),
        (
            ["--finess", A_LEGAL, "--state", "suspendue", "--reason", "a\x1b[2Jb"],
            "--reason contains control characters",
        ),
        (["--finess", A_LEGAL, "--state", "suspendue", "--reason", " "], "--reason is empty"),
    ],
)
def test_set_refuses_and_changes_nothing(
    tmp_path: Path, argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, A_QUALIFYING, LIFECYCLE)
    before = path.read_text()
    base = ["set", "--config", str(path), "--by", "Agent ANS"]
    if "--reason" not in argv:
        argv = [*argv, "--reason", "test"]
    assert main([*base, *argv]) == 1
    assert problem in capsys.readouterr().err
    assert path.read_text() == before
    assert not (tmp_path / "audit.jsonl").exists()


def test_set_without_an_audit_log_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, A_QUALIFYING, 'simulated_amcs = ["990000101"]')
    before = path.read_text()
    argv = ["set", "--config", str(path), "--finess", A_LEGAL, "--state", "suspendue"]
    assert main([*argv, "--by", "x", "--reason", "y"]) == 1
    assert "lifecycle.audit_log is not set" in capsys.readouterr().err
    assert path.read_text() == before


def test_dry_run_prints_the_change_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, A_QUALIFYING, LIFECYCLE)
    before = path.read_text()
    argv = ["set", "--config", str(path), "--finess", A_LEGAL, "--state", "suspendue"]
    assert main([*argv, "--by", "x", "--reason", "y", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '+state = "suspendue"' in out and "dry run: nothing written" in out
    assert path.read_text() == before and not (tmp_path / "audit.jsonl").exists()


def test_show_lists_each_entity(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _config(tmp_path, A_QUALIFYING, LIFECYCLE)
    assert main(["show", "--config", str(path), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)["legal_entities"]
    assert shown[0] == {
        "finess": A_LEGAL,
        "sites": [A_SITE],
        "state": "qualification",
        "since": "2026-11-02",
        "sectors": ["MCO", "PSY"],
    }
    assert main(["show", "--config", str(path)]) == 0
    assert "990000036" in capsys.readouterr().out


def test_an_unreadable_configuration_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["show", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_the_indicators_offer_exactly_the_relay_s_moves() -> None:
    """The promotion page restates the moves (one service never imports another): the same."""
    from indicators import lifecycle as pages

    assert {state.value: {s.value for s in allowed} for state, allowed in TRANSITIONS.items()} == {
        state: set(allowed) for state, allowed in pages.TRANSITIONS.items()
    }
