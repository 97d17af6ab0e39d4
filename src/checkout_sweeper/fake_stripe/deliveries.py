"""Delivery of ``checkout.session.expired`` events to the webhook endpoints listening for them,
signed as Stripe signs them (``Stripe-Signature: t=<time>,v1=<HMAC-SHA256 of "<t>.<payload>"
with the endpoint's secret>``, which ``stripe.Webhook.construct_event`` verifies) and retried
with backoff when the receiver does not answer 2xx. One background thread sends them, so an
expire never waits on a receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import urllib.request
from dataclasses import dataclass

from checkout_sweeper.fake_stripe.ledger import new_id
from checkout_sweeper.fake_stripe.objects import StripeObject

EVENT = "checkout.session.expired"
ATTEMPTS = 4  # Stripe retries for days; the fake, a few times within seconds
FIRST_WAIT_S = 0.2  # doubled after each failed attempt
TIMEOUT_S = 5.0


def signature(secret: str, payload: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header of ``payload`` sent at ``timestamp``."""
    signed = hmac.new(secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={signed.hexdigest()}"


def listens(endpoint: StripeObject) -> bool:
    events = endpoint.get("enabled_events") or ()
    return endpoint.get("status") == "enabled" and (EVENT in events or "*" in events)


def expired_event(session: StripeObject, livemode: bool) -> str:
    """The event's JSON, as Stripe sends it."""
    event = {
        "id": new_id("evt_")[:28],
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "data": {"object": session},
        "livemode": livemode,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": EVENT,
    }
    return json.dumps(event)


@dataclass
class DeliveryStats:
    delivered: int = 0
    failed_attempts: int = 0
    given_up: int = 0


class Deliveries:
    """A queue of (endpoint, payload) and the thread that sends them."""

    def __init__(self) -> None:
        self.stats = DeliveryStats()
        self._queue: queue.Queue[tuple[StripeObject, str, int]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = 0  # deliveries neither made nor given up (retries waiting included)

    def send(self, endpoints: list[StripeObject], session: StripeObject, livemode: bool) -> None:
        """Queue the session's expired event for every endpoint that listens for it."""
        targets = [endpoint for endpoint in endpoints if listens(endpoint)]
        if not targets:
            return
        payload = expired_event(session, livemode)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="webhooks")
                self._thread.start()
            self._pending += len(targets)
        for endpoint in targets:
            self._queue.put((endpoint, payload, 1))

    def idle(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued delivery was sent or given up (tests, the demo)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._pending == 0:
                    return True
            time.sleep(0.02)
        return False

    def _run(self) -> None:
        while True:
            endpoint, payload, attempt = self._queue.get()
            if self._attempt(endpoint, payload, attempt):
                with self._lock:
                    self._pending -= 1

    def _attempt(self, endpoint: StripeObject, payload: str, attempt: int) -> bool:
        """One try; True when the delivery is settled (made, or given up)."""
        timestamp = int(time.time())
        request = urllib.request.Request(
            str(endpoint["url"]),
            data=payload.encode(),
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature(str(endpoint["secret"]), payload, timestamp),
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:
                ok = 200 <= answer.status < 300
        except (OSError, ValueError):
            ok = False
        if ok:
            self.stats.delivered += 1
            return True
        self.stats.failed_attempts += 1
        if attempt >= ATTEMPTS:
            self.stats.given_up += 1
            return True
        threading.Timer(
            FIRST_WAIT_S * 2 ** (attempt - 1),
            self._queue.put,
            args=((endpoint, payload, attempt + 1),),
        ).start()
        return False
