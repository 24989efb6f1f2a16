"""Real nginx and Caddy processes for tests, running configurations verbatim.

``live_nginx(server_block)`` writes a whole ``nginx.conf`` into the test's ``tmp_path``: the
``http {}`` wrapper of :func:`nginx_http_wrapper` (pid file, error and access logs, the five
``*_temp_path`` directives, all in that folder) around the server block that
``server_block(listen)`` returns for ``listen="127.0.0.1:<free port>"`` (pass
``lambda listen: proxyconf.nginx_server(listen=listen, ...)``). It starts Debian's nginx as a
child, ``nginx -c CONF -p DIR -e LOG -g 'daemon off;'``, waits until the port accepts
connections and stops it by its PID after the test.

``live_caddy(site)`` does the same with a Caddyfile: global options (``admin off``, else
every Caddy binds 127.0.0.1:2019; ``auto_https off``; ``default_bind 127.0.0.1``) and the
site block ``site(address)`` returns for ``address="http://127.0.0.1:<free port>"``, run as
``caddy run --config F --adapter caddyfile`` with ``HOME`` and ``XDG_*`` in the test's folder
(Caddy writes an autosave and a storage folder there, not in root's home).

A proxy that exits or does not accept connections within ``START_TIMEOUT`` fails the test
with its log and configuration. Without the binary (``scripts/components`` installs both)
the test is skipped, or fails with ``CI=true``.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, Protocol

import pytest
from tests.conftest import _unavailable
from tests.support.live import free_port

__all__ = [
    "CADDY",
    "NGINX",
    "LiveCaddy",
    "LiveNginx",
    "LiveProxy",
    "caddy_global_options",
    "live_caddy",
    "live_nginx",
    "nginx_http_wrapper",
]

NGINX = Path("/usr/sbin/nginx")
CADDY = Path("/usr/bin/caddy")
START_TIMEOUT = 20.0  # seconds; both start in well under one
STOP_TIMEOUT = 10.0
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def _hint(package: str, binary: Path) -> str:
    return (
        f"{package} is not installed at {binary}; `scripts/components` installs it (as root: "
        f"`apt-get update && apt-get install -y --no-install-recommends {package}`)"
    )


def nginx_http_wrapper(server_block: str, *, prefix_dir: str) -> str:
    """A whole nginx.conf around ``server_block``: everything nginx writes goes to
    ``prefix_dir`` (pid, logs, temp files), one worker, no daemon settings (the command line
    says ``daemon off``). As root, workers run as root too: the test's folder is not
    readable by Debian's ``www-data``, and request bodies are buffered there."""
    folder = prefix_dir.rstrip("/")
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {folder}/{kind}_temp;" for kind in TEMP_PATHS)
    return (
        "# The tests' wrapper around one server block (tests/support/proxies.py).\n"
        f"{user}"
        "worker_processes 1;\n"
        f"pid {folder}/nginx.pid;\n"
        f"error_log {folder}/error.log info;\n"
        "events {\n    worker_connections 64;\n}\n"
        "http {\n"
        f"    access_log {folder}/access.log;\n"
        f"{temp}\n\n"
        f"{textwrap.indent(server_block, '    ')}"
        "}\n"
    )


def caddy_global_options() -> str:
    """The global options block the tests put before a site block."""
    return "{\n\tadmin off\n\tauto_https off\n\tdefault_bind 127.0.0.1\n}\n\n"


@dataclass
class LiveProxy:
    """One reverse proxy process listening on ``url`` (``http://127.0.0.1:<port>``)."""

    kind: str  # "nginx" or "caddy"
    port: int
    folder: Path
    config_path: Path
    log_path: Path  # nginx: its error log; caddy: its stdout and stderr
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        """What the proxy logged so far ("" before it wrote anything)."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Return once the port accepts a connection; fail the test, showing the log and the
        configuration, when the process exits first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                self._fail(f"exited with status {code} before it accepted connections")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1.0):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                self._fail(f"did not accept connections within {timeout:g} s")
            time.sleep(0.05)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL to its process group (nginx's workers too) after a grace
        period; returns the exit status. Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)  # its own session: start_new_session
                self.process.wait()
        return self.process.returncode

    def _fail(self, what: str) -> NoReturn:
        pytest.fail(
            f"{self.kind} on {self.url} {what}; its log ({self.log_path}):\n"
            f"{self.log_text()[-8000:]}\nits configuration ({self.config_path}):\n"
            f"{self.config_path.read_text(encoding='utf-8')}",
            pytrace=False,
        )


class LiveNginx(Protocol):
    """The ``live_nginx`` fixture's factory."""

    def __call__(self, server_block: Callable[[str], str], *, name: str = "nginx") -> LiveProxy: ...


