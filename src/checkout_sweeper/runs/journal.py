"""The local journal: every outcome of a sweep, one JSON line, on disk before the database.

A line is written and flushed the moment an outcome is known, so a process killed a moment
later loses nothing the OS already has; the database gets the same outcomes in batches. A
journal whose run is over and fully in the database is deleted; one that is left (the process
died, or the database stayed out of reach) is imported by the next command or worker.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypedDict

log = logging.getLogger("checkout_sweeper.audit")
SUFFIX = ".jsonl"
Entry = dict[str, object]  # a line as read back: ``kind`` says which it is


def private_folder(folder: Path) -> None:
    """``folder``, and any folder above it that is missing (the data folder, whatever the
    database), made this user's alone: 0700."""
    missing = [path for path in (folder, *folder.parents) if not path.exists()]
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)


class OutcomeEntry(TypedDict):
    """One session's outcome: its journal line, and the values of its row."""

    kind: Literal["outcome"]
    session_id: str
    outcome: str
    error: str | None
    attempts: int
    at: float  # epoch seconds


class Journal:
    """Append-only JSON lines for one run, in ``folder/<run_id>.jsonl``."""

    def __init__(self, folder: Path, run_id: str) -> None:
        private_folder(folder)
        self.path = journal_path(folder, run_id)
        self._lock = threading.Lock()
        # outcomes name the account and its sessions: this user's alone
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self._file = os.fdopen(descriptor, "a", encoding="utf-8")

    def append(self, entry: Mapping[str, object]) -> None:
        line = json.dumps(dict(entry), default=str) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def read_entries(path: Path) -> list[Entry]:
    """Every whole line of a journal; a last line torn by a crash is skipped (and logged)."""
    entries: list[Entry] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("journal %s: line %d is not whole; skipped", path, number)
    return entries


def journal_files(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []


def journal_path(folder: Path, run_id: str) -> Path:
    return folder / f"{run_id}{SUFFIX}"


def run_id_of(path: Path) -> str:
    return path.name.removesuffix(SUFFIX)
