"""The one place that talks to the ``stripe`` SDK.

It implements ``engine.gateway.Gateway`` and turns SDK exceptions, at this one boundary, into the
``StripeProblem`` branch of ``errors``: a session that was no longer open, a cursor that went
stale, an error worth retrying, an error that ends the sweep. Nothing else in the project
imports ``stripe``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import requests
import stripe
from requests.adapters import HTTPAdapter

from checkout_sweeper.api_keys import account_fingerprint, is_live_key
from checkout_sweeper.engine.gateway import NO_FILTERS, ListFilters, SessionPage
from checkout_sweeper.errors import (
    FatalStripeError,
    RetryableError,
    SessionNotOpen,
    SessionRejected,
    StaleCursor,
    StripeProblem,
)
from checkout_sweeper.metrics import STRIPE_REQUESTS, result_class
from checkout_sweeper.settings import STRIPE_TIMEOUT_S
from checkout_sweeper.vocabulary import JsonObject

log = logging.getLogger("checkout_sweeper.stripe")
_NOT_OPEN_STATUS = re.compile(r"status of `(\w+)`")
_ERRNO = re.compile(r"\[Errno -?\d+\][^'\")\]]*")
CONNECT_TIMEOUT_S = 2.0  # Stripe answers a connection in well under a second
_NO_ACCESS = "does not have access to account"  # Stripe's 403 for revoked Connect access
_WARNED: set[str] = set()  # keys whose account could not be read, said once per process
_WARNED_LOCK = threading.Lock()
# Kept-alive connections to Stripe, shared by every thread of a gateway: as many as the largest
# pool SWEEPER_CONCURRENCY allows, opened only when that many requests are in flight.
CONNECTIONS = 256


def _connection_pool() -> requests.Session:
    """One session for every thread. Left to itself, the SDK's ``RequestsClient`` keeps a
    session per thread: a pool whose threads come and go would open a new connection (a TLS
    handshake) for each new thread and drop it when the thread ends."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=CONNECTIONS)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def _retry_after(headers: dict[str, str] | None) -> float | None:
    try:
        return float((headers or {}).get("retry-after", ""))
    except ValueError:
        return None


def _network_cause(err: BaseException) -> str:
    """The short reason under an SDK connection error (refused, timed out, no such host)."""
    text = str(err.__cause__ or err)
    found = _ERRNO.search(text)
    if found:
        return found.group(0).strip()
    if "timed out" in text.lower():
        return "no answer in time (timed out)"
    return type(err.__cause__ or err).__name__


def _translate(err: stripe.StripeError, where: str = "api.stripe.com") -> StripeProblem:
    if isinstance(err, stripe.APIConnectionError):
        return RetryableError(f"could not reach Stripe at {where}: {_network_cause(err)}")
    status = err.http_status or 0
    headers = err.headers or {}
    should_retry = headers.get("stripe-should-retry")
    summary = f"Stripe {status or 'connection'} error: {err.user_message or type(err).__name__}"
    if headers.get("idempotent-replayed") == "true" and status >= 500:
        # Stripe saved this answer for the idempotency key (the request had started) and will
        # give it back to every retry with that key: the next sweep tries with a new key.
        return SessionRejected(f"{summary} (replayed for this idempotency key)", status)
    if should_retry == "false" and status >= 409:
        return SessionRejected(summary, status)  # Stripe says a retry cannot help this call
    if isinstance(err, stripe.RateLimitError):
        # The SDK leaves ``code`` unset on its RateLimitError; the error object carries it.
        code = err.error.code if err.error else err.code
        if code == "lock_timeout":  # another request holds the object: not the rate
            return RetryableError(summary, lock_contention=True)
        return RetryableError(summary, rate_limited=True, retry_after_s=_retry_after(err.headers))
    if should_retry == "true" or status >= 500 or status == 409:
        return RetryableError(summary, retry_after_s=_retry_after(err.headers))
    if isinstance(err, stripe.AuthenticationError | stripe.PermissionError):
        return FatalStripeError(summary)
    return SessionRejected(summary, status)


