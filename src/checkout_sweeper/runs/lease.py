"""One sweep at a time per Stripe account, across threads, workers, instances and the CLI.

A lease row in the shared database (SQLite or PostgreSQL): taking it is one INSERT, or one
UPDATE of a lease that has run out, so the database decides atomically who wins and a second
caller learns at once that it lost. The holder renews the lease while it works; a process that
is killed simply stops renewing, and the lease lapses after ``ttl_s`` seconds, so no crash can
block an account forever.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from checkout_sweeper.errors import DuplicateRow, SweepInProgress
from checkout_sweeper.settings import LEASE_TTL_S
from checkout_sweeper.store.database import Database, rows_changed
from checkout_sweeper.store.models import SweepLock, SweepRun

__all__ = ["AccountLease", "SweepInProgress"]

log = logging.getLogger("checkout_sweeper.service")


def this_process() -> tuple[str, int]:
    """This process as rows name one: its host and pid."""
    return socket.gethostname(), os.getpid()


def this_host_owner() -> str:
    host, pid = this_process()
    return f"{host}:{pid}"


def holder_is_dead(owner: str) -> bool:
    """True when ``owner`` (host:pid) is a process of this host that no longer runs."""
    host, _, pid = owner.rpartition(":")
    return pid.isdigit() and process_is_dead(host, int(pid))


def process_is_dead(host: str, pid: int) -> bool:
    """True when ``pid`` on ``host`` is a process of this host that no longer runs."""
    if host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False


def refuse_if_held(db: Database, account: str) -> None:
    """``SweepInProgress`` naming the holder when a live sweep holds ``account`` now (a read
    only: ``acquire`` decides)."""
    with db.session() as session:
        holder = session.get(SweepLock, account)
        if holder is None or holder.expires_at < time.time() or holder_is_dead(holder.owner):
            return
        run = session.get(SweepRun, holder.run_id)
        if run is not None and run.finished_at is not None:  # ended, its lease being let go
            return
        raise SweepInProgress(account, _described(session, holder), _since(session, holder))


def _described(session: Session, holder: SweepLock) -> str:
    """``sweep 1a2b3c4d on host:pid since 12:00:01 UTC``: who to wait for, or to look into."""
    since = _since(session, holder)
    return f"sweep {holder.run_id[:8]} on {holder.owner}" + (f" since {since}" if since else "")


def _since(session: Session, holder: SweepLock) -> str:
    """``12:00:01 UTC``: when the sweep holding the account started (all another caller may
    know of it)."""
    run = session.get(SweepRun, holder.run_id)
    return f"{run.started_at:%H:%M:%S} UTC" if run is not None else ""


class AccountLease:
    """``acquire()`` or raise ``SweepInProgress``; ``renew()`` while working; ``release()``."""

    def __init__(
        self, db: Database, account: str, run_id: str, ttl_s: float = LEASE_TTL_S.default
    ) -> None:
        self.db = db
        self.account = account
        self.run_id = run_id
        self.ttl_s = ttl_s
        self.owner = this_host_owner()

    def acquire(self) -> None:
        """Take the lease: a new row, or the row of a lease that ran out or whose holder is a
        process of this host that no longer exists (killed), so a crash blocks nobody."""
        expires = time.time() + self.ttl_s
        try:
            with self.db.session() as session:
                session.add(
                    SweepLock(
                        account=self.account,
                        run_id=self.run_id,
                        owner=self.owner,
                        expires_at=expires,
                    )
                )
            return
        except DuplicateRow:  # a lease row is there: taken over below if it lapsed
            log.debug("the lease of %s is held; checking whether it lapsed", self.account)
        with self.db.session() as session:
            holder = session.get(SweepLock, self.account)
            lapsed = SweepLock.expires_at < time.time()
            if holder is not None and holder_is_dead(holder.owner):
                lapsed = SweepLock.owner == holder.owner
            taken = rows_changed(
                session,
                update(SweepLock)
                .where(SweepLock.account == self.account, lapsed)
                .values(run_id=self.run_id, owner=self.owner, expires_at=expires),
            )
            if taken != 1:
                current = session.get(SweepLock, self.account)
                if current is None:
                    raise SweepInProgress(self.account)
                raise SweepInProgress(
                    self.account, _described(session, current), _since(session, current)
                )

    def renew(self) -> bool:
        """Push the lease forward; False if it was lost (expired and taken by someone else,
        another attempt of the same run included: a process frozen past its lease, woken,
        finds it held by the worker that took its run up)."""
        with self.db.session() as session:
            kept = rows_changed(
                session,
                update(SweepLock)
                .where(SweepLock.account == self.account, SweepLock.run_id == self.run_id)
                .where(SweepLock.owner == self.owner)
                .values(expires_at=time.time() + self.ttl_s),
            )
            return kept == 1

    def release(self) -> None:
        with self.db.session() as session:
            session.execute(
                delete(SweepLock).where(
                    SweepLock.account == self.account,
                    SweepLock.run_id == self.run_id,
                    SweepLock.owner == self.owner,
                )
            )
