"""The rows of a fleet sweep: the parent, a child for an account that could not be swept, and
the parent's close from its children's rows (for a fleet whose children the job queue carries,
closed by the worker that ends the last one)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping

from sqlalchemy import select

from checkout_sweeper.runs.fleet.result import fleet_status
from checkout_sweeper.runs.launch import Asked
from checkout_sweeper.runs.rows import update_run
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import SweepRun, utcnow
from checkout_sweeper.stripe_api.adapter import StripeGateway
from checkout_sweeper.vocabulary import RunStatus

PARENT_ONLY = ("idempotency_key", "request_fingerprint")  # what the request's row keeps
FLEET_PARALLEL = 6  # accounts swept at once in one process: 120 req/s at 20 each, 2 cores


@dataclasses.dataclass(frozen=True)
class FleetPlan:
    """Which accounts, what to ask of each, who asked, and how many at once."""

    accounts: list[str]
    asked: Asked
    trigger: str
    user_id: int | None = None
    parallel: int = FLEET_PARALLEL


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
    """Close the parent once no child is queued or running; its status, or None if not yet."""
    with db.session() as session:
        children = list(session.scalars(select(SweepRun).where(SweepRun.parent_id == parent_id)))
        statuses = {child.status for child in children}
        if not children or statuses & {RunStatus.QUEUED, RunStatus.RUNNING}:
            return None
        status = fleet_status(statuses)
        failed = [child for child in children if child.status == RunStatus.FAILED]
        values = {
            "status": status,
            "finished_at": utcnow(),
            "expired_count": sum(child.expired_count for child in children),
            "already_closed_count": sum(child.already_closed_count for child in children),
            "failed_count": sum(child.failed_count for child in children),
            "stripe_requests": sum(child.stripe_requests for child in children),
            "error": "; ".join(f"{c.stripe_account}: {c.error}" for c in failed) or None,
        }
        update_run(session, parent_id, values)
        return status
