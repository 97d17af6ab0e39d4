"""``POST /v1/sweeps``: a scoped sweep asked for over HTTP, validated whole, idempotent."""

from __future__ import annotations

import requests

from checkout_sweeper.web.openapi.document import openapi_spec
from test_scopes import open_ids

from harness import sweep_when_ended
from helpers import RunningApi, conforms

SPEC = openapi_spec("/v1")


def _post(
    api: RunningApi,
    token: str | None,
    body: object = None,
    *,
    key: str | None = None,
    raw: str | None = None,
) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if key is not None:
        headers["Idempotency-Key"] = key
    if raw is not None:
        headers["Content-Type"] = "application/json"
    response = requests.post(
        f"{api.url}/v1/sweeps", json=body, data=raw, headers=headers, timeout=30
    )
    conforms(response, SPEC)
    return response


def _ended(api: RunningApi, started: requests.Response, token: str) -> dict:
    return sweep_when_ended(api.url, started.json()["data"]["sweep_id"], token, timeout=60)


def test_a_scoped_sweep_expires_exactly_its_scope_and_shows_it(api, fake_stripe, shop):
    token = api.token(api.add_user())
    body = {"older_than": "4h", "metadata": {"run": "ci-7"}}
    started = _post(api, token, body)
    assert started.status_code == 202, started.text
    assert started.json()["data"]["status"] == "queued"  # the consumer takes it up at once
    run = _ended(api, started, token)
    wanted = {
        sid
        for sid, f in shop.items()
        if f["metadata"]["run"] == "ci-7"
        and f["created"] < run["result"]["scope"]["created_before"]
    }
    assert run["status"] == "succeeded" and run["trigger"] == "api"
    assert run["scope"]["older_than"] == "4h" and run["scope"]["metadata"] == {"run": "ci-7"}
    assert run["result"]["expired_count"] == len(wanted) > 0
    assert open_ids(fake_stripe) == set(shop) - wanted
    assert run["result"]["out_of_scope_open_count"] == len(shop) - len(wanted)


def test_a_dry_run_with_a_limit_expires_nothing(api, fake_stripe, shop):
    token = api.token(api.add_user())
    started = _post(api, token, {"customer": "cus_Alice001", "limit": 2, "dry_run": True})
    run = _ended(api, started, token)
    assert run["dry_run"] and len(run["result"]["would_expire"]) == 2
    assert open_ids(fake_stripe) == set(shop)


def test_a_bad_body_is_400_naming_every_bad_field_and_spends_nothing(api, fake_stripe, shop):
    token = api.token(api.add_user())
    bad = _post(
        api,
        token,
        {"older_than": "soon", "customer": 7, "limit": -1, "dry_run": "yes", "colour": "red"},
    )
    assert bad.status_code == 400
    message = bad.json()["message"]
    for field in ("older_than", "customer", "limit", "dry_run", "colour"):
        assert field in message
    assert _post(api, token, raw="[1, 2]").status_code == 400
    assert _post(api, token, raw="{not json").status_code == 400
    assert fake_stripe.state.snapshot()["requests_total"] == 0
    for _ in range(3):  # the whole hourly quota is still there
        started = _post(api, token, {"limit": 1, "dry_run": True})
        assert started.status_code == 202, started.text
        _ended(api, started, token)
    spent = _post(api, token, {"limit": 1, "dry_run": True})
    assert spent.status_code == 429 and "Retry-After" in spent.headers


def test_the_same_idempotency_key_and_body_answer_with_the_first_sweep(api, fake_stripe, shop):
    token = api.token(api.add_user())
    body = {"customer": "cus_Bob00002", "dry_run": True}
    first = _post(api, token, body, key="ci-run-42")
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    _ended(api, first, token)
    again = _post(api, token, body, key="ci-run-42")
    assert again.status_code == 202 and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    other = _post(api, token, {**body, "limit": 1}, key="ci-run-42")
    assert other.status_code == 422 and first.json()["data"]["sweep_id"] in other.json()["message"]
    listed = requests.get(
        f"{api.url}/v1/sweeps", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).json()["data"]["data"]
    assert len(listed) == 1  # one sweep for three requests


def test_another_users_key_is_their_own_and_a_bad_key_is_refused(api, fake_stripe, shop):
    alice, bob = api.token(api.add_user("a@example.com")), api.token(api.add_user("b@example.com"))
    first = _post(api, alice, {"dry_run": True}, key="same")
    _ended(api, first, alice)
    second = _post(api, bob, {"dry_run": True}, key="same")
    assert second.status_code == 202 and "Idempotent-Replayed" not in second.headers
    assert _post(api, alice, {}, key="x" * 256).status_code == 400


def test_without_a_token_nothing_happens(api, fake_stripe, shop):
    assert _post(api, None, {"limit": 1}).status_code == 401
    assert open_ids(fake_stripe) == set(shop)


def test_a_user_with_a_stripe_customer_is_409_on_every_body_and_nothing_is_expired(
    api, fake_stripe, shop
):
    token = api.token(api.add_user(customer="cus_Q1w2e3r4"))
    for body in ({}, {"metadata": {"run": "ci-7"}}, {"dry_run": True}, {"accounts": "all"}):
        refused = _post(api, token, body)
        assert refused.status_code == 409, (body, refused.text)
        assert "Stripe customer (cus_Q1w2e3r4)" in refused.json()["message"]
    assert open_ids(fake_stripe) == set(shop)
    assert (
        requests.get(
            f"{api.url}/v1/sweeps", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ).json()["data"]["data"]
        == []
    )
