"""The fake Stripe, driven by the official SDK over real HTTP, against Stripe's documented rules."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import pytest
import requests
import stripe

from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.fake_stripe.forms import decode_form
from checkout_sweeper.fake_stripe.process import fake_stripe_process

from helpers import LIVE_KEY, TEST_KEY, FakeClock, make_client

FIXTURE_KEYS = set(
    json.loads(
        resources.files("checkout_sweeper.fake_stripe")
        .joinpath("checkout_session.json")
        .read_text()
    )
)


def _new(client: stripe.StripeClient, **params: Any) -> stripe.checkout.Session:
    # any parameters, unknown ones too: the fake must refuse what Stripe refuses
    body = {"mode": "payment", "success_url": "https://example.com/ok", **params}
    return client.v1.checkout.sessions.create(body)  # type: ignore[arg-type]


def _admin(server: FakeStripeServer, path: str, body: dict | None = None) -> dict:
    if body is None:
        response = requests.get(f"{server.url}/_admin/{path}", timeout=5)
    else:
        response = requests.post(f"{server.url}/_admin/{path}", json=body, timeout=5)
    response.raise_for_status()
    return response.json()


# creating ---------------------------------------------------------------------------------------
def test_create_reads_nested_form_params_and_returns_stripe_shape(stripe_client):
    session = _new(
        stripe_client,
        metadata={"order": "A-17"},
        line_items=[{"price": "price_123", "quantity": 2}],
        customer_email="buyer@example.com",
    )
    assert session.id.startswith("cs_test_")
    assert session.object == "checkout.session"
    assert session.status == "open" and session.livemode is False
    assert session.metadata is not None and session.metadata.to_dict() == {"order": "A-17"}
    assert session.customer_email == "buyer@example.com"
    assert session.url is not None and session.url.endswith(session.id)
    assert set(session.to_dict()) >= FIXTURE_KEYS


def test_live_key_creates_live_sessions(fake_stripe):
    session = _new(make_client(fake_stripe, LIVE_KEY))
    assert session.id.startswith("cs_live_") and session.livemode is True


def test_create_rejects_unknown_parameter(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        _new(stripe_client, colour="blue")
    assert err.value.http_status == 400 and err.value.param == "colour"


def test_form_decoding_of_lists_and_nested_keys():
    decoded = decode_form(
        [
            ("line_items[0][price]", "p1"),
            ("line_items[1][price]", "p2"),
            ("expand[]", "x"),
            ("metadata[a]", "1"),
        ]
    )
    assert decoded == {
        "line_items": [{"price": "p1"}, {"price": "p2"}],
        "expand": ["x"],
        "metadata": {"a": "1"},
    }


# listing ----------------------------------------------------------------------------------------
def test_list_is_newest_first_with_default_limit_and_has_more(fake_stripe, stripe_client):
    created = [_new(stripe_client).id for _ in range(12)]
    page = stripe_client.v1.checkout.sessions.list()
    assert [s.id for s in page.data] == list(reversed(created))[:10]
    assert page.has_more is True


@pytest.mark.parametrize("limit", [0, 101])
def test_list_limit_out_of_range_is_400(stripe_client, limit):
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.checkout.sessions.list({"limit": limit})
    assert err.value.http_status == 400 and err.value.param == "limit"


def test_list_unknown_parameter_is_named(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.checkout.sessions.list({"colour": "blue"})
    assert err.value.param == "colour" and "colour" in str(err.value)


def test_list_filters_by_status_customer_and_created(fake_stripe, stripe_client):
    fake_stripe.state.seed(open_=5, complete=4, expired=3)
    statuses = {
        status: len(stripe_client.v1.checkout.sessions.list({"status": status, "limit": 100}).data)
        for status in ("open", "complete", "expired")
    }
    assert statuses == {"open": 5, "complete": 4, "expired": 3}
    mine = _new(stripe_client, customer="cus_123")
    found = stripe_client.v1.checkout.sessions.list({"customer": "cus_123"}).data
    assert [s.id for s in found] == [mine.id]
    newer = stripe_client.v1.checkout.sessions.list({"created": {"gte": mine.created}}).data
    older = stripe_client.v1.checkout.sessions.list(
        {"created": {"lt": mine.created}, "limit": 100}
    ).data
    assert mine.id in {s.id for s in newer}
    assert mine.id not in {s.id for s in older} and len(older) == 12


def test_metadata_is_not_a_list_filter_as_on_stripe(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.checkout.sessions.list({"metadata": {"ci_run": "7"}})
    assert err.value.http_status == 400 and "metadata" in str(err.value)


def test_varied_seeding_gives_customers_links_and_metadata_to_filter_on(fake_stripe, stripe_client):
    from checkout_sweeper.fake_stripe.variety import CUSTOMERS, PAYMENT_LINKS

    fake_stripe.state.seed(open_=200, varied=True)
    listed = stripe_client.v1.checkout.sessions.list({"status": "open", "limit": 100}).data
    assert all(s.metadata["channel"] in ("web", "mobile", "ci") for s in listed)
    by_customer = stripe_client.v1.checkout.sessions.list({"customer": CUSTOMERS[0], "limit": 100})
    by_link = stripe_client.v1.checkout.sessions.list({"payment_link": PAYMENT_LINKS[1]})
    assert by_customer.data and all(s.customer == CUSTOMERS[0] for s in by_customer.data)
    assert by_link.data and all(s.payment_link == PAYMENT_LINKS[1] for s in by_link.data)
    assert len({s.created for s in listed}) > 50  # spread over the day, not one moment


def test_cursors_walk_every_session_once(fake_stripe, stripe_client):
    fake_stripe.state.seed(open_=250, expired=30)
    seen = [
        s.id
        for s in stripe_client.v1.checkout.sessions.list(
            {"status": "open", "limit": 100}
        ).auto_paging_iter()
    ]
    assert len(seen) == len(set(seen)) == 250
    after = stripe_client.v1.checkout.sessions.list(
        {"status": "open", "limit": 3, "starting_after": seen[10]}
    ).data
    assert [s.id for s in after] == seen[11:14]
    before = stripe_client.v1.checkout.sessions.list(
        {"status": "open", "limit": 3, "ending_before": seen[10]}
    ).data
    assert [s.id for s in before] == seen[7:10]


def test_cursor_that_no_longer_matches_the_filter_is_resource_missing(stripe_client):
    sessions = [_new(stripe_client) for _ in range(3)]
    cursor = sessions[1].id
    stripe_client.v1.checkout.sessions.expire(cursor)
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.checkout.sessions.list({"status": "open", "starting_after": cursor})
    assert err.value.http_status == 404 and err.value.code == "resource_missing"
    assert err.value.param == "starting_after"
    # Without the filter the same cursor is fine.
    stripe_client.v1.checkout.sessions.list({"starting_after": cursor})


# retrieving and expiring -----------------------------------------------------------------------
def test_retrieve_and_unknown_id(stripe_client):
    session = _new(stripe_client)
    assert stripe_client.v1.checkout.sessions.retrieve(session.id).id == session.id
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.checkout.sessions.retrieve("cs_test_nope")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"


def test_expire_open_session(stripe_client):
    session = _new(stripe_client)
    expired = stripe_client.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired" and expired.url is None
    assert stripe_client.v1.checkout.sessions.retrieve(session.id).status == "expired"


def test_expire_not_open_is_stripes_400(fake_stripe, stripe_client):
    fake_stripe.state.seed(complete=1)
    paid = stripe_client.v1.checkout.sessions.list().data[0]
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.checkout.sessions.expire(paid.id)
    assert err.value.http_status == 400 and err.value.code is None
    assert err.value.user_message == (
        'Only Checkout Sessions with a status in ["open"] can be expired. '
        "This Checkout Session has a status of `complete`."
    )


def test_expire_unknown_is_404(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.checkout.sessions.expire("cs_test_unknown")
    assert err.value.http_status == 404 and err.value.code == "resource_missing"


# auth, accounts, idempotency --------------------------------------------------------------------
def test_missing_key_is_401_with_stripe_body(fake_stripe):
    response = requests.get(f"{fake_stripe.url}/v1/checkout/sessions", timeout=5)
    assert response.status_code == 401
    assert "did not provide an API key" in response.json()["error"]["message"]


def test_malformed_key_is_401(fake_stripe):
    with pytest.raises(stripe.AuthenticationError) as err:
        make_client(fake_stripe, "pk_test_notasecret").v1.checkout.sessions.list()
    assert "Invalid API Key" in str(err.value)
    assert "notasecret" not in str(err.value)


def test_an_account_not_connected_is_a_403_even_with_none_connected(fake_stripe):
    """Stripe refuses a ``Stripe-Account`` the key has no access to, connected accounts or not."""
    stranger = make_client(fake_stripe, stripe_account="acct_notconnected")
    with pytest.raises(stripe.PermissionError) as err:
        stranger.v1.checkout.sessions.list()
    assert "does not have access to account 'acct_notconnected'" in str(err.value)


def test_connected_accounts_are_isolated(fake_stripe):
    fake_stripe.state.platform.adopt("acct_1Connected")
    platform = make_client(fake_stripe)
    connected = make_client(fake_stripe, stripe_account="acct_1Connected")
    session = _new(connected)
    assert len(platform.v1.checkout.sessions.list().data) == 0
    assert [s.id for s in connected.v1.checkout.sessions.list().data] == [session.id]
    with pytest.raises(stripe.InvalidRequestError):
        platform.v1.checkout.sessions.expire(session.id)
    live = make_client(fake_stripe, LIVE_KEY)
    assert len(live.v1.checkout.sessions.list().data) == 0


def test_idempotency_replays_and_refuses_other_params(stripe_client):
    first = stripe_client.v1.checkout.sessions.create(
        {"mode": "payment", "success_url": "https://a/ok"}, options={"idempotency_key": "k-1"}
    )
    again = stripe_client.v1.checkout.sessions.create(
        {"mode": "payment", "success_url": "https://a/ok"}, options={"idempotency_key": "k-1"}
    )
    assert again.id == first.id
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    assert len(stripe_client.v1.checkout.sessions.list().data) == 1
    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.checkout.sessions.create(
            {"mode": "payment", "success_url": "https://b/ok"}, options={"idempotency_key": "k-1"}
        )


def test_idempotent_expire_replay_is_a_success(stripe_client):
    session = _new(stripe_client)
    key = {"idempotency_key": f"sweep-1-{session.id}"}
    stripe_client.v1.checkout.sessions.expire(session.id, options=key)
    replay = stripe_client.v1.checkout.sessions.expire(session.id, options=key)
    assert replay.status == "expired"
    assert replay.last_response.headers.get("Idempotent-Replayed") == "true"


# faults -----------------------------------------------------------------------------------------
def _burst_of_lists(stripe_client: stripe.StripeClient, count: int) -> list[str]:
    """List ``count`` times at once; each answer's limit reason, or "ok"."""
    outcomes = []
    for _ in range(count):
        try:
            stripe_client.v1.checkout.sessions.list()
            outcomes.append("ok")
        except stripe.RateLimitError as err:
            assert err.error is not None and err.headers is not None
            assert err.http_status == 429 and err.error.code == "rate_limit"
            assert "retry-after" not in {h.lower() for h in err.headers}
            outcomes.append(err.headers["Stripe-Rate-Limited-Reason"])
    return outcomes


