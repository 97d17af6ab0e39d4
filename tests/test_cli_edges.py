"""The command line as a careful tool: one data folder wherever it runs, clear refusals of bad
input, the audit trail per session, users removed with care."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from checkout_sweeper.fake_stripe import FakeStripeServer

from harness import COMMAND, sweeper_env, wait_for_expires
from helpers import TEST_KEY, Ran, run_command


@pytest.fixture
def home(tmp_path: Path, fake_stripe: FakeStripeServer) -> dict[str, str]:
    """A fresh HOME and no SWEEPER_INSTANCE_PATH: the data folder is the user's own."""
    folder = tmp_path / "home"
    return sweeper_env(
        folder, fake_stripe.url, HOME=str(folder), SWEEPER_INSTANCE_PATH=None, XDG_DATA_HOME=None
    )


def _run(
    env: dict[str, str], *args: str, cwd: Path | None = None, **more: str
) -> Ran | subprocess.CompletedProcess[str]:
    """The command in this process, or in a process of its own in another directory."""
    if cwd is None:
        return run_command({**env, **more}, *args)
    return subprocess.run(
        [*COMMAND, *args],
        env={**env, **more},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_directory_sees_the_same_data(home, tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir(), second.mkdir()
    assert _run(home, "users", "add", "--email", "d@example.com", cwd=first).returncode == 0
    listed = _run(home, "users", "list", "--json", cwd=second)
    assert [u["email"] for u in json.loads(listed.stdout)] == ["d@example.com"]
    data = tmp_path / "home" / ".local" / "share" / "checkout-sweeper"
    assert (data / "checkout_sweeper.sqlite3").exists()
    assert not (first / "instance").exists() and not (second / "instance").exists()


def test_two_sweeps_from_two_directories_share_one_lease(home, tmp_path, fake_stripe):
    fake_stripe.state.seed(open_=400)  # 10 s at 40 a second: time for a second process to start
    fake_stripe.state.faults.update({"latency_ms": 20})
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir(), second_dir.mkdir()
    command = [*COMMAND, "sweep", "--yes", "--json"]
    first = subprocess.Popen(
        command, env={**home, "SWEEPER_MAX_RPS": "40"}, cwd=first_dir, stdout=subprocess.PIPE
    )
    wait_for_expires(fake_stripe, 5, 20, alive=first)
    second = _run(home, "sweep", "--yes", "--json", cwd=second_dir)
    assert second.returncode == 4 and "already running" in second.stderr
    first.communicate(timeout=60)
    assert first.returncode == 0 and fake_stripe.state.snapshot()["sessions_expired_twice"] == 0


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("sk_test_123 ", "spaces"),
        ("pk_test_abc", "publishable"),
        ("abc", "should start with"),
        ("sk_test_", "only the prefix"),
    ],
)
def test_each_bad_key_is_named_and_exits_2(home, key, words):
    result = _run(home, "sweep", "--yes", STRIPE_API_KEY=key)
    assert result.returncode == 2 and words in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1


def test_a_missing_key_exits_2(home):
    env = {k: v for k, v in home.items() if k != "STRIPE_API_KEY"}
    result = _run(env, "sweep", "--yes")
    assert result.returncode == 2 and "STRIPE_API_KEY is not set" in result.stderr


def test_an_unreachable_stripe_base_is_named_and_exits_3_quickly(home):
    started = time.monotonic()
    result = _run(home, "sweep", "--yes", STRIPE_API_BASE="http://127.0.0.1:9")
    assert result.returncode == 3 and time.monotonic() - started < 5
    assert "STRIPE_API_BASE=http://127.0.0.1:9" in result.stderr and "refused" in result.stderr
    assert "support@stripe.com" not in result.stderr and result.stderr.count("\n") == 1


def test_a_stripe_base_ending_in_v1_works_and_a_bad_one_is_refused(home, fake_stripe):
    fake_stripe.state.seed(open_=3)
    assert _run(home, "sweep", "--yes", STRIPE_API_BASE=fake_stripe.url + "/v1/").returncode == 0
    bad = _run(home, "sweep", "--yes", STRIPE_API_BASE="localhost:12111")
    assert bad.returncode == 2 and "STRIPE_API_BASE" in bad.stderr


@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_created_before_is_refused(home, fake_stripe, value):
    fake_stripe.state.seed(open_=3)
    result = _run(home, "sweep", "--yes", "--created-before", value)
    assert result.returncode == 2 and "empty" in result.stderr
    assert fake_stripe.state.snapshot()["open_total"] == 3


