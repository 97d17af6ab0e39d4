"""``/docs`` in a real headless Chromium (Debian's package): the page renders the endpoint and
the sweep resources with no console error. A screenshot is kept in the test's folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from checkout_sweeper.fake_stripe import FakeStripeServer

from helpers import serve_api, service_missing

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",
]


@pytest.fixture
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        service_missing("Chromium", "install Debian's package: apt-get install -y chromium")
    return path


def _browse(chromium: str, url: str, folder: Path, *extra: str) -> tuple[str, list[str]]:
    """The rendered DOM, and the console messages the page logged."""
    result = subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={folder / 'profile'}", *extra, "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, "HOME": str(folder)},
    )
    console = [line for line in result.stderr.splitlines() if ":CONSOLE" in line]
    return result.stdout, console


def test_the_console_check_sees_an_error(chromium, tmp_path):
    page = "data:text/html,<script>console.error('broken page')</script>"
    _, console = _browse(chromium, page, tmp_path)
    assert any("broken page" in line for line in console)


def test_docs_render_every_operation_without_console_errors(chromium, tmp_path):
    with FakeStripeServer() as fake, serve_api(tmp_path, fake.url) as api:
        dom, console = _browse(chromium, f"{api.url}/docs", tmp_path)
        screenshot = tmp_path / "docs.png"
        subprocess.run(
            [
                chromium,
                *FLAGS,
                f"--user-data-dir={tmp_path / 'shot'}",
                "--window-size=1280,1600",
                f"--screenshot={screenshot}",
                f"{api.url}/docs",
            ],
            capture_output=True,
            timeout=90,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    assert console == []
    for path in (
        "/v1/active_checkout_sessions_and_expire_all",
        "/v1/sweeps/{sweep_id}/sessions",
        "/v1/sweeps/{sweep_id}",
        "/v1/sweeps",
    ):
        assert path in dom
    assert "Authorize" in dom and "OAS 3.1" in dom
    assert screenshot.stat().st_size > 10_000
