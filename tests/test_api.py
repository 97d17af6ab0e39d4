"""The endpoint over real HTTP, against the project's fake Stripe: every status of the contract."""

from __future__ import annotations

import json
import re
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests
from openapi_spec_validator import validate
from sqlalchemy import func, select

from checkout_sweeper.settings import ConfigError
from checkout_sweeper.store.models import SweepLock, SweepRun, SweptSession
from checkout_sweeper.web.openapi.document import openapi_spec

from harness import wait_for_expires
from helpers import JWT_SECRET, LIVE_KEY, TEST_KEY
from helpers import conforms as check_conforms

UNEXPECTED = "An unexpected error occurred."


SPEC = openapi_spec("/v1")


def conforms(response: requests.Response) -> dict:
    """Answers of the documented GET operations are checked against /openapi.json."""
    path = urlsplit(response.url).path
    templates = [re.sub(r"\{[^}]+\}", "[^/]+", template) for template in SPEC["paths"]]
    if response.request.method != "GET" or not any(re.fullmatch(t, path) for t in templates):
        return response.json()
    return check_conforms(response, SPEC)


def _error(response: requests.Response, code: int) -> str:
    assert response.status_code == code, response.text
    body = conforms(response)
    assert body["status"] == "error" and body["code"] == code
    return body["message"]


# 200 ---------------------------------------------------------------------------------------------
def test_sweep_expires_every_open_session_across_pages(api, fake_stripe):
    fake_stripe.state.seed(open_=250, complete=40, expired=30)
    user = api.add_user()
    response = api.sweep(api.token(user))
    assert response.status_code == 200
    body = conforms(response)
    assert body["status"] == "success" and body["code"] == 200
    data = body["data"]
    assert data["expired_count"] == 250
    assert data["failed"] == []
    assert data["remaining_open_sessions"] == []
    assert data["already_closed_count"] == 0
    assert response.headers["Cache-Control"] == "no-store"
    stats = fake_stripe.state.snapshot()
    assert stats["open_total"] == 0 and stats["sessions_expired_twice"] == 0
    with api.db.session() as session:
        run = session.get(SweepRun, data["sweep_id"])
        recorded = session.scalar(select(func.count()).select_from(SweptSession))
    assert run.status == "succeeded" and run.user_id == user and run.expired_count == 250
    assert recorded == 250


def test_session_paid_mid_sweep_counts_as_already_closed(api, fake_stripe):
    fake_stripe.state.seed(open_=30)
    fake_stripe.state.faults.update({"race_rate": 0.2})
    response = api.sweep(api.token(api.add_user()))
    data = response.json()["data"]
    races = fake_stripe.state.snapshot()["races"]
    assert races > 0
    assert data["already_closed_count"] == races
    assert data["expired_count"] + data["already_closed_count"] == 30
    assert data["failed"] == [] and data["remaining_open_sessions"] == []


def test_remaining_open_sessions_lists_what_could_not_be_expired(api, fake_stripe):
    fake_stripe.state.seed(open_=3, account="")
    # A session in another account is not this key's business and is never touched.
    fake_stripe.state.seed(open_=2, account="acct_other")
    data = api.sweep(api.token(api.add_user())).json()["data"]
    assert data["expired_count"] == 3
    assert fake_stripe.state.snapshot()["open_sessions"]["test:acct_other"] == 2


# 401 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header, message_part",
    [
        (None, "Missing Authorization"),
        ("Basic dXNlcjpwYXNz", "Malformed"),
        ("Bearer", "Malformed"),
        ("Bearer not-a-jwt", "malformed"),
    ],
)
def test_missing_or_malformed_header_is_401(api, header, message_part):
    headers = {"Authorization": header} if header else {}
    response = api.sweep(headers=headers)
    assert message_part in _error(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "make_token, message_part",
    [
        (
            lambda api, uid: api.token(uid, secret="another-secret-that-is-long-enough!!"),
            "signature",
        ),
        (lambda api, uid: api.token(uid, ttl=-120), "expired"),
        (lambda api, uid: api.token(uid, nbf=int(time.time()) + 600), "not valid yet"),
        (lambda api, uid: api.token(uid, drop=("exp",)), "'exp'"),
        (lambda api, uid: api.token(uid, alg="HS512"), "algorithm"),
    ],
    ids=["bad-signature", "expired", "not-yet-valid", "no-exp", "wrong-alg"],
)
def test_invalid_token_is_401(api, make_token, message_part):
    uid = api.add_user()
    assert message_part in _error(api.sweep(make_token(api, uid)), 401)