def _session_path(session_id: str, action: str = "") -> str:
    return f"/v1/checkout/sessions/{quote(session_id, safe='')}{action}"


@contextmanager
def _metered(operation: str) -> Iterator[None]:
    """Count one Stripe request by operation and result class."""
    try:
        yield
    except stripe.StripeError as err:
        limited = isinstance(err, stripe.RateLimitError)
        status = None if isinstance(err, stripe.APIConnectionError) else err.http_status
        STRIPE_REQUESTS.labels(operation, result_class(status, limited)).inc()
        raise
    STRIPE_REQUESTS.labels(operation, "ok").inc()


def _warn_once(api_key: str, status: int | None, *, connected: bool) -> None:
    """Say once per key and process that the lease is not keyed on the account read."""
    key_alone = account_fingerprint(api_key, None)
    with _WARNED_LOCK:
        first = key_alone not in _WARNED
        _WARNED.add(key_alone)
    if first:
        log.warning(
            "this key may not read its Stripe account (%s: a restricted key without the "
            "Account read permission); the one-sweep lease is keyed on %s instead",
            status,
            "each Stripe-Account id" if connected else "the key",
        )


def verified_event(payload: str, signature: str, secret: str) -> JsonObject:
    """A webhook event whose ``Stripe-Signature`` the SDK verified with the endpoint's secret;
    ``ValueError`` when it does not verify (or is not an event)."""
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as err:
        raise ValueError(f"signature does not verify: {err.user_message or err}") from None
    verified: JsonObject = event.to_dict()
    return verified


