"""``twistd mutuelle``: translates command-line options into a built simulator service."""

from __future__ import annotations

from typing import cast

from twisted.application.service import IService
from twisted.python import usage

from mutuelle.config import MutuelleConfig, load_config
from piano.config import ConfigError
from piano.reactors import IServiceReactor
from piano.tap import ConfigOptions


class Options(
    ConfigOptions[MutuelleConfig],
    service="mutuelle",
    load=load_config,
    config_help="The simulator's TOML configuration file.",
):
    longdesc = (
        "Mutuelle ANS: a simulated AMC (ROC V1 and V2) with fictitious data, and a demo "
        "annuaire. PiANO project model of ROC, not the official one."
    )


def makeService(options: Options) -> IService:
    from twisted.internet import reactor as installed

    reactor = cast(IServiceReactor, installed)  # the global reactor provides all of it

    from mutuelle.service import build_service

    try:
        return build_service(options.config, reactor)
    except ConfigError as exc:
        raise usage.UsageError(f"cannot start: {exc}") from None
