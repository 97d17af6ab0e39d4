"""Logging set up once, before the app: one JSON object per line on stderr.

Structured lines are what log shippers and ``jq`` read; secrets never reach them because the
views log only ids and counts.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import TextIO


def iso_utc(created: float) -> str:
    """The one timestamp format of every log line: ISO 8601, UTC, milliseconds, ``Z``."""
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        + f".{int(created % 1 * 1000):03d}Z"
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, then the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": iso_utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class AccessFormatter(JsonFormatter):
    """gunicorn's access lines with the app's keys (gunicorn passes its atoms as the args)."""

    def format(self, record: logging.LogRecord) -> str:
        atoms = record.args if isinstance(record.args, Mapping) else {}

        def atom(name: str) -> str:
            return str(atoms.get(name, "-"))

        status = atom("s")
        micros = atom("D")
        record.fields = {
            "ip": atom("h"),
            "method": atom("m"),
            "path": atom("U"),
            "status": int(status) if status.isdigit() else status,
            "bytes": atom("B"),
            "duration_ms": int(micros) // 1000 if micros.isdigit() else None,
            "user_agent": atom("a"),
        }
        record.msg, record.args = f"{atom('m')} {atom('U')} {status}", None
        return super().format(record)


def gunicorn_log_config(level: str) -> dict[str, object]:
    """``logconfig_dict`` for gunicorn: its error and access logs as the app's JSON lines."""
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "checkout_sweeper.logs.JsonFormatter"},
            "access": {"()": "checkout_sweeper.logs.AccessFormatter"},
        },
        "handlers": {
            "error": {**handler, "formatter": "json"},
            "access": {**handler, "formatter": "access", "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["error"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["access"], "propagate": False},
        },
        "root": {"level": "WARNING", "handlers": []},
    }


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is now, so redirections made later are honoured."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


class PlainFormatter(logging.Formatter):
    """``warning: message``: one line a person reads, for commands on a terminal or in CI."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def setup_logging(level: str = "INFO", *, plain: bool = False) -> None:
    """Configures the ``checkout_sweeper`` logger tree: one handler on stderr, JSON lines for a
    server (a log collector reads them) or plain lines for a command (a person does); called
    again, it changes only the level and the format."""
    logger = logging.getLogger("checkout_sweeper")
    formatter = PlainFormatter() if plain else JsonFormatter()
    if getattr(logger, "_configured", False):
        logger.setLevel(level)  # the handler stays one; the level is the latest asked for
        for handler in logger.handlers:
            handler.setFormatter(formatter)
        return
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    logger._configured = True  # type: ignore[attr-defined]  # a mark on the logger itself: set once


def adopt_library_logs(name: str, level: str = "WARNING") -> None:
    """A library's warnings (``dramatiq`` in a worker) through the same handler and format as
    ours, instead of Python's bare fallback lines."""
    ours = logging.getLogger("checkout_sweeper")
    library = logging.getLogger(name)
    library.handlers = list(ours.handlers)
    library.setLevel(level)
    library.propagate = False
