"""The systemd units verify, and carry the hardening an operator expects."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.integration.harness import ROOT, TWISTD

UNITS = sorted((ROOT / "etc" / "systemd").glob("piano-*"))
SERVICES = [u for u in UNITS if u.suffix == ".service"]


def verify(directory: Path, names: list[str]) -> subprocess.CompletedProcess[str]:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: run `make system-deps` (installs systemd)"
    return subprocess.run(
        [analyze, "verify", "--man=no", *names],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
    )


def installed_copy(tmp_path: Path, unit: Path, text: str | None = None) -> str:
    """The unit as installed here: the venv's twistd stands for /opt/piano/venv/bin/twistd."""
    body = (text if text is not None else unit.read_text()).replace(
        "/opt/piano/venv/bin/twistd", str(TWISTD)
    )
    (tmp_path / unit.name).write_text(body)
    return unit.name


def test_every_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    assert {u.name for u in UNITS} >= {
        "piano-rpn.service",
        "piano-rpn.socket",
        "piano-mutuelle.service",
        "piano-indicators.service",
    }
    names = [installed_copy(tmp_path, u) for u in UNITS]
    done = verify(tmp_path, names)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == "", done.stderr


def test_the_verification_would_catch_a_broken_unit(tmp_path: Path) -> None:
    unit = ROOT / "etc" / "systemd" / "piano-rpn.service"
    broken = unit.read_text().replace("ProtectSystem=strict", "ProtectSystem=sometimes")
    names = [
        installed_copy(tmp_path, unit, broken),
        installed_copy(tmp_path, ROOT / "etc" / "systemd" / "piano-rpn.socket"),
    ]
    assert "protect system value" in verify(tmp_path, names).stderr


@pytest.mark.parametrize("unit", SERVICES, ids=lambda u: u.name)
def test_services_are_hardened_and_run_twistd_in_the_foreground(unit: Path) -> None:
    lines = set(unit.read_text().splitlines())
    for directive in (
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert directive in lines, f"{unit.name}: {directive} missing"
    limit = next(x for x in lines if x.startswith("LimitNOFILE="))
    assert int(limit.split("=")[1]) >= 16384
    exec_start = next(x for x in lines if x.startswith("ExecStart="))
    assert "--nodaemon" in exec_start and "--logger piano.logs.json_stdout" in exec_start
