"""The project's version, as installed (``twistd rpn --version``)."""

from __future__ import annotations

import platform
from importlib import metadata

import twisted


def version() -> str:
    try:
        return metadata.version("piano-roc")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def version_line(service: str) -> str:
    return (
        f"PiANO {service} {version()} (Twisted {twisted.__version__}, "
        f"Python {platform.python_version()})"
    )
