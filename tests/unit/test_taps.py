"""The three ``twistd`` plugins' shared options: a required ``--config FILE`` and ``--version``."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.application.service import ServiceMaker
from twisted.python import usage

from twisted.plugins import piano_plugins

PLUGINS = [piano_plugins.rpn, piano_plugins.mutuelle, piano_plugins.indicators]


def _name(plugin: ServiceMaker) -> str:
    return str(plugin.tapname)


@pytest.mark.parametrize("plugin", PLUGINS, ids=_name)
def test_a_missing_config_is_a_usage_error_naming_the_option(plugin: ServiceMaker) -> None:
    with pytest.raises(usage.UsageError, match="--config"):
        plugin.options().parseOptions([])


@pytest.mark.parametrize("plugin", PLUGINS, ids=_name)
def test_an_invalid_config_is_a_usage_error_naming_the_key(
    plugin: ServiceMaker, tmp_path: Path
) -> None:
    path = tmp_path / "service.toml"
    path.write_text("bogus_key = 1\n", "utf-8")
    with pytest.raises(usage.UsageError, match=r"^invalid configuration: bogus_key: unknown key"):
        plugin.options().parseOptions(["--config", str(path)])


@pytest.mark.parametrize("plugin", PLUGINS, ids=_name)
def test_version_prints_the_service_and_exits_cleanly(
    plugin: ServiceMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        plugin.options().parseOptions(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"PiANO {plugin.tapname} ")
