"""Database connections used off the reactor thread: one per worker thread, each unit of work
one transaction.

``ThreadedConnections`` runs each unit of work in a thread of its own pool (the reactor never
waits on the database), commits it, or rolls it back if it raised. A connection that failed
(server gone, file unreadable) is closed and forgotten: the next unit of work connects again,
so the service recovers by itself when the database comes back. ``InlineConnections`` runs
the same code at once on the caller's thread, for unit tests (no thread, no reactor).

The model is ``twisted.enterprise.adbapi``'s (a thread pool, a connection per thread, commit or
roll back around each interaction); written here, typed, because adbapi's reconnection runs a
probe query after every rollback and logs each failure with a traceback, where a database
outage here is an expected event answered with a fault and one warning per exchange.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")

#: Opens a DB-API connection, ready for use (pragmas set, schema checked).
Connect = Callable[[], Any]


class Connections(Protocol):
    def run(self, work: Callable[[Any], T]) -> Deferred[T]:
        """Run *work* with a connection, in one transaction."""


class _Keeper:
    """The connections of the threads that run units of work, and how a unit of work runs."""

    def __init__(self, connect: Connect, broken: tuple[type[BaseException], ...]) -> None:
        self._connect = connect
        self._broken = broken
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Any] = []

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._lock:
                self._open.append(connection)
        return connection

    def _forget(self, connection: Any) -> None:
        self._local.connection = None
        with self._lock:
            if connection in self._open:
                self._open.remove(connection)
        try:
            connection.close()
        except Exception:  # noqa: BLE001, S110 - it is already broken; it is dropped anyway
            pass

    def run_here(self, work: Callable[[Any], T]) -> T:
        connection = self._connection()
        try:
            result = work(connection)
            connection.commit()
            return result
        except BaseException as exc:
            try:
                connection.rollback()
            except Exception:  # noqa: BLE001 - a connection that cannot roll back is dropped
                self._forget(connection)
            else:
                if isinstance(exc, self._broken):
                    self._forget(connection)
            raise

    def close_all(self) -> None:
        with self._lock:
            connections, self._open = self._open, []
        for connection in connections:
            try:
                connection.close()
            except Exception:  # noqa: BLE001, S110 - closing at shutdown, nothing to do
                pass


class ThreadedConnections(Service):
    """Units of work in a pool of *threads* threads, each with its own connection."""

    def __init__(
        self,
        reactor: IReactorFromThreads,
        connect: Connect,
        broken: tuple[type[BaseException], ...],
        threads: int,
        name: str = "mutuelle-db",
    ) -> None:
        self._reactor = reactor
        self._keeper = _Keeper(connect, broken)
        self._pool = ThreadPool(minthreads=1, maxthreads=threads, name=name)

    def startService(self) -> None:
        super().startService()
        self._pool.start()

    def stopService(self) -> None:
        super().stopService()
        self._pool.stop()  # waits for the unit of work in progress, if any
        self._keeper.close_all()

    def run(self, work: Callable[[Any], T]) -> Deferred[T]:
        return deferToThreadPool(self._reactor, self._pool, self._keeper.run_here, work)


class InlineConnections:
    """Units of work at once on the caller's thread (unit tests): Deferreds already fired."""

    def __init__(self, connect: Connect, broken: tuple[type[BaseException], ...] = ()) -> None:
        self._keeper = _Keeper(connect, broken)

    def run(self, work: Callable[[Any], T]) -> Deferred[T]:
        try:
            return succeed(self._keeper.run_here(work))
        except Exception:  # noqa: BLE001 - handed to the caller's errback, as a thread would
            return fail()

    def close(self) -> None:
        self._keeper.close_all()
