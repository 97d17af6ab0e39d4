"""What the app factory builds once and views reach through ``current_app``."""

from __future__ import annotations

from dataclasses import dataclass

from dramatiq import Broker
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
    broker: Broker  # the job queue (SWEEPER_QUEUE_URL), or the in-process one


def app_state() -> AppState:
    state: AppState = current_app.extensions[EXTENSION_KEY]
    return state
