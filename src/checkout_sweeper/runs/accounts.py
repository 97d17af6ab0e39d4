"""Which Stripe account a key acts on: read from Stripe once, then kept in the database.

The lease is keyed on the account, so a sweep must know it before it may send anything; with
the answer kept, a second sweep (on any host) learns it without a Stripe request, and never
sends one while another sweep holds the account.
"""

from __future__ import annotations

import logging
import random
import time

from checkout_sweeper.engine.retry import RetryPolicy
from checkout_sweeper.errors import DuplicateRow, RetryableError, StripeProblem, SweepAborted
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import StripeAccount
from checkout_sweeper.stripe_api.adapter import StripeGateway

log = logging.getLogger("checkout_sweeper.stripe")
IDENTIFY_ATTEMPTS = 3  # at most two quick retries: a Stripe that is not there is said at once


def known_account(db: Database, key_fingerprint: str) -> str | None:
    """The account a key acts on, if it was read before; no Stripe request."""
    with db.session() as session:
        known = session.get(StripeAccount, key_fingerprint)
    return known.account if known is not None else None


def identify(db: Database, gateway: StripeGateway) -> str:
    """Set ``gateway.account`` from the database, or from Stripe the first time."""
    known = known_account(db, gateway.key_fingerprint)
    if known is not None:
        gateway.account = known
        return known
    account = _ask_stripe(gateway)
    try:
        with db.session() as session:
            session.add(StripeAccount(key_fingerprint=gateway.key_fingerprint, account=account))
    except DuplicateRow:  # another process stored the same answer first
        log.debug("the account of key %s was stored by another process", gateway.key_fingerprint)
    return account


def _ask_stripe(gateway: StripeGateway, policy: RetryPolicy | None = None) -> str:
    """``SweepAborted`` when Stripe cannot be used."""
    policy = policy or RetryPolicy(base_s=0.2, cap_s=0.5)
    rng = random.Random()
    for attempt in range(1, IDENTIFY_ATTEMPTS + 1):
        try:
            return gateway.identify()
        except RetryableError as problem:
            if attempt == IDENTIFY_ATTEMPTS:
                raise SweepAborted(str(problem)) from problem
            time.sleep(policy.backoff_s(attempt, problem, rng))
        except StripeProblem as problem:
            raise SweepAborted(str(problem)) from problem
    raise AssertionError("unreachable")
