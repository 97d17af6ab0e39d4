"""A recorded sweep of the account in ``Settings``: the gateway, the pacing, the live-mode guard
and the account's identity, as configured, around ``recorded_sweep.RecordedSweep``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from checkout_sweeper.api_keys import account_fingerprint
from checkout_sweeper.engine.scope import EVERYTHING, Scope
from checkout_sweeper.engine.sweeper import Sweeper, SweepOptions, SweepProgress
from checkout_sweeper.errors import LiveModeRefused
from checkout_sweeper.runs.accounts import identify, known_account
from checkout_sweeper.runs.lease import refuse_if_held
from checkout_sweeper.runs.platform_budget import platform_gate
from checkout_sweeper.runs.recorded_sweep import RecordedSweep, Recording, begin_sweep
from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database
from checkout_sweeper.stripe_api.adapter import StripeGateway
from checkout_sweeper.vocabulary import JsonObject


@dataclass(frozen=True)
class Asked:
    """What a door asked of a sweep: the seed endpoint asks for everything, for real."""

    scope: Scope = EVERYTHING
    dry_run: bool = False
    row: dict[str, object] = field(default_factory=dict)  # more values for the run row

    def of_account(self, parent_id: str, account: str) -> Asked:
        """The same ask for one connected account of a fleet, as the parent's child."""
        row = {**self.row, "parent_id": parent_id, "stripe_account": account}
        return dataclasses.replace(self, row=row)


SEED = Asked()


BACKGROUND_PATIENCE_FACTOR = 20  # a sweep nobody waits on can wait out a long storm


def configured_gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(
        settings.stripe_api_key or "",
        api_base=settings.stripe_api_base,
        stripe_account=settings.stripe_account,
        timeout_s=settings.stripe_timeout_s,
    )


def refuse_early(
    settings: Settings, db: Database, *, reads_only: bool = False, busy: bool = True
) -> None:
    """The checks that need no Stripe request, made before a caller's quota is spent: a
    live-mode key not allowed (``LiveModeRefused``; a sweep that ``reads_only`` may), a sweep
    of the account already running (``SweepInProgress``, when ``busy`` asks; taking the lease
    checks it again, atomically)."""
    gateway = configured_gateway(settings)
    if gateway.livemode and not settings.allow_live_mode and not reads_only:
        raise LiveModeRefused()
    account = known_account(db, gateway.key_fingerprint) if busy else None
    if account is not None:
        refuse_if_held(db, account)


def identified_gateway(settings: Settings, db: Database, *, dry_run: bool) -> StripeGateway:
    """The gateway with its account known; a live-mode key is refused unless allowed or the
    sweep only reads (a dry run)."""
    gateway = configured_gateway(settings)
    if gateway.livemode and not settings.allow_live_mode and not dry_run:
        raise LiveModeRefused()
    identify(db, gateway)
    return gateway


def sweep_options(settings: Settings, *, in_request: bool) -> SweepOptions:
    """The engine's options as configured; a sweep answered within a request waits through
    a storm of 429s for ``SWEEPER_STORM_PATIENCE``, any other sweep 20 times as long."""
    patience = settings.storm_patience_s * (1 if in_request else BACKGROUND_PATIENCE_FACTOR)
    return SweepOptions(
        max_rps=settings.max_rps,
        concurrency=settings.concurrency,
        reserve=settings.reserve,
        storm_patience_s=patience,
        shared_gate=_platform_gate(settings),
    )


def _platform_gate(settings: Settings) -> Callable[[], None] | None:
    """The platform's shared budget, for a sweep acting on a connected account."""
    if settings.platform_max_rps is None or not settings.stripe_account:
        return None
    platform = account_fingerprint(settings.stripe_api_key or "", None)
    return platform_gate(settings.ratelimit_storage_uri, platform, settings.platform_max_rps)


def preview_open(
    settings: Settings,
    gateway: StripeGateway,
    scope: Scope,
    on_progress: Callable[[SweepProgress], None] | None = None,
) -> tuple[int, JsonObject]:
    """How many open sessions are in ``scope`` (at most its limit), by a listing that records
    nothing and expires nothing (``on_progress`` sees the count grow), and the
    ``side_effects`` expiring them would have."""
    options = dataclasses.replace(
        sweep_options(settings, in_request=False), dry_run=True, scope=scope, remaining_cap=0
    )
    result = Sweeper(gateway, options, on_progress=on_progress).run()
    assert result.remaining_open_count is not None  # a listing that ran to its end counted them
    assert result.side_effects is not None  # every finished sweep says them
    total = result.remaining_open_count
    if scope.limit is not None:
        total = min(scope.limit, total)
    return total, {**result.side_effects, "expired_events": total}


def start_configured_sweep(
    settings: Settings,
    db: Database,
    *,
    trigger: str,
    user_id: int | None = None,
    asked: Asked = SEED,
    on_progress: Callable[[SweepProgress], None] | None = None,
    gateway: StripeGateway | None = None,
    in_request: bool = False,
    sweep_id: str | None = None,
) -> RecordedSweep:
    """The sweep leased and recorded as running, ready to ``run`` (in the caller's thread,
    or in the queue's consumer). Raises ``LiveModeRefused``, ``SweepInProgress`` or
    ``SweepAborted``; ``run`` then raises ``SweepAborted`` or ``AuditError``."""
    gateway = gateway or identified_gateway(settings, db, dry_run=asked.dry_run)
    options = dataclasses.replace(
        sweep_options(settings, in_request=in_request),
        dry_run=asked.dry_run,
        scope=asked.scope,
    )
    recording = Recording(db, settings.journal_dir, settings.lease_ttl_s, settings.audit_grace_s)
    return begin_sweep(
        recording,
        gateway,
        options,
        trigger=trigger,
        user_id=user_id,
        on_progress=on_progress,
        sweep_id=sweep_id,
        row=asked.row,
    )
