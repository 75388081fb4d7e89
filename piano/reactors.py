"""The reactor type every service is built with (instead of ``Any``).

A service never imports the global reactor (only its tap does, ``tests/unit/test_layering.py``
checks it): it is handed one. ``IServiceReactor`` names what the services use of it, so mypy
checks every use; the global reactor provides all of it, and ``piano.testing``'s
``StrictMemoryReactorClock`` declares it for unit tests (which never start processes or
threads through it).
"""

from __future__ import annotations

from twisted.internet.interfaces import (
    IReactorCore,
    IReactorFDSet,
    IReactorPluggableNameResolver,
    IReactorProcess,
    IReactorSocket,
    IReactorSSL,
    IReactorTCP,
    IReactorThreads,
    IReactorTime,
    IReactorUNIX,
)


class IServiceReactor(
    IReactorCore,
    IReactorTime,
    IReactorTCP,
    IReactorSSL,
    IReactorUNIX,
    IReactorSocket,
    IReactorFDSet,
    IReactorProcess,
    IReactorThreads,
    IReactorPluggableNameResolver,
):
    """What a PiANO service needs from its reactor: time, TCP/TLS/UNIX listening and
    connecting, adopted sockets, processes (the relay's workers) and a thread pool."""
