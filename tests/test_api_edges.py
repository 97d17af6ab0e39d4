"""The endpoint at its edges: odd user ids, who spends the quota, headers of every answer,
large tokens, clock skew."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import pytest
import requests

from checkout_sweeper.fake_stripe import FakeStripeServer

from harness import wait_for_expires
from helpers import LIVE_KEY, RunningApi

ODD_SUBS = [2**40, "9" * 20, 2**70, "²", "03", "٣", "\uff13", " 3", "-3", "3.0", "x" * 5000]
QUOTA_HEADERS = {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}


@pytest.mark.parametrize("sub", ODD_SUBS)
def test_an_id_no_row_can_have_is_404_never_500(api, sub):
    api.add_user()
    response = api.sweep(api.token(None, sub=sub))
    assert response.status_code == 404 and response.json()["message"] == "User not found."


def test_other_spellings_of_a_spent_id_never_start_a_sweep(api, fake_stripe):
    uid = api.add_user()
    assert [api.sweep(api.token(uid)).status_code for _ in range(3)] == [200, 200, 200]
    fake_stripe.state.seed(open_=5)
    for sub in (f"0{uid}", f"00{uid}", chr(0x0660 + uid), chr(0xFF10 + uid), uid, str(uid)):
        assert api.sweep(api.token(None, sub=sub)).status_code in (404, 429), sub
    assert fake_stripe.state.snapshot()["open_total"] == 5


def test_a_live_mode_refusal_spends_no_quota(start_api):
    api = start_api(STRIPE_API_KEY=LIVE_KEY)
    token = api.token(api.add_user())
    assert [api.sweep(token).status_code for _ in range(4)] == [403] * 4
    state = api.state
    state.settings = dataclasses.replace(state.settings, allow_live_mode=True)
    assert [api.sweep(token).status_code for _ in range(4)] == [200, 200, 200, 429]


def test_a_busy_account_refusal_spends_no_quota(api, fake_stripe):
    first, second = api.add_user("a@example.com"), api.add_user("b@example.com")
    api.sweep(api.token(first))  # the account is known from now on
    fake_stripe.state.seed(open_=40)
    fake_stripe.state.faults.update({"latency_ms": 60})
    runner = threading.Thread(target=api.sweep, args=(api.token(first),))
    runner.start()
    wait_for_expires(fake_stripe, 1, 10)
    token = api.token(second)
    assert [api.sweep(token).status_code for _ in range(4)] == [409] * 4
    runner.join()
    fake_stripe.state.faults.update({"latency_ms": 0})
    assert [api.sweep(token).status_code for _ in range(4)] == [200, 200, 200, 429]


def _answers_of_every_status(
    start_api: Callable[..., RunningApi], fake_stripe: FakeStripeServer
) -> dict[str, requests.Response]:
    api = start_api()
    uid, customer = api.add_user(), api.add_user("c@example.com", customer="cus_test_1")
    answers = {"401": api.sweep(None), "400": api.sweep(api.token(uid), path="?x=1")}
    answers["404"] = api.sweep(api.token(999_999))
    answers["409 customer"] = api.sweep(api.token(customer))
    answers["200"] = api.sweep(api.token(uid))
    api.sweep(api.token(uid))
    api.sweep(api.token(uid))
    answers["429"] = api.sweep(api.token(uid))
    live = start_api(STRIPE_API_KEY=LIVE_KEY)
    answers["403"] = live.sweep(live.token(live.add_user()))
    down = start_api(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    answers["503"] = down.sweep(down.token(down.add_user()))
    broken = start_api(STRIPE_API_KEY="sk_test_revoked_key")
    answers["500"] = broken.sweep(broken.token(broken.add_user()))
    return answers


def test_the_headers_of_every_status(start_api, fake_stripe):
    answers = _answers_of_every_status(start_api, fake_stripe)
    for name, response in answers.items():
        status = int(name.split()[0])
        assert response.status_code == status, (name, response.text)
        assert ("Retry-After" in response.headers) == (status in (429, 503)), name
        counted = status in (200, 429)  # answers given after the quota was counted
        present = QUOTA_HEADERS & set(response.headers)
        assert present == (QUOTA_HEADERS if counted else set()), name
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["Content-Type"] == "application/json"


def test_clock_skew_allowed_is_jwt_leeway_s(start_api):
    default = start_api()
    late = default.token(default.add_user(), ttl=-10)  # expired ten seconds ago
    assert default.sweep(late).status_code == 200  # within the default 30 s
    strict = start_api(JWT_LEEWAY_S="0")
    late = strict.token(strict.add_user(), ttl=-10)
    response = strict.sweep(late)
    assert response.status_code == 401 and "expired" in response.json()["message"]
