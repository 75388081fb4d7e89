"""The relay service's stop and reload decisions, without sockets: the order a stop closes
things in (so that every exchange is recorded and /readyz says 503 to the end), when exchanges
still waiting are cut, and which reloads are refused or need a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.logger import capturedLogs, formatEvent

from piano.testing import StrictMemoryReactorClock
from rpn.config import load_config
from rpn.service import RelayService, build_service
from tests.deferreds import assert_no_result, success_result_of
from tests.integration.harness import write_toml
from tools import devpki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    devpki.generate(folder)
    return folder


def config_file(folder: Path, pki: Path, **tables: dict[str, object]) -> Path:
    (folder / "annuaire.toml").write_text(
        '[[amc]]\nnumber = "990000101"\nname = "AMC"\n[amc.endpoints]\n'
        'IDB = "https://127.0.0.1:1/roc/IDB"\n'
    )
    config: dict[str, dict[str, object]] = {
        "listen": {"endpoint": "tcp:0:interface=127.0.0.1"},
        "tls": {
            "certificate": pki / "rpn-server.pem",
            "private_key": pki / "rpn-server.key",
            "ca_certificates": [pki / "ca.pem"],
        },
        "establishments": {"legal_entities": devpki.registration(devpki.HOSPITAL_A)},
        "annuaire": {"static_file": "annuaire.toml"},
        "upstream": {
            "certificate": pki / "rpn-client.pem",
            "private_key": pki / "rpn-client.key",
            "ca_certificates": [pki / "ca.pem"],
        },
        "admin": {"endpoint": "tcp:0:interface=127.0.0.1"},
        "shutdown": {"drain_timeout": 5.0},
    }
    for table, values in tables.items():
        config.setdefault(table, {}).update(values)
    return write_toml(folder / "rpn.toml", config)


class Steps:
    """Records what the stop did, in order."""

    def __init__(self) -> None:
        self.done: list[str] = []


class FakeRelay:
    def __init__(self, steps: Steps, in_flight: int) -> None:
        self.steps = steps
        self.in_flight = in_flight
        self.draining = False
        self.accepting = True
        self.idle: Deferred[None] = Deferred()
        self.clock: Any = None

    def wait_idle(self) -> Deferred[None]:
        if self.in_flight == 0:
            return succeed(None)
        return self.idle

    def cut_in_flight(self) -> int:
        self.steps.done.append(f"cut {self.in_flight}")
        cut, self.in_flight = self.in_flight, 0
        return cut


class Recorder:
    """Stands for the parts a stop closes; each call is a step."""

    def __init__(self, steps: Steps, name: str) -> None:
        self.steps = steps
        self.name = name

    def close_connections(self) -> Deferred[None]:
        self.steps.done.append(f"{self.name} close connections")
        return succeed(None)

    def flush(self) -> None:
        self.steps.done.append(f"{self.name} flush")

    def close(self) -> Any:
        self.steps.done.append(f"{self.name} close")
        return succeed(None)


class RecordingService(Service):
    def __init__(self, steps: Steps, name: str) -> None:
        self.steps = steps
        self.name = name

    def stopService(self) -> None:
        self.steps.done.append(f"{self.name} stop")
        super().stopService()


def stoppable(pki: Path, tmp_path: Path, in_flight: int) -> tuple[RelayService, FakeRelay, Steps]:
    reactor = StrictMemoryReactorClock()
    service = build_service(load_config(config_file(tmp_path, pki)), reactor, CollectorRegistry())
    steps = Steps()
    relay = FakeRelay(steps, in_flight)
    relay.clock = reactor
    for child in list(service):
        child.disownServiceParent()
    RecordingService(steps, "listener").setServiceParent(service)
    admin = RecordingService(steps, "admin")
    admin.setServiceParent(service)
    service.admin_service = admin
    service.relay = relay  # type: ignore[assignment]
    service.http = Recorder(steps, "clients")  # type: ignore[assignment]
    service.annuaire = Recorder(steps, "annuaire")  # type: ignore[assignment]
    service.upstreams = Recorder(steps, "upstreams")  # type: ignore[assignment]
    service.access_log = Recorder(steps, "access log")  # type: ignore[assignment]
    service.startService()
    return service, relay, steps


def test_a_stop_closes_the_access_log_after_everything_else_and_the_admin_endpoint_last(
    pki: Path, tmp_path: Path
) -> None:
    service, relay, steps = stoppable(pki, tmp_path, in_flight=0)
    stopped = service.stopService()
    success_result_of(stopped)
    assert steps.done == [
        "listener stop",
        "clients close connections",
        "annuaire flush",
        "upstreams close",
        "access log close",
        "admin stop",
    ]
    assert relay.draining and not relay.accepting


def test_exchanges_that_finish_within_the_drain_time_are_not_cut(pki: Path, tmp_path: Path) -> None:
    service, relay, steps = stoppable(pki, tmp_path, in_flight=2)
    stopped = service.stopService()
    assert steps.done == ["listener stop"]  # the admin endpoint still answers (/readyz 503)
    assert not service.ready
    relay.in_flight = 0
    relay.idle.callback(None)
    success_result_of(stopped)
    assert not any(step.startswith("cut") for step in steps.done)
    assert steps.done[-2:] == ["access log close", "admin stop"]


def test_exchanges_still_waiting_after_the_drain_time_are_cut_before_the_log_closes(
    pki: Path, tmp_path: Path
) -> None:
    service, relay, steps = stoppable(pki, tmp_path, in_flight=2)
    with capturedLogs() as events:
        stopped = service.stopService()
        assert relay.clock is not None
        relay.clock.advance(4.9)
        assert_no_result(stopped)
        relay.clock.advance(0.2)
    success_result_of(stopped)
    assert steps.done == [
        "listener stop",
        "cut 2",
        "clients close connections",
        "annuaire flush",
        "upstreams close",
        "access log close",
        "admin stop",
    ]
    assert any("2 exchanges still in flight are cut" in formatEvent(e) for e in events)


def test_a_reload_with_an_invalid_value_is_refused_and_the_running_configuration_kept(
    pki: Path, tmp_path: Path
) -> None:
    path = config_file(tmp_path, pki)
    service = build_service(
        load_config(path), StrictMemoryReactorClock(), CollectorRegistry(), config_path=path
    )
    before = service.relay.policy
    config_file(tmp_path, pki, upstream={"request_timeout": -1})
    with capturedLogs() as events:
        assert service.reload() is False
    assert service.relay.policy is before
    assert any("upstream.request_timeout: must be > 0" in formatEvent(e) for e in events)


def test_a_reload_applies_limits_and_registration_and_says_which_changes_need_a_restart(
    pki: Path, tmp_path: Path
) -> None:
    path = config_file(tmp_path, pki)
    service = build_service(
        load_config(path), StrictMemoryReactorClock(), CollectorRegistry(), config_path=path
    )
    assert not service.relay.policy.registration.knows(devpki.HOSPITAL_B["site"])
    config_file(
        tmp_path,
        pki,
        establishments={
            "legal_entities": devpki.registration(devpki.HOSPITAL_A, devpki.HOSPITAL_B),
            "max_in_flight": 7,
        },
        admin={"endpoint": "tcp:1:interface=127.0.0.1"},
    )
    with capturedLogs() as events:
        assert service.reload() is True
    policy = service.relay.policy
    assert policy.registration.knows(devpki.HOSPITAL_B["site"])
    assert policy.max_in_flight_per_establishment == 7
    assert any("admin: changes need a restart" in formatEvent(e) for e in events)
    assert service.reloads == 1


def test_a_reload_moves_an_establishment_along_its_lifecycle_and_logs_it(
    pki: Path, tmp_path: Path
) -> None:
    entity = {**devpki.registration(devpki.HOSPITAL_A)[0], "state": "qualification"}
    lifecycle = {"simulated_amcs": ["990000202"]}
    path = config_file(
        tmp_path, pki, establishments={"legal_entities": [entity]}, lifecycle=lifecycle
    )
    service = build_service(
        load_config(path), StrictMemoryReactorClock(), CollectorRegistry(), config_path=path
    )
    site, legal = devpki.HOSPITAL_A["site"], devpki.HOSPITAL_A["legal"]
    assert service.relay.policy.registration.reach_refusal(site, "990000101") is not None
    moved = {**entity, "state": "production_sous_surveillance", "since": "2026-12-03"}
    config_file(tmp_path, pki, establishments={"legal_entities": [moved]}, lifecycle=lifecycle)
    with capturedLogs() as events:
        assert service.reload() is True
    assert service.relay.policy.registration.reach_refusal(site, "990000101") is None
    logged = [formatEvent(e) for e in events if "lifecycle_changed" in formatEvent(e)]
    assert logged == [
        f"lifecycle_changed finess={legal} from=qualification to=production_sous_surveillance "
        "since=2026-12-03"
    ]
