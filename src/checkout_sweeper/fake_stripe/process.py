"""Run ``checkout-sweeper fake-stripe`` as a child process: its own interpreter and cores.

Benchmarks use it so that the fake's work never competes with the measured client for the GIL;
tests use it to check the command a user runs.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(
    url: str, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 30
) -> None:
    """Poll the admin surface until it answers; fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_admin/stats", timeout=1):
                return
        except (urllib.error.URLError, ConnectionError):
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"fake-stripe exited with status {process.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing answered at {url}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def fake_stripe_process(*args: str) -> Iterator[str]:
    """Start the fake with extra command-line ``args`` on a free port; yield its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "checkout_sweeper", "fake-stripe", "--port", str(port), *args]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
