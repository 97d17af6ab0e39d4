"""``/v1/schedules``: a user's recurring scoped sweeps over HTTP; owner only."""

from __future__ import annotations

import pytest
import requests

from checkout_sweeper.store.database import Database
from checkout_sweeper.web.openapi.document import openapi_spec

from helpers import RunningApi, conforms

SPEC = openapi_spec("/v1")


def _call(
    api: RunningApi, method: str, path: str, token: str, body: object = None
) -> requests.Response:
    response = requests.request(
        method,
        f"{api.url}/v1/schedules{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    conforms(response, SPEC)
    return response


def test_a_user_adds_lists_and_removes_their_schedule(api):
    token = api.token(api.add_user())
    added = _call(api, "POST", "", token, {"cron": "0 3 * * *", "metadata": {"env": "ci"}})
    assert added.status_code == 201, added.text
    schedule = added.json()["data"]
    assert schedule["cron"] == "0 3 * * *" and schedule["scope"]["metadata"] == {"env": "ci"}
    assert added.headers["Location"] == f"/v1/schedules/{schedule['id']}"
    listed = _call(api, "GET", "", token).json()["data"]["data"]
    assert [s["id"] for s in listed] == [schedule["id"]]
    assert _call(api, "DELETE", f"/{schedule['id']}", token).status_code == 200
    assert _call(api, "GET", "", token).json()["data"]["data"] == []


def test_another_users_schedule_is_not_found(api):
    alice = api.token(api.add_user("a@example.com"))
    bob = api.token(api.add_user("b@example.com"))
    schedule = _call(api, "POST", "", alice, {"every": "1h"}).json()["data"]
    assert _call(api, "GET", "", bob).json()["data"]["data"] == []
    assert _call(api, "DELETE", f"/{schedule['id']}", bob).status_code == 404
    assert len(_call(api, "GET", "", alice).json()["data"]["data"]) == 1


def test_a_bad_schedule_is_400_naming_every_bad_field(api):
    token = api.token(api.add_user())
    bad = _call(api, "POST", "", token, {"every": "5s", "limit": 0, "customer": "bob"})
    assert bad.status_code == 400
    for field in ("every", "limit", "customer"):
        assert field in bad.json()["message"]
    both = _call(api, "POST", "", token, {"every": "1h", "cron": "0 3 * * *"})
    assert both.status_code == 400 and "not both" in both.json()["message"]
    neither = _call(api, "POST", "", token, {"older_than": "2h"})
    assert neither.status_code == 400
    assert neither.json()["message"] == (
        "Invalid schedule: every: give a period (every) or a cron expression (cron)."
    )
    assert _call(api, "GET", "", token).json()["data"]["data"] == []


@pytest.mark.services
def test_what_postgresql_would_refuse_is_a_400_or_404_naming_it(start_api, postgres_url):
    """Values SQLite stores and PostgreSQL refuses (an integer past its column, a string past
    its length, a NUL byte), and a cron that names no date: each a 4xx saying what is wrong."""
    Database(postgres_url).upgrade()
    api = start_api(DATABASE_URL=postgres_url)
    token = api.token(api.add_user())
    for body, words in [
        ({"every": "25000d"}, "every: the period must be from 60s (1m) to 365d, got '25000d'"),
        ({"every": "99999999999999999w"}, "to 365d"),
        ({"cron": "0 0 * * *" + " " * 120}, "cron: a cron expression is at most 120 printable"),
        ({"cron": "0 0 31 2 *"}, "cron: the cron expression '0 0 31 2 *' names no date"),
        ({"cron": "0 0 * * *\u0000"}, "cron: a cron expression is at most 120 printable"),
    ]:
        refused = _call(api, "POST", "", token, body)
        assert refused.status_code == 400 and words in refused.json()["message"], refused.text
    for odd in ("%00", "sch_%00", "sch_0a1b2c3d4e5f6071829%00"):
        assert _call(api, "DELETE", f"/{odd}", token).status_code == 404
    added = _call(api, "POST", "", token, {"cron": "0 0 29 2 *", "every": None})
    assert added.status_code == 201, added.text
    assert _call(api, "DELETE", f"/{added.json()['data']['id']}", token).status_code == 200


def test_a_user_with_a_stripe_customer_cannot_add_a_schedule(api):
    token = api.token(api.add_user(customer="cus_Q1w2e3r4"))
    refused = _call(api, "POST", "", token, {"every": "1h"})
    assert refused.status_code == 409, refused.text
    assert "Stripe customer" in refused.json()["message"]
    assert _call(api, "GET", "", token).json()["data"]["data"] == []


def test_a_user_keeps_at_most_the_allowed_number_of_schedules(start_api):
    api = start_api(SWEEPER_MAX_SCHEDULES="3")
    token = api.token(api.add_user())
    for _ in range(3):
        assert _call(api, "POST", "", token, {"every": "1h"}).status_code == 201
    refused = _call(api, "POST", "", token, {"every": "1h"})
    assert refused.status_code == 409 and "SWEEPER_MAX_SCHEDULES" in refused.json()["message"]
    other = api.token(api.add_user("other@example.com"))
    assert _call(api, "POST", "", other, {"every": "1h"}).status_code == 201  # their own count
