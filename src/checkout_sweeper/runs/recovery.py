"""Journal import: outcomes that a dead process, or a database out of reach, left on disk.

Run at the start of every command and worker. A journal whose run still holds its lease belongs
to a live sweep and is left alone; any other is written to the database (rows that are already
there are skipped), its run is closed (``interrupted`` when the journal has no end; a run the
job queue carries waits for its next worker instead), and the file is deleted. A journal that
cannot be imported now stays for the next try.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import cast

from checkout_sweeper.runs.journal import (
    Entry,
    OutcomeEntry,
    journal_files,
    journal_path,
    read_entries,
    run_id_of,
)
from checkout_sweeper.runs.rows import close_run, insert_outcomes, live_run_ids, outcome_entry
from checkout_sweeper.runs.write_ahead import SENT
from checkout_sweeper.store.database import Database
from checkout_sweeper.store.models import SweepRun, utcnow
from checkout_sweeper.vocabulary import Outcome, RunStatus

IN_FLIGHT = "sent when the process stopped, its answer lost: the next sweep settles it"
log = logging.getLogger("checkout_sweeper.audit")
DIED = "the process stopped mid-sweep; its outcomes were imported from its journal"


def import_journals(db: Database, folder: Path) -> int:
    """Import every finished or abandoned journal in ``folder``; return how many."""
    paths = journal_files(folder)
    if not paths:
        return 0
    live = live_run_ids(db)
    imported = 0
    for path in paths:
        if run_id_of(path) in live:
            continue
        try:
            _import(db, path)
        except Exception as err:  # left on disk for the next start
            log.warning("journal %s could not be imported yet: %s", path, err)
            continue
        imported += 1
        path.unlink(missing_ok=True)
    return imported


def import_journal_of(db: Database, folder: Path, run_id: str) -> None:
    """Before a run is taken up again (its worker died on this host): what the dead attempt
    journaled reaches the database first, so the new attempt's journal starts empty. The run
    is not closed on the way: it is running again, and whoever reads it meanwhile must not see
    it ended ``interrupted``."""
    path = journal_path(folder, run_id)
    if path.exists():
        _import(db, path, close=False)
        path.unlink(missing_ok=True)


def _import(db: Database, path: Path, *, close: bool = True) -> None:
    run_id = run_id_of(path)
    entries = read_entries(path)
    run = next((e for e in entries if e.get("kind") == "run"), None)
    finish = next((e for e in reversed(entries) if e.get("kind") == "finish"), None)
    # a line of kind "outcome" is one ``outcome_entry`` wrote
    outcomes = [cast(OutcomeEntry, e) for e in entries if e.get("kind") == "outcome"]
    outcomes += _unanswered(entries, {entry["session_id"] for entry in outcomes})
    with db.session() as session:
        row = session.get(SweepRun, run_id)
        if row is None and run is not None:
            session.add(SweepRun(**_run_columns(run)))
            session.flush()
        insert_outcomes(session, run_id, outcomes)
        close_run(session, run_id, _closing_values(finish, row) if close else {})
    log.info(
        "imported %d outcomes of sweep %s from %s",
        len(outcomes),
        run_id,
        path,
        extra={"fields": {"sweep_id": run_id, "outcomes": len(outcomes)}},
    )


def _unanswered(entries: list[Entry], answered: set[str]) -> list[OutcomeEntry]:
    """The expires that were sent and never answered (the process died with them in
    flight): ``unknown``, for the next sweep of the account to settle from Stripe."""
    sent = {str(e["session_id"]): e.get("at") for e in entries if e.get("kind") == SENT}
    return [
        outcome_entry(session_id, Outcome.UNKNOWN, IN_FLIGHT, 1, at=at)  # when it was sent
        for session_id, at in sorted(sent.items())
        if session_id not in answered
    ]


def _run_columns(run: Entry) -> Entry:
    return {k: v for k, v in run.items() if k != "kind"}


def _closing_values(finish: Entry | None, row: SweepRun | None) -> Entry:
    if finish is not None:
        values = {k: v for k, v in finish.items() if k != "kind"}
        finished = values.get("finished_at")
        values["finished_at"] = datetime.fromisoformat(str(finished)) if finished else utcnow()
        return values
    if row is not None and row.status not in (RunStatus.RUNNING, RunStatus.INTERRUPTED):
        return {}
    if row is not None and row.queued_at is not None:  # the queue hands it to the next worker
        return {"status": RunStatus.QUEUED}
    return {"status": RunStatus.INTERRUPTED, "error": DIED, "finished_at": utcnow()}
