"""Stripe-shaped error answers, and the misbehaviour the fake adds on purpose."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields

from checkout_sweeper.fake_stripe.objects import StripeObject


class StripeFault(Exception):
    """An error answer in Stripe's shape: status, error body and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: StripeObject = {"type": type_, "message": message}
        if code:
            self.body["code"] = code
            self.body["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.body["param"] = param
        self.headers = headers or {}


def resource_missing(session_id: str, param: str = "session") -> StripeFault:
    return StripeFault(
        404, f"No such checkout.session: '{session_id}'", code="resource_missing", param=param
    )


def server_error() -> StripeFault:
    return StripeFault(
        500,
        "An unknown error occurred",
        type_="api_error",
        headers={"Stripe-Should-Retry": "true"},
    )


def rate_limited(reason: str) -> StripeFault:
    """Over a rate limit: Stripe names which one, and sends no Retry-After."""
    return StripeFault(
        429,
        "Request rate limit exceeded. You can learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        code="rate_limit",
        headers={"Stripe-Rate-Limited-Reason": reason},
    )


def lock_timeout() -> StripeFault:
    """Another request holds the object: a 429 that is not about the rate (no reason header)."""
    return StripeFault(
        429,
        "This object cannot be accessed right now because another API request or Stripe "
        "process is currently accessing it. Please retry.",
        code="lock_timeout",
    )


@dataclass
class Faults:
    """Misbehaviour the fake adds on purpose; every field can change while it runs."""

    rps: float = 0.0  # accepted requests per second per account; 0 means unlimited
    operation_rps: float = 0.0  # and per named operation of an account; 0 means unlimited
    burst: float = 0.0  # a token bucket of this capacity; 0: at most rps in any one second
    latency_ms: float = 0.0  # base latency of every answer
    jitter_ms: float = 0.0  # plus a uniform random extra up to this
    tail_rate: float = 0.0  # share of answers in the latency's tail: ``tail_factor`` times slower
    tail_factor: float = 5.0
    fail_rate: float = 0.0  # share of requests answered 500 with Stripe-Should-Retry: true
    expire_fail_rate: float = 0.0  # extra share of expires alone answered 500
    lost_rate: float = 0.0  # share of POSTs carried out whose answer is lost (a 500 instead)
    saved_fail_rate: float = 0.0  # share of keyed POSTs failing 500 once started: saved, replayed
    race_rate: float = 0.0  # share of expires that find the session just paid (complete)
    lock_rate: float = 0.0  # share of expires answered 429 lock_timeout (object busy)
    spawn_rate: float = 0.0  # new open sessions created per expire call (customers arriving)
    refuse_rate: float = 0.0  # share answered 429 rate_limit whatever the count (1: a storm)

    def update(self, values: Mapping[str, float]) -> None:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        for name, value in values.items():
            number = float(value)
            if number < 0 or (name.endswith("_rate") and name != "spawn_rate" and number > 1):
                raise ValueError(f"{name} out of range: {value}")
            setattr(self, name, number)

    def latency_s(self, draw: Callable[[], float]) -> float:
        """One answer's latency: the base, a uniform share of the jitter, and for a share of
        answers (the tail) all of that ``tail_factor`` times over; ``draw`` gives 0 to 1."""
        if not (self.latency_ms or self.jitter_ms):
            return 0.0
        ms = self.latency_ms + (draw() * self.jitter_ms if self.jitter_ms else 0.0)
        if self.tail_rate and draw() < self.tail_rate:
            ms *= self.tail_factor
        return ms / 1000.0

    def fail_rate_for(self, operation: str) -> float:
        if operation == "expire":
            return max(self.fail_rate, self.expire_fail_rate)
        return self.fail_rate
