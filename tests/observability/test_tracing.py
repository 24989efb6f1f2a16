from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from watchword.observability.tracing import build_provider, configure_tracing


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, bytes]] = []  # noqa: RUF012 - shared with the test by design

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        return


@pytest.fixture
def collector() -> Iterator[str]:
    _Collector.received = []
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    server.shutdown()
    server.server_close()


def test_tracing_exports_spans_to_configured_otlp_endpoint(collector: str) -> None:
    provider = build_provider(collector, "watchword-test")
    try:
        with provider.get_tracer("t").start_as_current_span("probe-span") as span:
            span.set_attribute("watchword.test", 1)
        assert provider.force_flush(5000)
    finally:
        provider.shutdown()
    assert [path for path, _ in _Collector.received] == ["/v1/traces"]
    body = _Collector.received[0][1]
    assert b"probe-span" in body and b"watchword-test" in body


def test_tracing_without_endpoint_installs_nothing() -> None:
    assert configure_tracing(None, "watchword") is None
