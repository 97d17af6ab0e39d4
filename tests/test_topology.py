"""The documented topology: Debian's nginx, with ``deploy/nginx.conf``, in front of ``serve``.

Slow clients that trickle partial headers hold nginx connections, not gunicorn threads, so
``/healthz`` keeps answering; the endpoint, asynchronous sweeps and ``/metrics`` work through
it, and the client address is the one nginx saw (``X-Forwarded-For`` from that proxy only).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from checkout_sweeper.fake_stripe.process import free_port

from harness import serving, stop, sweeper_env, wait_until
from helpers import mint, run_command, service_missing

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"
ENDPOINT = "/v1/active_checkout_sessions_and_expire_all"


def _nginx() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if found is None:
        service_missing("nginx", "install Debian's package: apt-get install -y nginx")
    assert found is not None
    return found


def _configured(prefix: Path, listen: int, upstream: int) -> Path:
    """deploy/nginx.conf with its one listen line and one upstream server line on our ports."""
    text = CONFIG.read_text()
    assert len(re.findall(r"^\s*listen ", text, re.M)) == 1
    assert len(re.findall(r"^\s*server 127\.0\.0\.1:\d+;", text, re.M)) == 1
    text = re.sub(r"(?m)^(\s*)listen .*;", rf"\1listen 127.0.0.1:{listen};", text)
    text = re.sub(r"(?m)^(\s*)server 127\.0\.0\.1:\d+;", rf"\1server 127.0.0.1:{upstream};", text)
    for folder in ("logs", "tmp"):
        (prefix / folder).mkdir(parents=True, exist_ok=True)
    config = prefix / "nginx.conf"
    config.write_text(text)
    return config


@contextlib.contextmanager
def _proxy(prefix: Path, upstream: int) -> Iterator[str]:
    port = free_port()
    config = _configured(prefix, port, upstream)
    command = [_nginx(), "-p", str(prefix), "-c", str(config), "-g", "daemon off;"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url), 20, what="nginx to answer", alive=process)
        yield url
    finally:
        stop(process)


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _trickle(url: str, count: int) -> list[socket.socket]:
    """``count`` connections that each send the start of a header and then nothing."""
    host, port = url.removeprefix("http://").split(":")
    slow = []
    for _ in range(count):
        connection = socket.create_connection((host, int(port)), timeout=5)
        connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: ")
        slow.append(connection)
    return slow


@pytest.fixture
def topology(tmp_path, fake_stripe):
    """serve behind nginx; yields (nginx URL, serve's log, the environment)."""
    env = sweeper_env(
        tmp_path,
        fake_stripe.url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'topology.sqlite3'}",
        TRUSTED_PROXY_COUNT="1",
        LOG_LEVEL="INFO",
    )
    with (
        serving(env, tmp_path / "serve.log") as served,
        _proxy(tmp_path / "nginx", served.port) as url,
    ):
        yield url, served.log, env


def test_healthz_answers_through_nginx_while_200_clients_trickle_headers(topology):
    url, _, _ = topology
    slow = _trickle(url, 200)
    try:
        started = time.monotonic()
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - started < 1
    finally:
        for connection in slow:
            connection.close()


def test_the_endpoint_async_sweeps_and_metrics_work_through_nginx(topology, fake_stripe):
    url, log, env = topology
    added = run_command(env, "users", "add", "--email", "nginx@example.com", "--json")
    headers = {"Authorization": f"Bearer {mint(json.loads(added.stdout)['id'])}"}
    fake_stripe.state.seed(open_=6)
    forged = {**headers, "X-Forwarded-For": "203.0.113.9"}
    swept = requests.get(url + ENDPOINT, headers=forged, timeout=60)
    assert swept.status_code == 200 and swept.json()["data"]["expired_count"] == 6
    fake_stripe.state.seed(open_=4)
    accepted = requests.get(
        url + ENDPOINT, headers={**headers, "Prefer": "respond-async"}, timeout=10
    )
    assert accepted.status_code == 202
    location = url + accepted.headers["Location"]

    def ended() -> dict[str, Any] | None:
        run: dict[str, Any] = requests.get(location, headers=headers, timeout=10).json()["data"]
        return run if run["status"] not in ("queued", "running") else None  # queued: its turn

    done = wait_until(
        ended,
        60,
        interval=0.2,
        what="the async sweep to end",
    )
    assert done is not None
    assert done["status"] == "succeeded" and done["expired_count"] == 4
    assert requests.get(f"{url}/metrics", timeout=10).status_code == 200  # loopback via nginx
    requests_logged = [
        json.loads(line)
        for line in log.read_text().splitlines()
        if '"checkout_sweeper.request"' in line
    ]
    ips = {entry["ip"] for entry in requests_logged}
    assert ips == {"127.0.0.1"}  # nginx's view of the client; the forged hop is ignored
