"""Several relay processes on one host sharing one listening socket (one reactor each).

With ``listen.workers = N`` the process twistd starts (worker 0) opens the listening socket
(or takes systemd's), builds its TLS context, and before its reactor runs forks a *zygote*: a
process that never runs a reactor and forks the N-1 other workers, at start and whenever
worker 0 asks for a respawn. Every worker therefore holds a copy of the TLS context built
once, hence the same session-ticket keys (pyOpenSSL cannot set them): a returning client
resumes its session on whichever worker the kernel hands its connection (as nginx's and
HAProxy's workers share their keys). Each worker has its own admin endpoint (the configured
port + its index) so Prometheus scrapes every process and sums them. Worker 0 restarts a
worker that dies (through the zygote), forwards SIGHUP (reload) to the others, and on stop
asks them to drain and waits for them.
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

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


#: Builds worker *index*'s service (serving on the inherited socket) with a fresh reactor.
WorkerBuilder = Callable[[IServiceReactor, int], IService]
#: In a forked child: forget the inherited reactor and install a new one (``rpn.tap``).
ReactorInstaller = Callable[[], IServiceReactor]


def _close_reactor_descriptors(reactor: IServiceReactor) -> None:
    """In a forked child: close the parent reactor's descriptors (its epoll set, its waker,
    the ports it listens on) so that nothing the child does touches the parent's reactor."""
    selectables = [*reactor.getReaders(), *reactor.getWriters()]
    waker = getattr(reactor, "waker", None)
    if waker is not None:
        selectables.append(waker)
    numbers = {s.fileno() for s in selectables}
    for owned in ("o", "i"):  # the waker's other end
        number = getattr(waker, owned, None)
        if isinstance(number, int):
            numbers.add(number)
    poller = getattr(reactor, "_poller", None)
    if poller is not None and hasattr(poller, "fileno"):
        numbers.add(poller.fileno())
    for number in numbers:
        if number > 2:
            try:
                os.close(number)
            except OSError:
                pass


def _serve_forked_worker(build: WorkerBuilder, install: ReactorInstaller, index: int) -> None:
    """In the zygote's child: become worker *index* and never return."""
    code = 1
    try:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        reactor = install()
        service = build(reactor, index)
        service.privilegedStartService()
        reactor.callWhenRunning(service.startService)
        reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
        reactor.run()
        code = 0
    except BaseException:  # noqa: BLE001 - a forked child reports anything, then exits
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run_zygote(channel: socket.socket, build: WorkerBuilder, install: ReactorInstaller) -> None:
    """The zygote's loop: fork a worker for each ``spawn INDEX`` line read on *channel*,
    report ``started INDEX PID`` and ``ended INDEX PID STATUS``; when *channel* closes
    (worker 0 stopped or died), terminate the workers still running and exit.

    It never runs a reactor, so each worker it forks starts from a process where no reactor
    ever ran, with the TLS context (and its ticket keys) built before the fork.
    """
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)  # systemd's SIGTERM is for the workers
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    children: dict[int, int] = {}
    buffered = b""
    open_channel = True
    while open_channel or children:
        readable, _, _ = select.select([channel] if open_channel else [], [], [], 0.2)
        if readable:
            try:
                data = channel.recv(4096)
            except OSError:
                data = b""
            if not data:
                open_channel = False
                for pid in children:
                    _kill(pid, signal.SIGTERM)
            buffered += data
            while b"\n" in buffered:
                line, buffered = buffered.split(b"\n", 1)
                verb, _, argument = line.decode().partition(" ")
                if verb == "spawn":
                    index = int(argument)
                    pid = os.fork()
                    if pid == 0:
                        channel.close()
                        _serve_forked_worker(build, install, index)
                    children[pid] = index
                    _report(channel, f"started {index} {pid}")
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            index = children.pop(pid, -1)
            if open_channel:
                _report(channel, f"ended {index} {pid} {status}")


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _report(channel: socket.socket, line: str) -> None:
    try:
        channel.sendall(line.encode() + b"\n")
    except OSError:
        pass


class _ZygoteChannel(LineOnlyReceiver):
    delimiter = b"\n"

    def __init__(self, supervisor: WorkerSupervisor) -> None:
        self.supervisor = supervisor

    def connectionMade(self) -> None:
        self.supervisor.channel_connected(self)

    def lineReceived(self, line: bytes) -> None:
        words = line.decode().split()
        if words[0] == "started":
            self.supervisor.worker_started(int(words[1]), int(words[2]))
        elif words[0] == "ended":
            self.supervisor.worker_ended(int(words[1]), int(words[2]), int(words[3]))

    def connectionLost(self, reason: object = None) -> None:
        self.supervisor.zygote_lost()


