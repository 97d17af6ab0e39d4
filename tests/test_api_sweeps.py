"""Sweeps longer than a request: ``Prefer: respond-async`` and the sweep resources."""

from __future__ import annotations

import time

import requests

from checkout_sweeper.web.openapi.document import openapi_spec

from harness import expires_seen, wait_until
from helpers import RunningApi, conforms

ASYNC = {"Prefer": "respond-async"}


SPEC = openapi_spec("/v1")


def _get(api: RunningApi, path: str, token: str | None, **params: str | int) -> requests.Response:
    """A GET whose answer is checked against /openapi.json, whatever its status."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.get(f"{api.url}{path}", headers=headers, params=params, timeout=30)
    conforms(response, SPEC)
    return response


def _poll_until_done(api: RunningApi, location: str, token: str) -> list[dict]:
    seen: list[dict] = []

    def ended() -> bool:
        answer = _get(api, location, token)
        assert answer.status_code == 200, answer.text
        seen.append(answer.json()["data"])
        return seen[-1]["status"] not in ("queued", "running")

    wait_until(ended, 60, interval=0.2, what="the sweep to end")
    return seen


def test_respond_async_answers_202_and_the_sweep_goes_on(api, fake_stripe):
    fake_stripe.state.seed(open_=60)
    fake_stripe.state.faults.update({"latency_ms": 30})
    token = api.token(api.add_user())
    started = time.monotonic()
    accepted = api.sweep(token, headers=ASYNC)
    conforms(accepted, SPEC)
    assert accepted.status_code == 202 and time.monotonic() - started < 2
    assert accepted.headers["Preference-Applied"] == "respond-async"
    location = accepted.headers["Location"]
    body = accepted.json()
    assert location == f"/v1/sweeps/{body['data']['sweep_id']}" == body["data"]["location"]
    assert "Retry-After" not in accepted.headers and "X-RateLimit-Remaining" in accepted.headers
    seen = _poll_until_done(api, location, token)
    running = [s["expired_count"] for s in seen if s["status"] == "running"]
    assert running and running == sorted(running)  # counters only grow
    final = seen[-1]
    assert final["status"] == "succeeded" and final["result"]["remaining_open_count"] == 0
    assert final["result"]["expired_count"] == 60 == final["expired_count"]
    assert fake_stripe.state.snapshot()["open_total"] == 0
    measured = final["result"]  # what the sweep measured of Stripe, and the pool it settled on
    assert 30 <= measured["latency_ms"] < 1000 and measured["concurrency"] >= 4
    assert 1 <= measured["most_in_flight"] <= 128


def test_the_sessions_of_a_sweep_page_through_every_outcome(api, fake_stripe):
    fake_stripe.state.seed(open_=23)
    token = api.token(api.add_user())
    sweep_id = api.sweep(token).json()["data"]["sweep_id"]
    path = f"/v1/sweeps/{sweep_id}/sessions"
    ids, after = [], None
    while True:
        page = _get(api, path, token, limit=5, **({"starting_after": after} if after else {}))
        assert page.status_code == 200, page.text
        data = page.json()["data"]
        assert data["object"] == "list" and len(data["data"]) <= 5
        ids += [row["session_id"] for row in data["data"]]
        if not data["has_more"]:
            break
        after = ids[-1]
    assert len(ids) == len(set(ids)) == 23
    with fake_stripe.state.lock:
        assert set(ids) == set(fake_stripe.state.stats.expired_by_request)
    failed = _get(api, path, token, outcome="failed").json()["data"]
    assert failed["data"] == [] and failed["has_more"] is False


def test_another_users_sweep_is_404_and_no_token_is_401(api, fake_stripe):
    owner, other = api.token(api.add_user("o@example.com")), api.token(api.add_user("x@e.com"))
    sweep_id = api.sweep(owner).json()["data"]["sweep_id"]
    for path in (f"/v1/sweeps/{sweep_id}", f"/v1/sweeps/{sweep_id}/sessions"):
        assert _get(api, path, owner).status_code == 200
        assert _get(api, path, other).status_code == 404
        assert _get(api, path, None).status_code == 401
    assert _get(api, "/v1/sweeps", other).json()["data"]["data"] == []


def test_reading_sweeps_never_spends_the_sweep_quota(api, fake_stripe):
    token = api.token(api.add_user())
    ids = [api.sweep(token).json()["data"]["sweep_id"] for _ in range(3)]
    for _ in range(10):
        listed = _get(api, "/v1/sweeps", token, limit=2)
        assert listed.status_code == 200
    data = listed.json()["data"]
    assert [run["id"] for run in data["data"]] == ids[::-1][:2] and data["has_more"] is True
    assert api.sweep(token).status_code == 429


def test_bad_parameters_of_the_sweep_resources_are_400(api, fake_stripe):
    token = api.token(api.add_user())
    sweep_id = api.sweep(token).json()["data"]["sweep_id"]
    assert _get(api, "/v1/sweeps", token, limit=0).status_code == 400
    assert _get(api, "/v1/sweeps", token, page=2).status_code == 400
    path = f"/v1/sweeps/{sweep_id}/sessions"
    assert _get(api, path, token, outcome="nope").status_code == 400
    assert _get(api, path, token, starting_after="cs_test_unknown").status_code == 404


def test_a_running_sweep_says_how_much_it_found_and_when_the_listing_is_complete(api, fake_stripe):
    fake_stripe.state.seed(open_=250)  # three pages: the last is listed once 150 are handled
    fake_stripe.state.faults.update({"latency_ms": 40})
    token = api.token(api.add_user())
    seen = _poll_until_done(api, api.sweep(token, headers=ASYNC).headers["Location"], token)
    running = [s for s in seen if s["status"] == "running"]
    assert any(not s["listing_complete"] and 0 < s["found_count"] < 250 for s in running)
    for snapshot in running:
        done = snapshot["expired_count"] + snapshot["already_closed_count"]
        assert done <= snapshot["found_count"]
        if snapshot["listing_complete"]:
            assert snapshot["found_count"] == 250
    assert seen[-1]["listing_complete"] and seen[-1]["found_count"] == 250


def _delete(api: RunningApi, path: str, token: str) -> requests.Response:
    response = requests.delete(
        f"{api.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    conforms(response, SPEC)
    return response


def test_delete_cancels_a_running_sweep_within_seconds_and_nothing_is_sent_after(api, fake_stripe):
    fake_stripe.state.seed(open_=400)
    fake_stripe.state.faults.update({"latency_ms": 100})
    owner, other = api.token(api.add_user("a@example.com")), api.token(api.add_user("b@e.com"))
    location = api.sweep(owner, headers=ASYNC).headers["Location"]
    wait_until(lambda: expires_seen(fake_stripe) >= 20, 30, what="the sweep to expire some")
    assert _delete(api, location, other).status_code == 404  # the owner's alone
    counted = _cancels_counted()
    started = time.monotonic()
    canceled = _delete(api, location, owner)
    assert canceled.status_code == 200 and time.monotonic() - started < 3.5, canceled.text
    data = canceled.json()["data"]
    assert data["status"] == "canceled" and data["finished_at"] is not None
    assert data["error"] == "the sweep was canceled by its owner"
    sent = expires_seen(fake_stripe)
    time.sleep(1.5)
    assert expires_seen(fake_stripe) == sent  # nothing reaches Stripe once canceled
    assert 0 < fake_stripe.state.snapshot()["open_total"] < 400
    recorded = _get(api, f"{location}/sessions", owner, limit=100).json()["data"]["data"]
    assert len(recorded) == min(100, data["expired_count"] + data["already_closed_count"])
    again = _delete(api, location, owner)  # an ended sweep, canceled included: nothing to do
    assert again.status_code == 409 and "already ended (canceled)" in again.json()["message"]
    assert _cancels_counted() == counted + 1  # the one cancel, not the refused second


def _cancels_counted() -> float:
    from prometheus_client import REGISTRY

    name = "checkout_sweeper_sweeps_canceled_total"
    return REGISTRY.get_sample_value(name, {"door": "api"}) or 0.0


def test_delete_of_a_sweep_that_ended_is_a_409(api, fake_stripe):
    fake_stripe.state.seed(open_=3)
    token = api.token(api.add_user())
    sweep_id = api.sweep(token).json()["data"]["sweep_id"]
    answer = _delete(api, f"/v1/sweeps/{sweep_id}", token)
    assert answer.status_code == 409 and "already ended (succeeded)" in answer.json()["message"]
