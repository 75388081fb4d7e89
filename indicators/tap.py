"""``twistd indicators``: translates command-line options into a built indicators service."""

from __future__ import annotations

from typing import cast

from prometheus_client import CollectorRegistry
from twisted.application.service import IService
from twisted.python import usage

from indicators.config import Config, load_config
from piano.config import ConfigError
from piano.reactors import IServiceReactor
from piano.tap import ConfigOptions
from piano.tls import TLSConfigError


class Options(
    ConfigOptions[Config],
    service="indicators",
    load=load_config,
    config_help="The service's TOML configuration file.",
):
    longdesc = (
        "PiANO Indicators: per-establishment ROC indicators read from Prometheus; each "
        "establishment sees only its own page, the agency sees them all."
    )


def makeService(options: Options) -> IService:
    from twisted.internet import reactor as installed

    reactor = cast(IServiceReactor, installed)  # the global reactor provides all of it

    from indicators.service import build_service

    try:
        return build_service(options.config, reactor, CollectorRegistry(auto_describe=True))
    except (ConfigError, TLSConfigError, ValueError) as exc:
        raise usage.UsageError(f"cannot start: {exc}") from None
