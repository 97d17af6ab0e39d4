"""Errors gunicorn answers itself, before the app sees the request (a header over its size
limit, a malformed request line), in the service's JSON error envelope instead of HTML.

Installed by ``gunicorn_conf.on_starting``: gunicorn writes these pages through
``gunicorn.util.write_error``, which this replaces with a writer of the same signature.
"""

from __future__ import annotations

import json
import socket

from gunicorn import util


def write_json_error(sock: socket.socket, status_int: int, reason: str, mesg: str) -> None:
    message = f"{reason}: {mesg}" if mesg else reason
    if status_int == 431:
        message += " (an Authorization header may carry a token of up to 16 KB)"
    body = json.dumps({"status": "error", "code": status_int, "message": message})
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body.encode())}\r\n\r\n"
    )
    util.write_nonblock(sock, (head + body).encode("latin1", "replace"))


def install() -> None:
    util.write_error = write_json_error
