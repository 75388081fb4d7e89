"""``twistd rpn``: translates command-line options into a built relay service."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

from prometheus_client import CollectorRegistry
from twisted.application.service import IService
from twisted.python import usage

from piano.config import ConfigError
from piano.reactors import IServiceReactor
from piano.tap import ConfigOptions
from piano.tls import TLSConfigError
from rpn.config import RpnConfig, load_config
from rpn.workers import WorkerRole


class Options(
    ConfigOptions[RpnConfig],
    service="rpn",
    load=load_config,
    config_help="The relay's TOML configuration file.",
):
    longdesc = "RPN ROC: the national TLS reverse proxy between establishments and AMCs."
    optParameters = [
        ["worker", None, "0", "(set by worker 0) index of this worker process", int],
        ["inherit-fd", None, None, "(set by worker 0) listening socket to serve on", int],
    ]


def fresh_reactor() -> IServiceReactor:
    """In a worker forked by the zygote (``rpn.workers``): forget the reactor inherited
    through the fork (its descriptors are closed) and install a new one."""
    sys.modules.pop("twisted.internet.reactor", None)
    from twisted.internet import default

    default.install()
    from twisted.internet import reactor as installed

    return cast(IServiceReactor, installed)


def makeService(options: Options) -> IService:
    from prometheus_client import disable_created_metrics
    from twisted.internet import reactor as installed

    reactor = cast(IServiceReactor, installed)  # the global reactor provides all of it

    # The *_created series double a national-scale scrape and nothing reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    from rpn.service import build_service

    try:
        return build_service(
            options.config,
            reactor,
            CollectorRegistry(auto_describe=True),
            config_path=Path(options["config"]),
            role=WorkerRole(
                int(options["worker"]),
                None if options["inherit-fd"] is None else int(options["inherit-fd"]),
            ),
            install_reactor=fresh_reactor,
        )
    except (ConfigError, TLSConfigError, ValueError) as exc:
        raise usage.UsageError(f"cannot start: {exc}") from None
