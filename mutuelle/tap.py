"""``twistd mutuelle``: translates command-line options into a built simulator service."""

from __future__ import annotations

from pathlib import Path

from twisted.application.service import IService
from twisted.python import usage

from mutuelle.config import MutuelleConfig, load_config
from roc.config import ConfigError


class Options(usage.Options):
    synopsis = "--config FILE"
    longdesc = (
        "Mutuelle ANS: a simulated AMC (ROC V1 and V2) with fictitious data, and a demo "
        "annuaire. PiANO project model of ROC, not the official one."
    )
    optParameters = [["config", "c", None, "The simulator's TOML configuration file."]]

    config: MutuelleConfig

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("--config FILE is required")
        try:
            self.config = load_config(Path(self["config"]))
        except ConfigError as exc:
            raise usage.UsageError(f"invalid configuration: {exc}") from None


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    from mutuelle.service import build_service

    try:
        return build_service(options.config, reactor)
    except ConfigError as exc:
        raise usage.UsageError(f"cannot start: {exc}") from None
