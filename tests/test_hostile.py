"""What a hostile or careless client sends: odd methods, random paths, odd parameters. None of
it may act, spend, grow the service's state or answer 5xx."""

from __future__ import annotations

import contextlib
import random
import string
from typing import Any
from urllib.parse import quote

import pytest
import requests
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from checkout_sweeper.store.database import Database

from helpers import mint

ENDPOINT = "/v1/active_checkout_sessions_and_expire_all"


def _samples(url: str) -> int:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(len(family.samples) for family in text_string_to_metric_families(text))


def test_every_method_but_get_on_the_endpoint_is_405_and_sweeps_nothing(api, fake_stripe):
    fake_stripe.state.seed(open_=5)
    token = api.token(api.add_user())
    headers = {"Authorization": f"Bearer {token}"}
    for method in ("HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "PURGE"):
        response = requests.request(method, f"{api.url}{ENDPOINT}", headers=headers, timeout=10)
        assert response.status_code == 405, method
        assert response.headers["Allow"] == "GET", method
    assert fake_stripe.state.snapshot()["open_total"] == 5
    assert fake_stripe.state.snapshot()["requests"].get("expire", 0) == 0
    statuses = [requests.get(f"{api.url}{ENDPOINT}", headers=headers, timeout=60).status_code]
    statuses += [requests.get(f"{api.url}{ENDPOINT}", headers=headers, timeout=60).status_code]
    assert statuses == [200, 200]  # the 405s spent none of the 3 an hour


def test_random_methods_and_paths_do_not_grow_the_metrics(api):
    rng = random.Random(21)

    def noise(count: int) -> None:
        for _ in range(count):
            method = "".join(rng.choices(string.ascii_uppercase, k=rng.randint(3, 20)))
            path = "/" + "/".join(
                "".join(rng.choices(string.ascii_lowercase + string.digits, k=8))
                for _ in range(rng.randint(1, 3))
            )
            requests.request(method, f"{api.url}{path}", timeout=10)

    noise(50)  # every label value noise can reach now exists, the scrape's own included
    _samples(api.url)
    before = _samples(api.url)
    noise(1000)
    assert _samples(api.url) == before


ODD = ["\x00", "\u00b2", "\u0661\u0660", "%", "_" * 4]  # NUL, '2' superscript, Arabic '10'
PLACES = (
    "/v1/sweeps/{value}",
    "/v1/sweeps/{value}/sessions",
    "/v1/sweeps/{run}/sessions?starting_after={value}",
    "/v1/sweeps/{run}/sessions?limit={value}",
    "/v1/sweeps/{run}/sessions?outcome={value}",
    "/v1/sweeps?limit={value}",
    "/v1/sweeps?{value}=1",
    ENDPOINT + "?{value}=1",
)


@pytest.mark.services
def test_no_text_in_a_path_segment_or_parameter_gets_a_5xx(start_api, postgres_url, fake_stripe):
    """NUL bytes, odd digits (superscripts, Arabic-Indic), any Unicode: a 4xx, never a
    database error."""
    Database(postgres_url).upgrade()
    api = start_api(DATABASE_URL=postgres_url)
    fake_stripe.state.seed(open_=3)
    token = api.token(api.add_user())
    headers = {"Authorization": f"Bearer {token}"}
    run = requests.get(api.url + ENDPOINT, headers=headers, timeout=60).json()["data"]["sweep_id"]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        value=st.one_of(
            st.text(), st.sampled_from(["\x00", "\u00b2", "\u0661\u0660", "%", "_" * 4])
        )
    )
    @example(value="\x00")
    @example(value="cs_\x00")
    def check(value: str) -> None:
        for place in PLACES:
            path = place.format(run=run, value=quote(value, safe=""))
            response = requests.get(api.url + path, headers=headers, timeout=30)
            assert response.status_code < 500, (path, response.text)

    check()


