"""A recorded sweep: lease the account, run the engine, keep the audit trail, release.

The endpoint and the ``sweep`` command both come through here, so the two doors share the same
guarantees: one sweep per account at a time, every outcome written down, a run row that always
ends as succeeded, incomplete, failed or interrupted.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

from . import defaults
from .audit import RunRecorder
from .config import Settings
from .db import Database
from .errors import LiveModeRefused
from .gateway import Gateway
from .locks import AccountLease
from .stripe_api import StripeGateway
from .sweep import Sweeper, SweepOptions, SweepProgress, SweepResult

__all__ = ["configured_sweep", "run_recorded_sweep"]


class _Heartbeat(threading.Thread):
    """Renews the account lease and flushes the audit buffer while the sweep runs."""

    def __init__(self, beat: Callable[[], None], every_s: float) -> None:
        super().__init__(name="sweep-heartbeat", daemon=True)
        self._beat = beat
        self._every_s = every_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._every_s):
            try:
                self._beat()
            except Exception:  # a missed beat is retried at the next one
                continue

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=self._every_s + 1)


def run_recorded_sweep(
    db: Database,
    gateway: Gateway,
    options: SweepOptions,
    *,
    trigger: str,
    user_id: int | None = None,
    on_progress: Callable[[SweepProgress], None] | None = None,
    lease_ttl_s: float = defaults.LEASE_TTL_S,
) -> SweepResult:
    """Run one sweep under the account lease; raises ``SweepInProgress`` or ``SweepAborted``.

    The lease is renewed six times per ``lease_ttl_s``; a process that dies lets it lapse.
    """
    run_id = uuid.uuid4().hex
    lease = AccountLease(db, gateway.account, run_id, ttl_s=lease_ttl_s)
    lease.acquire()
    try:
        recorder = RunRecorder(
            db,
            run_id,
            trigger=trigger,
            account=gateway.account,
            livemode=gateway.livemode,
            dry_run=options.dry_run,
            user_id=user_id,
        )

        def progress(snapshot: SweepProgress) -> None:
            recorder.on_progress(snapshot)
            if on_progress is not None:
                on_progress(snapshot)

        sweeper = Sweeper(
            gateway, options, sweep_id=run_id, on_outcome=recorder.on_outcome, on_progress=progress
        )
        return _run_recorded(sweeper, lease, recorder, lease_ttl_s / 6)
    finally:
        lease.release()


def _run_recorded(
    sweeper: Sweeper, lease: AccountLease, recorder: RunRecorder, beat_every_s: float
) -> SweepResult:
    """The sweep with its heartbeat; the run row ends succeeded, incomplete, failed or
    interrupted whatever happens."""

    def beat() -> None:
        if not lease.renew():
            # The lease lapsed (the database was out of reach for longer than its TTL) and
            # another sweep may own the account now: two sweeps must never run at once.
            sweeper.abort("the account lease was lost; stopped so two sweeps never overlap")
        recorder.flush()

    heartbeat = _Heartbeat(beat, beat_every_s)
    heartbeat.start()
    try:
        result = sweeper.run()
    except Exception as problem:
        recorder.finish(None, error=str(problem))
        raise
    except BaseException as stop:  # KeyboardInterrupt, SystemExit from a signal
        recorder.interrupted(type(stop).__name__)
        raise
    finally:
        heartbeat.stop()
    recorder.finish(result)
    return result


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
    """A recorded sweep of the account in ``settings``, paced as configured.

    Raises ``LiveModeRefused``, ``SweepInProgress`` or ``SweepAborted``.
    """
    key = settings.stripe_api_key or ""
    gateway = StripeGateway(
        key, api_base=settings.stripe_api_base, stripe_account=settings.stripe_account
    )
    if gateway.livemode and not settings.allow_live_mode:
        raise LiveModeRefused()
    options = SweepOptions(
        max_rps=settings.max_rps,
        concurrency=settings.concurrency,
        dry_run=dry_run,
        created_before=created_before,
    )
    return run_recorded_sweep(
        db,
        gateway,
        options,
        trigger=trigger,
        user_id=user_id,
        on_progress=on_progress,
        lease_ttl_s=settings.lease_ttl_s,
    )
