"""``twistd indicators``: translates command-line options into a built indicators service."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry
from twisted.application.service import IService
from twisted.python import usage

from indicators.config import Config, load_config
from roc.config import ConfigError
from roc.tls import TLSConfigError


class Options(usage.Options):
    synopsis = "--config FILE"
    longdesc = (
        "PiANO Indicators: per-establishment ROC indicators read from Prometheus; each "
        "establishment sees only its own page, the agency sees them all."
    )
    optParameters = [["config", "c", None, "The service's TOML configuration file."]]

    config: Config

    def postOptions(self) -> None:
        if not self["config"]:
            raise usage.UsageError("--config FILE is required")
        try:
            self.config = load_config(Path(self["config"]))
        except ConfigError as exc:
            raise usage.UsageError(f"invalid configuration: {exc}") from None


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    from indicators.service import build_service

    try:
        return build_service(options.config, reactor, CollectorRegistry(auto_describe=True))
    except (ConfigError, TLSConfigError, ValueError) as exc:
        raise usage.UsageError(f"cannot start: {exc}") from None
