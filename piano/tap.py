"""What every ``twistd`` plugin's options share: a required ``--config FILE`` and ``--version``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from twisted.python import usage

from piano.config import ConfigError
from piano.version import version_line

ConfigT = TypeVar("ConfigT")


class ConfigOptions(usage.Options, Generic[ConfigT]):
    """Options that read and validate the service's configuration file while parsing.

    A subclass names its service and loader in its class line::

        class Options(ConfigOptions[RpnConfig], service="rpn", load=load_config,
                      config_help="The relay's TOML configuration file."):

    ``--config`` comes first in ``--help``, before the subclass's own ``optParameters``.
    """

    synopsis = "--config FILE"

    optParameters: ClassVar[list[list[Any]]]
    service: ClassVar[str]
    _load: ClassVar[staticmethod[[Path], Any]]
    config: ConfigT

    def __init_subclass__(
        cls,
        *,
        service: str,
        load: Callable[[Path], ConfigT],
        config_help: str,
        **kwargs: Any,
    ) -> None:
        super().__init_subclass__(**kwargs)
        cls.service = service
        cls._load = staticmethod(load)
        cls.optParameters = [
            ["config", "c", None, config_help],
            *cls.__dict__.get("optParameters", []),
        ]

    def opt_version(self) -> None:
        """Print the service's version and exit."""
        print(version_line(self.service))
        raise SystemExit(0)

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("--config FILE is required")
        try:
            self.config = self._load(Path(self["config"]))
        except ConfigError as exc:
            raise usage.UsageError(f"invalid configuration: {exc}") from None
