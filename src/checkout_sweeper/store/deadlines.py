"""A client-side deadline on a thread's database work, for a server that accepts and never
answers (frozen, or behind a link that swallows packets).

The server's ``statement_timeout`` cannot help there, and TCP keepalives never fire while the
peer's kernel still acknowledges. So each thread's checked-out connections are known here, and
``arm(seconds)`` starts a timer that, when it fires, shuts the sockets of that thread's
connections: the blocked read returns at once, the driver raises, the pool discards the
connection, and ``database.translated`` turns the error into ``DatabaseUnavailable``. Pooled
connections are pinged on checkout *after* they are tracked, so a ping that hangs is dropped
too.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import defaultdict
from typing import Any

from sqlalchemy import Engine, event, exc

log = logging.getLogger("checkout_sweeper.store")


class Deadlines:
    """Per thread: the connections it holds, and the timer that drops them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, set[Any]] = defaultdict(set)
        self._timers: dict[int, threading.Timer] = {}
        self._fired: set[int] = set()

    def watch(self, engine: Engine) -> None:
        """Track the engine's checked-out connections (and ping pooled ones on checkout)."""
        event.listen(engine, "checkout", self._checkout)
        event.listen(engine, "checkin", self._checkin)

    def arm(self, seconds: float) -> None:
        """From now, this thread's database work must end within ``seconds``."""
        thread = threading.get_ident()
        timer = threading.Timer(seconds, self._drop, args=(thread,))
        timer.daemon = True
        with self._lock:
            self._disarm(thread)
            self._fired.discard(thread)
            self._timers[thread] = timer
        timer.start()

    def disarm(self) -> bool:
        """No deadline any more for this thread; whether it had passed."""
        thread = threading.get_ident()
        with self._lock:
            self._disarm(thread)
            return thread in self._fired

    def passed(self) -> bool:
        with self._lock:
            return threading.get_ident() in self._fired

    def _disarm(self, thread: int) -> None:
        timer = self._timers.pop(thread, None)
        if timer is not None:
            timer.cancel()

    def _drop(self, thread: int) -> None:
        """A deadline passes only for a thread that is waiting on the database then."""
        with self._lock:
            held = list(self._held.get(thread, ()))
            if held:
                self._fired.add(thread)
        for connection in held:
            _shut(connection)
        if held:
            log.warning("database silent past the deadline: dropped %d connection(s)", len(held))

    def _checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        thread = threading.get_ident()
        with self._lock:
            self._held[thread].add(dbapi_connection)
            late = thread in self._fired
        if late:  # no new attempt once the deadline passed: the caller answers now
            raise exc.TimeoutError("the deadline for this thread's database work passed")
        _ping(dbapi_connection)

    def _checkin(self, dbapi_connection: Any, record: Any) -> None:
        with self._lock:
            for held in self._held.values():
                held.discard(dbapi_connection)


def _ping(dbapi_connection: Any) -> None:
    """The pool's pessimistic check, made here so that a hanging ping can be dropped."""
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.close()
    except Exception as err:  # the pool replaces the connection and tries again
        raise exc.DisconnectionError(f"stale connection: {err}") from err


def _shut(dbapi_connection: Any) -> None:
    """Shut the connection's socket (not close its descriptor: the driver still owns it)."""
    try:
        copy = socket.socket(fileno=_fileno(dbapi_connection))
    except (OSError, ValueError) as err:
        log.warning("could not reach a connection's socket to drop it: %s", err)
        return
    try:
        copy.shutdown(socket.SHUT_RDWR)
    except OSError as err:
        log.warning("could not drop a silent connection: %s", err)
    finally:
        copy.detach()  # the descriptor stays the driver's


def _fileno(dbapi_connection: Any) -> int:
    pgconn = getattr(dbapi_connection, "pgconn", None)  # psycopg 3
    if pgconn is not None:
        return int(pgconn.socket)
    return int(dbapi_connection.fileno())
