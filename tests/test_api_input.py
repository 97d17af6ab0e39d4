"""Bad input over HTTP: each one a 4xx in the error envelope that names what is wrong, with
nothing started or spent; and a body read whatever its framing, a chunked one through the
real ``serve`` (gunicorn) too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.web.body import MAX_BODY_BYTES
from checkout_sweeper.web.openapi.document import openapi_spec

from harness import expires_seen, serving, sweep_when_ended, sweeper_env
from helpers import RunningApi, conforms, mint, run_command

SPEC = openapi_spec("/v1")
JSON = {"Content-Type": "application/json"}


def _post(
    api: RunningApi, token: str, data: bytes | Iterator[bytes], path: str = "/v1/sweeps"
) -> requests.Response:
    headers = {**JSON, "Authorization": f"Bearer {token}"}
    return requests.post(api.url + path, data=data, headers=headers, timeout=30)


def _refused(response: requests.Response, status: int, *words: str) -> str:
    assert response.status_code == status, response.text
    message = conforms(response, SPEC)["message"]
    for word in words:
        assert word in message, message
    return message


def _nothing_started(api: RunningApi, token: str, fake_stripe: FakeStripeServer) -> None:
    listed = requests.get(
        f"{api.url}/v1/sweeps", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert listed.json()["data"]["data"] == []
    assert expires_seen(fake_stripe) == 0


def test_a_key_given_twice_is_refused_not_the_last_one_taken(api, fake_stripe):
    """``"dry_run": true, "dry_run": false`` would be a real sweep if the last one won."""
    fake_stripe.state.seed(open_=3)
    token = api.token(api.add_user())
    twice = _post(api, token, b'{"dry_run": true, "limit": 1, "dry_run": false}')
    _refused(twice, 400, "'dry_run' more than once")
    nested = _post(api, token, b'{"dry_run": true, "metadata": {"k": "a", "k": "b"}}')
    _refused(nested, 400, "'k' more than once")
    _nothing_started(api, token, fake_stripe)


def test_an_unknown_field_is_a_400_naming_every_field_the_body_takes(api, fake_stripe):
    token = api.token(api.add_user())
    answer = _post(api, token, b'{"dryrun": true}')
    message = _refused(answer, 400, "dryrun: unknown field", "dry_run", "accounts", "older_than")
    assert "metadata" in message
    _nothing_started(api, token, fake_stripe)


def test_a_body_over_64_kb_is_413(api, fake_stripe):
    token = api.token(api.add_user())
    big = json.dumps({"dry_run": True, "metadata": {"k": "x" * MAX_BODY_BYTES}}).encode()
    _refused(_post(api, token, big), 413, "64 KB")
    chunks = (big[i : i + 4096] for i in range(0, len(big), 4096))  # no Content-Length
    _refused(_post(api, token, chunks), 413, "64 KB")
    _refused(_post(api, token, big, "/v1/schedules"), 413, "64 KB")
    _nothing_started(api, token, fake_stripe)


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 60_000,  # deeper than Python's parser recurses, within 64 KB
        b'{"metadata": ' + b'{"a": ' * 10 + b'"x"' + b"}" * 11,
    ],
    ids=["deeper-than-the-parser", "deeper-than-any-body"],
)
def test_json_nested_too_deep_is_400(api, fake_stripe, body):
    token = api.token(api.add_user())
    _refused(_post(api, token, body), 400, "levels deep")
    _refused(_post(api, token, body, "/v1/schedules"), 400, "levels deep")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"limit": NaN}', ["NaN is not a JSON number"]),
        (b'{"limit": Infinity}', ["Infinity is not a JSON number"]),
        (b'{"limit": 1', ["JSON object", "line 1"]),
        (b"[1]", ["got an array"]),
        (b"\xff\xfe\x00", ["JSON object"]),
    ],
)
def test_a_body_that_is_not_one_json_object_is_400_saying_so(api, fake_stripe, body, words):
    token = api.token(api.add_user())
    _refused(_post(api, token, body), 400, *words)
    _nothing_started(api, token, fake_stripe)


def test_values_beyond_their_bounds_are_400_naming_the_bounds(api, fake_stripe):
    token = api.token(api.add_user())
    body = {"created_before": 1e300, "limit": 1e300, "older_than": "99999999999999999w"}
    message = _refused(
        _post(api, token, json.dumps(body).encode()),
        400,
        "created_before: expected a Unix time in seconds from 946684800 (2000-01-01) to "
        "4102444800 (2100-01-01)",
        "limit: expected a whole number of sessions from 1 to 1,000,000",
        "older_than: sessions live at most 24 hours",
        "expected a duration from 1s to 24h",
    )
    assert "99999999999999999w" in message
    _nothing_started(api, token, fake_stripe)


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_a_doubled_slash_is_a_json_404_not_a_redirect(api, method):
    token = api.token(api.add_user())
    response = requests.request(
        method,
        f"{api.url}/v1//sweeps",
        json={"dry_run": True},
        headers={"Authorization": f"Bearer {token}"},
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 404 and "Location" not in response.headers
    assert response.json()["status"] == "error" and response.json()["code"] == 404


# a chunked body, through gunicorn ----------------------------------------------------------
def _chunked(body: dict[str, object]) -> Iterator[bytes]:
    """A body with no Content-Length: requests sends a generator chunked."""
    text = json.dumps(body).encode()
    yield text[:7]
    yield text[7:]


def test_a_chunked_body_is_read_through_serve(
    tmp_path: Path, fake_stripe: FakeStripeServer
) -> None:
    """Once ignored (read as ``{}``), ``{"dry_run": true, "limit": 1}`` sent chunked swept the
    whole account; it is a dry run of one session, and too big a chunked body is a 413."""
    fake_stripe.state.seed(open_=5)
    env = sweeper_env(tmp_path, fake_stripe.url, LOG_LEVEL="WARNING")
    added = run_command(env, "users", "add", "--email", "chunked@example.com", "--json")
    token = mint(json.loads(added.stdout)["id"])
    headers = {**JSON, "Authorization": f"Bearer {token}"}
    with serving(env, tmp_path / "serve.log") as served:
        started = requests.post(
            f"{served.url}/v1/sweeps",
            data=_chunked({"dry_run": True, "limit": 1}),
            headers=headers,
            timeout=30,
        )
        assert started.request.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in started.request.headers
        assert started.status_code == 202, started.text
        run = sweep_when_ended(served.url, started.json()["data"]["sweep_id"], token)
        assert run["dry_run"] is True and run["scope"]["limit"] == 1
        assert run["expired_count"] == 0 and run["result"]["would_expire"] != []
        big = _chunked({"metadata": {"k": "x" * MAX_BODY_BYTES}})
        too_big = requests.post(f"{served.url}/v1/sweeps", data=big, headers=headers, timeout=30)
        _refused(too_big, 413, "64 KB")
    assert fake_stripe.state.snapshot()["open_total"] == 5 and expires_seen(fake_stripe) == 0


@pytest.mark.parametrize(
    "body", [{"older_than": "2d"}, {"created_before": 1_700_000_000, "dry_run": True}]
)
def test_a_cutoff_past_the_24_hour_lifetime_is_a_400_and_nothing_is_sent(api, fake_stripe, body):
    token = api.token(api.add_user())
    fake_stripe.state.seed(open_=2)
    _refused(_post(api, token, json.dumps(body).encode()), 400, "sessions live at most 24 hours")
    _nothing_started(api, token, fake_stripe)
    assert fake_stripe.state.snapshot()["requests"].get("list", 0) == 0