def test_a_sweep_that_fails_on_the_server_side_spends_no_quota(api, fake_stripe):
    """Stripe answering 5xx to everything: 500s, and the caller keeps all three calls."""
    fake_stripe.state.seed(open_=4)
    token = api.token(api.add_user())
    assert api.sweep(token).status_code == 200  # the account is known from now on
    fake_stripe.state.faults.update({"fail_rate": 1})
    failed = [api.sweep(token) for _ in range(3)]
    assert [r.status_code for r in failed] == [500] * 3
    assert not any("X-RateLimit-Remaining" in r.headers for r in failed)
    fake_stripe.state.faults.update({"fail_rate": 0})
    fake_stripe.state.seed(open_=2)
    remaining = [api.sweep(token).headers.get("X-RateLimit-Remaining") for _ in range(2)]
    assert remaining == ["1", "0"]
    assert api.sweep(token).status_code == 429


def test_metrics_token_only_as_bearer_and_no_untrusted_proxy_speaks_for_loopback(start_api):
    guarded = start_api(METRICS_TOKEN="s3cret-metrics")
    for sent in ("s3cret-metrics", "Basic s3cret-metrics", "bearer s3cret-metrics"):
        answer = requests.get(f"{guarded.url}/metrics", headers={"Authorization": sent}, timeout=5)
        assert answer.status_code == 401, sent
    assert (
        requests.get(
            f"{guarded.url}/metrics",
            headers={"Authorization": "Bearer s3cret-metrics"},
            timeout=5,
        ).status_code
        == 200
    )
    open_ = start_api()  # loopback only: a proxy on this host forwarding someone else is not
    forwarded = {"X-Forwarded-For": "198.51.100.7"}
    assert requests.get(f"{open_.url}/metrics", headers=forwarded, timeout=5).status_code == 403
    assert requests.get(f"{open_.url}/metrics", timeout=5).status_code == 200


def test_token_times_must_be_numbers(api):
    uid = api.add_user()
    for claim in ("exp", "nbf", "iat"):
        claims: dict[str, Any] = {claim: "1999999999" if claim == "exp" else "1000000000"}
        token = mint(uid, **claims)
        response = api.sweep(token)
        assert response.status_code == 401, claim
        assert f"'{claim}' must be a number" in response.json()["message"]


def test_one_read_limit_is_shared_by_every_read_endpoint(api, fake_stripe):
    token = api.token(api.add_user())
    headers = {"Authorization": f"Bearer {token}"}
    sweep_id = api.sweep(token).json()["data"]["sweep_id"]
    paths = ["/v1/sweeps", f"/v1/sweeps/{sweep_id}", f"/v1/sweeps/{sweep_id}/sessions"]
    statuses = [
        requests.get(api.url + paths[n % 3], headers=headers, timeout=10).status_code
        for n in range(121)
    ]
    assert statuses[:120] == [200] * 120 and statuses[120] == 429


def test_the_data_folder_and_its_files_are_private(tmp_path):
    from helpers import run_command

    folder = tmp_path / "private"
    env = {"SWEEPER_INSTANCE_PATH": str(folder), "HOME": str(tmp_path)}
    assert run_command(env, "users", "add", "--email", "p@example.com").returncode == 0
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / "checkout_sweeper.sqlite3").stat().st_mode & 0o777 == 0o600


def test_a_secret_in_a_database_url_is_never_printed(tmp_path):
    from helpers import run_command

    url = "postgresql+psycopg://sweeper:s3cret@127.0.0.1:1/db?sslpassword=hunter2&sslmode=require"
    result = run_command({"DATABASE_URL": url, "HOME": str(tmp_path)}, "history")
    assert result.returncode == 3
    assert "s3cret" not in result.stderr and "hunter2" not in result.stderr
    assert "sslpassword=***" in result.stderr


@pytest.mark.services
def test_the_quota_counts_in_redis_under_the_tests_own_prefix(start_api, redis_url, fake_stripe):
    import os

    import redis

    prefix = os.environ["RATELIMIT_KEY_PREFIX"]
    api = start_api(RATELIMIT_STORAGE_URI=redis_url, RATELIMIT_KEY_PREFIX=prefix)
    fake_stripe.state.seed(open_=2)
    token = api.token(api.add_user())
    assert [api.sweep(token).status_code for _ in range(4)] == [200, 200, 200, 429]
    client = redis.Redis.from_url(redis_url)
    assert list(client.scan_iter(match=f"*{prefix}*"))  # counted there, and only there
    client.close()


