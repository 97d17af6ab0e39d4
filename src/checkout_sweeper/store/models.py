"""The tables: users of the endpoint, and the audit trail of every sweep and session.

SQLAlchemy 2.0 typed declarative models; the schema itself is owned by the Alembic migrations
in ``migrations/``, which must be kept in step with these classes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from checkout_sweeper.vocabulary import RunStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """A stored moment in UTC with its zone (SQLite hands datetimes back without one)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def utc_iso(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with its zone (SQLite hands datetimes back without one)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Base(DeclarativeBase):
    pass


class UserShown(TypedDict):
    """A user as the command line prints it."""

    id: int
    email: str
    stripe_customer_id: str | None
    created_at: str | None


class WorkerShown(TypedDict):
    """The process that runs (or ran) a sweep."""

    host: str
    pid: int | None


class User(Base):
    """Someone allowed to call the endpoint; one with a Stripe customer is refused (409)."""

    __tablename__ = "users"
    __table_args__ = (
        Index("ix_users_email_lower", text("lower(email)"), unique=True),  # any case: one user
        {"sqlite_autoincrement": True},  # an id is never given out twice
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def as_dict(self) -> UserShown:
        return {
            "id": self.id,
            "email": self.email,
            "stripe_customer_id": self.stripe_customer_id,
            "created_at": utc_iso(self.created_at),
        }


class SweepRun(Base):
    """One sweep: who started it, on which account, how it went. Updated as it goes."""

    __tablename__ = "sweep_runs"
    __table_args__ = (
        UniqueConstraint("user_id", "idempotency_key", name="uq_sweep_runs_user_idempotency"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    trigger: Mapped[str] = mapped_column(String(16))  # a vocabulary.Trigger
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # who started it, kept when that user is removed (user_id is then null)
    removed_user_id: Mapped[int | None] = mapped_column(Integer)
    removed_user_email: Mapped[str | None] = mapped_column(String(320))
    account: Mapped[str] = mapped_column(String(64), index=True)
    livemode: Mapped[bool] = mapped_column(Boolean, default=False)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.RUNNING, index=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expired_count: Mapped[int] = mapped_column(Integer, default=0)
    already_closed_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    remaining_count: Mapped[int | None] = mapped_column(Integer)
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=1)  # runs of it: resumed ones add
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    canceled_by: Mapped[str | None] = mapped_column(String(16))  # "owner" or "operator"
    found_count: Mapped[int] = mapped_column(Integer, default=0)
    listing_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    stripe_requests: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)  # the endpoint's data object, as JSON
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    scope: Mapped[str | None] = mapped_column(Text)  # engine.scope's as_dict, as JSON
    schedule_id: Mapped[str | None] = mapped_column(String(32), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(32), index=True)  # a fleet's child
    fleet: Mapped[bool] = mapped_column(Boolean, default=False)  # a fleet's parent
    stripe_account: Mapped[str | None] = mapped_column(String(64))  # Stripe-Account it acts on
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))

    @property
    def duration_s(self) -> float | None:
        if self.finished_at is None or self.started_at is None:
            return None
        return round((aware(self.finished_at) - aware(self.started_at)).total_seconds(), 3)

    @property
    def worker(self) -> WorkerShown | None:
        """The process running it now (or that ran it last); null while it waits in a queue."""
        if self.status == RunStatus.QUEUED or self.host is None:
            return None
        return {"host": self.host, "pid": self.pid}


class SweptSession(Base):
    """What happened to one Checkout Session in one sweep (one row per session per run)."""

    __tablename__ = "swept_sessions"
    __table_args__ = (
        UniqueConstraint("run_id", "session_id", name="uq_swept_sessions_run_session"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("sweep_runs.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str] = mapped_column(String(255), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SweepLock(Base):
    """A lease: the one sweep allowed on an account until ``expires_at`` (epoch seconds)."""

    __tablename__ = "sweep_locks"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(32))
    owner: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[float] = mapped_column(Float)


class StripeAccount(Base):
    """The account a key acts on (``test:acct_...``), read once from Stripe and kept, so that
    a second sweep learns its lease without a Stripe request."""

    __tablename__ = "stripe_accounts"

    key_fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(64))
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


CRON_MAX = 120  # characters of a schedule's cron expression


class Schedule(Base):
    """A recurring scoped sweep: every ``every_s`` seconds or on a cron expression. Workers
    claim each slot by moving ``last_slot_at`` forward, which only one of them can do."""

    __tablename__ = "schedules"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    every_s: Mapped[int | None] = mapped_column(Integer)
    cron: Mapped[str | None] = mapped_column(String(CRON_MAX))
    scope: Mapped[str] = mapped_column(Text, default="{}")
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_slot_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
