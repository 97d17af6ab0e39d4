"""A recorded sweep of the account in ``Settings``: the gateway, the pacing, the live-mode guard
and the account's identity, as configured, around ``service.run_recorded_sweep``."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from .config import Settings
from .db import Database
from .errors import LiveModeRefused, RetryableError, StripeProblem, SweepAborted
from .retry import RetryPolicy
from .service import Recording, run_recorded_sweep
from .stripe_api import StripeGateway
from .sweep import SweepOptions, SweepProgress, SweepResult

IDENTIFY_ATTEMPTS = 3


def configured_gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(
        settings.stripe_api_key or "",
        api_base=settings.stripe_api_base,
        stripe_account=settings.stripe_account,
    )


def identify(gateway: StripeGateway, policy: RetryPolicy | None = None) -> str:
    """The account the key acts on; ``SweepAborted`` when Stripe cannot be used."""
    policy = policy or RetryPolicy(base_s=0.25, cap_s=2.0)
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


def configured_sweep(
    settings: Settings,
    db: Database,
    *,
    trigger: str,
    user_id: int | None = None,
    dry_run: bool = False,
    created_before: int | None = None,
    on_progress: Callable[[SweepProgress], None] | None = None,
) -> SweepResult:
    """Raises ``LiveModeRefused``, ``SweepInProgress``, ``SweepAborted`` or ``AuditError``."""
    gateway = configured_gateway(settings)
    if gateway.livemode and not settings.allow_live_mode:
        raise LiveModeRefused()
    identify(gateway)
    options = SweepOptions(
        max_rps=settings.max_rps,
        concurrency=settings.concurrency,
        dry_run=dry_run,
        created_before=created_before,
    )
    recording = Recording(db, settings.journal_dir, settings.lease_ttl_s, settings.audit_grace_s)
    return run_recorded_sweep(
        recording, gateway, options, trigger=trigger, user_id=user_id, on_progress=on_progress
    )
