"""Several relay processes on one host sharing one listening socket (one reactor each).

With ``listen.workers = N`` the process twistd starts (worker 0) opens the listening socket,
serves on it, and starts N-1 more ``twistd rpn`` processes that inherit the same socket
(``--inherit-fd``) and serve on it too: the kernel hands each new connection to one of them.
Each worker has its own admin endpoint (the configured port + its index) so Prometheus
scrapes every process and sums them. Worker 0 restarts a worker that dies, forwards SIGHUP
(reload) to the others, and on stop asks them to drain and waits for them.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
from dataclasses import dataclass
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.error import ProcessDone
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ProcessProtocol, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure

from piano.reactors import IServiceReactor

_TCP = re.compile(r"^tcp:(?:port=)?(\d+)(?::interface=([0-9A-Fa-f.:]+))?$")
_ADMIN_PORT = re.compile(r"^(tcp:(?:port=)?)(\d+)(.*)$")


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """Which worker this process is: 0 opens the socket, the others inherit it."""

    index: int = 0
    inherited_fd: int | None = None


SINGLE_PROCESS = WorkerRole()


def admin_endpoint_for(endpoint: str, index: int) -> str:
    """The admin endpoint of worker *index*: the configured TCP port plus *index*."""
    if index == 0:
        return endpoint
    found = _ADMIN_PORT.match(endpoint)
    if found is None:
        raise ValueError("admin.endpoint: with several workers it must be tcp:PORT[:...]")
    return f"{found.group(1)}{int(found.group(2)) + index}{found.group(3)}"


def check_worker_endpoint(endpoint: str, workers: int) -> str | None:
    """Why *endpoint* cannot be shared by *workers* processes, or None."""
    if workers > 1 and not (_TCP.match(endpoint) or endpoint.startswith("systemd:")):
        return "with several workers it must be tcp:PORT[:interface=ADDR] or systemd:..."
    return None


def open_listening_socket(endpoint: str, backlog: int = 4096) -> socket.socket:
    """Bind and listen on a ``tcp:PORT:interface=ADDR`` endpoint, inheritable by children."""
    found = _TCP.match(endpoint)
    if found is None:
        raise ValueError(f"listen.endpoint: cannot share {endpoint!r} between workers")
    port, interface = int(found.group(1)), found.group(2) or "0.0.0.0"  # noqa: S104
    family = socket.AF_INET6 if ":" in interface else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((interface, port))
    sock.listen(backlog)
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


class AdoptedPortService(Service):
    """Serve *factory* on an already listening socket (ours or inherited)."""

    def __init__(
        self, reactor: IServiceReactor, fileno: int, family: int, factory: ServerFactory
    ) -> None:
        self._reactor = reactor
        self._fileno = fileno
        self._family = family
        self._factory = factory
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        self.port = self._reactor.adoptStreamPort(
            self._fileno, socket.AddressFamily(self._family), self._factory
        )

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self.port is None:
            return None
        stopped: Deferred[None] | None = self.port.stopListening()
        return stopped


class _Worker(ProcessProtocol):
    def __init__(self, supervisor: WorkerSupervisor, index: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.ended: Deferred[None] = Deferred()

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.supervisor.worker_ended(self, reason)


class WorkerSupervisor(Service):
    """Worker 0's view of the others: start, restart, reload and stop them."""

    log = Logger()

    def __init__(
        self,
        reactor: IServiceReactor,
        count: int,
        fileno: int,
        argv: list[str] | None = None,
        restart_delay: float = 1.0,
    ) -> None:
        self._reactor = reactor
        self._count = count
        self._fileno = fileno
        self._argv = argv if argv is not None else [sys.executable, *sys.argv]
        self._restart_delay = restart_delay
        self.workers: dict[int, tuple[_Worker, Any]] = {}
        self._stopping = False
        #: Consecutive quick deaths per worker, for the restart back-off.
        self._failures: dict[int, int] = {}
        self._started_at: dict[int, float] = {}

    def worker_argv(self, index: int) -> list[str]:
        """The command line of worker *index*: ours, without a pidfile, plus its role."""
        argv = list(self._argv)
        try:
            at = argv.index("rpn")
        except ValueError:
            raise RuntimeError("cannot find the 'rpn' subcommand in the command line") from None
        return [
            *argv[:at],
            "--pidfile=",
            *argv[at:],
            "--worker",
            str(index),
            "--inherit-fd",
            str(self._fileno),
        ]

    def startService(self) -> None:
        super().startService()
        for index in range(1, self._count):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        protocol = _Worker(self, index)
        process = self._reactor.spawnProcess(
            protocol,
            self._argv[0],
            self.worker_argv(index),
            env=dict(os.environ),
            childFDs={0: "w", 1: 1, 2: 2, self._fileno: self._fileno},
        )
        self.workers[index] = (protocol, process)
        self._started_at[index] = self._reactor.seconds()
        self.log.info("worker {index} started (pid {pid})", index=index, pid=process.pid)

    def worker_ended(self, protocol: _Worker, reason: Failure) -> None:
        index = protocol.index
        self.workers.pop(index, None)
        if self._stopping:
            return
        code = "exited" if reason.check(ProcessDone) else "died"
        self.log.warn(
            "worker {index} {code}; restarting in {delay} s",
            index=index,
            code=code,
            delay=self._restart_delay,
        )
        self._reactor.callLater(self._restart_delay, self._respawn, index)

    def _respawn(self, index: int) -> None:
        if not self._stopping and index not in self.workers:
            self._spawn(index)

    def signal_all(self, signum: int) -> None:
        for _, process in list(self.workers.values()):
            try:
                process.signalProcess(signum)
            except (OSError, ProcessLookupError) as exc:
                self.log.warn("could not signal a worker: {error}", error=str(exc))

    def reload(self) -> None:
        self.signal_all(signal.SIGHUP)

    def stopService(self) -> Deferred[Any] | None:
        super().stopService()
        self._stopping = True
        ended = [protocol.ended for protocol, _ in self.workers.values()]
        self.signal_all(signal.SIGTERM)
        return DeferredList(ended) if ended else None