def test_account_rate_limit_answers_429_global_rate_without_retry_after(fake_stripe, stripe_client):
    fake_stripe.state.clock = clock = FakeClock()
    fake_stripe.state.faults.update({"rps": 5})
    assert _burst_of_lists(stripe_client, 8) == ["ok"] * 5 + ["global-rate"] * 3
    assert _admin(fake_stripe, "stats")["rate_limited"] == 3
    clock.sleep(0.99)
    assert _burst_of_lists(stripe_client, 1) == ["global-rate"]
    clock.sleep(0.02)  # a second after the first five
    assert _burst_of_lists(stripe_client, 5) == ["ok"] * 5


def test_operation_limit_is_per_named_operation(fake_stripe, stripe_client):
    fake_stripe.state.faults.update({"rps": 100, "operation_rps": 3})
    session = _new(stripe_client)
    assert _burst_of_lists(stripe_client, 5) == ["ok"] * 3 + ["endpoint-rate"] * 2
    # another operation of the same account has a budget of its own
    assert stripe_client.v1.checkout.sessions.expire(session.id).status == "expired"


def test_burst_switches_to_a_token_bucket_that_refills_at_the_rate(fake_stripe, stripe_client):
    fake_stripe.state.clock = clock = FakeClock()
    fake_stripe.state.faults.update({"rps": 2, "burst": 3})
    assert _burst_of_lists(stripe_client, 4) == ["ok"] * 3 + ["global-rate"]
    clock.sleep(0.6)  # 1.2 tokens back at 2 a second: one fits, the next not for 0.4 s more
    assert _burst_of_lists(stripe_client, 2) == ["ok", "global-rate"]
    clock.sleep(0.5)  # 0.2 + 1.0 tokens: again one fits
    assert _burst_of_lists(stripe_client, 2) == ["ok", "global-rate"]


