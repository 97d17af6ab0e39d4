"""The console script, run as a user runs it: a real process, real env, real fake Stripe."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Protocol

import jwt
import pytest
import requests

from checkout_sweeper.fake_stripe import FakeStripeServer

from harness import COMMAND, serving, sweeper_env, wait_for_expires, wait_until
from helpers import JWT_SECRET, LIVE_KEY, Ran, run_command


class HasEnv(Protocol):
    """The ``cli`` fixture: its environment is what a process of the command line is given."""

    env: dict[str, str]


@pytest.fixture
def cli(tmp_path, fake_stripe):
    env = sweeper_env(
        tmp_path,
        fake_stripe.url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'cli.sqlite3'}",
        SWEEPER_LEASE_TTL="2",
    )

    def run(*args: str, check: bool = False, **overrides: str) -> Ran:
        """The command line in this process, with ``env`` as its whole environment."""
        result = run_command({**env, **overrides}, *args)
        if check:
            assert result.returncode == 0, result.stderr
        return result

    run.env = env  # type: ignore[attr-defined]
    return run


def test_users_add_list_and_token(cli):
    added = json.loads(
        cli("users", "add", "--email", "dev@example.com", "--json", check=True).stdout
    )
    assert added["email"] == "dev@example.com" and added["stripe_customer_id"] is None
    other = json.loads(
        cli(
            "users",
            "add",
            "--email",
            "b@example.com",
            "--stripe-customer-id",
            "cus_test_Abc123",
            "--json",
            check=True,
        ).stdout
    )
    assert other["stripe_customer_id"] == "cus_test_Abc123"
    listed = json.loads(cli("users", "list", "--json", check=True).stdout)
    assert [u["email"] for u in listed] == ["dev@example.com", "b@example.com"]
    token = cli("token", str(added["id"]), "--ttl", "60", check=True).stdout.strip()
    claims = jwt.decode(token, JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == str(added["id"]) and claims["exp"] - claims["iat"] == 60


def test_users_add_rejects_bad_input_and_duplicates(cli):
    bad = cli("users", "add", "--email", "not-an-email")
    assert bad.returncode == 2 and "e-mail" in bad.stderr
    bad_customer = cli("users", "add", "--email", "a@example.com", "--stripe-customer-id", "x1")
    assert bad_customer.returncode == 2 and "cus_" in bad_customer.stderr
    cli("users", "add", "--email", "a@example.com", check=True)
    duplicate = cli("users", "add", "--email", "a@example.com")
    assert duplicate.returncode == 2 and "already exists" in duplicate.stderr
    other_case = cli("users", "add", "--email", "A@Example.COM")  # the same mailbox
    assert other_case.returncode == 2 and "already exists" in other_case.stderr
    assert len(json.loads(cli("users", "list", "--json", check=True).stdout)) == 1


def test_emails_that_differ_only_by_case_are_one_user_for_the_database_too(tmp_path):
    """The unique index on lower(email) holds even for a writer that skips the check."""
    import pytest
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from checkout_sweeper.store.database import Database
    from checkout_sweeper.store.models import User

    db = Database(f"sqlite:///{tmp_path / 'u.db'}")
    db.upgrade()
    engine = db.engine
    with engine.begin() as connection:
        connection.execute(insert(User).values(email="b@example.com"))
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(User).values(email="B@example.com"))


def test_db_upgrade_is_idempotent(cli):
    assert "newest schema" in cli("db", "upgrade", check=True).stdout
    assert "newest schema" in cli("db", "upgrade", check=True).stdout


def test_sweep_json_is_the_endpoint_data_and_exit_0_when_clean(cli, fake_stripe):
    fake_stripe.state.seed(open_=150, complete=10)
    result = cli("sweep", "--yes", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["expired_count"] == 150 and data["remaining_open_sessions"] == []
    history = json.loads(cli("history", "--json", check=True).stdout)
    assert history[0]["id"] == data["sweep_id"] and history[0]["status"] == "succeeded"
    assert history[0]["trigger"] == "cli" and history[0]["expired_count"] == 150
    table = cli("history", check=True).stdout
    assert data["sweep_id"][:12] in table and "succeeded" in table


def test_sweep_exits_1_when_sessions_fail(cli, fake_stripe):
    fake_stripe.state.seed(open_=2)
    fake_stripe.state.faults.update({"expire_fail_rate": 1})
    result = cli("sweep", "--yes", "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert len(data["failed"]) == 2 and data["remaining_open_count"] == 2


def test_dry_run_lists_without_expiring(cli, fake_stripe):
    fake_stripe.state.seed(open_=12)
    data = json.loads(cli("sweep", "--dry-run", "--json", check=True).stdout)
    assert len(data["would_expire"]) == 12 and data["expired_count"] == 0
    assert fake_stripe.state.snapshot()["open_total"] == 12
    listed = cli("sweep", "--dry-run", check=True)
    assert "would expire" in listed.stdout and "(dry run)" in listed.stderr
    said = "Each expiry sends checkout.session.expired (12 events) to no webhook endpoint"
    assert said in " ".join(listed.stderr.split())  # piped too, what it would set off
    swept = cli("sweep", "--yes", check=True)
    assert "Each expiry sent checkout.session.expired (12 events)" in " ".join(swept.stderr.split())


def test_created_before_accepts_iso_and_epoch_and_rejects_junk(cli, fake_stripe):
    fake_stripe.state.seed(open_=5)
    past = cli("sweep", "--yes", "--json", "--created-before", "2000-01-01T00:00:00Z")
    assert past.returncode == 2 and "sessions live at most 24 hours" in past.stderr
    assert fake_stripe.state.snapshot()["open_total"] == 5
    assert fake_stripe.state.snapshot()["requests"].get("list", 0) == 0
    hour_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
    assert cli("sweep", "--yes", "--json", "--created-before", hour_ago).returncode == 0
    assert (
        cli("sweep", "--yes", "--json", "--created-before", str(int(time.time()))).returncode == 0
    )
    assert fake_stripe.state.snapshot()["open_total"] == 0
    junk = cli("sweep", "--created-before", "yesterday-ish")
    assert junk.returncode == 2 and "ISO 8601" in junk.stderr


def test_an_older_than_past_the_24_hour_lifetime_is_exit_2_and_sends_nothing(cli, fake_stripe):
    fake_stripe.state.seed(open_=3)
    result = cli("sweep", "--yes", "--older-than", "2d")
    assert result.returncode == 2 and "sessions live at most 24 hours" in result.stderr
    assert sum(fake_stripe.state.snapshot()["requests"].values()) == 0


def test_a_dry_run_names_the_endpoints_an_expiry_notifies(cli, fake_stripe):
    from checkout_sweeper.fake_stripe.webhooks import new_endpoint

    fake_stripe.state.seed(open_=6, recovery=4)
    wanted = new_endpoint(False, {"url": "https://shop.example/hook"})
    others = [
        new_endpoint(False, {"url": "https://shop.example/paid", "enabled_events": ["x.y"]}),
        new_endpoint(False, {"url": "https://old.example/hook", "status": "disabled"}),
    ]
    fake_stripe.state.webhook_endpoints[(False, "")] = [wanted, *others]
    data = json.loads(cli("sweep", "--dry-run", "--json", check=True).stdout)
    assert data["side_effects"] == {
        "expired_events": 6,
        "webhook_endpoints": [{"id": wanted["id"], "url": "https://shop.example/hook"}],
        "recovery_sessions": 4,
    }
    restricted = cli(
        "sweep", "--dry-run", "--json", STRIPE_API_KEY="rk_test_51NoEndpoints", check=True
    )
    fake_stripe.state.policy.update({"restricted_lacks": ["account", "webhook_endpoints"]})
    refused = cli("sweep", "--dry-run", "--json", STRIPE_API_KEY="rk_test_51NoEndpointsB")
    assert refused.returncode == 0, refused.stderr
    effects = json.loads(refused.stdout)["side_effects"]
    assert effects["webhook_endpoints"] is None and "Webhook Endpoints read" in effects["note"]
    assert len(json.loads(restricted.stdout)["would_expire"]) == 6


def test_live_key_is_refused_unless_allowed(cli, fake_stripe):
    fake_stripe.state.seed(open_=2, livemode=True)
    refused = cli("sweep", "--yes", "--json", STRIPE_API_KEY=LIVE_KEY)
    assert refused.returncode == 2 and "SWEEPER_ALLOW_LIVE_MODE" in refused.stderr
    assert fake_stripe.state.snapshot()["open_total"] == 2
    allowed = cli("sweep", "--yes", "--json", STRIPE_API_KEY=LIVE_KEY, SWEEPER_ALLOW_LIVE_MODE="1")
    assert allowed.returncode == 0 and json.loads(allowed.stdout)["expired_count"] == 2


def test_stripe_unusable_exits_3(cli, fake_stripe):
    result = cli("sweep", "--yes", STRIPE_API_KEY="sk_test_revoked_key")
    assert result.returncode == 3 and "Invalid API Key" in result.stderr


def test_an_unreachable_database_is_one_line_naming_it_exit_3(cli):
    url = "postgresql+psycopg://sweeper:s3cret@127.0.0.1:1/sweeper"
    for command in (["history"], ["users", "list"], ["sweep", "--yes"]):
        result = cli(*command, DATABASE_URL=url)
        assert result.returncode == 3, result.stderr
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert "DATABASE_URL" in result.stderr and "s3cret" not in result.stderr
    verbose = cli("--verbose", "history", DATABASE_URL=url)
    assert verbose.returncode == 3 and "Traceback" in verbose.stderr


def test_a_malformed_database_url_exits_2(cli):
    result = cli("history", DATABASE_URL="not a database url")
    assert result.returncode == 2 and "DATABASE_URL" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "code"),
    [
        ("DATABASE_URL", "mysql://u:p@127.0.0.1/x", 2),
        ("DATABASE_URL", "sqlite:////proc/self/nonexist/x.db", 2),
        ("SWEEPER_INSTANCE_PATH", "/proc/nope", 2),
        ("SWEEPER_LEASE_TTL", "inf", 2),
        ("JWT_LEEWAY_S", "nan", 2),
    ],
)
def test_an_odd_setting_is_one_line_and_exit_2(cli, variable, value, code):
    overrides = {variable: value}
    if variable == "SWEEPER_INSTANCE_PATH":
        overrides["DATABASE_URL"] = None  # the default database lives in the data folder
    result = run_command({**cli.env, **overrides}, "users", "list")
    assert result.returncode == code, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def _start_slow_sweep(cli: HasEnv, fake_stripe: FakeStripeServer, open_: int) -> subprocess.Popen:
    fake_stripe.state.seed(open_=open_)
    fake_stripe.state.faults.update({"latency_ms": 20})
    process = subprocess.Popen(
        [*COMMAND, "sweep", "--yes", "--json"],
        env={**cli.env, "SWEEPER_MAX_RPS": "40"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_expires(fake_stripe, 20, alive=process)
    return process


def test_second_sweep_of_the_account_exits_4_at_once(cli, fake_stripe):
    first = _start_slow_sweep(cli, fake_stripe, 200)
    started = time.monotonic()
    second = cli("sweep", "--yes", "--json")
    assert second.returncode == 4 and "already running" in second.stderr
    # it names the holder: which sweep, on which host and process, since when
    assert re.search(r"\(sweep [0-9a-f]{8} on [^ ]+:\d+ since \d\d:\d\d:\d\d UTC\)", second.stderr)
    assert time.monotonic() - started < 10
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=30)


def test_sigterm_mid_sweep_records_every_expired_session_and_an_interrupted_run(cli, fake_stripe):
    process = _start_slow_sweep(cli, fake_stripe, 300)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    history = json.loads(cli("history", "--json", check=True).stdout)
    assert history[0]["status"] == "interrupted"
    expired_at_stripe = 300 - fake_stripe.state.snapshot()["open_total"]
    assert 0 < expired_at_stripe < 300
    assert history[0]["expired_count"] == history[0]["records"] == expired_at_stripe
    done = json.loads(out)  # --json still prints what was done, with the reason
    assert done["error"] == "the sweep was interrupted"
    assert done["expired_count"] == expired_at_stripe
    assert f"{expired_at_stripe} expired" in err


def test_killed_sweep_shows_as_interrupted_and_frees_the_account(cli, fake_stripe):
    process = _start_slow_sweep(cli, fake_stripe, 300)
    process.kill()
    process.wait(timeout=10)
    history = json.loads(cli("history", "--json", check=True).stdout)
    assert history[0]["status"] == "interrupted"
    # Its holder no longer exists, so the account is free at once; a new sweep finishes the job.
    fake_stripe.state.faults.update({"latency_ms": 0})
    result = cli("sweep", "--yes", "--json")
    assert result.returncode == 0 and fake_stripe.state.snapshot()["open_total"] == 0


def test_demo_runs_offline_to_success(cli):
    result = cli(
        "demo",
        *("--open", "60", "--complete", "6", "--stripe-rps", "100", "--max-rps", "80"),
        COLUMNS="80",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wide = [line for line in result.stdout.splitlines() if len(line) > 80]
    assert not wide, f"lines wider than an 80-column terminal: {wide}"
    assert "HTTP 200" in result.stdout and "open sessions left" in result.stdout
    assert "HTTP 202  Location: /v1/sweeps/" in result.stdout  # then the async way
    assert "status succeeded" in result.stdout
    said = re.findall(r"handled: expired \d+, already closed \d+, failed \d+", result.stdout)
    assert len(said) >= 2 and len(set(said)) == 1, said  # the bar's last words, the final line's
    verified = re.search(
        r"(\d+) checkout.session.expired events verified, 0 refused", result.stdout
    )
    assert verified and int(verified.group(1)) > 0, result.stdout
    assert '"level": "info"' not in result.stdout + result.stderr  # no log lines in between


def test_sweep_on_a_terminal_shows_progress_and_a_summary(cli, fake_stripe, tmp_path):
    import shlex
    import shutil

    if shutil.which("script") is None:
        pytest.skip("needs util-linux 'script' to give the command a terminal")
    fake_stripe.state.seed(open_=40)
    command = shlex.join([*COMMAND, "sweep", "--yes"])
    result = subprocess.run(
        ["script", "-qec", command, str(tmp_path / "typescript")],
        env={**cli.env, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout
    screen = result.stdout
    assert "expiring" in screen and "40/40" in screen and "expired 40" in screen
    assert "Stripe requests" in screen and "still open" in screen


def test_serve_refuses_several_workers_with_per_process_rate_limits(cli):
    result = cli("serve", "--workers", "3", RATELIMIT_STORAGE_URI="memory://")
    assert result.returncode == 2
    assert "RATELIMIT_STORAGE_URI" in result.stderr and "9 per hour" in result.stderr


def test_two_servers_of_one_user_open_no_shared_control_socket(cli, tmp_path):
    """gunicorn 25.1+ opens ``~/.gunicorn/gunicorn.ctl`` (or under ``XDG_RUNTIME_DIR``) by
    default: one path per user, taken over by a second server and removed when it stops."""
    home, runtime = tmp_path / "home", tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {**cli.env, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    with (
        serving(env, tmp_path / "one.log") as one,
        serving(env, tmp_path / "two.log") as two,
    ):
        assert requests.get(f"{one.url}/healthz", timeout=10).ok
        assert requests.get(f"{two.url}/healthz", timeout=10).ok
        assert not list(runtime.rglob("*.ctl")) and not list(home.rglob("*.ctl"))


def test_default_serve_holds_the_limit_in_one_process_and_logs_only_json(cli, tmp_path):
    user = json.loads(cli("users", "add", "--email", "s@example.com", "--json", check=True).stdout)
    with serving(cli.env, tmp_path / "serve.log") as served:
        url = served.url
        now = int(time.time())
        token = jwt.encode({"sub": str(user["id"]), "exp": now + 300}, JWT_SECRET)
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [
            requests.get(
                f"{url}/v1/active_checkout_sessions_and_expire_all", headers=headers, timeout=60
            ).status_code
            for _ in range(6)
        ]
        assert statuses == [200, 200, 200, 429, 429, 429]
    lines = (tmp_path / "serve.log").read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line gunicorn or the app wrote
    assert {e["logger"] for e in entries} >= {"gunicorn.error", "gunicorn.access"}
    for entry in entries:
        assert {"ts", "level", "logger", "message"} <= set(entry)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["ts"]), entry
    access = [e for e in entries if e["logger"] == "gunicorn.access"]
    assert {"ip", "method", "path", "status", "duration_ms"} <= set(access[-1])


def test_sweep_pushes_its_metrics_to_a_pushgateway(cli, fake_stripe):
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    pushed: list[tuple[str, str, bytes]] = []

    @Request.application
    def gateway(request: Request) -> Response:
        pushed.append((request.method, request.path, request.get_data()))
        return Response("", 200)

    server = make_server("127.0.0.1", 0, gateway, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        fake_stripe.state.seed(open_=7)
        url = f"http://127.0.0.1:{server.port}"
        ran = subprocess.run(  # a process of its own: its metrics are this sweep's alone
            [*COMMAND, "sweep", "--yes"],
            env={**cli.env, "PROMETHEUS_PUSHGATEWAY": url},
            capture_output=True,
            timeout=120,
        )
        assert ran.returncode == 0, ran.stderr
    finally:
        server.shutdown()
    assert [(m, p) for m, p, _ in pushed] == [("PUT", "/metrics/job/checkout-sweeper")]
    body = pushed[0][2].decode()
    assert 'checkout_sweeper_sessions_total{outcome="expired"} 7.0' in body


def test_json_says_what_is_unknown_when_stripe_cannot_be_reached(cli):
    result = cli("sweep", "--yes", "--json", STRIPE_API_BASE="http://127.0.0.1:9")
    assert result.returncode == 3
    answer = json.loads(result.stdout)  # one object, also when nothing could start
    assert answer["remaining_open_count"] is None and answer["expired_count"] == 0
    assert "could not reach Stripe" in answer["error"]
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_a_warning_is_a_plain_line_and_names_the_concurrency_option(cli, fake_stripe):
    fake_stripe.state.seed(open_=60)
    fake_stripe.state.faults.update({"latency_ms": 50})
    result = cli("sweep", "--yes", "--json", "--concurrency", "1", "--max-rps", "100")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings and "sweep --concurrency" in warnings[0]
    assert not any(line.startswith("{") for line in result.stderr.splitlines())  # no JSON logs


@pytest.mark.parametrize(
    "command", [("users", "list", "--json"), ("history",), ("history", "--json")], ids=" ".join
)
def test_a_reader_that_goes_away_ends_the_output_quietly(cli, fake_stripe, command):
    fake_stripe.state.seed(open_=3)
    assert cli("sweep", "--yes").returncode == 0  # a run on record: history prints a table
    process = subprocess.Popen(
        [*COMMAND, *command],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()  # as `| head -0` does
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0 and b"Traceback" not in err and b"BrokenPipe" not in err


def test_serve_on_a_busy_port_is_one_line_and_exit_2_at_once(cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        started = time.monotonic()
        result = cli("serve", "--port", port)
    assert result.returncode == 2 and "cannot listen on 127.0.0.1:" in result.stderr
    assert result.stderr.count("\n") == 1 and time.monotonic() - started < 5


def test_serve_warns_at_start_when_the_limits_storage_is_unreachable(cli, tmp_path):
    env = {**cli.env, "RATELIMIT_STORAGE_URI": "redis://:pw@127.0.0.1:1/0"}
    with serving(env, tmp_path / "serve.log") as served:
        assert requests.get(f"{served.url}/healthz", timeout=5).status_code == 200
    log = (tmp_path / "serve.log").read_text()
    assert "warning: RATELIMIT_STORAGE_URI redis://:***@127.0.0.1:1/0 cannot be reached" in log


def test_a_dry_runs_json_slims_the_open_sessions_unless_full(cli, fake_stripe):
    fake_stripe.state.seed(open_=3)
    slim = json.loads(cli("sweep", "--dry-run", "--json").stdout)["remaining_open_sessions"]
    assert len(slim) == 3 and set(slim[0]) == {
        "id",
        "created",
        "amount_total",
        "currency",
        "customer",
        "url",
        "expires_at",
    }
    full = json.loads(cli("sweep", "--dry-run", "--json", "--full").stdout)
    assert full["remaining_open_sessions"][0]["object"] == "checkout.session"
    assert len(json.dumps(full)) > 3 * len(json.dumps(slim))


def test_global_options_work_after_the_command_name_too(cli, fake_stripe, tmp_path):
    fake_stripe.state.seed(open_=2)
    result = cli("sweep", "--yes", "--json", "--verbose")
    assert result.returncode == 0, result.stderr
    assert "info: sweep started" in result.stderr  # debug logs: info and below show
    assert json.loads(result.stdout)["expired_count"] == 2
    other = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    cli("users", "add", "--email", "elsewhere@example.com", "--database-url", other, check=True)
    assert "elsewhere@example.com" in cli("--database-url", other, "users", "list").stdout
    assert "elsewhere@example.com" not in cli("users", "list", check=True).stdout


def test_quiet_prints_nothing_but_what_was_asked_for(cli, fake_stripe):
    fake_stripe.state.seed(open_=3)
    result = cli("sweep", "--yes", "--quiet")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    fake_stripe.state.seed(open_=2)
    quiet_json = cli("-q", "sweep", "--yes", "--json")
    assert json.loads(quiet_json.stdout)["expired_count"] == 2 and quiet_json.stderr == ""


def test_log_format_json_makes_the_commands_warnings_json_lines(cli, fake_stripe):
    fake_stripe.state.seed(open_=60)
    fake_stripe.state.faults.update({"latency_ms": 50})
    result = cli(
        "sweep", "--yes", "--json", "--concurrency", "1", "--max-rps", "100", "--log-format", "json"
    )
    assert result.returncode == 0, result.stderr
    logged = [json.loads(line) for line in result.stderr.splitlines()]
    assert any(entry["level"] == "warning" for entry in logged)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_as_the_readme_sets_it_up(shell):
    script = str(Path(sys.executable).with_name("checkout-sweeper"))
    source = subprocess.run(
        [script],
        env={**os.environ, "_CHECKOUT_SWEEPER_COMPLETE": f"{shell}_source"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert source.returncode == 0 and "_CHECKOUT_SWEEPER_COMPLETE" in source.stdout
    asked = {"COMP_WORDS": "checkout-sweeper sweep --con", "COMP_CWORD": "2"}
    if shell == "fish":
        asked = {"COMP_WORDS": "checkout-sweeper sweep --con", "COMP_CWORD": "--con"}
    answer = subprocess.run(
        [script],
        env={**os.environ, **asked, "_CHECKOUT_SWEEPER_COMPLETE": f"{shell}_complete"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "--concurrency" in answer.stdout


def test_sweeps_cancel_stops_a_sweep_running_in_another_process(cli, fake_stripe):
    running = _start_slow_sweep(cli, fake_stripe, 400)
    sweep_id = json.loads(cli("history", "--json", "--status", "running").stdout)[0]["id"]
    canceled = cli("sweeps", "cancel", sweep_id[:8])
    assert canceled.returncode == 0 and f"sweep {sweep_id} canceled" in canceled.stdout
    out, err = running.communicate(timeout=30)
    assert running.returncode == 1 and "canceled" in err, err
    assert json.loads(out)["error"] == "the sweep was canceled by an operator"
    shown = json.loads(cli("history", "show", sweep_id, "--json").stdout)
    assert shown["status"] == "canceled" and shown["sessions"]
    assert shown["error"] == "the sweep was canceled by an operator"  # what it did stays on record
    again = cli("sweeps", "cancel", sweep_id)  # a sweep that ended, canceled included
    assert again.returncode == 2 and "already ended (canceled)" in again.stderr


def test_sweeps_cancel_of_a_sweep_that_ended_is_exit_2(cli, fake_stripe):
    fake_stripe.state.seed(open_=3)
    sweep_id = json.loads(cli("sweep", "--yes", "--json").stdout)["sweep_id"]
    ended = cli("sweeps", "cancel", sweep_id)
    assert ended.returncode == 2 and "already ended (succeeded)" in ended.stderr


def test_a_worker_whose_redis_is_unreachable_says_so_in_json_lines_and_waits(tmp_path):
    env = sweeper_env(
        tmp_path,
        SWEEPER_QUEUE_URL="redis://:secret@127.0.0.1:9/0",
        RATELIMIT_STORAGE_URI="redis://127.0.0.1:9/0",
    )
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [*COMMAND, "worker"], env=env, stdout=output, stderr=subprocess.STDOUT, text=True
        )
    wait_until(lambda: "worker started" in log.read_text(), 60, what="the worker to start")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    out = log.read_text()
    lines = [json.loads(line) for line in out.splitlines()]  # every line JSON, the library's too
    warning = next(line for line in lines if "cannot be reached" in line["message"])
    assert "redis://:***@127.0.0.1:9/0" in warning["message"] and "secret" not in out
    assert process.returncode == 0 and lines[-1]["message"] == "worker stopped"


def test_the_database_url_option_leaves_the_environment_alone(tmp_path, monkeypatch):
    """``--database-url`` is laid over the environment for this command; the process's own
    environment (which a server's workers would inherit) stays as it was."""
    import os

    from click.testing import CliRunner

    from checkout_sweeper.cli import main

    monkeypatch.setenv("SWEEPER_INSTANCE_PATH", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    other = f"sqlite:///{tmp_path / 'other.sqlite3'}"
    ran = CliRunner().invoke(main, ["--database-url", other, "users", "list", "--json"])
    assert ran.exit_code == 0, ran.output
    assert (tmp_path / "other.sqlite3").exists() and "DATABASE_URL" not in os.environ
