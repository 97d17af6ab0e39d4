"""The demo's webhook receiver: a local HTTP endpoint that verifies each event's
``Stripe-Signature`` with the SDK (``stripe_api.adapter.verified_event``) and keeps what it
received, as an app listening for ``checkout.session.expired`` would."""

from __future__ import annotations

import http.server
import threading
from collections import Counter

from checkout_sweeper.stripe_api.adapter import verified_event


class WebhookReceiver:
    """Serve on a free local port; ``url`` is where the fake delivers, ``counts`` what came."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.counts: Counter[str] = Counter()  # event type (verified), or "refused"
        self._lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    event = verified_event(
                        payload.decode(), self.headers.get("Stripe-Signature", ""), receiver.secret
                    )
                    kind, status = str(event.get("type")), 200
                except ValueError:
                    kind, status = "refused", 400
                with receiver._lock:
                    receiver.counts[kind] += 1
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/webhooks/stripe"

    def __enter__(self) -> WebhookReceiver:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
