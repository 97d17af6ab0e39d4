"""Fleet sweeps over HTTP against a fake platform with connected accounts: every account swept
under its own lease, one that refuses fails alone, a rerun finishes the job."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from checkout_sweeper.cli.display import SLIM_FIELDS
from checkout_sweeper.fake_stripe import FakeStripeServer
from checkout_sweeper.runs.lease import AccountLease
from checkout_sweeper.store.database import Database

from harness import sweep_when_ended, sweeper_env
from helpers import Ran, run_command


@pytest.fixture
def platform(fake_stripe: FakeStripeServer) -> list[str]:
    """Four connected accounts with 30 open sessions each (and none on the platform)."""
    return fake_stripe.state.connect_accounts(4, open_=30)


@pytest.fixture
def cli(tmp_path, fake_stripe):
    env = sweeper_env(tmp_path, fake_stripe.url, DATABASE_URL=f"sqlite:///{tmp_path / 'f.db'}")

    def run(*args: str, **overrides: str) -> Ran:
        return run_command({**env, **overrides}, *args)

    run.env = env  # type: ignore[attr-defined]
    return run


def _open(fake_stripe: FakeStripeServer, account: str) -> int:
    return fake_stripe.state.snapshot()["open_sessions"].get(f"test:{account}", 0)


def test_every_connected_account_is_swept_and_the_parent_sums_them(cli, fake_stripe, platform):
    import requests

    hook = {"url": "https://shop.test/hooks", "enabled_events": ["checkout.session.expired"]}
    added = requests.post(
        f"{fake_stripe.url}/_admin/webhook_endpoints",
        json={**hook, "account": platform[1]},
        timeout=5,
    )
    assert added.status_code == 200, added.text
    ran = cli("sweep", "--all-accounts", "--yes", "--json")
    assert ran.returncode == 0, ran.stderr
    data = json.loads(ran.stdout)
    assert data["status"] == "succeeded" and data["expired_count"] == 120
    effects = data["side_effects"]
    assert effects["expired_events"] == 120 and effects["recovery_sessions"] == 0
    endpoint = {"id": added.json()["id"], "url": hook["url"], "account": platform[1]}
    assert effects["webhook_endpoints"] == [endpoint]  # only the account it listens on
    assert sorted(a["account"] for a in data["accounts"]) == sorted(platform)
    assert all(a["status"] == "succeeded" and a["expired_count"] == 30 for a in data["accounts"])
    assert data["remaining_open_count"] == 0 and data["failed_accounts"] == []
    assert fake_stripe.state.snapshot()["open_total"] == 0
    runs = json.loads(cli("history", "--json", "--limit", "10").stdout)
    parent = next(run for run in runs if run["fleet"])
    children = [run for run in runs if run["parent_id"] == parent["id"]]
    assert parent["id"] == data["sweep_id"] and parent["status"] == "succeeded"
    assert parent["found_count"] == 120 and parent["listing_complete"]  # as its children say
    assert sorted(run["account"] for run in children) == sorted(f"test:{a}" for a in platform)


def test_an_account_that_refuses_fails_alone_and_a_rerun_finishes(cli, fake_stripe, platform):
    refusing = platform[1]
    fake_stripe.state.platform.refusing.add(refusing)
    ran = cli("sweep", "--all-accounts", "--yes", "--json")
    assert ran.returncode == 6, ran.stderr  # partial
    data = json.loads(ran.stdout)
    assert data["status"] == "partial" and data["expired_count"] == 90
    [failed] = data["failed_accounts"]
    assert failed["account"] == refusing and "403" in failed["error"]
    assert "does not have access" in failed["error"]
    assert _open(fake_stripe, refusing) == 30
    assert all(_open(fake_stripe, a) == 0 for a in platform if a != refusing)
    fake_stripe.state.platform.refusing.clear()  # access granted again
    again = json.loads(cli("sweep", "--all-accounts", "--yes", "--json").stdout)
    assert again["status"] == "succeeded" and again["expired_count"] == 30
    assert fake_stripe.state.snapshot()["open_total"] == 0


def test_an_account_another_sweep_holds_is_not_swept_twice(cli, fake_stripe, platform):
    db = Database(cli.env["DATABASE_URL"])
    db.upgrade()
    AccountLease(db, f"test:{platform[0]}", "another-sweep", ttl_s=60).acquire()
    ran = cli("sweep", "--all-accounts", "--yes", "--json")
    data = json.loads(ran.stdout)
    assert ran.returncode == 6 and data["status"] == "partial"
    assert [f["account"] for f in data["failed_accounts"]] == [platform[0]]
    assert _open(fake_stripe, platform[0]) == 30  # nothing sent while another holds it


def test_named_accounts_only_and_a_dry_run_expires_nothing(cli, fake_stripe, platform):
    dry = cli("sweep", "--account", platform[0], "--account", platform[2], "--dry-run", "--json")
    data = json.loads(dry.stdout)
    assert dry.returncode == 0 and data["would_expire_count"] == 60
    named = {platform[0], platform[2]}  # as for one account: each id, a slim object each
    assert len(data["would_expire"]) == 60 and {s["account"] for s in data["would_expire"]} == named
    open_shown = data["remaining_open_sessions"]
    assert len(open_shown) == 60 and {s["account"] for s in open_shown} == named
    assert all(set(s) == {*SLIM_FIELDS, "account"} for s in open_shown)
    whole = cli("sweep", "--account", platform[0], "--dry-run", "--json", "--full")
    assert "payment_method_types" in json.loads(whole.stdout)["remaining_open_sessions"][0]
    assert f"{platform[0]}  succeeded  would expire 30" in dry.stderr
    assert "expired 0" not in dry.stderr
    assert fake_stripe.state.snapshot()["open_total"] == 120
    ran = cli("sweep", "--account", platform[0], "--yes", "--json", "--limit", "10")
    assert json.loads(ran.stdout)["expired_count"] == 10
    assert _open(fake_stripe, platform[0]) == 20 and _open(fake_stripe, platform[2]) == 30


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--all-accounts", "--account", "acct_1abc"), "not both"),
        (("--account", "cus_123"), "acct_"),
    ],
)
def test_a_bad_choice_of_accounts_is_exit_2(cli, fake_stripe, platform, args, said):
    ran = cli("sweep", "--yes", *args)
    assert ran.returncode == 2 and said in ran.stderr
    assert fake_stripe.state.snapshot()["open_total"] == 120


def test_an_account_that_is_not_connected_is_a_failure_not_a_quiet_success(cli, fake_stripe):
    fake_stripe.state.seed(open_=5)  # the platform's own sessions; no account is connected
    ran = cli("sweep", "--account", "acct_notconnected", "--yes", "--json")
    assert ran.returncode != 0
    data = json.loads(ran.stdout)
    assert data["status"] == "failed" and "403" in data["failed_accounts"][0]["error"]
    empty = cli("sweep", "--all-accounts", "--yes", "--json")
    assert empty.returncode == 2 and "no connected accounts" in json.loads(empty.stdout)["error"]
    assert fake_stripe.state.snapshot()["open_total"] == 5


def test_ctrl_c_in_a_fleet_exits_130_with_what_stripe_expired(cli, fake_stripe):
    """The parent settles ``interrupted`` with its children's sums: what Stripe expired."""
    import signal
    import subprocess

    from harness import COMMAND, wait_for_expires

    accounts = fake_stripe.state.connect_accounts(4, open_=300)
    fake_stripe.state.faults.update({"latency_ms": 30})
    with subprocess.Popen(
        [*COMMAND, "sweep", "--all-accounts", "--yes", "--json"],
        env=cli.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        wait_for_expires(fake_stripe, 40)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    data = json.loads(out)
    assert f"then fleet sweep {data['sweep_id']} is recorded as interrupted" in err
    assert re.search(r"stopping: [1-4] accounts' sweeps in flight", err), err
    expired = 4 * 300 - sum(_open(fake_stripe, account) for account in accounts)
    assert data["status"] == "interrupted" and data["expired_count"] == expired > 0
    assert sum(a["expired_count"] for a in data["accounts"]) == expired
    runs = json.loads(cli("history", "--json", "--limit", "10").stdout)
    parent = next(run for run in runs if run["id"] == data["sweep_id"])
    assert parent["status"] == "interrupted" and parent["expired_count"] == expired


# over the API -------------------------------------------------------------------------------
def _post_fleet(url: str, token: str, body: dict) -> dict:
    import requests

    answer = requests.post(
        f"{url}/v1/sweeps", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert answer.status_code == 202, answer.text
    return answer.json()["data"]


def test_a_fleet_asked_over_the_api_runs_in_the_background(api, fake_stripe, platform):
    import requests

    from checkout_sweeper.web.openapi.document import openapi_spec

    from helpers import conforms

    fake_stripe.state.platform.refusing.add(platform[3])
    token = api.token(api.add_user())
    accepted = _post_fleet(api.url, token, {"accounts": "all", "metadata": None})
    parent = sweep_when_ended(api.url, accepted["sweep_id"], token)
    assert parent["fleet"] and parent["status"] == "partial" and parent["expired_count"] == 90
    assert len(parent["children"]) == 4
    refused = [c for c in parent["children"] if c["status"] == "failed"]
    assert [c["stripe_account"] for c in refused] == [platform[3]] and "403" in refused[0]["error"]
    assert parent["result"]["failed_accounts"][0]["account"] == platform[3]
    assert parent["result"]["side_effects"]["expired_events"] == 90
    shown = requests.get(
        f"{api.url}/v1/sweeps/{accepted['sweep_id']}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    conforms(shown, openapi_spec("/v1"))  # a fleet's answer is the one the document gives


def test_a_bad_accounts_field_is_a_400(api, fake_stripe, platform):
    import requests

    token = api.token(api.add_user())
    for accounts in (["cus_1"], [], "some", [platform[0], platform[0]]):
        answer = requests.post(
            f"{api.url}/v1/sweeps",
            json={"accounts": accounts},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 400 and "accounts" in answer.json()["message"]
    assert fake_stripe.state.snapshot()["open_total"] == 120


@pytest.mark.services
def test_a_fleet_on_the_queue_is_spread_over_two_workers(
    tmp_path, fake_stripe, platform, postgres_url, redis_url
):
    from harness import queued_env, serving, working
    from helpers import mint

    fake_stripe.state.platform.refusing.add(platform[0])
    # Each account's sweep takes seconds (2 requests in flight, 300 ms each): long enough
    # for the second worker to take the third account while the first holds two at most.
    env = queued_env(tmp_path, fake_stripe.url, postgres_url, redis_url, SWEEPER_CONCURRENCY="2")
    added = run_command(env, "users", "add", "--email", "f@example.com", "--json")
    token = mint(json.loads(added.stdout)["id"])
    fake_stripe.state.faults.update({"latency_ms": 300})
    one_at_a_time = ("--concurrency", "1")  # each takes one account, and holds two at most
    with (
        serving(env, tmp_path / "serve.log") as web,
        working(env, tmp_path / "w1.log", *one_at_a_time),
        working(env, tmp_path / "w2.log", *one_at_a_time),
    ):
        accepted = _post_fleet(web.url, token, {"accounts": platform})
        parent = sweep_when_ended(web.url, accepted["sweep_id"], token)
    assert parent["status"] == "partial" and parent["expired_count"] == 90
    ran_by = {c["worker"]["pid"] for c in parent["children"] if c["worker"]}
    assert len(ran_by) == 2  # the accounts were spread over both workers
    assert all(_open(fake_stripe, a) == 0 for a in platform[1:])


def test_a_platform_budget_holds_every_account_of_the_fleet_under_it(cli, fake_stripe, platform):
    import time

    started = time.monotonic()
    ran = cli("sweep", "--all-accounts", "--yes", "--json", SWEEPER_PLATFORM_MAX_RPS="20")
    took = time.monotonic() - started
    assert ran.returncode == 0, ran.stderr
    sent = sum(
        seen["requests"]
        for account, seen in fake_stripe.state.snapshot()["by_account"].items()
        if account != "platform"
    )
    assert sent >= 120 and took >= sent / 20 - 1.5  # 20 a second, for the 4 accounts together


def _worst_second(gates: list, threads: int, seconds: float = 3.0) -> tuple[int, int]:
    """Hammer the gates from ``threads`` threads; how many passed, and the most passes surely
    let through within one second: those whose whole call (from asking to the answer) fell
    in it, so a thread the interpreter held up cannot make the gate look too generous."""
    import threading
    import time

    calls: list[tuple[float, float]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def hammer(gate: Callable[[], object]) -> None:
        while time.monotonic() < stop_at:
            asked = time.monotonic()
            gate()
            with lock:
                calls.append((asked, time.monotonic()))

    workers = [
        threading.Thread(target=hammer, args=(gates[i % len(gates)],)) for i in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    worst = max(
        sum(1 for asked, answered in calls if start <= asked and answered <= start + 1.0)
        for start, _ in calls
    )
    return len(calls), worst


def test_the_platform_gate_in_one_process_never_lets_more_through_than_its_rate():
    import uuid

    from checkout_sweeper.runs.platform_budget import platform_gate

    passed, worst = _worst_second([platform_gate("memory://", uuid.uuid4().hex, 20)], 16)
    assert passed >= 40 and worst <= 20


@pytest.mark.services
def test_the_platform_gate_is_one_budget_for_several_processes(redis_url):
    import uuid

    from checkout_sweeper.runs.platform_budget import platform_gate

    platform = uuid.uuid4().hex  # a key of this test's own in the shared Redis
    two_processes = [platform_gate.__wrapped__(redis_url, platform, 20) for _ in range(2)]
    passed, worst = _worst_second(two_processes, 16)
    assert passed >= 40 and worst <= 20


def test_canceling_a_fleet_stops_its_children_and_it_stays_canceled(api, fake_stripe):
    """A cancel reaches everything the fleet started: running children stop, queued ones
    never start, and the parent ends canceled for good once they have; reading the sweeps
    meanwhile never marks the parent stale for holding no lease."""
    import time

    import requests

    from harness import expires_seen, wait_until

    accounts = fake_stripe.state.connect_accounts(8, open_=200)
    fake_stripe.state.faults.update({"latency_ms": 40})
    token = api.token(api.add_user())
    headers = {"Authorization": f"Bearer {token}"}
    parent = _post_fleet(api.url, token, {"accounts": "all"})
    location = f"{api.url}{parent['location']}"
    wait_until(lambda: expires_seen(fake_stripe) >= 30, 30, what="the fleet to expire some")
    listed = requests.get(f"{api.url}/v1/sweeps", headers=headers, timeout=30).json()["data"]
    assert [run["status"] for run in listed["data"] if run["fleet"]] == ["running"]
    canceled = requests.delete(location, headers=headers, timeout=30)
    assert canceled.status_code in (200, 202), canceled.text
    in_flight = expires_seen(fake_stripe)
    time.sleep(3)
    sent = expires_seen(fake_stripe)
    assert sent - in_flight <= 6 * 8  # what the children had in flight, no more
    time.sleep(2)
    assert expires_seen(fake_stripe) == sent  # nothing reaches Stripe once they stopped
    ended = sweep_when_ended(api.url, parent["sweep_id"], token)
    assert ended["status"] == "canceled", ended
    assert all(child["status"] in ("canceled", "succeeded") for child in ended["children"])
    assert ended["expired_count"] == sum(c["expired_count"] for c in ended["children"]) > 0
    assert sum(_open(fake_stripe, account) for account in accounts) == 8 * 200 - sent


def test_a_running_fleet_shows_its_childrens_counters_so_far(api, fake_stripe):
    import requests

    from harness import expires_seen, wait_until

    fake_stripe.state.connect_accounts(3, open_=200)
    fake_stripe.state.faults.update({"latency_ms": 40})
    token = api.token(api.add_user())
    parent = _post_fleet(api.url, token, {"accounts": "all"})

    def shown() -> dict:
        url, headers = f"{api.url}{parent['location']}", {"Authorization": f"Bearer {token}"}
        return requests.get(url, headers=headers, timeout=30).json()["data"]

    wait_until(lambda: shown()["expired_count"] > 0, 30, what="the parent to count some")
    seen = expires_seen(fake_stripe)
    now = shown()
    assert now["status"] == "running" and seen < 3 * 200, now
    assert now["expired_count"] == sum(c["expired_count"] for c in now["children"]) > 0
    assert now["found_count"] > 0 and now["rate"] > 0
    sweep_when_ended(api.url, parent["sweep_id"], token)


def test_a_fleet_on_a_terminal_shows_a_bar_per_account_while_it_runs(cli, fake_stripe):
    import os
    import pty
    import re
    import select
    import subprocess
    import time

    from harness import COMMAND

    accounts = fake_stripe.state.connect_accounts(2, open_=150)
    fake_stripe.state.faults.update({"latency_ms": 30})
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*COMMAND, "sweep", "--all-accounts", "--yes"],
        env={**cli.env, "COLUMNS": "120"},
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        close_fds=True,
    )
    os.close(terminal)
    screen, deadline = b"", time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        if select.select([controller], [], [], 0.1)[0]:
            try:
                screen += os.read(controller, 65536)
            except OSError:
                break
    process.wait(timeout=30)
    os.close(controller)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.decode(errors="replace"))
    assert process.returncode == 0, text[-2000:]
    for account in accounts:  # a bar while it ran, then its line
        assert re.search(rf"{account} .*\d+/150 +running +expired \d+", text), text[-2000:]
        assert f"{account}  succeeded  expired 150" in text


def test_a_restricted_key_sweeps_the_fleet_though_it_may_not_read_accounts(
    cli, fake_stripe, platform
):
    key = "rk_test_51RestrictedFleetKey"
    ran = cli("sweep", "--all-accounts", "--yes", "--json", STRIPE_API_KEY=key)
    assert ran.returncode == 0, ran.stderr
    data = json.loads(ran.stdout)
    assert data["status"] == "succeeded" and data["expired_count"] == 120
    assert fake_stripe.state.snapshot()["open_total"] == 0
    assert ran.stderr.count("may not read its Stripe account") == 1, ran.stderr
    runs = json.loads(cli("history", "--json", "--limit", "10", STRIPE_API_KEY=key).stdout)
    children = [run for run in runs if run["parent_id"] == data["sweep_id"]]
    assert sorted(run["account"] for run in children) == sorted(f"test:{a}" for a in platform)


def test_a_restricted_key_sweeps_a_fleet_asked_over_the_api(start_api, fake_stripe, platform):
    api = start_api(STRIPE_API_KEY="rk_test_51RestrictedApiKey")
    token = api.token(api.add_user())
    accepted = _post_fleet(api.url, token, {"accounts": "all"})
    parent = sweep_when_ended(api.url, accepted["sweep_id"], token)
    assert parent["status"] == "succeeded" and parent["expired_count"] == 120, parent
    assert fake_stripe.state.snapshot()["open_total"] == 0


def test_a_killed_server_leaves_no_fleet_sweep_queued_or_running(cli, tmp_path, fake_stripe):
    """``serve`` with no queue holds a fleet's waiting accounts in memory: after a kill -9 of
    its worker, those end ``interrupted`` as never run (their process is gone), those it was
    sweeping end ``interrupted`` too, and the fleet is settled from them; a new sweep of the
    same accounts starts at once."""
    import os
    import signal

    import requests

    from harness import serving, wait_for_expires, wait_until
    from helpers import mint

    fake_stripe.state.connect_accounts(8, open_=40)  # 6 swept at once, 2 wait
    fake_stripe.state.faults.update({"latency_ms": 200})
    added = cli("users", "add", "--email", "k@example.com", "--json")
    token = mint(json.loads(added.stdout)["id"])
    with serving({**cli.env, "SWEEPER_CONCURRENCY": "1"}, tmp_path / "serve.log") as web:
        fleet = _post_fleet(web.url, token, {"accounts": "all"})
        wait_for_expires(fake_stripe, 12)
        running = [run for run in _history(cli) if run["worker"]]
        pid = running[0]["worker"]["pid"]
        os.kill(pid, signal.SIGKILL)  # the process sweeping, as the OOM killer would
        wait_until(lambda: not _alive(pid), 10, what="the killed worker to be gone")
        runs = _history(cli)
        polled = requests.get(  # the fleet, ended by that read, as a client polling sees it
            f"{web.url}/v1/sweeps/{fleet['sweep_id']}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert polled.json()["data"]["status"] == "interrupted", polled.text
    assert {run["status"] for run in runs} == {"interrupted"}, runs
    never_ran = [run for run in runs if "stopped before it ran" in (run["error"] or "")]
    assert len(never_ran) == 2
    again = cli("sweep", "--all-accounts", "--yes", "--json")
    assert again.returncode == 0, again.stderr
    assert fake_stripe.state.snapshot()["open_total"] == 0


def _history(cli: Callable[..., Ran]) -> list[dict]:
    shown = cli("history", "--json", "--limit", "20")
    assert shown.returncode == 0, shown.stderr
    return list(json.loads(shown.stdout))


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_fleet_killed_while_every_account_runs_ends_with_its_accounts(cli, fake_stripe, platform):
    """A kill -9 of the command while each account's sweep runs: the next command imports
    the children's journals (interrupted) and the fleet ends with them, not running for ever."""
    import signal
    import subprocess

    from harness import COMMAND, wait_for_expires

    fake_stripe.state.faults.update({"latency_ms": 300})
    process = subprocess.Popen(
        [*COMMAND, "sweep", "--all-accounts", "--yes", "--json"],
        env={**cli.env, "SWEEPER_CONCURRENCY": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_expires(fake_stripe, 12)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    runs = _history(cli)
    assert {run["status"] for run in runs} == {"interrupted"}, runs
    _sums_match(runs, "after the kill")
    again = cli("sweep", "--all-accounts", "--yes", "--json")  # settles what was in flight
    assert again.returncode == 0, again.stderr
    killed = [run for run in _history(cli) if run["status"] == "interrupted"]
    _sums_match(killed, "after settling")  # the fleet's sums follow its accounts' settled rows
    assert fake_stripe.state.snapshot()["sessions_expired_twice"] == 0


def _sums_match(runs: list[dict], when: str) -> None:
    parent = next(run for run in runs if run["fleet"])
    children = [run for run in runs if run["parent_id"] == parent["id"]]
    summed = sum(child["expired_count"] for child in children)
    assert parent["expired_count"] == summed, (when, parent, children)
