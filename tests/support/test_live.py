"""The live-server fixture starts real ``watchword serve`` processes."""

from __future__ import annotations

import signal
import sqlite3

import httpx
import pytest
from tests.support.live import LiveWatchword, free_port

from watchword import __version__


def test_a_live_server_serves_http_and_logs_to_its_file(live_watchword: LiveWatchword) -> None:
    server = live_watchword()

    health = httpx.get(f"{server.url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    info = httpx.get(f"{server.url}/openapi.json", timeout=10).json()["info"]
    assert (info["title"], info["version"]) == ("watchword", __version__)

    # The human start-up line, on one line (no terminal wrapping), and uvicorn's JSON record.
    assert f"serving on http://127.0.0.1:{server.port}" in server.log_text()
    events = [record.get("event") for record in server.log_records()]
    assert f"Uvicorn running on http://127.0.0.1:{server.port} (Press CTRL+C to quit)" in events
    assert {"method": "GET", "path": "/healthz", "status": 200}.items() <= next(
        r for r in server.log_records() if r.get("path") == "/healthz"
    ).items()

    # SIGTERM stops it cleanly (uvicorn re-raises the signal once shut down: status -15).
    assert server.stop() == -signal.SIGTERM
    assert f"Finished server process [{server.pid}]" in server.log_text()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/healthz", timeout=2)


def test_two_live_servers_run_at_once_on_ports_chosen_beforehand(
    live_watchword: LiveWatchword,
) -> None:
    port_a, port_b = free_port(), free_port()
    assert port_a != port_b
    a = live_watchword(name="a", port=port_a, wait=False)
    b = live_watchword(name="b", port=port_b, wait=False)
    a.wait_ready()
    b.wait_ready()

    assert (a.url, b.url) == (f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}")
    assert a.pid != b.pid
    assert a.database_url != b.database_url
    for server in (a, b):
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    assert a.stop() == -signal.SIGTERM
    assert httpx.get(f"{b.url}/healthz", timeout=10).status_code == 200


def test_a_live_server_takes_the_tests_env_and_nothing_of_the_runners(
    live_watchword: LiveWatchword,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Would stop the server from starting if it leaked from the runner's environment.
    monkeypatch.setenv("WATCHWORD_LOG__LEVEL", "not-a-level")
    monkeypatch.setenv("WATCHWORD_PORT", "1")
    database = tmp_path_factory.mktemp("given") / "given.sqlite3"

    server = live_watchword(
        # The flat alias: the fixture must not add the nested name beside it (a conflict).
        {
            "WATCHWORD_DATABASE_URL": f"sqlite+aiosqlite:///{database}",
            "WATCHWORD_LOG__LEVEL": "warning",
        }
    )

    assert server.database_url == f"sqlite+aiosqlite:///{database}"
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    with sqlite3.connect(database) as conn:  # migrated on start: WATCHWORD_ENV=development
        assert conn.execute("SELECT count(*) FROM watchword_schema_version").fetchone() == (1,)
    # warning level: no info records such as the per-request log line
    assert not [r for r in server.log_records() if r.get("level") == "info"]
