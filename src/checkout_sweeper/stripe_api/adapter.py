"""The one place that talks to the ``stripe`` SDK.

It implements ``engine.gateway.Gateway`` and turns SDK exceptions, at this one boundary, into the
``StripeProblem`` branch of ``errors``: a session that was no longer open, a cursor that went
stale, an error worth retrying, an error that ends the sweep. Nothing else in the project
imports ``stripe``.
"""

from __future__ import annotations

import logging
import re
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
    should_retry = (err.headers or {}).get("stripe-should-retry")
    summary = f"Stripe {status or 'connection'} error: {err.user_message or type(err).__name__}"
    if isinstance(err, stripe.RateLimitError):
        # The SDK leaves ``code`` unset on its RateLimitError; the error object carries it.
        code = err.error.code if err.error else err.code
        if code == "lock_timeout":  # another request holds the object: not the rate
            return RetryableError(summary, lock_contention=True)
        return RetryableError(summary, rate_limited=True, retry_after_s=_retry_after(err.headers))
    if should_retry == "false" and status >= 409:
        return SessionRejected(summary, status)  # Stripe says a retry cannot help this call
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
        every key of one account shares one lease; a key that may not read the account (a
        restricted key without that permission) keeps the key's fingerprint, and it is logged.
        """
        try:
            with _metered("account"):
                account = self._client.v1.accounts.retrieve_current()
        except (stripe.PermissionError, stripe.InvalidRequestError) as err:
            if err.http_status not in (403, 404) or self.stripe_account:
                raise _translate(err, self.where) from None  # a connected account refuses
            log.warning(
                "this key may not read its Stripe account (%s); the one-sweep lease is keyed on "
                "the key instead, so another key of the same account is not kept out",
                err.http_status,
            )
            return self.account
        except stripe.StripeError as err:
            raise _translate(err, self.where) from None
        mode = "live" if self.livemode else "test"
        self.account = f"{mode}:{account.id}"
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
        found: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, object] = {"limit": 100}
            if cursor:
                params["starting_after"] = cursor
            try:
                with _metered("accounts"):
                    page = self._request("get", "/v1/accounts", params)
            except stripe.StripeError as err:
                raise _translate(err, self.where) from None
            found.extend(str(account["id"]) for account in page["data"])
            if not page["has_more"] or not page["data"]:
                return found
            cursor = found[-1]

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
