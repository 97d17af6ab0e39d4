"""What the app factory builds once and views reach through ``current_app``."""

from __future__ import annotations

from dataclasses import dataclass

from dramatiq.brokers.redis import RedisBroker
from flask import current_app
from flask_limiter import Limiter

from checkout_sweeper.settings import Settings
from checkout_sweeper.store.database import Database

EXTENSION_KEY = "checkout_sweeper"


@dataclass
class AppState:
    settings: Settings
    db: Database
    limiter: Limiter
    broker: RedisBroker | None = None  # the job queue, when SWEEPER_QUEUE_URL is set


def app_state() -> AppState:
    state: AppState = current_app.extensions[EXTENSION_KEY]
    return state