def test_lock_timeout_is_a_429_without_a_limit_reason(fake_stripe, stripe_client):
    session = _new(stripe_client)
    fake_stripe.state.faults.update({"lock_rate": 1})
    with pytest.raises(stripe.RateLimitError) as caught:
        stripe_client.v1.checkout.sessions.expire(session.id)
    assert caught.value.error is not None and caught.value.headers is not None
    assert caught.value.error.code == "lock_timeout"
    assert "Stripe-Rate-Limited-Reason" not in caught.value.headers
    assert _admin(fake_stripe, "stats")["lock_timeouts"] == 1


def test_injected_server_errors_say_should_retry(fake_stripe, stripe_client):
    _admin(fake_stripe, "faults", {"fail_rate": 1})
    with pytest.raises(stripe.APIError) as err:
        stripe_client.v1.checkout.sessions.list()
    assert err.value.http_status == 500
    assert err.value.headers is not None
    assert err.value.headers.get("stripe-should-retry") == "true"


def test_race_completes_the_session_before_expire(fake_stripe, stripe_client):
    session = _new(stripe_client)
    fake_stripe.state.faults.update({"race_rate": 1})
    with pytest.raises(stripe.InvalidRequestError) as err:
        stripe_client.v1.checkout.sessions.expire(session.id)
    assert "status of `complete`" in str(err.value)
    assert stripe_client.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"


