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
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.routing import Map, Rule
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from .forms import FormError, decode_form
from .state import LIST_FILTERS, STATUSES, FakeStripeState, StripeFault, render

_KEY = re.compile(r"^(sk|rk)_(test|live)_[A-Za-z0-9]+$")
_CREATED_OPS = ("gt", "gte", "lt", "lte")
_LIST_PARAMS = {
    "limit",
    "status",
    "created",
    "starting_after",
    "ending_before",
    "expand",
    "customer_details",
    *LIST_FILTERS,
}
_URL_MAP = Map(
    [
        Rule("/v1/checkout/sessions", methods=["GET"], endpoint="list"),
        Rule("/v1/checkout/sessions", methods=["POST"], endpoint="create"),
        Rule("/v1/checkout/sessions/<session_id>", methods=["GET"], endpoint="retrieve"),
        Rule("/v1/checkout/sessions/<session_id>/expire", methods=["POST"], endpoint="expire"),
        Rule("/_admin/stats", methods=["GET"], endpoint="admin_stats"),
        Rule("/_admin/expire_calls", methods=["GET"], endpoint="admin_expire_calls"),
        Rule("/_admin/faults", methods=["GET", "POST"], endpoint="admin_faults"),
        Rule("/_admin/seed", methods=["POST"], endpoint="admin_seed"),
        Rule("/_admin/reset", methods=["POST"], endpoint="admin_reset"),
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


def _integer(name: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeFault(
            400, f"Invalid integer: {value}", param=name, code="parameter_invalid_integer"
        ) from None


def _server_error() -> StripeFault:
    return StripeFault(
        500,
        "An unknown error occurred",
        type_="api_error",
        headers={"Stripe-Should-Retry": "true"},
    )


class Caller:
    """Who is asking: mode from the key, account from ``Stripe-Account``."""

    def __init__(self, key: str, account: str) -> None:
        self.key = key
        self.livemode = "_live_" in key[:8]
        self.account = account


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
    if not _KEY.match(key):  # real keys are letters and digits after the prefix
        masked = key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]  # as Stripe masks it
        raise StripeFault(401, f"Invalid API Key provided: {masked}")
    return Caller(key, request.headers.get("Stripe-Account", ""))


class FakeStripeApp:
    """The WSGI application; all state lives in a ``FakeStripeState``."""

    def __init__(self, state: FakeStripeState | None = None) -> None:
        self.state = state or FakeStripeState()

    # WSGI -------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        request = Request(environ)
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        adapter = _URL_MAP.bind_to_environ(request.environ)
        try:
            endpoint, args = adapter.match()
        except Exception:
            if request.path.startswith("/_admin"):
                return _json(404, {"error": "no such admin route"})
            return _fault_response(
                StripeFault(
                    404,
                    f"Unrecognized request URL ({request.method}: {request.path}). Please see "
                    "https://stripe.com/docs or we can help at https://support.stripe.com/.",
                )
            )
        if endpoint.startswith("admin_"):
            return getattr(self, endpoint)(request)
        return self.stripe_call(request, endpoint, args)

    def stripe_call(self, request: Request, endpoint: str, args: dict[str, str]) -> Response:
        state = self.state
        with state.lock:
            state.stats.requests[endpoint] += 1
            state.stats.in_flight += 1
            state.stats.max_in_flight = max(state.stats.max_in_flight, state.stats.in_flight)
        try:
            caller = authenticate(request)
            if not state.admit(caller.livemode, caller.account, time.monotonic()):
                raise StripeFault(
                    429,
                    "Request rate limit exceeded. You can learn more about rate limits here "
                    "https://stripe.com/docs/rate-limits.",
                    code="rate_limit",
                )
            self._delay()
            fail_rate = state.faults.fail_rate
            if endpoint == "expire":
                fail_rate = max(fail_rate, state.faults.expire_fail_rate)
            if self._chance(fail_rate):
                with state.lock:
                    state.stats.server_errors += 1
                raise _server_error()
            params = self._params(request)
            if request.method == "POST" and request.headers.get("Idempotency-Key"):
                response = self._idempotent(request, caller, endpoint, args, params)
            else:
                response = self._execute(caller, endpoint, args, params)
            if request.method == "POST" and self._chance(state.faults.lost_rate):
                with state.lock:
                    state.stats.lost_answers += 1
                raise _server_error()  # Stripe acted; the client never hears of it
            return response
        except StripeFault as fault:
            return _fault_response(fault)
        finally:
            with state.lock:
                state.stats.in_flight -= 1

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self.state.random.random() < rate

    def _delay(self) -> None:
        faults = self.state.faults
        if faults.latency_ms or faults.jitter_ms:
            extra = self.state.random.uniform(0, faults.jitter_ms) if faults.jitter_ms else 0.0
            time.sleep((faults.latency_ms + extra) / 1000.0)

    @staticmethod
    def _params(request: Request) -> dict[str, Any]:
        pairs: MultiDict = MultiDict(request.args)
        if request.method == "POST":
            pairs.update(request.form)
        try:
            return decode_form(pairs.items(multi=True))
        except FormError as err:
            raise StripeFault(400, f"Invalid parameter: {err.param}", param=err.param) from None

    def _idempotent(
        self,
        request: Request,
        caller: Caller,
        endpoint: str,
        args: dict[str, str],
        params: dict[str, Any],
    ) -> Response:
        """Replay the first answer for a key; refuse the key with other parameters."""
        key = request.headers["Idempotency-Key"]
        if len(key) > 255:
            raise StripeFault(
                400,
                "Idempotency-Key must be at most 255 characters long.",
                type_="idempotency_error",
            )
        fingerprint = json.dumps([request.method, request.path, params], sort_keys=True)
        slot = (caller.livemode, caller.account, key)
        state = self.state
        with state.lock:
            saved = state.idempotency.get(slot)
            if saved is None:
                state.idempotency[slot] = {"fingerprint": fingerprint, "pending": True}
        if saved is not None:
            if saved["fingerprint"] != fingerprint:
                raise StripeFault(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters "
                    f"they were first used with. Try using a key other than '{key}' if you "
                    "meant to execute a different request.",
                    type_="idempotency_error",
                )
            if saved.get("pending"):
                raise StripeFault(
                    409,
                    "There is currently another in-progress request using this Idempotent Key "
                    "(that probably means you submitted twice, and the other request is still "
                    "going through). Please retry your request after a short wait.",
                    code="idempotency_key_in_use",
                )
            return _json(
                saved["status"],
                saved["body"],
                {"Idempotent-Replayed": "true", "Idempotency-Key": key},
            )
        try:
            response = self._execute(caller, endpoint, args, params)
        except StripeFault as fault:
            response = _fault_response(fault)
        with state.lock:
            state.idempotency[slot] = {
                "fingerprint": fingerprint,
                "status": response.status_code,
                "body": json.loads(response.get_data()),
            }
        response.headers["Idempotency-Key"] = key
        return response

    def _execute(
        self, caller: Caller, endpoint: str, args: dict[str, str], params: dict[str, Any]
    ) -> Response:
        state = self.state
        if endpoint == "list":
            return self._list(caller, params)
        if endpoint == "create":
            self._reject_unknown(params, _CREATE_PARAMS)
            with state.lock:
                obj = render(state.create_session(caller.livemode, caller.account, params))
            return _json(200, obj)
        session_id = args["session_id"]
        if endpoint == "retrieve":
            self._reject_unknown(params, {"expand"})
            return _json(200, state.retrieve(caller.livemode, caller.account, session_id))
        self._reject_unknown(params, {"expand"})
        return _json(200, state.expire(caller.livemode, caller.account, session_id))

    @staticmethod
    def _reject_unknown(params: dict[str, Any], allowed: set[str]) -> None:
        unknown = [name for name in params if name not in allowed]
        if unknown:
            raise StripeFault(
                400,
                f"Received unknown parameter: {unknown[0]}",
                param=unknown[0],
                code="parameter_unknown",
            )

    def _list(self, caller: Caller, params: dict[str, Any]) -> Response:
        self._reject_unknown(params, _LIST_PARAMS)
        limit = _integer("limit", params.get("limit", 10))
        if not 1 <= limit <= 100:
            raise StripeFault(
                400,
                "This value must be greater than or equal to 1 and less than or equal to 100 "
                f"(it currently is '{limit}').",
                param="limit",
                code="parameter_invalid_integer",
            )
        filters: dict[str, Any] = {}
        status = params.get("status")
        if status is not None:
            if status not in STATUSES:
                raise StripeFault(
                    400,
                    f"Invalid status: must be one of {', '.join(STATUSES)}",
                    param="status",
                )
            filters["status"] = status
        for name in LIST_FILTERS:
            if name in params:
                filters[name] = params[name]
        created = self._created(params.get("created"))
        if params.get("starting_after") and params.get("ending_before"):
            raise StripeFault(
                400,
                "You may only specify one of these parameters: ending_before, starting_after.",
                param="ending_before",
            )
        data, has_more = self.state.list_sessions(
            caller.livemode,
            caller.account,
            limit=limit,
            filters=filters,
            created=created,
            starting_after=params.get("starting_after") or None,
            ending_before=params.get("ending_before") or None,
        )
        return _json(
            200,
            {"object": "list", "data": data, "has_more": has_more, "url": "/v1/checkout/sessions"},
        )

    @staticmethod
    def _created(raw: Any) -> dict[str, int]:
        if raw is None:
            return {}
        if isinstance(raw, dict):
            unknown = [op for op in raw if op not in _CREATED_OPS]
            if unknown:
                raise StripeFault(
                    400,
                    f"Received unknown parameter: created[{unknown[0]}]",
                    param=f"created[{unknown[0]}]",
                    code="parameter_unknown",
                )
            return {op: _integer(f"created[{op}]", value) for op, value in raw.items()}
        return {"eq": _integer("created", raw)}

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
            )
        except (ValueError, TypeError) as err:
            return _json(400, {"error": str(err)})
        return _json(200, self.state.snapshot())

    def admin_reset(self, request: Request) -> Response:
        body = request.get_json(silent=True) or {}
        if body.get("sessions", True):
            self.state.wipe()
        else:
            self.state.reset_counters()
        return _json(200, self.state.snapshot())


_CREATE_PARAMS = {
    "mode",
    "success_url",
    "cancel_url",
    "line_items",
    "metadata",
    "customer",
    "customer_email",
    "client_reference_id",
    "payment_method_types",
    "expires_at",
    "ui_mode",
    "currency",
    "expand",
    "allow_promotion_codes",
    "subscription_data",
    "payment_intent_data",
}


class _QuietHandler(WSGIRequestHandler):
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
        self._server: BaseWSGIServer = make_server(
            host, port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self._server.daemon_threads = True
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