@pytest.mark.parametrize(("value", "words"), [("fast", "or 'auto'"), ("0", "from 0.1 to")])
def test_a_bad_max_rps_is_refused_and_nothing_is_expired(home, fake_stripe, value, words):
    fake_stripe.state.seed(open_=3)
    result = _run(home, "sweep", "--yes", "--max-rps", value)
    assert result.returncode == 2
    assert "--max-rps" in result.stderr and words in result.stderr
    assert fake_stripe.state.snapshot()["open_total"] == 3


def test_a_filtered_sweep_says_what_it_left_out(home, fake_stripe):
    fake_stripe.state.seed(open_=6)  # one every four hours over the past day
    cutoff = str(int(time.time()) - 6 * 3600)
    result = _run(home, "sweep", "--yes", "--created-before", cutoff)
    assert result.returncode == 0
    left = fake_stripe.state.snapshot()["open_total"]
    assert 0 < left < 6
    assert re.search(rf"open, out of scope\W+{left}\b", result.stdout), result.stdout


def test_history_show_lists_each_session_of_a_sweep(home, fake_stripe):
    fake_stripe.state.seed(open_=25)
    swept = json.loads(_run(home, "sweep", "--yes", "--json").stdout)
    shown = _run(home, "history", "show", swept["sweep_id"][:10].upper(), "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    expired = [s for s in record["sessions"] if s["outcome"] == "expired"]
    assert len(expired) == swept["expired_count"] == 25
    assert record["started_at"].endswith("Z") and record["duration_s"] is not None
    only = json.loads(
        _run(home, "history", "show", swept["sweep_id"], "--json", "--outcome", "failed").stdout
    )
    assert only["sessions"] == []
    missing = _run(home, "history", "show", "nope-nope")
    assert missing.returncode == 2 and "not a sweep id" in missing.stderr
    unknown = _run(home, "history", "show", "f" * 32)
    assert unknown.returncode == 2 and "no single sweep" in unknown.stderr
    table = _run(home, "history")
    assert "test:acct_" in table.stdout and "database sqlite" in table.stderr
    shown_table = _run(home, "history", "show", swept["sweep_id"])
    assert "Each expiry sent checkout.session.expired (25 events)" in shown_table.stdout
    fake_stripe.state.seed(open_=4)
    assert _run(home, "sweep", "--dry-run").returncode == 0
    newest = _run(home, "history").stdout.split("succeeded", 1)[1]
    assert newest.split()[1] == "would" and newest.split()[2] == "4"  # not "0 expired"


def test_users_remove_keeps_sweeps_on_record_and_asks_for_force(home, fake_stripe):
    from checkout_sweeper.store.database import Database
    from checkout_sweeper.store.models import SweepRun

    added = json.loads(_run(home, "users", "add", "--email", "r@example.com", "--json").stdout)
    uid = str(added["id"])
    data = os.path.join(home["HOME"], ".local", "share", "checkout-sweeper")
    db = Database(f"sqlite:///{data}/checkout_sweeper.sqlite3")
    with db.session() as session:
        session.add(SweepRun(id="r" * 32, trigger="api", user_id=added["id"], account="test:x"))
    refused = _run(home, "users", "remove", uid)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert _run(home, "users", "remove", uid, "--force").returncode == 0
    assert json.loads(_run(home, "users", "list", "--json").stdout) == []
    history = json.loads(_run(home, "history", "--json").stdout)
    assert history[0]["id"] == "r" * 32 and history[0]["user_id"] is None
    assert history[0]["removed_user_id"] == added["id"]  # who started it stays on record
    assert history[0]["removed_user_email"] == "r@example.com"
    table = _run(home, "history").stdout
    assert f"api:{uid} <r@example.com> (removed)" in table
    assert _run(home, "users", "remove", uid).returncode == 2  # no such user now


def test_token_refuses_an_unknown_user_unless_asked(home):
    refused = _run(home, "token", "99")
    assert refused.returncode == 2 and "no user 99" in refused.stderr
    minted = _run(home, "token", "99", "--any-id")
    assert minted.returncode == 0 and minted.stdout.count(".") == 2


def test_a_dotenv_file_in_the_current_directory_is_read(home, fake_stripe, tmp_path):
    fake_stripe.state.seed(open_=3)
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / ".env").write_text(f"STRIPE_API_KEY={TEST_KEY}\nSTRIPE_API_BASE={fake_stripe.url}\n")
    env = {k: v for k, v in home.items() if k not in ("STRIPE_API_KEY", "STRIPE_API_BASE")}
    result = _run(env, "sweep", "--yes", "--json", cwd=folder)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["expired_count"] == 3