def test_spawn_creates_sessions_while_expiring(fake_stripe, stripe_client):
    fake_stripe.state.seed(open_=4)
    fake_stripe.state.faults.update({"spawn_rate": 1.5})  # one, and half the time two
    for session in stripe_client.v1.checkout.sessions.list({"status": "open"}).data:
        stripe_client.v1.checkout.sessions.expire(session.id)
    stats = _admin(fake_stripe, "stats")
    assert 4 <= stats["spawned"] <= 8 and stats["open_total"] == stats["spawned"]


def test_latency_is_applied(fake_stripe, stripe_client):
    fake_stripe.state.faults.update({"latency_ms": 120})
    start = time.perf_counter()
    stripe_client.v1.checkout.sessions.list()
    assert time.perf_counter() - start >= 0.12


# admin ------------------------------------------------------------------------------------------
def test_admin_counts_requests_concurrency_and_expire_calls(fake_stripe, stripe_client):
    fake_stripe.state.seed(open_=20)
    fake_stripe.state.faults.update({"latency_ms": 50})
    ids = [s.id for s in stripe_client.v1.checkout.sessions.list({"limit": 100}).data]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(stripe_client.v1.checkout.sessions.expire, ids))
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.checkout.sessions.expire(ids[0])
    stats = _admin(fake_stripe, "stats")
    assert stats["requests"] == {"list": 1, "expire": 21}
    assert stats["max_in_flight"] >= 2
    assert stats["expire_calls_max_per_session"] == 2 and stats["sessions_expired_twice"] == 0
    assert stats["open_total"] == 0
    assert _admin(fake_stripe, "expire_calls")[ids[0]] == 2


