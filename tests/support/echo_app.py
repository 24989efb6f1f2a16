"""An app that shows what reached it: every request is answered 200 with JSON.

``echo_app`` (fixture) runs one in a background thread on a free loopback port for the test
and records every request it got. The answer body, and each entry of ``app.requests``, is
``{"method", "path", "headers", "body"}``: ``path`` is the request target as received (query
included), ``headers`` maps lower-cased names to values (a name sent more than once maps to
its values joined by ``", "``, so a duplicate cannot hide), ``body`` is the body as text.

It sits behind the reverse proxies of ``tests/support/proxies.py``: a test sends a request
through the proxy and reads exactly which headers the app saw.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from tests.support.live import free_port

__all__ = ["EchoApp", "Seen", "echo_app", "running_echo_app", "seen_request"]


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as a server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: str

    def as_json(self) -> dict[str, object]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
        }


def seen_request(handler: BaseHTTPRequestHandler) -> Seen:
    """Read the request ``handler`` is serving (its body too) as a ``Seen``."""
    headers: dict[str, str] = {}
    for name, value in handler.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    length = int(handler.headers.get("Content-Length") or 0)
    body = handler.rfile.read(length).decode("utf-8", errors="replace") if length else ""
    return Seen(method=handler.command, path=handler.path, headers=headers, body=body)


@dataclass
class EchoApp:
    """A running echo app on ``url``; ``requests`` lists what it received, oldest first."""

    port: int
    requests: list[Seen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _echo(self) -> None:
        seen = seen_request(self)
        self.server.app.requests.append(seen)
        body = json.dumps(seen.as_json()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _echo

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test reads ``requests`` instead


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, app: EchoApp) -> None:
        self.app = app
        super().__init__(("127.0.0.1", app.port), _Handler)


def running_echo_app() -> tuple[EchoApp, _Server]:
    """Start an echo app in a daemon thread; the caller shuts the server down."""
    app = EchoApp(port=free_port())
    server = _Server(app)
    threading.Thread(target=server.serve_forever, name="echo-app", daemon=True).start()
    return app, server


@pytest.fixture
def echo_app() -> Iterator[EchoApp]:
    """An echo app on a free loopback port for this test, shut down after it."""
    app, server = running_echo_app()
    try:
        yield app
    finally:
        server.shutdown()
        server.server_close()