class _ZygoteChannelFactory(ServerFactory):
    def __init__(self, supervisor: WorkerSupervisor) -> None:
        self.supervisor = supervisor

    def buildProtocol(self, addr: object) -> _ZygoteChannel:
        return _ZygoteChannel(self.supervisor)


class WorkerSupervisor(Service):
    """Worker 0's view of the others: fork the zygote, then start, restart, reload and stop
    the workers through it."""

    log = Logger()

    def __init__(
        self,
        reactor: IServiceReactor,
        count: int,
        build: WorkerBuilder,
        install: ReactorInstaller,
        restart_delay: float = 1.0,
    ) -> None:
        self._reactor = reactor
        self._count = count
        self._build = build
        self._install = install
        self._restart_delay = restart_delay
        #: index -> pid of the workers running.
        self.workers: dict[int, int] = {}
        self._ended: dict[int, Deferred[None]] = {}
        self._stopping = False
        self._channel: _ZygoteChannel | None = None
        self.zygote_pid: int | None = None

    def privilegedStartService(self) -> None:
        # Here twistd has set up logging (the workers log where worker 0 does) and not yet
        # run the reactor: the last moment to fork from a process where no reactor runs.
        super().privilegedStartService()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ours.close()
                _close_reactor_descriptors(self._reactor)
                run_zygote(theirs, self._build, self._install)
                code = 0
            except BaseException:  # noqa: BLE001 - a forked child reports anything, then exits
                traceback.print_exc()
            finally:
                os._exit(code)
        theirs.close()
        self.zygote_pid = pid
        factory = _ZygoteChannelFactory(self)
        self._reactor.adoptStreamConnection(ours.fileno(), socket.AF_UNIX, factory)
        ours.close()  # the reactor holds its own duplicate

    def startService(self) -> None:
        super().startService()
        for index in range(1, self._count):
            self._spawn(index)

    def _send(self, line: str) -> None:
        if self._channel is not None and self._channel.transport is not None:
            self._channel.transport.write(line.encode() + b"\n")

    def channel_connected(self, channel: _ZygoteChannel) -> None:
        self._channel = channel

    def _spawn(self, index: int) -> None:
        self._ended[index] = Deferred()
        self._send(f"spawn {index}")

    def worker_started(self, index: int, pid: int) -> None:
        self.workers[index] = pid
        self.log.info("worker {index} started (pid {pid})", index=index, pid=pid)
        if self._stopping:  # asked for just before the stop: stop it too
            _kill(pid, signal.SIGTERM)

    def worker_ended(self, index: int, pid: int, status: int) -> None:
        self.workers.pop(index, None)
        ended = self._ended.pop(index, None)
        if ended is not None:
            ended.callback(None)
        if self._stopping:
            return
        code = "exited" if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else "died"
        self.log.warn(
            "worker {index} {code}; restarting in {delay} s",
            index=index,
            code=code,
            delay=self._restart_delay,
        )
        self._reactor.callLater(self._restart_delay, self._respawn, index)

    def zygote_lost(self) -> None:
        self._channel = None
        if not self._stopping:
            self.log.error("the workers' zygote ended: workers that die are not restarted")
        for ended in self._ended.values():
            ended.callback(None)
        self._ended.clear()

    def _respawn(self, index: int) -> None:
        if not self._stopping and index not in self.workers:
            self._spawn(index)

    def signal_all(self, signum: int) -> None:
        for pid in list(self.workers.values()):
            try:
                os.kill(pid, signum)
            except OSError as exc:
                self.log.warn("could not signal a worker: {error}", error=str(exc))

    def reload(self) -> None:
        self.signal_all(signal.SIGHUP)

    def stopService(self) -> Deferred[Any] | None:
        super().stopService()
        self._stopping = True
        ended = list(self._ended.values())
        self.signal_all(signal.SIGTERM)
        done: Deferred[Any] = DeferredList(ended) if ended else Deferred()
        if not ended:
            done.callback(None)
        done.addBoth(self._close_channel)
        return done

    def _close_channel(self, result: object) -> object:
        if self._channel is not None and self._channel.transport is not None:
            self._channel.transport.loseConnection()
        return result