class LiveCaddy(Protocol):
    """The ``live_caddy`` fixture's factory."""

    def __call__(self, site: Callable[[str], str], *, name: str = "caddy") -> LiveProxy: ...


@functools.cache
def _nginx_has_auth_request() -> bool:
    shown = subprocess.run([NGINX, "-V"], capture_output=True, text=True, check=False)
    return "--with-http_auth_request_module" in shown.stdout + shown.stderr


def _start(
    kind: str, folder: Path, config_path: Path, log_path: Path, port: int, command: list[str]
) -> LiveProxy:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
    env.update(
        HOME=str(folder),
        XDG_CONFIG_HOME=str(folder / "config"),
        XDG_DATA_HOME=str(folder / "data"),
    )
    output = log_path if kind == "caddy" else folder / "stderr.log"
    with output.open("ab") as log:
        process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return LiveProxy(kind, port, folder, config_path, log_path, process)


@pytest.fixture
def live_nginx(tmp_path: Path) -> Iterator[LiveNginx]:
    """Factory: ``live_nginx(server_block, name="nginx") -> LiveProxy`` runs nginx with
    ``server_block(listen)`` in the tests' ``http {}`` wrapper; every nginx it started is
    stopped after the test."""
    proxies: list[LiveProxy] = []

    def start(server_block: Callable[[str], str], *, name: str = "nginx") -> LiveProxy:
        if not (NGINX.is_file() and os.access(NGINX, os.X_OK)):
            _unavailable(_hint("nginx", NGINX), FileNotFoundError(str(NGINX)))
        if not _nginx_has_auth_request():
            _unavailable(
                f"{NGINX} lacks ngx_http_auth_request_module; install Debian's nginx",
                RuntimeError("nginx -V has no --with-http_auth_request_module"),
            )
        folder = tmp_path / name
        folder.mkdir()
        port = free_port()
        config_path = folder / "nginx.conf"
        config = nginx_http_wrapper(server_block(f"127.0.0.1:{port}"), prefix_dir=str(folder))
        config_path.write_text(config, encoding="utf-8")
        log_path = folder / "error.log"
        command = [str(NGINX), "-c", str(config_path), "-p", f"{folder}/", "-e", str(log_path)]
        proxy = _start(
            "nginx", folder, config_path, log_path, port, [*command, "-g", "daemon off;"]
        )
        proxies.append(proxy)
        proxy.wait_ready()
        return proxy

    try:
        yield start
    finally:
        for proxy in proxies:
            proxy.stop()


@pytest.fixture
def live_caddy(tmp_path: Path) -> Iterator[LiveCaddy]:
    """Factory: ``live_caddy(site, name="caddy") -> LiveProxy`` runs Caddy with the tests'
    global options and ``site(address)``; every Caddy it started is stopped after the
    test."""
    proxies: list[LiveProxy] = []

    def start(site: Callable[[str], str], *, name: str = "caddy") -> LiveProxy:
        if not (CADDY.is_file() and os.access(CADDY, os.X_OK)):
            _unavailable(_hint("caddy", CADDY), FileNotFoundError(str(CADDY)))
        folder = tmp_path / name
        folder.mkdir()
        port = free_port()
        config_path = folder / "Caddyfile"
        config = caddy_global_options() + site(f"http://127.0.0.1:{port}")
        config_path.write_text(config, encoding="utf-8")
        log_path = folder / "caddy.log"
        command = [str(CADDY), "run", "--config", str(config_path), "--adapter", "caddyfile"]
        proxy = _start("caddy", folder, config_path, log_path, port, command)
        proxies.append(proxy)
        proxy.wait_ready()
        return proxy

    try:
        yield start
    finally:
        for proxy in proxies:
            proxy.stop()
