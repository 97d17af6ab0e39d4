"""A pool of threads that grows and shrinks while it runs: as many as ``size()`` says.

``size`` is read again at every ``put`` and after every item, so the pool grows as soon as
there is work and room for another thread, and a thread beyond the size ends after its item.
``put`` blocks while the size plus ``backlog`` items are queued or being worked on; ``drain``
waits until none is, ``settle`` until none is queued; ``close`` lets the queue empty and ends
every thread, so a pool's threads end with the sweep that made it.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger("checkout_sweeper.engine")

IDLE_CHECK_S = 1.0  # a thread waiting for work looks at the size this often
ROOM_CHECK_S = 0.25  # a blocked ``put`` looks again this often: the size may have grown


class ElasticThreads:
    """Runs ``work(item)`` for every item put, on at most ``size()`` threads at once."""

    def __init__(
        self,
        work: Callable[[str], None],
        size: Callable[[], int],
        *,
        backlog: int,
        name: str,
        on_change: Callable[[int, int], None] = lambda threads, busy: None,
    ) -> None:
        self._work = work
        self._size = size
        self._backlog = backlog
        self._name = name
        self._on_change = on_change  # (threads running, items being worked on)
        self._lock = threading.Condition()
        self._held: set[str] = set()  # queued or being worked on
        self._queue: deque[str] = deque()
        self._threads: list[threading.Thread] = []
        self._running = 0  # threads running
        self._waiting = 0  # of those, waiting for work
        self._closing = False
        self._busy = 0
        self.most_busy = 0  # the most items worked on at once
        self.most_threads = 0

    @property
    def busy(self) -> int:
        """Items being worked on now (queued ones are not counted)."""
        with self._lock:
            return self._busy

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def holds(self, item: str) -> bool:
        with self._lock:
            return item in self._held

    def put(self, item: str) -> None:
        with self._lock:
            while len(self._held) >= self._size() + self._backlog:
                self._lock.wait(ROOM_CHECK_S)
            self._held.add(item)
            self._queue.append(item)
            if self._waiting:
                self._lock.notify()
            self._grow()

    def drain(self) -> None:
        with self._lock:
            self._lock.wait_for(lambda: not self._held)

    def settle(self) -> None:
        """Wait until no item is queued (those being worked on may go on)."""
        with self._lock:
            self._lock.wait_for(lambda: not self._queue)

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._lock.notify_all()
            threads = list(self._threads)
        for thread in threads:
            thread.join()

    def _grow(self) -> None:
        """(Holding the lock) one more thread when work waits for one and the size allows."""
        if len(self._queue) > self._waiting and self._running < self._size():
            self._running += 1
            self.most_threads = max(self.most_threads, self._running)
            name = f"{self._name}-{len(self._threads)}"
            thread = threading.Thread(target=self._loop, name=name, daemon=True)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
            thread.start()
        self._on_change(self._running, self._busy)

    def _next(self) -> str | None:
        """The next item; None when this thread should end (the pool shrank, or closes)."""
        with self._lock:
            while not self._queue:
                if self._closing or self._running > self._size():
                    self._running -= 1
                    return None
                self._waiting += 1
                self._lock.wait(IDLE_CHECK_S)
                self._waiting -= 1
            if self._running > max(1, self._size()) and not self._closing:
                self._running -= 1
                self._lock.notify()  # the item stays queued for a thread that stays
                return None
            self._busy += 1
            self.most_busy = max(self.most_busy, self._busy)
            item = self._queue.popleft()
            if not self._queue:
                self._lock.notify_all()  # ``settle`` waits for this
            return item

    def _loop(self) -> None:
        while (item := self._next()) is not None:
            try:
                self._work(item)
            except Exception:  # a bug must not stop the thread's count from coming down
                log.exception("work on %s failed unexpectedly", item)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._held.discard(item)
                    self._grow()
                    self._lock.notify_all()