class StripeGateway:
    """Checkout Session calls for one API key (and optional connected account)."""

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        stripe_account: str | None = None,
        timeout_s: float = STRIPE_TIMEOUT_S.default,
    ) -> None:
        self.where = f"STRIPE_API_BASE={api_base}" if api_base else "api.stripe.com"
        self.stripe_account = stripe_account
        self._settings = (api_key, api_base, timeout_s)
        self.livemode = is_live_key(api_key)
        self.key_fingerprint = account_fingerprint(api_key, stripe_account)
        self.account = self.key_fingerprint  # until ``identify`` reads the account
        self._client = stripe.StripeClient(
            api_key,
            stripe_account=stripe_account,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=0,  # the engine retries, with its own pacing and backoff
            http_client=stripe.RequestsClient(
                timeout=(min(CONNECT_TIMEOUT_S, timeout_s), timeout_s),
                session=_connection_pool(),
            ),
        )

    def identify(self) -> str:
        """Key the lease on the Stripe account itself (``test:acct_...``), read once, so that
        every key of one account shares one lease. A key that may not read the account (a
        restricted key without that permission: 403) keys it on the ``Stripe-Account`` id, for
        a connected account, or else on the key's fingerprint; the first such fallback of each
        key is logged once, so a fleet of restricted access says it once, not per account. A
        connected account whose access was revoked (Stripe's ``does not have access to
        account``) is refused here, as before any sweep of it.
        """
        try:
            with _metered("account"):
                account = self._client.v1.accounts.retrieve_current()
        except (stripe.PermissionError, stripe.InvalidRequestError) as err:
            if err.http_status not in (403, 404) or _NO_ACCESS in (err.user_message or ""):
                raise _translate(err, self.where) from None  # a connected account refuses
            return self._unread_account(err.http_status)
        except stripe.StripeError as err:
            raise _translate(err, self.where) from None
        self.account = f"{'live' if self.livemode else 'test'}:{account.id}"
        return self.account

    def _unread_account(self, status: int | None) -> str:
        if self.stripe_account:
            self.account = f"{'live' if self.livemode else 'test'}:{self.stripe_account}"
        _warn_once(self._settings[0], status, connected=bool(self.stripe_account))
        return self.account

    def for_account(self, account_id: str) -> StripeGateway:
        """The same key acting on one of its connected accounts (``Stripe-Account``)."""
        api_key, api_base, timeout_s = self._settings
        return StripeGateway(
            api_key, api_base=api_base, stripe_account=account_id, timeout_s=timeout_s
        )

    def connected_accounts(self) -> list[str]:
        """Every connected account of the platform key, oldest last (``GET /v1/accounts``,
        every page)."""
        return [str(account["id"]) for account in self._every("accounts", "/v1/accounts")]

    def webhook_endpoints(self) -> list[JsonObject]:
        """Every webhook endpoint of the account (``GET /v1/webhook_endpoints``, every page)."""
        return self._every("webhook_endpoints", "/v1/webhook_endpoints")

    def _every(self, operation: str, path: str) -> list[JsonObject]:
        """Every object of a Stripe list, page after page (an empty page ends it)."""
        found: list[JsonObject] = []
        params: dict[str, object] = {"limit": 100}
        while True:
            try:
                with _metered(operation):
                    page = self._request("get", path, params)
            except stripe.StripeError as err:
                raise _translate(err, self.where) from None
            found.extend(page["data"])
            if not page["has_more"] or not page["data"]:
                return found
            params["starting_after"] = found[-1]["id"]

    def _request(
        self, method: str, path: str, params: dict[str, object] | None = None
    ) -> JsonObject:
        """One request, its answer left as parsed JSON: the SDK's typed objects cost about ten
        times the CPU to build (100 ms for a page of 100 sessions), and that CPU, taken from
        the threads about to send, bunches their sends up against Stripe's one-second limit.
        Errors arrive as the SDK's exceptions; the callers translate them with ``_translate``."""
        answer: JsonObject = self._client.raw_request(method, path, **(params or {})).data
        return answer

    def list_open(
        self,
        *,
        limit: int = 100,
        starting_after: str | None = None,
        filters: ListFilters = NO_FILTERS,
    ) -> SessionPage:
        params: dict[str, object] = {"status": "open", "limit": limit}
        if starting_after:
            params["starting_after"] = starting_after
        if filters.created_before is not None:
            params["created"] = {"lt": filters.created_before}
        if filters.customer is not None:
            params["customer"] = filters.customer
        if filters.payment_link is not None:
            params["payment_link"] = filters.payment_link
        try:
            with _metered("list"):
                page = self._request("get", "/v1/checkout/sessions", params)
        except stripe.InvalidRequestError as err:
            if starting_after and err.http_status in (400, 404):
                # Stripe says resource_missing on the cursor; other Stripes word it otherwise.
                # Either way the engine restarts without a cursor, and an error that is not
                # about the cursor comes back there and ends the sweep.
                raise StaleCursor(str(err.user_message)) from None
            raise _translate(err, self.where) from None
        except stripe.StripeError as err:
            raise _translate(err, self.where) from None
        return SessionPage(list(page["data"]), bool(page["has_more"]))

    def session_status(self, session_id: str) -> str:
        """The session's current status, to explain an expire refusal Stripe worded oddly."""
        try:
            with _metered("retrieve"):
                return str(self._request("get", _session_path(session_id))["status"])
        except stripe.StripeError as err:
            raise _translate(err, self.where) from None

    def expire(self, session_id: str, idempotency_key: str) -> None:
        try:
            with _metered("expire"):
                self._request(
                    "post",
                    _session_path(session_id, "/expire"),
                    {"idempotency_key": idempotency_key},
                )
        except stripe.InvalidRequestError as err:
            found = _NOT_OPEN_STATUS.search(err.user_message or "")
            if err.http_status == 400 and found:
                raise SessionNotOpen(found.group(1)) from None
            raise _translate(err, self.where) from None
        except stripe.StripeError as err:
            raise _translate(err, self.where) from None
