"""A fleet sweep on the job queue: the parent run, then one queued child per account, which
any worker takes up like any queued sweep (``--concurrency`` accounts per worker). The worker
that ends the last child closes the parent (``rows.settle_parent``)."""

from __future__ import annotations

import dataclasses
import logging
import uuid

from dramatiq import Broker

from checkout_sweeper.errors import SweeperError
from checkout_sweeper.runs.fleet.rows import (
    FleetPlan,
    child_row,
    record_parent,
    record_refusal,
    settle_parent,
)
from checkout_sweeper.runs.queue.producer import record_run, send_or_fail
from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database
from checkout_sweeper.stripe_api.adapter import StripeGateway
from checkout_sweeper.vocabulary import RunStatus

log = logging.getLogger("checkout_sweeper.fleet")


def queue_fleet(
    settings: Settings, db: Database, broker: Broker, platform: StripeGateway, plan: FleetPlan
) -> str:
    """The parent's id. Every child is recorded before any message is sent, so no child can
    end and settle the parent while others are still to come; an account that refuses (or
    cannot be queued) fails its own child."""
    parent_id = uuid.uuid4().hex
    record_parent(db, parent_id, plan, platform, RunStatus.RUNNING)
    children = []
    for account in plan.accounts:
        try:
            children.append(_recorded_child(settings, db, broker, plan, parent_id, account))
        except SweeperError as err:
            log.info("account %s could not be queued: %s", account, err)
            record_refusal(db, child_row(parent_id, plan, account, platform.livemode), str(err))
    for child_id in children:
        try:
            send_or_fail(db, broker, child_id)
        except SweeperError as err:  # its run ended failed, saying so
            log.info("child %s could not be queued: %s", child_id, err)
    settle_parent(db, parent_id)  # ends it now when no account could be queued
    return parent_id


def _recorded_child(
    settings: Settings,
    db: Database,
    broker: Broker,
    plan: FleetPlan,
    parent_id: str,
    account: str,
) -> str:
    return record_run(
        dataclasses.replace(settings, stripe_account=account),
        db,
        broker,
        trigger=plan.trigger,
        user_id=plan.user_id,
        asked=plan.asked.of_account(parent_id, account),
    )
