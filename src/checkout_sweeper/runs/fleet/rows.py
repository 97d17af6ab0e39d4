"""The rows of a fleet sweep: the parent, a child for an account that could not be swept, and
the parent's close from its children's rows (for a fleet whose children the job queue carries,
closed by the worker that ends the last one)."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Mapping

from sqlalchemy import func, select, update

from checkout_sweeper.runs.fleet.result import (
    AccountOutcome,
    FleetResult,
    outcome_of_child,
)
from checkout_sweeper.runs.launch import Asked
from checkout_sweeper.runs.rows import update_run
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import SweepRun, aware, utcnow
from checkout_sweeper.stripe_api.adapter import StripeGateway
from checkout_sweeper.vocabulary import RunStatus

PARENT_ONLY = ("idempotency_key", "request_fingerprint")  # what the request's row keeps
PENDING = {RunStatus.QUEUED, RunStatus.RUNNING}  # a child in these has not ended
FLEET_PARALLEL = 6  # accounts swept at once in one process: 120 req/s at 20 each, 2 cores


@dataclasses.dataclass(frozen=True)
class FleetPlan:
    """Which accounts, what to ask of each, and who asked."""

    accounts: list[str]
    asked: Asked
    trigger: str
    user_id: int | None = None


def record_parent(
    db: Database, parent_id: str, plan: FleetPlan, platform: StripeGateway, status: str
) -> None:
    asked = plan.asked
    with db.session() as session:
        session.add(
            SweepRun(
                id=parent_id,
                trigger=plan.trigger,
                user_id=plan.user_id,
                account=platform.account,
                livemode=platform.livemode,
                dry_run=asked.dry_run,
                status=status,
                fleet=True,
                scope=asked.scope.stored(),
                **{name: value for name, value in asked.row.items() if name in PARENT_ONLY},
            )
        )


def child_row(parent_id: str, plan: FleetPlan, account: str, livemode: bool) -> dict[str, object]:
    """The values every child row of the fleet has."""
    return {
        "trigger": plan.trigger,
        "user_id": plan.user_id,
        "account": f"{'live' if livemode else 'test'}:{account}",
        "livemode": livemode,
        "dry_run": plan.asked.dry_run,
        "parent_id": parent_id,
        "stripe_account": account,
    }


def record_refusal(db: Database, row: Mapping[str, object], error: str) -> str:
    """A child row for an account that could not be swept, so history shows why."""
    child_id = uuid.uuid4().hex
    now = utcnow()
    with db.session() as session:
        session.add(
            SweepRun(
                id=child_id,
                status=RunStatus.FAILED,
                started_at=now,
                finished_at=now,
                error=error,
                **row,
            )
        )
    return child_id


def settle_parent(db: Database, parent_id: str) -> str | None:
    """Close the parent once no child is queued or running, with the fleet's whole answer
    summed from its children's rows; its status, or None if not yet."""
    with db.session() as session:
        parent = session.get(SweepRun, parent_id)
        children = list(session.scalars(select(SweepRun).where(SweepRun.parent_id == parent_id)))
        statuses = {child.status for child in children}
        if parent is None or not children or statuses & PENDING:
            return None
        closed = _closed(parent, children)
        update_run(session, parent_id, closed)
        return str(closed["status"])


def resum_parent(db: Database, parent_id: str) -> None:
    """An ended fleet's counts again, from its children's rows as they stand now (a later
    sweep settled some of their outcomes); its status, end and stored answer stay. One
    statement that sums in the database, so that accounts settled at once by parallel
    sweeps cannot write each other's older sums last."""
    children = select(SweepRun).where(SweepRun.parent_id == parent_id).subquery()
    summed = {
        name: select(func.coalesce(func.sum(children.c[name]), 0)).scalar_subquery()
        for name in ("expired_count", "already_closed_count", "failed_count", "found_count")
    }
    ended = update(SweepRun).where(SweepRun.id == parent_id, SweepRun.finished_at.is_not(None))
    with db.session() as session:
        session.execute(ended.values(**summed))


def _closed(parent: SweepRun, children: list[SweepRun]) -> dict[str, object]:
    """The parent's row once every child has ended: its status, sums and answer."""
    scope = json.loads(parent.scope) if parent.scope else {}
    fleet = FleetResult(parent.id, parent.dry_run, [outcome_of_child(c) for c in children], scope)
    fleet.duration_ms = int((utcnow() - aware(parent.started_at)).total_seconds() * 1000)
    data = fleet.as_data()
    failed = [child for child in children if child.status == RunStatus.FAILED]
    canceled = parent.cancel_requested_at is not None  # its owner's word stands
    return {
        "status": RunStatus.CANCELED if canceled else fleet.status,
        "finished_at": utcnow(),
        "expired_count": data["expired_count"],
        "already_closed_count": data["already_closed_count"],
        "failed_count": sum(child.failed_count for child in children),
        "found_count": sum(child.found_count for child in children),
        "listing_complete": all(c.listing_complete for c in children if c.started_at),
        "remaining_count": data["remaining_open_count"],
        "stripe_requests": data["stripe_requests"],
        "result": json.dumps(data, default=str),
        "error": "; ".join(f"{c.stripe_account}: {c.error}" for c in failed) or None,
    }


def ended_children(db: Database, parent_id: str) -> list[AccountOutcome]:
    """The fleet's accounts whose sweeps have ended, as outcomes, oldest first."""
    with db.session() as session:
        children = session.scalars(
            select(SweepRun)
            .where(SweepRun.parent_id == parent_id, SweepRun.status.not_in(PENDING))
            .order_by(SweepRun.finished_at)
        )
        return [outcome_of_child(child) for child in children]


def fleet_of(db: Database, parent_id: str) -> FleetResult:
    """The fleet's answer as its parent recorded it once settled, or summed from its
    children now."""
    with db.session() as session:
        parent = session.get(SweepRun, parent_id)
        assert parent is not None, parent_id
        children = list(session.scalars(select(SweepRun).where(SweepRun.parent_id == parent_id)))
        scope = json.loads(parent.scope) if parent.scope else {}
        outcomes = [outcome_of_child(child) for child in children]
        fleet = FleetResult(parent.id, parent.dry_run, outcomes, scope)
        fleet.duration_ms = int(1000 * (parent.duration_s or 0))
        return fleet
