"""Real ``watchword serve`` processes for tests.

``live_watchword(env)`` starts ``.venv/bin/watchword serve`` as a subprocess on a loopback
port, waits until its ``/readyz`` answers 200 and stops it (SIGTERM, then SIGKILL) after the
test. Its stdout and stderr go to one file (``server.log_path``), so a test can search what it
logged, e.g. that a secret never appears there.

The port is chosen before the server starts and can be known earlier still: take one from
``free_port()`` (say, to register ``http://127.0.0.1:<port>/…`` as a redirect URI with an
upstream provider) and pass it as ``port=``. Any number of servers may run at once; pass
``wait=False`` to start several side by side and ``server.wait_ready()`` each afterwards.

Defaults, each left out when ``env`` gives the setting (under its path or its flat alias):
``WATCHWORD_ENV=development`` (migrates on start), a fresh SQLite file in the test's
``tmp_path``, ``WATCHWORD_ISSUER_URL=http://127.0.0.1:<port>``, JSON logs. No ``WATCHWORD_*``
variable of the test runner's own environment reaches the server.

``live_worker(env, name="w1")`` starts ``watchword worker`` the same way (same environment
and defaults). A worker has no HTTP port: it is ready once its log has ``job_started`` for
``job`` (``session_refresher`` unless told). ``worker.kill()`` sends SIGKILL (a crash: no
lease released, no transaction finished); every worker still running is stopped after the test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, Protocol

import httpx
import pytest

from watchword.config import ALIASES, ENV_PREFIX, env_name

__all__ = [
    "LiveServer",
    "LiveWatchword",
    "LiveWorker",
    "LiveWorkers",
    "free_port",
    "live_watchword",
    "live_worker",
]

WATCHWORD_BIN = Path(sys.executable).parent / "watchword"
READY_TIMEOUT = 90.0  # seconds; a cold start imports, migrates and checks the database
STOP_TIMEOUT = 15.0

_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, never the same twice in one test run."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("no free loopback port found in 100 tries")


@dataclass
class LiveServer:
    """One ``watchword serve`` process on ``url``."""

    name: str
    port: int
    url: str
    log_path: Path
    database_url: str
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, object]]:
        """The JSON log lines (``WATCHWORD_LOG__FORMAT=json``), parsed; other lines skipped."""
        records = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Return once ``/readyz`` answers 200; fail the test, showing the log, when the process
        exits first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(timeout=5.0) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    self._fail(f"exited with status {code} before it was ready")
                try:
                    response = client.get(f"{self.url}/readyz")
                    if response.status_code == 200:
                        return
                    last = f"/readyz answered {response.status_code}: {response.text[:500]}"
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    self.stop()
                    self._fail(f"was not ready after {timeout:g} s ({last})")
                time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after a grace period; returns the exit status. Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def _fail(self, what: str) -> NoReturn:
        pytest.fail(
            f"watchword serve {self.name!r} on {self.url} {what}; its log ({self.log_path}):\n"
            f"{self.log_text()[-8000:]}",
            pytrace=False,
        )


@dataclass
class LiveWorker:
    """One ``watchword worker`` process."""

    name: str
    log_path: Path
    database_url: str
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_records(self) -> list[dict[str, object]]:
        records = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records

    def started(self, job: str = "session_refresher") -> bool:
        return any(
            r.get("event") == "job_started" and r.get("job") == job for r in self.log_records()
        )

    def wait_started(self, job: str = "session_refresher", timeout: float = READY_TIMEOUT) -> None:
        """Return once the log says ``job`` started; fail the test (showing the log) when the
        process exits first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while not self.started(job):
            code = self.process.poll()
            if code is not None:
                self._fail(f"exited with status {code} before {job} started")
            if time.monotonic() > deadline:
                self.stop()
                self._fail(f"did not start {job} within {timeout:g} s")
            time.sleep(0.1)

    def kill(self) -> int:
        """SIGKILL (no clean-up of any kind); returns the exit status. Idempotent."""
        if self.process.poll() is None:
            self.process.kill()
        return self.process.wait()

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after a grace period; returns the exit status. Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def _fail(self, what: str) -> NoReturn:
        pytest.fail(
            f"watchword worker {self.name!r} {what}; its log ({self.log_path}):\n"
            f"{self.log_text()[-8000:]}",
            pytrace=False,
        )


class LiveWorkers(Protocol):
    """The ``live_worker`` fixture's factory."""

    def __call__(
        self, env: Mapping[str, str] | None = None, *, name: str, wait: bool = True
    ) -> LiveWorker: ...