@pytest.mark.parametrize("how", ["value", "file", "stdin"])
def test_api_key_option_works_and_the_key_is_never_printed(home, fake_stripe, tmp_path, how):
    fake_stripe.state.seed(open_=2)
    env = {k: v for k, v in home.items() if k != "STRIPE_API_KEY"}
    (tmp_path / "key").write_text(TEST_KEY + "\n")
    given = {"value": TEST_KEY, "file": f"@{tmp_path / 'key'}", "stdin": "-"}[how]
    result = subprocess.run(
        [*COMMAND, "sweep", "--yes", "--json", "--api-key", given],
        env=env,
        input=TEST_KEY + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["expired_count"] == 2
    assert TEST_KEY not in result.stdout + result.stderr
    refused = subprocess.run(
        [*COMMAND, "sweep", "--yes", "--json", "--api-key", "sk_test_revoked_key"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 3 and "sk_test_revoked_key" not in refused.stdout + refused.stderr


def _recorded_runs(home: dict[str, str], *runs: tuple[str, str, float]) -> None:
    """Runs on record as (id, status, hours ago), in the user's own database."""
    from datetime import UTC, datetime, timedelta

    from checkout_sweeper.store.database import Database
    from checkout_sweeper.store.models import SweepRun

    assert _run(home, "db", "upgrade").returncode == 0
    data = os.path.join(home["HOME"], ".local", "share", "checkout-sweeper")
    db = Database(f"sqlite:///{data}/checkout_sweeper.sqlite3")
    now = datetime.now(UTC)
    with db.session() as session:
        for run_id, status, hours in runs:
            started = now - timedelta(hours=hours)
            session.add(
                SweepRun(
                    id=run_id,
                    trigger="cli",
                    account="test:x",
                    status=status,
                    started_at=started,
                    finished_at=started,
                )
            )


def test_history_filters_by_status_and_since(home):
    _recorded_runs(
        home, ("a" * 32, "succeeded", 50), ("b" * 32, "failed", 1), ("c" * 32, "succeeded", 2)
    )

    def ids(*args: str) -> list[str]:
        return [r["id"][0] for r in json.loads(_run(home, "history", "--json", *args).stdout)]

    assert ids() == ["b", "c", "a"]
    assert ids("--status", "succeeded") == ["c", "a"]
    assert ids("--since", "1d") == ["b", "c"]
    assert ids("--since", "1d", "--status", "succeeded", "--status", "failed") == ["b", "c"]
    assert ids("--limit", "1") == ["b"]
    bad = _run(home, "history", "--since", "yesterday")
    assert bad.returncode == 2 and "2h" in bad.stderr and "ISO 8601" in bad.stderr


def test_history_show_needs_four_characters_and_lists_an_ambiguous_prefix(home):
    _recorded_runs(home, ("abcd1" + "0" * 27, "succeeded", 3), ("abcd2" + "0" * 27, "failed", 1))
    short = _run(home, "history", "show", "abc")
    assert short.returncode == 2 and "at least 4 characters" in short.stderr
    both = _run(home, "history", "show", "abcd")
    assert both.returncode == 2 and "2 sweeps start so" in both.stderr
    assert "abcd1" + "0" * 27 in both.stderr and "abcd2" + "0" * 27 in both.stderr
    one = _run(home, "history", "show", "abcd2", "--json")
    assert one.returncode == 0 and json.loads(one.stdout)["status"] == "failed"


def test_processes_starting_together_on_a_fresh_sqlite_file_migrate_one_at_a_time(tmp_path):
    env = sweeper_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    starting = [
        subprocess.Popen([*COMMAND, "db", "upgrade"], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for process in starting:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err  # no "table users already exists"
    assert _run(env, "users", "list", "--json").stdout.strip() == "[]"
    assert not (tmp_path / "fresh.sqlite3.migrating").exists()  # the lock file is gone too


def test_history_fits_an_80_column_terminal_with_whole_ids(home, fake_stripe):
    import fcntl
    import pty
    import struct
    import termios

    fake_stripe.state.seed(open_=3)
    swept = json.loads(_run(home, "sweep", "--yes", "--json").stdout)
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    process = subprocess.Popen(
        [*COMMAND, "history"], env=home, stdin=terminal, stdout=terminal, stderr=terminal
    )
    os.close(terminal)
    screen = b""
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        screen += chunk
    assert process.wait(timeout=60) == 0
    os.close(controller)
    lines = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", screen.decode()).splitlines()
    table = [line for line in lines if not line.startswith("database ")]  # a path: it wraps
    assert max(len(line) for line in table) <= 80, lines
    row = next(line for line in lines if swept["sweep_id"][:12] in line)  # copyable for `show`
    assert row.split()[3:6] == ["succeeded", "3", "0"], row  # status, expired, left