def test_audience_and_issuer_are_checked_when_configured(start_api):
    api = start_api(JWT_AUDIENCE="checkout-sweeper", JWT_ISSUER="https://auth.example.com")
    uid = api.add_user()
    good = {"aud": "checkout-sweeper", "iss": "https://auth.example.com"}
    assert "audience" in _error(api.sweep(api.token(uid, **{**good, "aud": "other"})), 401)
    assert "issuer" in _error(api.sweep(api.token(uid, **{**good, "iss": "https://evil"})), 401)
    assert "'aud'" in _error(api.sweep(api.token(uid, iss=good["iss"])), 401)
    assert api.sweep(api.token(uid, **good)).status_code == 200


def test_public_key_tokens(start_api):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP256R1())
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    api = start_api(JWT_SECRET=None, JWT_PUBLIC_KEY=public_pem, JWT_ALGORITHMS="ES256")
    uid = api.add_user()
    assert api.sweep(api.token(uid, secret=private, alg="ES256")).status_code == 200
    # An HMAC token signed with the public key text is the classic confusion attack.
    assert _error(api.sweep(api.token(uid, secret=JWT_SECRET)), 401)


# 400 ---------------------------------------------------------------------------------------------
def test_token_without_user_id_is_400(api):
    assert "'sub'" in _error(api.sweep(api.token(None)), 400)


def test_user_id_claim_of_the_wrong_type_is_400_but_a_whole_number_is_accepted(api):
    uid = api.add_user()
    assert "must be a string" in _error(api.sweep(api.token(None, sub=["1"])), 400)
    assert api.sweep(api.token(None, sub=uid)).status_code == 200


def test_custom_user_id_claim(start_api):
    api = start_api(JWT_USER_ID_CLAIM="uid")
    uid = api.add_user()
    assert "'uid'" in _error(api.sweep(api.token(uid)), 400)
    assert api.sweep(api.token(None, uid=str(uid))).status_code == 200


def test_query_parameters_are_400_and_named(api, fake_stripe):
    fake_stripe.state.seed(open_=2)
    message = _error(api.sweep(api.token(api.add_user()), path="?limit=5&dry=1"), 400)
    assert "dry" in message and "limit" in message
    assert fake_stripe.state.snapshot()["open_total"] == 2


# 404, 409 ----------------------------------------------------------------------------------------
def test_unknown_user_is_404(api):
    assert _error(api.sweep(api.token(999)), 404) == "User not found."
    assert _error(api.sweep(api.token("not-a-number")), 404) == "User not found."


def test_user_with_stripe_customer_is_409(api, fake_stripe):
    fake_stripe.state.seed(open_=2)
    uid = api.add_user(customer="cus_Q1w2e3r4")
    assert "Stripe customer" in _error(api.sweep(api.token(uid)), 409)
    assert fake_stripe.state.snapshot()["open_total"] == 2


def test_second_sweep_of_the_same_account_is_409_at_once(api, fake_stripe):
    fake_stripe.state.seed(open_=40)
    fake_stripe.state.faults.update({"latency_ms": 100})
    first_user, second_user = api.add_user("a@example.com"), api.add_user("b@example.com")
    first: dict = {}
    runner = threading.Thread(
        target=lambda: first.update(response=api.sweep(api.token(first_user)))
    )
    runner.start()
    wait_for_expires(fake_stripe, 1, 10)
    with api.state.db.session() as session:  # the first sweep's id and host, as leased
        lease = session.scalars(select(SweepLock)).one()
    started = time.monotonic()
    second = api.sweep(api.token(second_user))
    message = _error(second, 409)
    assert time.monotonic() - started < 2
    assert "already running" in message and re.search(r"since \d\d:\d\d:\d\d UTC", message)
    # another user reads that the account is busy and since when, not whose sweep nor where
    assert lease.run_id[:8] not in message and lease.owner.split(":")[0] not in message
    runner.join()
    assert first["response"].status_code == 200
    assert first["response"].json()["data"]["expired_count"] == 40


