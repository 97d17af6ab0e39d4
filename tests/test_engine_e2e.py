"""The engine end to end: the official SDK over HTTP against the fake Stripe, no web app.

Engine logic alone is tested in memory (``test_engine_*.py``); these show the same rules hold
with real HTTP, real idempotency keys, real 429s and other Stripes' wording."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from checkout_sweeper.engine.gateway import Gateway, SessionPage
from checkout_sweeper.engine.scope import Scope
from checkout_sweeper.engine.sweeper import (
    SessionOutcome,
    SweepAborted,
    Sweeper,
    SweepOptions,
    SweepResult,
)
from checkout_sweeper.fake_stripe import FakeStripeApp, FakeStripeServer
from checkout_sweeper.stripe_api.adapter import StripeGateway

from helpers import TEST_KEY

FAST = {"max_rps": 400.0, "concurrency": 8, "backoff_base_s": 0.01, "backoff_cap_s": 0.05}


def sweep(
    server: FakeStripeServer, *, key: str = TEST_KEY, gateway: Gateway | None = None, **options: Any
) -> tuple[SweepResult, list[SessionOutcome]]:
    outcomes: list[SessionOutcome] = []
    gateway = gateway or StripeGateway(key, api_base=server.url)
    sweeper = Sweeper(gateway, SweepOptions(**{**FAST, **options}), on_outcome=outcomes.append)
    return sweeper.run(), outcomes


def test_every_open_session_on_every_page_is_expired_once(fake_stripe):
    fake_stripe.state.seed(open_=330, complete=50, expired=50)
    result, outcomes = sweep(fake_stripe)
    assert result.expired_count == 330 and result.failed == []
    assert result.remaining_open_count == 0 and result.remaining_open_sessions == []
    assert sorted(o.session_id for o in outcomes) == sorted(set(o.session_id for o in outcomes))
    stats = fake_stripe.state.snapshot()
    assert stats["open_total"] == 0
    assert stats["expire_calls_max_per_session"] == 1
    assert stats["requests"]["expire"] == 330  # paid and expired sessions are never touched


def test_each_expire_carries_an_idempotency_key_of_sweep_and_session(fake_stripe):
    fake_stripe.state.seed(open_=5)
    result, outcomes = sweep(fake_stripe)
    keys = fake_stripe.state.idempotency_keys()
    assert keys == {f"checkout-sweeper:{result.sweep_id}:{o.session_id}" for o in outcomes}


class _CustomerPaysTheCursor(StripeGateway):
    """After the first page, a customer pays for the session the next page starts after."""

    def __init__(self, server: FakeStripeServer, **kwargs: Any) -> None:
        super().__init__(TEST_KEY, api_base=server.url, **kwargs)
        self.server = server
        self.paid: str | None = None

    def list_open(self, **kwargs: Any) -> SessionPage:
        page = super().list_open(**kwargs)
        if self.paid is None and page.has_more:
            self.paid = page.sessions[-1]["id"]
            self.server.state.pay(False, "", self.paid)
        return page


def test_a_cursor_that_goes_stale_restarts_from_the_head(fake_stripe):
    fake_stripe.state.seed(open_=250)
    gateway = _CustomerPaysTheCursor(fake_stripe)
    result, outcomes = sweep(fake_stripe, gateway=gateway)
    assert result.failed == []
    assert result.expired_count == 249 and result.already_closed_count == 1
    assert {o.session_id for o in outcomes if o.outcome == "already_closed"} == {gateway.paid}
    assert fake_stripe.state.snapshot()["open_total"] == 0


def test_a_restart_does_not_count_open_sessions_twice(fake_stripe):
    fake_stripe.state.seed(open_=250)
    gateway = _CustomerPaysTheCursor(fake_stripe)
    result, _ = sweep(fake_stripe, gateway=gateway, dry_run=True)
    assert len(result.would_expire) == len(set(result.would_expire)) == 249
    assert result.remaining_open_count == 249
    ids = [s["id"] for s in result.remaining_open_sessions]
    assert len(ids) == len(set(ids)) == 100


def test_transient_errors_and_races_fail_nothing(fake_stripe):
    fake_stripe.state.seed(open_=200, complete=20)
    fake_stripe.state.faults.update({"fail_rate": 0.05, "race_rate": 0.05})
    result, _ = sweep(fake_stripe)
    stats = fake_stripe.state.snapshot()
    assert stats["server_errors"] > 0 and stats["races"] > 0
    assert result.failed == []
    assert result.already_closed_count == stats["races"]
    assert result.expired_count + result.already_closed_count == 200
    assert stats["sessions_expired_twice"] == 0 and stats["open_total"] == 0


def test_a_429_slows_the_sweep_down_instead_of_failing(fake_stripe):
    fake_stripe.state.seed(open_=60)
    fake_stripe.state.faults.update({"rps": 40})
    result, _ = sweep(fake_stripe, max_rps=80.0)
    assert result.failed == [] and result.expired_count == 60
    assert result.rate_limited > 0
    assert result.rate_limited == fake_stripe.state.snapshot()["rate_limited"]


def test_budget_below_the_limit_gets_no_429(fake_stripe):
    fake_stripe.state.seed(open_=60)
    fake_stripe.state.faults.update({"rps": 40, "latency_ms": 5})
    result, _ = sweep(fake_stripe, max_rps=30.0)
    assert result.expired_count == 60 and result.rate_limited == 0


def test_an_object_lock_is_retried_and_not_taken_for_the_rate_limit(fake_stripe):
    fake_stripe.state.seed(open_=80)
    fake_stripe.state.faults.update({"lock_rate": 0.1})  # six in a row: 1e-6 a session
    result, _ = sweep(fake_stripe)
    stats = fake_stripe.state.snapshot()
    assert stats["lock_timeouts"] > 0 and stats["rate_limited"] == 0
    assert result.failed == [] and result.expired_count == 80
    assert result.rate_limited == 0  # a busy object says nothing about the rate
    assert stats["sessions_expired_twice"] == 0 and stats["open_total"] == 0


def test_auto_pacing_finds_a_per_operation_limit(fake_stripe):
    fake_stripe.state.seed(open_=120)
    fake_stripe.state.faults.update({"rps": 100, "operation_rps": 15})
    result, _ = sweep(fake_stripe, max_rps=None)  # auto: starts at the sandbox's 25
    assert result.failed == [] and result.expired_count == 120
    assert 0 < result.rate_limited < result.stripe_requests / 5  # learned, then kept under
    assert fake_stripe.state.snapshot()["open_total"] == 0


def test_sessions_created_during_the_sweep_are_caught_by_later_passes(fake_stripe):
    fake_stripe.state.seed(open_=300)
    fake_stripe.state.faults.update({"spawn_rate": 0.05})
    result, _ = sweep(fake_stripe)
    spawned = fake_stripe.state.snapshot()["spawned"]
    assert spawned > 0 and result.passes >= 2
    assert result.expired_count == 300 + spawned - fake_stripe.state.snapshot()["open_total"]
    assert result.remaining_open_count == fake_stripe.state.snapshot()["open_total"]


def test_dry_run_lists_and_expires_nothing(fake_stripe):
    fake_stripe.state.seed(open_=150, complete=10)
    result, outcomes = sweep(fake_stripe, dry_run=True)
    assert result.expired_count == 0 and len(result.would_expire) == 150
    assert result.remaining_open_count == 150
    assert {o.outcome for o in outcomes} == {"would_expire"}
    stats = fake_stripe.state.snapshot()
    assert stats["open_total"] == 150 and "expire" not in stats["requests"]
    assert "would_expire" in result.as_data()


def test_created_before_leaves_newer_sessions_alone(fake_stripe, stripe_client):
    fake_stripe.state.seed(open_=20)  # created over the past day
    cutoff = int(time.time()) - 1
    fresh = stripe_client.v1.checkout.sessions.create(
        {"mode": "payment", "success_url": "https://example.com/ok"}
    )
    result, _ = sweep(fake_stripe, scope=Scope(created_before=cutoff))
    assert result.expired_count == 20 and result.remaining_open_count == 0
    assert stripe_client.v1.checkout.sessions.retrieve(fresh.id).status == "open"


def test_a_session_that_keeps_failing_is_reported_and_left_open(fake_stripe):
    fake_stripe.state.seed(open_=3)
    fake_stripe.state.faults.update({"expire_fail_rate": 1})
    result, outcomes = sweep(fake_stripe, max_attempts=3)
    assert len(result.failed) == 3 and all("500" in f["error"] for f in result.failed)
    assert result.remaining_open_count == 3 and len(result.remaining_open_sessions) == 3
    assert {s["status"] for s in result.remaining_open_sessions} == {"open"}
    assert not result.succeeded
    assert [o.attempts for o in outcomes] == [3, 3, 3]


def test_a_rejected_key_aborts_the_sweep(fake_stripe):
    fake_stripe.state.seed(open_=3)
    with pytest.raises(SweepAborted, match="Invalid API Key"):
        sweep(fake_stripe, key="sk_test_revoked_key")


def test_remaining_sessions_are_capped_but_counted(fake_stripe):
    fake_stripe.state.seed(open_=30)
    result, _ = sweep(fake_stripe, dry_run=True, remaining_cap=10)
    assert result.remaining_open_count == 30 and len(result.remaining_open_sessions) == 10


# other Stripes ----------------------------------------------------------------------------------
class _OtherStripe:
    """The fake behind a filter, to act like a Stripe that words or remembers things otherwise."""

    def __init__(
        self,
        app: FakeStripeApp,
        *,
        reword_400: bool = False,
        forget_keys: bool = False,
        no_cursors: bool = False,
        final_500s: bool = False,
        final_429s: bool = False,
    ) -> None:
        self.app, self.reword_400, self.forget_keys = app, reword_400, forget_keys
        self.no_cursors, self.final_500s, self.final_429s = no_cursors, final_500s, final_429s

    def __call__(self, environ, start_response):
        from werkzeug.wrappers import Request, Response

        if self.forget_keys:
            environ.pop("HTTP_IDEMPOTENCY_KEY", None)
        if self.no_cursors and "starting_after" in environ.get("QUERY_STRING", ""):
            body = {"error": {"type": "invalid_request_error", "message": "Bad cursor."}}
            return Response(json.dumps(body), 400)(environ, start_response)
        if self.final_500s and environ["PATH_INFO"].endswith("/expire"):
            body = {"error": {"type": "api_error", "message": "Cannot be retried."}}
            response = Response(json.dumps(body), 500, {"Stripe-Should-Retry": "false"})
            return response(environ, start_response)
        if self.final_429s and environ["PATH_INFO"].endswith("/expire"):
            body = {"error": {"type": "invalid_request_error", "message": "Too many."}}
            response = Response(json.dumps(body), 429, {"Stripe-Should-Retry": "false"})
            return response(environ, start_response)
        response = self.app.dispatch(Request(environ))
        if self.reword_400 and response.status_code == 400:
            body = {"error": {"type": "invalid_request_error", "message": "Session not active."}}
            response.set_data(json.dumps(body))
        return response(environ, start_response)


@pytest.fixture
def other_stripe():
    from werkzeug.serving import make_server

    from checkout_sweeper.fake_stripe import FakeStripeApp

    servers = []

    def start(**behaviour):
        app = FakeStripeApp()
        server = make_server("127.0.0.1", 0, _OtherStripe(app, **behaviour), threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        server.state = app.state  # type: ignore[attr-defined]  # looks like a FakeStripeServer
        server.url = f"http://127.0.0.1:{server.port}"  # type: ignore[attr-defined]
        return server

    yield start
    for server in servers:
        server.shutdown()


def test_an_oddly_worded_refusal_is_checked_before_it_counts_as_failed(other_stripe):
    stripe_ = other_stripe(reword_400=True)
    stripe_.state.seed(open_=6)
    stripe_.state.faults.update({"race_rate": 1})
    result, outcomes = sweep(stripe_)
    assert result.failed == [] and result.already_closed_count == 6
    assert {o.error for o in outcomes} == {"complete"}
    assert stripe_.state.snapshot()["requests"]["retrieve"] == 6


def test_lost_answers_are_retried_with_the_same_key_and_count_once(fake_stripe):
    fake_stripe.state.seed(open_=80)
    fake_stripe.state.faults.update({"lost_rate": 0.3})
    result, _ = sweep(fake_stripe)
    stats = fake_stripe.state.snapshot()
    assert stats["lost_answers"] > 0
    assert result.failed == [] and result.expired_count == 80
    assert stats["sessions_expired_twice"] == 0


def test_lost_answers_on_a_stripe_without_replay_still_count_as_expired(other_stripe):
    stripe_ = other_stripe(forget_keys=True)
    stripe_.state.seed(open_=80)
    stripe_.state.faults.update({"lost_rate": 0.3})
    result, _ = sweep(stripe_)
    assert stripe_.state.snapshot()["lost_answers"] > 0
    assert result.failed == [] and result.expired_count == 80
    assert result.already_closed_count == 0


def test_a_stripe_that_refuses_cursors_is_still_swept_clean(other_stripe):
    stripe_ = other_stripe(no_cursors=True)
    stripe_.state.seed(open_=150)
    result, _ = sweep(stripe_)
    assert result.failed == [] and result.expired_count == 150
    assert stripe_.state.snapshot()["open_total"] == 0
    # That a dry run on such a Stripe stops instead of looping is shown in memory
    # (test_engine_walker.py): over HTTP it would decode thousands of sessions for nothing.


def test_should_retry_false_fails_that_session_at_once_and_the_sweep_goes_on(other_stripe):
    stripe_ = other_stripe(final_500s=True)
    stripe_.state.seed(open_=5)
    result, outcomes = sweep(stripe_)
    assert len(result.failed) == 5 and [o.attempts for o in outcomes] == [1] * 5
    assert result.remaining_open_count == 5 and not result.succeeded


def test_a_429_that_says_should_retry_false_is_not_retried(other_stripe):
    stripe_ = other_stripe(final_429s=True)
    stripe_.state.seed(open_=3)
    result, outcomes = sweep(stripe_)
    assert len(result.failed) == 3 and [o.attempts for o in outcomes] == [1] * 3
    assert stripe_.state.snapshot()["open_total"] == 3


def test_a_500_replayed_for_the_same_key_is_not_retried_with_it(fake_stripe):
    fake_stripe.state.seed(open_=6)
    fake_stripe.state.faults.update({"saved_fail_rate": 1})
    result, outcomes = sweep(fake_stripe)
    assert len(result.failed) == 6 and result.expired_count == 0
    assert {o.attempts for o in outcomes} == {2}  # the first 500, then its replay
    assert all("replayed" in str(f["error"]) for f in result.failed)
    fake_stripe.state.faults.update({"saved_fail_rate": 0})
    again, _ = sweep(fake_stripe)  # a new sweep, new keys
    assert again.expired_count == 6


def test_sessions_lapsing_during_a_sweep_with_429s_are_never_claimed(fake_stripe):
    fake_stripe.state.policy.update({"lifetime_s": 4})
    fake_stripe.state.seed(open_=240)
    fake_stripe.state.faults.update({"rps": 60, "lock_rate": 0.1})
    result, outcomes = sweep(fake_stripe, max_rps=200.0)
    stats = fake_stripe.state.snapshot()
    assert stats["rate_limited"] > 0 and stats["lapsed"] > 0 and stats["open_total"] == 0
    by_request = set(fake_stripe.state.stats.expired_by_request)
    claimed = {o.session_id for o in outcomes if o.outcome == "expired"}
    assert claimed == by_request and result.expired_count == len(by_request)
    lapsed = [o for o in outcomes if o.outcome == "already_closed"]
    assert lapsed and {o.error for o in lapsed} == {"expired"}
    assert not {o.session_id for o in lapsed} & by_request


def _endpoint(
    server: FakeStripeServer, url: str, events: list[str], status: str = "enabled"
) -> dict[str, Any]:
    import requests

    body = {"url": url, "enabled_events": events, "status": status}
    answer = requests.post(f"{server.url}/_admin/webhook_endpoints", json=body, timeout=5)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_dry_run_names_what_the_expiries_would_set_off(fake_stripe):
    fake_stripe.state.seed(open_=12, recovery=5)
    listening = _endpoint(fake_stripe, "https://shop.example/hook", ["checkout.session.expired"])
    everything = _endpoint(fake_stripe, "https://audit.example/all", ["*"])
    _endpoint(fake_stripe, "https://shop.example/paid", ["checkout.session.completed"])
    _endpoint(fake_stripe, "https://old.example/hook", ["checkout.session.expired"], "disabled")
    for n in range(120):  # more than a page of endpoints
        _endpoint(fake_stripe, f"https://other.example/{n}", ["charge.succeeded"])
    result, _ = sweep(fake_stripe, dry_run=True)
    effects = result.as_data()["side_effects"]
    assert effects["expired_events"] == 12 and effects["recovery_sessions"] == 5
    assert sorted(e["url"] for e in effects["webhook_endpoints"]) == [
        everything["url"],
        listening["url"],
    ]
    assert {e["id"] for e in effects["webhook_endpoints"]} == {listening["id"], everything["id"]}
    assert fake_stripe.state.snapshot()["requests"]["webhook_endpoints"] == 2
    done, _ = sweep(fake_stripe)
    assert done.side_effects is not None
    assert done.side_effects["expired_events"] == 12 and done.side_effects["recovery_sessions"] == 5


def test_a_key_that_may_not_read_endpoints_still_gets_its_dry_run(fake_stripe):
    fake_stripe.state.seed(open_=4)
    fake_stripe.state.policy.update({"restricted_lacks": ["account", "webhook_endpoints"]})
    _endpoint(fake_stripe, "https://shop.example/hook", ["checkout.session.expired"])
    result, _ = sweep(fake_stripe, key="rk_test_51NoWebhookRead", dry_run=True)
    assert len(result.would_expire) == 4
    effects = result.as_data()["side_effects"]
    assert effects["webhook_endpoints"] is None and effects["expired_events"] == 4
    assert "rak_webhook_read" in effects["note"] and "Webhook Endpoints read" in effects["note"]


def test_endpoints_that_could_not_be_read_are_explained_by_why():
    """A key refused the endpoints is told which permission to add; a Stripe that did not
    answer is not blamed on the key."""
    from checkout_sweeper.engine.side_effects import read_endpoints
    from checkout_sweeper.errors import FatalStripeError, RetryableError

    def refused() -> list:
        raise FatalStripeError("Stripe 403 error: the key lacks the permission")

    def unreached() -> list:
        raise RetryableError("could not reach Stripe: connection refused")

    assert read_endpoints(refused)[0] is None
    assert "Webhook Endpoints read" in str(read_endpoints(refused)[1])
    endpoints, note = read_endpoints(unreached)
    assert endpoints is None and "could not reach Stripe" in str(note)
    assert "Webhook Endpoints read" not in str(note)
