"""Sweeps that outlive their request (``Prefer: respond-async``), run in this process.

Each runs in a thread of its own under the same lease, heartbeat, journal and audit as a
synchronous sweep. ``stop_all`` is called when the server stops (gunicorn's ``worker_exit``):
dispatching stops, in-flight expires finish and are recorded, and each run ends
``interrupted``; calling the endpoint again finishes the job (what was expired stays expired).
A thread's failure is logged; its run row says how it ended.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from checkout_sweeper.errors import SweepAborted
from checkout_sweeper.runs.fleet.local import FleetSweep
from checkout_sweeper.runs.recorded_sweep import RecordedSweep

log = logging.getLogger("checkout_sweeper.background")
_running: dict[str, tuple[RecordedSweep, threading.Thread]] = {}
_fleets: dict[str, tuple[FleetSweep, threading.Thread]] = {}
_lock = threading.Lock()


def start(sweep: RecordedSweep) -> None:
    thread = threading.Thread(
        target=_run_sweep, args=(sweep,), name=f"sweep-{sweep.sweep_id[:8]}", daemon=True
    )
    with _lock:
        _running[sweep.sweep_id] = (sweep, thread)
    thread.start()


def _run_sweep(sweep: RecordedSweep) -> None:
    try:
        result = sweep.run()
        log.info(
            "background sweep %s ended",
            sweep.sweep_id,
            extra={"fields": {"sweep_id": sweep.sweep_id, "succeeded": result.succeeded}},
        )
    except SweepAborted as stopped:
        log.warning("background sweep %s stopped: %s", sweep.sweep_id, stopped)
    except Exception:
        log.exception("background sweep %s failed", sweep.sweep_id)
    finally:
        with _lock:
            _running.pop(sweep.sweep_id, None)


def start_fleet(fleet: FleetSweep, once_ran: Callable[[], None]) -> None:
    """A fleet sweep in a thread of its own (its accounts in its own pool); ``once_ran`` when
    at least one account's sweep ran (the caller's quota is spent there)."""
    fleet.begin()

    def run() -> None:
        try:
            result = fleet.run()
            if any(outcome.result is not None for outcome in result.accounts):
                once_ran()
            log.info("background fleet sweep %s ended: %s", fleet.sweep_id, result.status)
        except Exception:
            log.exception("background fleet sweep %s failed", fleet.sweep_id)
        finally:
            with _lock:
                _fleets.pop(fleet.sweep_id, None)

    thread = threading.Thread(target=run, name=f"fleet-{fleet.sweep_id[:8]}", daemon=True)
    with _lock:
        _fleets[fleet.sweep_id] = (fleet, thread)
    thread.start()


def running() -> list[str]:
    with _lock:
        return list(_running)


def stop_all(reason: str = "the server is stopping", timeout_s: float = 60.0) -> None:
    """Interrupt every background sweep of this process and wait for them to record."""
    with _lock:
        sweeps = list(_running.values())
        fleets = list(_fleets.values())
    for sweep, _ in sweeps:
        sweep.interrupt(reason)
    for fleet, _ in fleets:
        fleet.interrupt(reason)
    for _, thread in [*sweeps, *fleets]:
        thread.join(timeout_s)