def test_admin_seed_faults_and_reset(fake_stripe):
    stats = _admin(fake_stripe, "seed", {"open": 7, "complete": 2, "account": "acct_9"})
    assert stats["open_sessions"] == {"test:acct_9": 7}
    assert _admin(fake_stripe, "faults", {"rps": 25, "latency_ms": 10})["rps"] == 25
    bad = requests.post(f"{fake_stripe.url}/_admin/faults", json={"nope": 1}, timeout=5)
    assert bad.status_code == 400 and "nope" in bad.json()["error"]
    assert _admin(fake_stripe, "reset", {})["open_total"] == 0


def test_command_line_fake_serves_the_sdk():
    args = ("--open", "120", "--complete", "5", "--latency-ms", "1-3", "--seed", "1")
    with fake_stripe_process(*args) as url:
        client = stripe.StripeClient(TEST_KEY, base_addresses={"api": url})
        open_ids = [
            s.id
            for s in client.v1.checkout.sessions.list(
                {"status": "open", "limit": 100}
            ).auto_paging_iter()
        ]
        assert len(open_ids) == 120


def test_command_line_rejects_bad_latency():
    result = subprocess.run(
        [sys.executable, "-m", "checkout_sweeper", "fake-stripe", "--latency-ms", "400-100"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "latency" in result.stderr


def test_any_well_formed_key_is_accepted_and_a_revoked_one_is_401(fake_stripe):
    import stripe

    fake_stripe.state.seed(open_=2)
    for key in ("sk_test_my_key", "rk_test_51Abc_def", "sk_test_abc123"):
        client = stripe.StripeClient(key, base_addresses={"api": fake_stripe.url})
        assert len(client.v1.checkout.sessions.list({"status": "open"}).data) == 2
    revoked = stripe.StripeClient("sk_test_revoked_key", base_addresses={"api": fake_stripe.url})
    with pytest.raises(stripe.AuthenticationError):
        revoked.v1.checkout.sessions.list()


def test_sessions_expire_by_themselves_at_expires_at(fake_stripe, stripe_client):
    import time

    import requests

    answer = requests.post(f"{fake_stripe.url}/_admin/settings", json={"lifetime_s": 4}, timeout=5)
    assert answer.json()["lifetime_s"] == 4
    fake_stripe.state.seed(open_=4)
    listed = stripe_client.v1.checkout.sessions.list({"status": "open"}).data
    assert len(listed) == 4  # seeding never holds an open session past its expires_at
    assert all(s.expires_at - s.created <= 4 and s.expires_at > time.time() for s in listed)
    time.sleep(4.2)
    assert stripe_client.v1.checkout.sessions.list({"status": "open"}).data == []
    lapsed = stripe_client.v1.checkout.sessions.retrieve(listed[0].id)
    assert lapsed.status == "expired" and lapsed.url is None
    with pytest.raises(stripe.InvalidRequestError, match="status of `expired`"):
        stripe_client.v1.checkout.sessions.expire(listed[1].id)
    assert fake_stripe.state.snapshot()["lapsed"] == 4
    assert fake_stripe.state.stats.expired_by_request == {}


def test_a_restricted_key_gets_stripes_403_for_what_it_lacks(fake_stripe):
    import requests

    fake_stripe.state.seed(open_=2)
    client = stripe.StripeClient("rk_test_51Restricted", base_addresses={"api": fake_stripe.url})
    with pytest.raises(stripe.PermissionError, match="rak_accounts_kyc_basic_read"):
        client.v1.accounts.retrieve_current()
    assert len(client.v1.checkout.sessions.list({"status": "open"}).data) == 2
    settings = {"restricted_lacks": ["account", "webhook_endpoints", "expire"]}
    requests.post(f"{fake_stripe.url}/_admin/settings", json=settings, timeout=5)
    session_id = client.v1.checkout.sessions.list({"status": "open"}).data[0].id
    with pytest.raises(stripe.PermissionError, match="rak_checkout_session_write"):
        client.v1.checkout.sessions.expire(session_id)
    secret = stripe.StripeClient("sk_test_51Secret", base_addresses={"api": fake_stripe.url})
    assert secret.v1.accounts.retrieve_current().id.startswith("acct_")


def test_a_500_saved_for_an_idempotency_key_is_replayed(fake_stripe, stripe_client):
    fake_stripe.state.seed(open_=1)
    fake_stripe.state.faults.update({"saved_fail_rate": 1})
    session_id = stripe_client.v1.checkout.sessions.list({"status": "open"}).data[0].id
    options = {"idempotency_key": "k-1"}
    with pytest.raises(stripe.APIError) as first:
        stripe_client.v1.checkout.sessions.expire(session_id, options=options)
    fake_stripe.state.faults.update({"saved_fail_rate": 0})
    with pytest.raises(stripe.APIError) as again:
        stripe_client.v1.checkout.sessions.expire(session_id, options=options)
    assert first.value.http_status == again.value.http_status == 500
    assert (again.value.headers or {}).get("idempotent-replayed") == "true"
    assert "idempotent-replayed" not in (first.value.headers or {})
    new_key = {"idempotency_key": "k-2"}
    expired = stripe_client.v1.checkout.sessions.expire(session_id, options=new_key)
    assert expired.status == "expired"


def test_expired_events_reach_listening_endpoints_signed_and_retried(fake_stripe, stripe_client):
    import http.server
    import threading

    from checkout_sweeper.fake_stripe.webhooks import new_endpoint

    received: list[stripe.Event] = []
    refusals = [2]  # the receiver's first two answers are 500s: Stripe retries

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            payload = self.rfile.read(int(self.headers["Content-Length"])).decode()
            if refusals[0]:
                refusals[0] -= 1
                self.send_response(500)
            else:
                signature = self.headers["Stripe-Signature"]
                received.append(stripe.Webhook.construct_event(payload, signature, secret))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_port}/hook"
    hook = new_endpoint(False, {"url": url, "enabled_events": ["checkout.session.expired"]})
    other = new_endpoint(False, {"url": url, "enabled_events": ["charge.succeeded"]})
    secret = hook["secret"]
    fake_stripe.state.webhook_endpoints[(False, "")] = [hook, other]
    fake_stripe.state.seed(open_=3)
    for session in stripe_client.v1.checkout.sessions.list({"status": "open"}).data:
        stripe_client.v1.checkout.sessions.expire(session.id)
    assert fake_stripe.state.deliveries.idle(timeout_s=15)
    receiver.shutdown()
    assert len(received) == 3 and {e.type for e in received} == {"checkout.session.expired"}
    assert all(e.data.object.status == "expired" for e in received)
    stats = fake_stripe.state.snapshot()["webhook_deliveries"]
    assert stats == {"delivered": 3, "failed_attempts": 2, "given_up": 0}


def test_the_latency_has_a_tail_a_user_can_set():
    from checkout_sweeper.fake_stripe.faults import Faults

    faults = Faults()
    faults.update({"latency_ms": 600, "tail_rate": 0.05, "tail_factor": 5})
    assert faults.latency_s(lambda: 0.5) == pytest.approx(0.6)  # outside the tail
    assert faults.latency_s(lambda: 0.01) == pytest.approx(3.0)  # in it: five times slower
    draws = iter([0.5, 0.01])  # jitter first, then the tail
    faults.update({"jitter_ms": 200})
    assert faults.latency_s(lambda: next(draws)) == pytest.approx(3.5)
    rng = random.Random(7)
    faults.update({"jitter_ms": 0})
    mean = sum(faults.latency_s(rng.random) for _ in range(4000)) / 4000
    assert 0.67 < mean < 0.77  # 95% at 600 ms, 5% at 3 s: 720 ms on average
    with pytest.raises(ValueError, match="tail_rate"):
        faults.update({"tail_rate": 1.5})


def test_fake_stripe_takes_a_latency_tail_on_its_command_line():
    from click.testing import CliRunner

    from checkout_sweeper.fake_stripe.cli import fake_stripe_command

    outcome = CliRunner().invoke(fake_stripe_command, ["--tail-rate", "2"])
    assert outcome.exit_code == 2 and "--tail-rate" in outcome.output
    outcome = CliRunner().invoke(fake_stripe_command, ["--tail-factor", "0.5"])
    assert outcome.exit_code == 2 and "--tail-factor" in outcome.output