class LiveWatchword(Protocol):
    """The ``live_watchword`` fixture's factory."""

    def __call__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        name: str = "a",
        port: int | None = None,
        wait: bool = True,
    ) -> LiveServer: ...


def _given(env: Mapping[str, str], path: tuple[str, ...]) -> str | None:
    """The value ``env`` gives a setting, under its path or its flat alias."""
    names = [env_name(path)]
    names += [ENV_PREFIX + alias.upper() for alias, target in ALIASES.items() if target == path]
    for candidate in names:
        if candidate in env:
            return env[candidate]
    return None


def _server_env(extra: Mapping[str, str], port: int, folder: Path) -> tuple[dict[str, str], str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    defaults = {
        ("env",): "development",
        ("host",): "127.0.0.1",
        ("issuer_url",): f"http://127.0.0.1:{port}",
        ("database", "url"): f"sqlite+aiosqlite:///{folder / 'watchword.sqlite3'}",
        ("log", "format"): "json",
    }
    env = dict(base)
    for path, value in defaults.items():
        if _given(extra, path) is None:
            env[env_name(path)] = value
    env.update(extra)
    env[env_name(("port",))] = str(port)
    env["PYTHONUNBUFFERED"] = "1"  # the log file is current while the server runs
    # Rich wraps human lines at 80 columns when not on a terminal; a secret split over two
    # lines would slip past a test that searches the log for it.
    if "COLUMNS" not in extra:
        env["COLUMNS"] = "1000"
    database_url = _given(env, ("database", "url"))
    assert database_url is not None
    return env, database_url


@pytest.fixture
def live_watchword(tmp_path: Path) -> Iterator[LiveWatchword]:
    """Factory: ``live_watchword(env, name="a", port=None, wait=True) -> LiveServer`` starts
    ``watchword serve`` with ``env`` added to its environment; every server it started is
    stopped after the test."""
    if not WATCHWORD_BIN.exists():
        pytest.fail(f"{WATCHWORD_BIN} is missing: run scripts/bootstrap", pytrace=False)
    servers: dict[str, LiveServer] = {}

    def start(
        env: Mapping[str, str] | None = None,
        *,
        name: str = "a",
        port: int | None = None,
        wait: bool = True,
    ) -> LiveServer:
        extra = dict(env or {})
        if name in servers:
            raise ValueError(f"a live server named {name!r} is already running in this test")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ValueError(f"name {name!r}: letters, digits, _ and - only")
        given_port = extra.pop(env_name(("port",)), None)
        if given_port is not None and port is not None and int(given_port) != port:
            raise ValueError(f"port={port} and WATCHWORD_PORT={given_port} disagree")
        chosen = port if port is not None else int(given_port or free_port())
        folder = tmp_path / f"live-{name}"
        folder.mkdir()
        server_env, database_url = _server_env(extra, chosen, folder)
        log_path = folder / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(WATCHWORD_BIN), "serve"],
                cwd=folder,  # no watchword.toml of the checkout's is picked up
                env=server_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = LiveServer(
            name=name,
            port=chosen,
            url=f"http://127.0.0.1:{chosen}",
            log_path=log_path,
            database_url=database_url,
            process=process,
        )
        servers[name] = server
        if wait:
            server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def live_worker(tmp_path: Path) -> Iterator[LiveWorkers]:
    """Factory: ``live_worker(env, name=…, wait=True) -> LiveWorker`` starts ``watchword
    worker`` with ``env`` added to its environment (``wait``: until ``session_refresher``
    started); every worker still running is stopped after the test."""
    if not WATCHWORD_BIN.exists():
        pytest.fail(f"{WATCHWORD_BIN} is missing: run scripts/bootstrap", pytrace=False)
    workers: dict[str, LiveWorker] = {}

    def start(env: Mapping[str, str] | None = None, *, name: str, wait: bool = True) -> LiveWorker:
        if name in workers:
            raise ValueError(f"a live worker named {name!r} was already started in this test")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise ValueError(f"name {name!r}: letters, digits, _ and - only")
        folder = tmp_path / f"worker-{name}"
        folder.mkdir()
        worker_env, database_url = _server_env(dict(env or {}), free_port(), folder)
        log_path = folder / "worker.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(WATCHWORD_BIN), "worker"],
                cwd=folder,
                env=worker_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        worker = LiveWorker(
            name=name, log_path=log_path, database_url=database_url, process=process
        )
        workers[name] = worker
        if wait:
            worker.wait_started()
        return worker

    try:
        yield start
    finally:
        for worker in workers.values():
            worker.stop()