SERVICES_TESTS = [
    "tests/test_hostile.py::test_the_quota_counts_in_redis_under_the_tests_own_prefix",
    "tests/test_faults.py::test_refused_postgres_gives_bounded_answers",
    "tests/test_fleet.py::test_a_fleet_on_the_queue_is_spread_over_two_workers",
]


@pytest.mark.services
def test_the_services_tests_stay_in_their_databases(postgres_url, tmp_path):
    """Services tests run with ``TEST_REDIS_URL`` on database 14 of a Redis of their own (so
    every command it sees is theirs) and ``TEST_POSTGRES_URL`` on a database of their own:
    Redis sees no command on another database, a canary key there survives, and the
    PostgreSQL database they were given (and ``test``) gains no table."""
    import os
    import shutil
    import subprocess
    import sys

    import redis
    from sqlalchemy import create_engine, inspect

    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server to start a Redis of the test's own")
    with _private_redis(tmp_path) as port:
        client = redis.Redis(port=port, db=14)
        client.set("canary", "alive")
        with _monitored(port) as seen:
            ran = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-n0",
                    "-p",
                    "no:cacheprovider",
                    *SERVICES_TESTS,
                ],
                env={
                    **os.environ,
                    "TEST_REDIS_URL": f"redis://127.0.0.1:{port}/14",
                    "TEST_POSTGRES_URL": postgres_url,
                },
                capture_output=True,
                text=True,
                timeout=600,
            )
        assert ran.returncode == 0, ran.stdout[-3000:]
        assert client.get("canary") == b"alive"
        client.close()
    databases = {line.split(" [", 1)[1].split(" ", 1)[0] for line in seen if " [" in line}
    assert databases == {"14"}, [line for line in seen if " [14 " not in line][:5]
    engine = create_engine(postgres_url)
    assert inspect(engine).get_table_names() == []  # only databases of their own, made there
    engine.dispose()


@contextlib.contextmanager
def _private_redis(tmp_path):
    """A throwaway redis-server on a free port, no persistence, stopped afterwards."""
    import socket
    import subprocess
    import time

    import redis

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        client.close()
        yield port
    finally:
        server.terminate()
        server.wait(10)


@contextlib.contextmanager
def _monitored(port):
    """Every command the server at ``port`` runs meanwhile, as MONITOR prints them."""
    import socket
    import threading

    lines: list[str] = []
    watcher = socket.create_connection(("127.0.0.1", port))
    watcher.sendall(b"MONITOR\r\n")

    def read() -> None:
        buffered = b""
        while chunk := watcher.recv(65536):
            buffered += chunk
            *whole, buffered = buffered.split(b"\r\n")
            lines.extend(line.decode(errors="replace") for line in whole)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield lines
    finally:
        watcher.shutdown(socket.SHUT_RDWR)
        reader.join(10)
        watcher.close()
    lines[:] = [line for line in lines if line.startswith("+") and line != "+OK"]


def test_docs_with_a_slash_leads_to_the_docs(api):
    response = requests.get(f"{api.url}/docs/", timeout=5, allow_redirects=False)
    assert response.status_code == 301 and response.headers["Location"].endswith("/docs")
    assert requests.get(f"{api.url}/docs/", timeout=5).status_code == 200


@pytest.mark.services
def test_the_data_folder_is_private_with_postgresql_too(tmp_path, fake_stripe, postgres_url):
    from harness import sweeper_env
    from helpers import run_command

    fake_stripe.state.seed(open_=3)
    folder = tmp_path / "fresh" / "data"
    env = sweeper_env(folder, fake_stripe.url, DATABASE_URL=postgres_url)
    ran = run_command(env, "sweep", "--yes", "--json")
    assert ran.returncode == 0, ran.stderr
    for made in (folder, folder.parent, folder / "journal"):
        assert made.stat().st_mode & 0o777 == 0o700, made
