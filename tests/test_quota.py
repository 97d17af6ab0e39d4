"""The per-user quota over HTTP is honest: a 202 is a call taken at once (never a "rate limit
exceeded" later), a sweep that expired anything spends its call whatever ends it, a fleet is
one call, and a sweep that could do nothing for a reason of the server's gives it back."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from harness import expires_seen, sweep_when_ended, wait_until
from helpers import RunningApi


def _post(api: RunningApi, token: str, body: dict) -> requests.Response:
    return requests.post(
        f"{api.url}/v1/sweeps", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _ran(api: RunningApi, token: str) -> list[dict]:
    answer = requests.get(
        f"{api.url}/v1/sweeps", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    return answer.json()["data"]["data"]


def _three_calls_in_all(api: RunningApi, token: str, answers: list[requests.Response]) -> None:
    """Parallel calls took at most the hour's three calls, each 202 ran, and exactly the calls
    they did not take are left. A call that met a sweep already running is a 409 (checked
    before the quota) and spends nothing; every other call past the third is a 429."""
    codes = [answer.status_code for answer in answers]
    assert set(codes) <= {202, 409, 429} and 1 <= codes.count(202) <= 3, codes
    for answer in answers:
        if answer.status_code == 202:
            ended = sweep_when_ended(api.url, answer.json()["data"]["sweep_id"], token)
            assert ended["status"] == "succeeded", ended  # never "rate limit exceeded" later
    left = 3 - codes.count(202)
    later = []
    for _ in range(left + 1):
        answer = _post(api, token, {"dry_run": True})
        later.append(answer.status_code)
        if answer.status_code == 202:
            sweep_when_ended(api.url, answer.json()["data"]["sweep_id"], token)
    assert later == [202] * left + [429], (codes, later)


def test_ten_parallel_calls_take_at_most_three_202s_and_every_202_runs(api, fake_stripe):
    fake_stripe.state.seed(open_=5)
    token = api.token(api.add_user())
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: _post(api, token, {"dry_run": True}), range(10)))
    _three_calls_in_all(api, token, answers)


def test_sweeps_canceled_after_expiring_sessions_spend_the_quota(api, fake_stripe):
    fake_stripe.state.seed(open_=900)
    fake_stripe.state.faults.update({"latency_ms": 60})
    token = api.token(api.add_user())
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(3):
        wanted = expires_seen(fake_stripe) + 10
        started = _post(api, token, {})
        assert started.status_code == 202, started.text
        wait_until(lambda: expires_seen(fake_stripe) >= wanted, 30, what="expires")  # noqa: B023
        location = f"{api.url}{started.headers['Location']}"
        assert requests.delete(location, headers=headers, timeout=30).status_code in (200, 202)
        ended = sweep_when_ended(api.url, started.json()["data"]["sweep_id"], token)
        assert ended["status"] == "canceled" and ended["expired_count"] > 0
    fourth = _post(api, token, {})
    assert fourth.status_code == 429 and fourth.headers["X-RateLimit-Remaining"] == "0"
    wait = fourth.headers["Retry-After"]
    assert fourth.json()["message"].endswith(f"retry in {wait} s."), fourth.json()


def test_a_sweep_that_could_do_nothing_gives_its_call_back(api, fake_stripe):
    fake_stripe.state.seed(open_=5)
    token = api.token(api.add_user())
    first = _post(api, token, {"dry_run": True})  # one call spent; the account is known
    sweep_when_ended(api.url, first.json()["data"]["sweep_id"], token)
    fake_stripe.state.faults.update({"fail_rate": 1})  # then Stripe answers 500 to everything
    for _ in range(2):  # four failures: more than the two calls left
        assert api.sweep(token).status_code == 500  # in the request
        started = _post(api, token, {})  # and in the background
        assert started.status_code == 202, started.text
        ended = sweep_when_ended(api.url, started.json()["data"]["sweep_id"], token)
        assert ended["status"] == "failed" and ended["expired_count"] == 0
    fake_stripe.state.faults.update({"fail_rate": 0})
    assert [api.sweep(token).status_code for _ in range(3)] == [200, 200, 429]


def test_six_parallel_fleets_are_three_202s_and_three_fleets(api, fake_stripe):
    fake_stripe.state.connect_accounts(2, open_=3)
    token = api.token(api.add_user())
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: _post(api, token, {"accounts": "all"}), range(6)))
    assert sorted(answer.status_code for answer in answers) == [202] * 3 + [429] * 3
    fleets = [run for run in _ran(api, token) if run["fleet"]]
    assert len(fleets) == 3


def test_a_fleet_of_no_connected_accounts_is_409_and_spends_nothing(api, fake_stripe):
    fake_stripe.state.seed(open_=4)
    token = api.token(api.add_user())
    refused = _post(api, token, {"accounts": "all"})
    assert refused.status_code == 409 and "no connected accounts" in refused.json()["message"]
    assert _ran(api, token) == []
    assert _post(api, token, {"dry_run": True}).headers["X-RateLimit-Remaining"] == "2"


@pytest.mark.services
def test_the_quota_kept_in_redis_is_as_honest(start_api, fake_stripe, redis_url):
    """Taken atomically in Redis, and given back there, as in memory."""
    import os

    prefix = os.environ["RATELIMIT_KEY_PREFIX"]  # this test's keys, removed after it
    api = start_api(RATELIMIT_STORAGE_URI=redis_url, RATELIMIT_KEY_PREFIX=prefix)
    fake_stripe.state.seed(open_=5)
    token = api.token(api.add_user())
    fake_stripe.state.faults.update({"fail_rate": 1})
    assert api.sweep(token).status_code == 500  # nothing done: its call comes back
    fake_stripe.state.faults.update({"fail_rate": 0})
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _post(api, token, {"dry_run": True}), range(8)))
    _three_calls_in_all(api, token, answers)
