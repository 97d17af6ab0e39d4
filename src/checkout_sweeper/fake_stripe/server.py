"""The fake's HTTP face: Stripe's Checkout Sessions routes plus an ``/_admin`` surface.

A plain WSGI application on werkzeug (no Flask) keeps each request cheap, so the fake is never
what limits a benchmark. ``FakeStripeServer`` runs it threaded on a free port for tests, and the
``fake-stripe`` command runs the same server in the foreground.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, ThreadedWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from checkout_sweeper.fake_stripe.faults import StripeFault
from checkout_sweeper.fake_stripe.forms import FormError, decode_form
from checkout_sweeper.fake_stripe.idempotency import Answer
from checkout_sweeper.fake_stripe.objects import StripeObject
from checkout_sweeper.fake_stripe.operations import Caller, perform
from checkout_sweeper.fake_stripe.state import FakeStripeState
from checkout_sweeper.fake_stripe.webhooks import new_endpoint

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

_KEY = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9_]+$")
_URL_MAP = Map(
    [
        Rule("/v1/account", methods=["GET"], endpoint="account"),
        Rule("/v1/accounts", methods=["GET"], endpoint="accounts"),
        Rule("/v1/checkout/sessions", methods=["GET"], endpoint="list"),
        Rule("/v1/webhook_endpoints", methods=["GET"], endpoint="webhook_endpoints"),
        Rule("/v1/checkout/sessions", methods=["POST"], endpoint="create"),
        Rule("/v1/checkout/sessions/<session_id>", methods=["GET"], endpoint="retrieve"),
        Rule("/v1/checkout/sessions/<session_id>/expire", methods=["POST"], endpoint="expire"),
        Rule("/_admin/stats", methods=["GET"], endpoint="admin_stats"),
        Rule("/_admin/expire_calls", methods=["GET"], endpoint="admin_expire_calls"),
        Rule("/_admin/faults", methods=["GET", "POST"], endpoint="admin_faults"),
        Rule("/_admin/seed", methods=["POST"], endpoint="admin_seed"),
        Rule("/_admin/reset", methods=["POST"], endpoint="admin_reset"),
        Rule("/_admin/accounts", methods=["POST"], endpoint="admin_accounts"),
        Rule("/_admin/settings", methods=["GET", "POST"], endpoint="admin_settings"),
        Rule("/_admin/webhook_endpoints", methods=["POST"], endpoint="admin_webhook_endpoints"),
    ]
)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(payload), status=status, mimetype="application/json")
    response.headers["Request-Id"] = "req_" + secrets.token_hex(7)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _fault_response(fault: StripeFault) -> Response:
    return _json(fault.status, {"error": fault.body}, fault.headers)


def authenticate(request: Request) -> Caller:
    header = request.headers.get("Authorization", "")
    key = ""
    if header.startswith("Bearer "):
        key = header[7:].strip()
    elif request.authorization and request.authorization.type == "basic":
        key = request.authorization.username or ""
    if not key:
        raise StripeFault(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details.",
        )
    # Letters, digits and underscores after the prefix; a key with ``revoked`` in it stands for
    # one that was rolled or deleted.
    if not _KEY.match(key) or "revoked" in key:
        masked = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]  # as Stripe masks it
        raise StripeFault(401, f"Invalid API Key provided: {masked}")
    return Caller(key, request.headers.get("Stripe-Account", ""))


def _params(request: Request) -> StripeObject:
    pairs: MultiDict[str, str] = MultiDict(request.args)
    if request.method == "POST":
        pairs.update(request.form)
    try:
        return decode_form(pairs.items(multi=True))
    except FormError as err:
        raise StripeFault(400, f"Invalid parameter: {err.param}", param=err.param) from None


def _not_found(request: Request) -> Response:
    if request.path.startswith("/_admin"):
        return _json(404, {"error": "no such admin route"})
    return _fault_response(
        StripeFault(
            404,
            f"Unrecognized request URL ({request.method}: {request.path}). Please see "
            "https://stripe.com/docs or we can help at https://support.stripe.com/.",
        )
    )


class FakeStripeApp:
    """The WSGI application: HTTP in and out; all state lives in a ``FakeStripeState``."""

    def __init__(self, state: FakeStripeState | None = None) -> None:
        self.state = state or FakeStripeState()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.dispatch(Request(environ))(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        try:
            endpoint, args = _URL_MAP.bind_to_environ(request.environ).match()
        except HTTPException:
            return _not_found(request)
        if endpoint.startswith("admin_"):
            admin: Callable[[Request], Response] = getattr(self, endpoint)
            return admin(request)
        with self.state.gate.tracking(endpoint):
            try:
                return self._stripe_call(request, endpoint, args.get("session_id"))
            except StripeFault as fault:
                return _fault_response(fault)

    def _stripe_call(self, request: Request, operation: str, session_id: str | None) -> Response:
        """Auth, the rate limit and injected faults, then the operation (idempotent if keyed)."""
        state = self.state
        caller = authenticate(request)
        state.platform.check(caller.key, caller.account)
        state.gate.admit(caller.livemode, caller.account, operation, caller.key)
        state.gate.before_work(operation)
        params = _params(request)
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None

        def execute() -> Answer:
            if key:
                state.gate.midway()
            return 200, perform(state, operation, caller, params, session_id)

        if key:
            fingerprint = json.dumps([request.method, request.path, params], sort_keys=True)
            slot = (caller.livemode, caller.account, key)
            (status, body), replayed = state.idempotent(slot, fingerprint, execute)
            headers = {
                "Idempotency-Key": key,
                **({"Idempotent-Replayed": "true"} if replayed else {}),
            }
        else:
            (status, body), headers = execute(), {}
        if not key or not replayed:
            state.gate.after_work(request.method)
        return _json(status, body, headers)

    # admin ------------------------------------------------------------------------------------
    def admin_stats(self, request: Request) -> Response:
        return _json(200, self.state.snapshot())

    def admin_expire_calls(self, request: Request) -> Response:
        return _json(200, self.state.expire_calls())

    def admin_faults(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                self.state.faults.update(request.get_json(force=True) or {})
            except (ValueError, TypeError) as err:
                return _json(400, {"error": str(err)})
        return _json(200, self.state.snapshot()["faults"])

    def admin_seed(self, request: Request) -> Response:
        body = request.get_json(force=True) or {}
        try:
            self.state.seed(
                open_=int(body.get("open", 0)),
                complete=int(body.get("complete", 0)),
                expired=int(body.get("expired", 0)),
                livemode=bool(body.get("livemode", False)),
                account=str(body.get("account", "")),
                varied=bool(body.get("varied", False)),
                recovery=int(body.get("recovery", 0)),
            )
        except (ValueError, TypeError) as err:
            return _json(400, {"error": str(err)})
        return _json(200, self.state.snapshot())

    def admin_accounts(self, request: Request) -> Response:
        """Connect accounts to the platform, each seeded with its own sessions; ``refusing``
        names accounts whose access is revoked (403 on ``Stripe-Account``)."""
        body = request.get_json(force=True) or {}
        try:
            made = self.state.connect_accounts(
                int(body.get("count", 0)),
                open_=int(body.get("open", 0)),
                varied=bool(body.get("varied", False)),
            )
            self.state.platform.refusing.update(str(a) for a in body.get("refusing", []))
        except (ValueError, TypeError) as err:
            return _json(400, {"error": str(err)})
        return _json(200, {"created": made, "connected": self.state.platform.connected})

    def admin_settings(self, request: Request) -> Response:
        """``lifetime_s`` of new sessions and ``restricted_lacks`` of restricted keys."""
        try:
            body = request.get_json(force=True) or {} if request.method == "POST" else {}
            return _json(200, self.state.policy.update(body))
        except (ValueError, TypeError) as err:
            return _json(400, {"error": str(err)})

    def admin_webhook_endpoints(self, request: Request) -> Response:
        """Add a webhook endpoint: ``url``, ``enabled_events``, ``status``, and the
        ``account`` and ``livemode`` it belongs to; answers it with its ``secret``."""
        body = request.get_json(force=True) or {}
        try:
            endpoint = new_endpoint(bool(body.get("livemode", False)), body)
        except (ValueError, TypeError, AttributeError) as err:
            return _json(400, {"error": str(err)})
        slot = (endpoint["livemode"], str(body.get("account", "")))
        with self.state.lock:
            self.state.webhook_endpoints.setdefault(slot, []).append(endpoint)
        return _json(200, endpoint)

    def admin_reset(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        if body.get("sessions", True):
            self.state.wipe()
        else:
            self.state.reset_counters()
        return _json(200, self.state.snapshot())


class QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request: at hundreds of requests a second it is only noise."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


class FakeStripeServer:
    """A threaded fake on 127.0.0.1; ``start()`` in tests, ``serve_forever()`` from the CLI."""

    def __init__(
        self, state: FakeStripeState | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.app = FakeStripeApp(state)
        self.state = self.app.state
        server = make_server(
            host, port, self.app, threaded=True, request_handler=QuietRequestHandler
        )
        assert isinstance(server, ThreadedWSGIServer)  # what threaded=True makes
        server.daemon_threads = True
        self._server: BaseWSGIServer = server
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.port}"

    def start(self) -> FakeStripeServer:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeStripeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