# 429 ---------------------------------------------------------------------------------------------
def test_fourth_call_in_an_hour_is_429_with_retry_after(api):
    uid = api.add_user()
    token = api.token(uid)
    for expected_remaining in ("2", "1", "0"):
        response = api.sweep(token)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert response.headers["X-RateLimit-Remaining"] == expected_remaining
    limited = api.sweep(token)
    assert "Rate limit" in _error(limited, 429)
    assert 3500 < int(limited.headers["Retry-After"]) <= 3600
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    # Another user has a quota of their own.
    assert api.sweep(api.token(api.add_user("other@example.com"))).status_code == 200


def test_rejected_requests_spend_no_quota(api):
    uid = api.add_user()
    for _ in range(4):
        _error(api.sweep(api.token(uid, secret="wrong-secret-that-is-long-enough!!!!")), 401)
        _error(api.sweep(api.token(uid), path="?x=1"), 400)
    assert [api.sweep(api.token(uid)).status_code for _ in range(4)] == [200, 200, 200, 429]


# 403 ---------------------------------------------------------------------------------------------
def test_live_key_is_403_unless_allowed(start_api, fake_stripe):
    fake_stripe.state.seed(open_=3, livemode=True)
    guarded = start_api(STRIPE_API_KEY=LIVE_KEY)
    assert "live-mode" in _error(guarded.sweep(guarded.token(guarded.add_user())), 403)
    assert fake_stripe.state.snapshot()["open_sessions"]["live:platform"] == 3
    allowed = start_api(STRIPE_API_KEY=LIVE_KEY, SWEEPER_ALLOW_LIVE_MODE="true")
    response = allowed.sweep(allowed.token(allowed.add_user()))
    assert response.status_code == 200 and response.json()["data"]["expired_count"] == 3


# 500 ---------------------------------------------------------------------------------------------
def test_stripe_failing_throughout_is_the_spec_500(api, fake_stripe, capfd):
    fake_stripe.state.seed(open_=5)
    fake_stripe.state.faults.update({"fail_rate": 1})
    response = api.sweep(api.token(api.add_user()))
    assert _error(response, 500) == UNEXPECTED
    assert set(response.json()) == {"status", "code", "message"}
    logs = capfd.readouterr().err
    assert "SweepAborted: " in logs  # the log says why; the answer does not
    assert "sk_test_" not in logs and "sk_test_" not in response.text
    assert fake_stripe.state.snapshot()["open_total"] == 5  # nothing was touched


def test_stripe_rejecting_the_key_is_the_spec_500(start_api):
    api = start_api(STRIPE_API_KEY="sk_test_revoked_key")
    response = api.sweep(api.token(api.add_user()))
    assert _error(response, 500) == UNEXPECTED
    assert "revoked" not in response.text


def test_unreachable_stripe_is_the_spec_500(start_api):
    api = start_api(STRIPE_API_BASE="http://127.0.0.1:9")
    assert _error(api.sweep(api.token(api.add_user())), 500) == UNEXPECTED


# the rest of the surface -------------------------------------------------------------------------
def test_unknown_route_and_wrong_method_are_json(api):
    assert _error(requests.get(f"{api.url}/nope", timeout=5), 404)
    response = requests.post(f"{api.url}/v1/active_checkout_sessions_and_expire_all", timeout=5)
    _error(response, 405)
    assert "GET" in response.headers["Allow"]


