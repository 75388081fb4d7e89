"""Fixtures that start real twistd processes with a fresh PKI, all on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.fake_amc import FakeAmc
from tests.integration.harness import Twistd, free_port, http_get, write_toml
from tools import devpki

SERVICES = ("IDB", "SIM", "CLC", "DEL")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A development PKI generated for this test run."""
    directory = tmp_path_factory.mktemp("pki")
    devpki.generate(directory)
    return directory


@dataclass
class RelayProcess:
    twistd: Twistd
    port: int
    admin_port: int
    access_log: Path

    def metrics(self) -> str:
        status, body = http_get(f"http://127.0.0.1:{self.admin_port}/metrics")
        assert status == 200
        return body.decode()

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample, 0.0 when absent."""
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


StartRelay = Callable[..., RelayProcess]


@pytest.fixture
def start_relay(pki: Path, tmp_path: Path) -> Iterator[StartRelay]:
    """Start ``twistd rpn`` with a static annuaire of {amc_number: base_url}.

    *registered* are the establishments (``devpki.HOSPITAL_*``: legal entity and site)."""
    started: list[Twistd] = []

    def start(
        amcs: Mapping[str, str],
        *,
        registered: tuple[Mapping[str, str], ...] = (devpki.HOSPITAL_A, devpki.HOSPITAL_B),
        tables: Mapping[str, Mapping[str, object]] | None = None,
        annuaire: Mapping[str, object] | None = None,
        env: dict[str, str] | None = None,
        logger: str | None = None,
        access_log: bool = True,
        socket_activated: bool = False,
    ) -> RelayProcess:
        port, admin_port = free_port(), free_port()
        listen = f"tcp:{port}:interface=127.0.0.1"
        prefix: list[str] = []
        if socket_activated:
            listen = "systemd:domain=INET:index=0"
            # systemd always names its sockets (LISTEN_FDNAMES), which Twisted requires.
            prefix = ["systemd-socket-activate", "--fdname=rpn", "-l", f"127.0.0.1:{port}"]
        directory = tmp_path / f"relay{len(started)}"
        directory.mkdir()
        lines = []
        for number, base in amcs.items():
            lines += [
                "[[amc]]",
                f'number = "{number}"',
                f'name = "AMC {number}"',
                "[amc.endpoints]",
            ]
            lines += [f'{s} = "{base}/roc/{s}"' for s in SERVICES]
        (directory / "annuaire.toml").write_text("\n".join(lines) + "\n")
        config: dict[str, dict[str, object]] = {
            "listen": {"endpoint": listen},
            "tls": {
                "certificate": pki / "rpn-server.pem",
                "private_key": pki / "rpn-server.key",
                "ca_certificates": [pki / "ca.pem"],
            },
            "establishments": {"legal_entities": devpki.registration(*registered)},
            "annuaire": {"static_file": "annuaire.toml", **(annuaire or {})},
            "upstream": {
                "certificate": pki / "rpn-client.pem",
                "private_key": pki / "rpn-client.key",
                "ca_certificates": [pki / "ca.pem"],
                "request_timeout": 5.0,
            },
            "admin": {"endpoint": f"tcp:{admin_port}:interface=127.0.0.1"},
            "log": {"access_log": "access.log"} if access_log else {},
        }
        for table, values in (tables or {}).items():
            config.setdefault(table, {}).update(values)
        write_toml(directory / "rpn.toml", config)
        twistd = Twistd(
            "rpn",
            directory / "rpn.toml",
            directory / "twistd.log",
            f"http://127.0.0.1:{admin_port}/readyz",
            env=env or {},
            logger=logger,
            prefix=prefix,
            activation_port=port if socket_activated else None,
        )
        started.append(twistd)
        twistd.start()
        return RelayProcess(twistd, port, admin_port, directory / "access.log")

    yield start
    for twistd in started:
        twistd.stop()


@pytest.fixture
def fake_amc(pki: Path) -> Iterator[FakeAmc]:
    amc = FakeAmc(pki).start()
    yield amc
    amc.stop()