def test_health_docs_and_openapi(api):
    assert requests.get(f"{api.url}/healthz", timeout=5).json()["data"]["alive"] is True
    ready = requests.get(f"{api.url}/readyz", timeout=5).json()["data"]
    assert ready["checks"] == {"database": "ok", "rate_limit_storage": "ok"}
    spec = requests.get(f"{api.url}/openapi.json", timeout=5).json()
    validate(spec)  # a valid OpenAPI 3.1 document
    operation = spec["paths"]["/v1/active_checkout_sessions_and_expire_all"]["get"]
    assert {"200", "400", "401", "403", "404", "409", "429", "500"} <= set(operation["responses"])
    page = requests.get(f"{api.url}/docs", timeout=5)
    assert page.headers["Content-Type"].startswith("text/html") and "swagger-ui" in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert "<script>" not in page.text  # no inline script: it runs under a strict CSP
    for asset in ("/docs/init.js", "/docs/ui/swagger-ui-bundle.js", "/docs/ui/swagger-ui.css"):
        assert requests.get(f"{api.url}{asset}", timeout=5).status_code == 200, asset


def test_one_structured_log_line_per_request_without_secrets(start_api, fake_stripe, capfd):
    api = start_api(TRUSTED_PROXY_COUNT="1")
    fake_stripe.state.seed(open_=4)
    token = api.token(api.add_user())
    capfd.readouterr()
    api.sweep(token, headers={"X-Forwarded-For": "203.0.113.9"})
    lines = [
        json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")
    ]
    request_lines = [entry for entry in lines if entry["logger"] == "checkout_sweeper.request"]
    assert len(request_lines) == 1
    entry = request_lines[0]
    assert entry["ip"] == "203.0.113.9" and entry["status"] == 200 and entry["expired"] == 4
    raw = json.dumps(lines)
    assert token not in raw and "sk_test_" not in raw


def test_bad_configuration_stops_the_app_factory(tmp_path):
    from checkout_sweeper.web.factory import create_app

    with pytest.raises(ConfigError, match="STRIPE_API_KEY"):
        create_app({"JWT_SECRET": JWT_SECRET}, instance_path=tmp_path)


# 503 ---------------------------------------------------------------------------------------------
def test_unreachable_rate_limit_storage_fails_closed_with_503(start_api, fake_stripe):
    fake_stripe.state.seed(open_=3)
    api = start_api(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    response = api.sweep(api.token(api.add_user()))
    assert "Rate limiting is unavailable" in _error(response, 503)
    assert response.headers["Retry-After"] == "30"
    assert fake_stripe.state.snapshot()["open_total"] == 3
    assert "list" not in fake_stripe.state.snapshot()["requests"]
    assert requests.get(f"{api.url}/healthz", timeout=5).status_code == 200
    ready = requests.get(f"{api.url}/readyz", timeout=5)
    assert "rate_limit_storage" in _error(ready, 503)


def test_metrics_need_the_token_when_one_is_set(start_api, fake_stripe):
    from prometheus_client.parser import text_string_to_metric_families

    api = start_api(METRICS_TOKEN="s3cret-metrics")
    assert requests.get(f"{api.url}/metrics", timeout=5).status_code == 401
    scraped = requests.get(
        f"{api.url}/metrics", headers={"Authorization": "Bearer s3cret-metrics"}, timeout=5
    )
    assert scraped.status_code == 200 and scraped.headers["Content-Type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(scraped.text)}
    assert {"checkout_sweeper_http_requests", "checkout_sweeper_sessions"} <= names
    open_api = start_api()
    assert requests.get(f"{open_api.url}/metrics", timeout=5).status_code == 200  # loopback


def test_building_the_app_touches_no_database(tmp_path):
    """Migrations and journal imports are steps of ``serve``, not of building the app: an app
    built against a database no server answers for still builds, and a SQLite file gets no
    schema (only the empty private file the store makes before SQLite would, with its mode)."""
    from checkout_sweeper.web.factory import create_app

    database = tmp_path / "later" / "runs.sqlite3"
    env = {
        "JWT_SECRET": JWT_SECRET,
        "STRIPE_API_KEY": TEST_KEY,
        "DATABASE_URL": f"sqlite:///{database}",
    }
    app = create_app(env, instance_path=tmp_path)
    assert app.extensions["checkout_sweeper"].db.dialect == "sqlite"
    assert database.stat().st_size == 0  # no migration ran
    unreachable = {**env, "DATABASE_URL": "postgresql://u@127.0.0.1:9/x"}
    assert create_app(unreachable, instance_path=tmp_path) is not None
