"""Edge benchmark: watchword's decisions over real HTTP, beside its own ``/healthz`` floor,
and forward-auth through a real nginx configured as ``watchword edge config nginx`` prints.

    .venv/bin/python benchmarks/edge/run.py [--rounds 5] [--seconds 3] [--threads 1] \
        [--connections 16] [--warmup 1] [--out benchmarks/edge/results.md]

Two ``watchword serve`` processes run side by side, each on a SQLite file of its own seeded
before it starts, with the same one-route edge table (development mode, JSON logs, the
environment ``tests/support/live.py`` gives its servers):

- ``plain``: ``WATCHWORD_SERVER_LOOP=asyncio``, ``WATCHWORD_SERVER_HTTP=h11``;
- ``fast``: ``uvloop`` and ``httptools`` (what ``auto`` picks when they are installed, as
  they are with watchword); checked in ``/proc/<pid>/maps`` before measuring.

Each SQLite file is seeded the way tests/integration/edge/test_proxies_watchword.py does:
an organization, bob in a group of it with role ``org-reader`` (issuer = the server's
``WATCHWORD_ISSUER_URL``), bob's personal API token, and an admin key. The route table:
``GET /orgs/{org}/projects/{project}`` needs ``read`` on ``watchword:projects``
``{id: project, organization: org, project: project}``, so bob's token on his own
organization's project is an allow by the policy engine (not a superuser's shortcut).

One nginx (one worker) runs what ``watchword.edge.proxyconf.nginx_server`` renders for the
``fast`` watchword (two ``upstream`` blocks with ``keepalive`` and a server block, all in the
``http { }`` block, wrapped as tests/support/proxies.py wraps it) in front of a trivial app
(another server block, ``return 200 "ok"``), and the same output with its ``auth_request``
machinery taken out (the same nginx proxying without auth).

``wrk`` (one thread, 16 connections by default: the machine has 2 cores) drives every target
in turn, round after round, the order rotated each round so drift on a shared machine hits
all targets alike; the plain and fast variants of a target are neighbours in the rotation:

- ``healthz``: ``GET /healthz``, the HTTP floor of that server;
- ``authz_check``: ``POST /v1/authz/check`` with an admin key and the same inline subject
  every time (docs/authz.md's alice, org-reader in acme, reads project web of acme): after
  the first request the subject compile cache hits;
- ``authz_check_distinct``: the same question with a new subject id on every request (a Lua
  ``request()`` counter): every request parses and compiles a subject (cache misses);
- ``forward_auth``: ``GET /auth/verify`` straight to watchword with bob's token and the
  headers the generated nginx block sends (``X-Original-URI``, ``X-Forwarded-*``...);
- ``nginx_plain``, ``nginx_auth``: ``GET /orgs/<org>/projects/web`` through the two nginx
  configurations above with bob's token, at ``--connections`` (throughput)
  and at one connection (unloaded latency: one request at a time); ``healthz`` and
  ``forward_auth`` of the fast server are also measured at one connection, to show where
  the time added by ``auth_request`` goes.

Per target and round: requests/s, latency p50/p90/p99 (wrk's ``--latency`` histogram,
printed as JSON by the Lua ``done()`` hook), and the CPU seconds the server processes on the
path used during the run (``/proc/<pid>/stat`` utime + stime: the watchword measured, plus
nginx with its worker for the nginx targets), so a figure can also be read as requests per
server CPU-second. Figures are medians over rounds; a ratio or difference is computed per
round (both targets measured in that round) and given as median (min to max over rounds).

Before measuring, every request is sent once and its answer checked (authz: 200 and
allowed; forward-auth: 200 with ``X-Watchword-Subject: bob``; through nginx: 200 from the
app, which saw ``X-Watchword-Subject: bob`` and no Authorization header, and 401 without the
token). During the runs a
Lua ``response()`` hook re-checks each watchword answer (``"allowed":true``, the subject
header); any non-2xx/3xx answer, failed check or socket error stops the benchmark with an
error: the figures would not be of the request meant. Ctrl-C or SIGTERM stops every server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import importlib.metadata
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Literal, NoReturn
from urllib.parse import urlsplit

import httpx

from watchword.bootstrap import create_admin_key
from watchword.clock import SystemClock
from watchword.config import ENV_PREFIX, env_name, load_settings
from watchword.edge import proxyconf
from watchword.rbac.model import GroupMember
from watchword.rbac.store.groups import create_group
from watchword.rbac.store.organizations import create_organization
from watchword.services import Services
from watchword.tokens.format import TokenKind
from watchword.tokens.model import Owner
from watchword.tokens.scope import Permission
from watchword.tokens.service import NewToken

REPO = Path(__file__).resolve().parents[2]
WATCHWORD_BIN = Path(sys.executable).with_name("watchword")
READY_TIMEOUT = 90.0  # seconds; a cold start imports, migrates and checks the database
STOP_TIMEOUT = 15.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LATENCY_CONNECTIONS = 1  # the unloaded latency targets: one request at a time

# The two servers: (event loop, HTTP parser), and the shared object file each loads when it
# is really in use (looked for in /proc/<pid>/maps).
SERVERS: Mapping[str, tuple[str, str]] = {
    "plain": ("asyncio", "h11"),
    "fast": ("uvloop", "httptools"),
}
NATIVE_MODULES = {"uvloop": "/uvloop/loop.", "httptools": "/httptools/parser/parser."}

# Docs/authz.md's worked request, answered by the catalogue seeded by the migrations.
AUTHZ_CHECK_BODY = {
    "subject": {
        "issuer": "https://id.example.com",
        "id": "alice",
        "organizations": {"acme": ["org-reader"]},
        "projects": {"web": {"organization": "acme", "roles": ["project-member"]}},
    },
    "action": "read",
    "object": {"type": "watchword:projects", "id": "web", "org_id": "acme", "project_id": "web"},
}
# authz_check_distinct: the subject id becomes "alice-<wrk thread>-<counter>".
COUNTER_MARK = "@COUNTER@"

# The route table (docs/edge.md's format), the same for both servers; bob (org-reader of the
# organization seeded in each server's database) may read any project of it.
PROJECT = "web"
EDGE_ROUTES = {
    "routes": [
        {
            "name": "bench-project",
            "path": "/orgs/{org}/projects/{project}",
            "resource": "watchword:projects",
            "action": "read",
            "object": {"id": "{project}", "organization": "{org}", "project": "{project}"},
        }
    ]
}
MEMBER = "bob"
MEMBER_ROLE = "org-reader"

# What every watchword answer must say during the runs (wrk's response() hook).
ALLOWED_JSON = '"allowed":true'


class BenchmarkError(Exception):
    """The benchmark cannot give meaningful figures; the message says why."""


# ---------------------------------------------------------------------------------------------
# Tools


def find_or_install(command: str, package: str, fallback: str | None = None) -> str:
    """The path of ``command``; installed with apt-get (``package``) when missing and root."""
    found = shutil.which(command) or (fallback if fallback and Path(fallback).exists() else None)
    if found:
        return found
    if os.geteuid() != 0:
        raise BenchmarkError(
            f"{command} is missing; install it (Debian: `sudo apt-get install -y {package}`)"
        )
    print(f"{command} is missing: apt-get install -y {package}", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    if subprocess.run(install, env=env, check=False).returncode != 0:
        # A fresh machine may have no package lists yet.
        subprocess.run(["apt-get", "update"], env=env, check=True)
        subprocess.run(install, env=env, check=True)
    found = shutil.which(command) or (fallback if fallback and Path(fallback).exists() else None)
    if not found:
        raise BenchmarkError(f"apt-get installed {package} but {command} is still not found")
    return found


def first_line(command: Sequence[str]) -> str:
    """The first output line of a version command (``wrk -v`` exits 1, ``nginx -v`` prints
    to stderr)."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "?"


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now, chosen by the OS."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def cpu_seconds(roots: Sequence[int]) -> float:
    """utime + stime of ``roots`` and their live descendants (all threads), in seconds."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # Field 2 (comm) is in parentheses and may hold spaces: split after its last ')'.
        rest = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(rest[1])
        ticks[pid] = int(rest[11]) + int(rest[12])
    total, frontier = 0, list(roots)
    while frontier:
        pid = frontier.pop()
        total += ticks.get(pid, 0)
        frontier += [child for child, parent in parents.items() if parent == pid]
    return total / CLOCK_TICKS


def native_modules(pid: int) -> list[str]:
    """Which of uvloop's and httptools' compiled modules process ``pid`` has loaded."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    return [name for name, needle in NATIVE_MODULES.items() if needle in maps]


# ---------------------------------------------------------------------------------------------
# Processes


@dataclass
class Child:
    """A server process in a session of its own (Ctrl-C reaches only this script, which then
    stops it), its output in ``log_path``."""

    name: str
    log_path: Path
    process: subprocess.Popen[bytes]

    @classmethod
    def start(cls, name: str, command: Sequence[str], env: Mapping[str, str], cwd: Path) -> Child:
        log_path = cwd / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return cls(name, log_path, process)

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def fail(self, what: str, extra: str = "") -> NoReturn:
        tail = self.log_tail().strip() or "(nothing yet)"
        raise BenchmarkError(f"{self.name} {what}; the end of its log:\n{tail}{extra}")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its whole process group after a grace period. Idempotent."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                print(f"{self.name} ignored SIGTERM: SIGKILL", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # stragglers (nginx workers)
        self.process.wait()

    def wait_for(self, url: str, timeout: float) -> None:
        """Return once ``url`` answers 200; fail (showing the log) when the process exits
        first or ``timeout`` seconds pass."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(timeout=5.0) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    self.fail(f"exited with status {code} before {url} answered 200")
                try:
                    response = client.get(url)
                    if response.status_code == 200:
                        return
                    last = f"answered {response.status_code}: {response.text[:300]}"
                except httpx.TransportError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    self.fail(f"was not ready after {timeout:g} s ({url}: {last})")
                time.sleep(0.2)


# ---------------------------------------------------------------------------------------------
# watchword: seeding and the servers


@dataclass(frozen=True, slots=True)
class Seeded:
    org: str  # the organization's id: the request path names it
    member_token: str  # bob's personal API token (org-reader of org)
    admin_key: str  # wwb_...: the caller of /v1/authz/check


async def seed(url: str, issuer: str) -> Seeded:
    """What tests/integration/edge/test_proxies_watchword.py ``_seed`` does, with
    tests/support/seed.py's ``add_members`` and ``personal_token`` inlined: a migrated
    database, an organization, bob (of ``issuer``, the server's own issuer URL) in a group of
    it with role org-reader, bob's personal token, and an admin key."""
    settings = load_settings(environ={}, env="development", database={"url": url})
    async with Services.open(settings) as services:
        await services.runtime.prepare_schema()
        org = await create_organization(services.store, name="bench")
        await create_group(
            services.store,
            organization_id=org.id,
            name="readers",
            members=[GroupMember(issuer, MEMBER)],
            role_ids=[MEMBER_ROLE],
        )
        issued = await services.tokens.create(
            NewToken(
                kind=TokenKind.PERSONAL,
                name="bench",
                owner=Owner(issuer, MEMBER),
                scopes=frozenset({"*:*"}),
                permission=Permission.READ_WRITE,
            )
        )
        _, admin = await create_admin_key(services.runtime.engine, SystemClock())
    return Seeded(org.id, issued.token.reveal(), admin.reveal())


@dataclass
class Watchword:
    """One ``watchword serve``, seeded, with the loop and parser it was started with."""

    name: str  # "plain" or "fast"
    loop: str
    http: str
    port: int
    seeded: Seeded
    child: Child
    loaded: list[str] = field(default_factory=list)  # native modules seen in its maps

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.child.pid

    @property
    def original_uri(self) -> str:
        return f"/orgs/{self.seeded.org}/projects/{PROJECT}"


def start_watchword(name: str, folder: Path, routes: Path, extra: Mapping[str, str]) -> Watchword:
    """Seed a fresh SQLite file, then start ``watchword serve`` on it (not yet ready)."""
    loop, http = SERVERS[name]
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    database = f"sqlite+aiosqlite:///{folder / f'{name}.sqlite3'}"
    seeded = asyncio.run(seed(database, issuer))
    # The environment tests/support/live.py gives a live server (none of this shell's
    # WATCHWORD_* variables), then --server-env, then what makes this server plain or fast.
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env |= {
        env_name(("env",)): "development",
        env_name(("host",)): "127.0.0.1",
        env_name(("port",)): str(port),
        env_name(("issuer_url",)): issuer,
        env_name(("database", "url")): database,
        env_name(("log", "format")): "json",
        env_name(("edge", "routes_file")): str(routes),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "1000",
    }
    env |= dict(extra)
    env[env_name(("server_loop",))] = loop
    env[env_name(("server_http",))] = http
    child = Child.start(f"watchword-{name}", [str(WATCHWORD_BIN), "serve"], env, folder)
    return Watchword(name, loop, http, port, seeded, child)


def forward_auth_headers(ww: Watchword, host: str) -> dict[str, str]:
    """What the generated nginx block's auth subrequest sends watchword (proxy_set_header
    lines of its ``= /_watchword/verify`` location), for a client of ``host`` with bob's
    token; the forward_auth target sends exactly this straight to watchword."""
    uri = ww.original_uri
    return {
        "Host": host,
        "Authorization": f"Bearer {ww.seeded.member_token}",
        "X-Forwarded-Host": host,
        "X-Forwarded-Proto": "http",
        "X-Forwarded-For": "127.0.0.1",
        "X-Original-URI": uri,
        "X-Original-Method": "GET",
        "X-Original-URL": f"http://{host}{uri}",
        "X-Forwarded-Uri": uri,
        "X-Forwarded-Method": "GET",
    }


def distinct_body(index: int) -> str:
    body = json.loads(json.dumps(AUTHZ_CHECK_BODY))
    body["subject"]["id"] = f"alice-{index}"
    return json.dumps(body, separators=(",", ":"))


def check_watchword(ww: Watchword, host: str) -> None:
    """Every watchword request of the benchmark, once: the answer it must give."""
    admin = {"Authorization": f"Bearer {ww.seeded.admin_key}"}
    with httpx.Client(base_url=ww.base, timeout=10.0) as client:
        for what, body in (("same", json.dumps(AUTHZ_CHECK_BODY)), ("distinct", distinct_body(0))):
            answer = client.post(
                "/v1/authz/check",
                content=body,
                headers={**admin, "Content-Type": "application/json"},
            )
            if answer.status_code != 200 or ALLOWED_JSON not in answer.text:
                ww.child.fail(
                    f"did not allow the benchmark's authz question ({what} subject)",
                    f"\nanswer {answer.status_code}: {answer.text[:1000]}",
                )
        verify = client.get(proxyconf.VERIFY_PATH, headers=forward_auth_headers(ww, host))
        if verify.status_code != 200 or verify.headers.get("x-watchword-subject") != MEMBER:
            ww.child.fail(
                f"did not let bob's token through {proxyconf.VERIFY_PATH} with "
                f"X-Watchword-Subject: {MEMBER}",
                f"\nanswer {verify.status_code} {dict(verify.headers)}: {verify.text[:1000]}",
            )
        anonymous = {
            k: v for k, v in forward_auth_headers(ww, host).items() if k != "Authorization"
        }
        refused = client.get(proxyconf.VERIFY_PATH, headers=anonymous)
        if refused.status_code != 401:
            ww.child.fail(
                f"answered {refused.status_code}, not 401, to {proxyconf.VERIFY_PATH} "
                "without a credential"
            )


# ---------------------------------------------------------------------------------------------
# nginx


def nginx_http_wrapper(parts: Sequence[str], folder: Path) -> str:
    """tests/support/proxies.py ``nginx_http_wrapper``: a whole nginx.conf whose pid file,
    logs and temp paths are in ``folder``, one worker, workers as root when run as root (the
    folder is not www-data's), ``parts`` in its ``http { }`` block (where
    ``proxyconf.nginx_server``'s output goes whole: upstream blocks and a server block).
    Three changes for a benchmark: no access log, the error log at ``warn`` (not ``info``),
    1024 worker connections (not 64: at 16 client connections each request here holds up to
    four)."""
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {folder}/{kind}_temp;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    body = "\n".join(textwrap.indent(part, "    ") for part in parts)
    return (
        "# tests/support/proxies.py's wrapper, for a benchmark (benchmarks/edge/run.py).\n"
        f"{user}"
        "worker_processes 1;\n"
        f"pid {folder}/nginx.pid;\n"
        f"error_log {folder}/nginx-error.log warn;\n"
        "events {\n    worker_connections 1024;\n}\n"
        "http {\n"
        "    access_log off;\n"
        f"{temp}\n\n"
        f"{body}"
        "}\n"
    )


def app_block(port: int) -> str:
    """The protected app: nginx itself, so no Python app is the bottleneck. It echoes the
    subject header and the Authorization header it received as X-Seen-Subject and
    X-Seen-Authorization (each absent when empty), so a probe can see watchword's identity
    reach the app and watchword's credential not reach it."""
    return textwrap.dedent(
        f"""\
        # The app behind the proxy (benchmark only).
        server {{
            listen 127.0.0.1:{port};
            server_name _;
            location / {{
                default_type text/plain;
                add_header X-Seen-Subject $http_x_watchword_subject;
                add_header X-Seen-Authorization $http_authorization;
                return 200 "ok";
            }}
        }}
        """
    )


@dataclass
class ConfBlock:
    """One ``{ ... }`` block of an nginx configuration, by line index."""

    head: str  # the opening line, stripped, without its "{"
    start: int  # index of the opening line (-1: the whole text)
    end: int = -1  # index of the closing "}" line
    children: list[ConfBlock] = field(default_factory=list)
    directives: list[tuple[int, str]] = field(default_factory=list)  # (index, stripped line)

    def named(self, *words: str) -> list[str]:
        """The directives (stripped lines) directly inside whose first words are ``words``."""
        return [
            text
            for _, text in self.directives
            if text.rstrip(";").split()[: len(words)] == list(words)
        ]


def parse_conf(text: str) -> ConfBlock:
    """``text`` as proxyconf writes nginx configuration: on each line one directive
    (``...;``), one block opening (``... {``), one ``}``, a comment or nothing. A line of any
    other kind is a :class:`BenchmarkError` (the shape is not the one this script knows)."""
    root = ConfBlock("", -1)
    stack = [root]
    for index, line in enumerate(text.splitlines()):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped == "}":
            if len(stack) == 1:
                raise BenchmarkError(f"line {index + 1} closes a block never opened:\n{text}")
            stack.pop().end = index
        elif stripped.endswith("{"):
            block = ConfBlock(stripped[:-1].strip(), index)
            stack[-1].children.append(block)
            stack.append(block)
        elif stripped.endswith(";"):
            stack[-1].directives.append((index, stripped))
        else:
            raise BenchmarkError(f"line {index + 1} is not a directive, block or comment: {line!r}")
    if len(stack) != 1:
        raise BenchmarkError(f"the block of line {stack[-1].start + 1} is never closed:\n{text}")
    return root


@dataclass(frozen=True, slots=True)
class NginxShape:
    """Where the auth_request machinery is in ``proxyconf.nginx_server``'s output."""

    text: str
    watchword_upstream: str
    app_upstream: str
    app_location: ConfBlock  # location /: auth_request, captures, error_page 401, proxy_pass
    subrequest_location: ConfBlock  # location = <auth_request's URI>: internal, to /auth/verify
    signin_location: ConfBlock  # location @<error_page 401's target>
    captured: tuple[str, ...]  # the $variables auth_request_set fills


def nginx_shape(text: str, ww_port: int, app_port: int) -> NginxShape:
    """The shape of ``proxyconf.nginx_server``'s output for the watchword on ``ww_port`` and
    the app on ``app_port``, checked: two upstream blocks (one per port, each with
    ``keepalive``) and one server block, whose ``location /`` alone has ``auth_request`` (to
    an internal location proxying to the watchword upstream's /auth/verify), the
    ``auth_request_set`` captures, ``error_page 401`` (to a named location) and a
    ``proxy_pass`` to the app upstream, all over HTTP/1.1 with ``Connection ""``. Anything
    else is a :class:`BenchmarkError` naming what is not as expected."""

    def refuse(what: str) -> NoReturn:
        raise BenchmarkError(
            f"proxyconf.nginx_server's output is not of the shape benchmarks/edge/run.py "
            f"knows ({what}); update nginx_shape() and without_auth():\n{text}"
        )

    root = parse_conf(text)
    heads = [block.head.split()[0] for block in root.children]
    if root.directives or heads != ["upstream", "upstream", "server"]:
        refuse(
            f"top level: {heads} and {len(root.directives)} directives, expected two "
            "upstream blocks and one server block"
        )
    by_port: dict[int, str] = {}
    for block in root.children[:2]:
        servers, keepalive = block.named("server"), block.named("keepalive")
        found = re.fullmatch(r"server 127\.0\.0\.1:(\d+);", servers[0]) if servers else None
        if len(servers) != 1 or found is None or len(keepalive) != 1:
            refuse(f"`{block.head}`: not one `server 127.0.0.1:PORT;` and one `keepalive`")
        by_port[int(found[1])] = block.head.split()[1]
    if set(by_port) != {ww_port, app_port}:
        refuse(f"upstream ports {sorted(by_port)}, expected {ww_port} (watchword), {app_port}")
    ww_upstream, app_upstream = by_port[ww_port], by_port[app_port]
    server = root.children[2]
    locations = {
        block.head: block for block in server.children if block.head.startswith("location ")
    }
    with_auth = [block for block in server.children if block.named("auth_request")]
    if [block.head for block in with_auth] != ["location /"]:
        refuse(f"auth_request in {[block.head for block in with_auth]}, expected location / alone")
    app = with_auth[0]
    auth, errors = app.named("auth_request"), app.named("error_page", "401", "=")
    sets = [
        re.fullmatch(r"auth_request_set (\$\w+) \$upstream_http_\w+;", d)
        for d in app.named("auth_request_set")
    ]
    if len(auth) != 1 or len(errors) != 1 or not sets or not all(sets):
        refuse("location / has not one auth_request, one error_page 401 = @... and captures")
    captured = tuple(found[1] for found in sets if found)
    passed = [d for d in app.named("proxy_set_header") if d.split()[-1].rstrip(";") in captured]
    if len(passed) != len(captured) or len(captured) != len(proxyconf.DEFAULT_HEADERS):
        refuse(
            f"{len(captured)} captures and {len(passed)} proxy_set_header lines passing "
            f"them, expected {len(proxyconf.DEFAULT_HEADERS)} of each"
        )
    subrequest = locations.get(f"location = {auth[0].split()[1].rstrip(';')}")
    signin = locations.get(f"location {errors[0].split()[-1].rstrip(';')}")
    verify = f"proxy_pass http://{ww_upstream}{proxyconf.VERIFY_PATH};"
    if subrequest is None or subrequest.named("internal") != ["internal;"]:
        refuse(f"no internal location for `{auth[0]}`")
    if subrequest.named("proxy_pass") != [verify]:
        refuse(f"the subrequest's location does not `{verify}`")
    if signin is None:
        refuse(f"no location for `{errors[0]}`")
    if app.named("proxy_pass") != [f"proxy_pass http://{app_upstream};"]:
        refuse(f"location / does not proxy_pass to http://{app_upstream}")
    for block in (app, subrequest):
        kept = block.named("proxy_http_version") + block.named("proxy_set_header", "Connection")
        if kept != ["proxy_http_version 1.1;", 'proxy_set_header Connection "";']:
            refuse(f'`{block.head}` is not HTTP/1.1 with Connection "" (kept alive)')
    return NginxShape(text, ww_upstream, app_upstream, app, subrequest, signin, captured)


def without_auth(shape: NginxShape) -> str:
    """The generated output with its auth_request machinery taken out: in ``location /`` the
    ``auth_request``, the ``auth_request_set`` captures, ``error_page 401`` and the
    ``proxy_set_header`` lines that pass a captured value to the app; the internal
    subrequest location and the named sign-in location (nothing refers to them any more);
    the comments just above what is taken out. The rest is left as generated: the two
    upstreams (kept-alive connections to the app; /auth/ and the JWKS still go to
    watchword), the server-level host check, Cookie and Authorization filtering, the 404
    locations, and the same ``proxy_pass`` to the app with the same headers."""
    lines = shape.text.splitlines()
    drop: set[int] = set()
    app = shape.app_location
    for index, text in app.directives:
        words = text.split()
        auth = words[0] in ("auth_request", "auth_request_set") or words[:2] == [
            "error_page",
            "401",
        ]
        passed = words[0] == "proxy_set_header" and words[-1].rstrip(";") in shape.captured
        if auth or passed:
            drop.add(index)
    for block in (shape.subrequest_location, shape.signin_location):
        drop.update(range(block.start, block.end + 1))
    for index in sorted(drop):  # the comments just above each dropped line
        above = index - 1
        while above >= 0 and above not in drop and lines[above].strip().startswith("#"):
            drop.add(above)
            above -= 1
    kept: list[str] = []
    for index, line in enumerate(lines):
        if index in drop or (not line.strip() and kept and not kept[-1].strip()):
            continue
        kept.append(line)
    text = "\n".join(kept) + "\n"
    # What is left must be a well-formed block without auth that still proxies to the app.
    left = parse_conf(text)
    server = left.children[-1]
    apps = [block for block in server.children if block.head == "location /"]
    gone = ("auth_request", "error_page 401", proxyconf.VERIFY_PATH + ";", *shape.captured)
    if (
        any(word in text for word in gone)
        or len(apps) != 1
        or apps[0].named("proxy_pass") != [f"proxy_pass http://{shape.app_upstream};"]
    ):
        raise BenchmarkError(f"without_auth() left a block it should not have:\n{text}")
    return "# The generated output without auth_request (benchmark only).\n" + text


@dataclass(frozen=True, slots=True)
class NginxPorts:
    app: int
    plain: int
    auth: int


def nginx_host(port: int) -> str:
    """The Host header a client of the nginx block on ``port`` sends: the request line's host
    (127.0.0.1, origin-form) and the port, which the block's host check accepts."""
    return f"127.0.0.1:{port}"


def nginx_conf(folder: Path, ports: NginxPorts, ww: Watchword) -> tuple[str, str]:
    """(nginx.conf, the output of ``watchword edge config nginx`` that nginx_auth runs)."""
    app = f"http://127.0.0.1:{ports.app}"

    def generated(port: int) -> str:
        return proxyconf.nginx_server(
            listen=f"127.0.0.1:{port}", server_name="_", watchword=ww.base, app=app
        )

    auth = generated(ports.auth)
    nginx_shape(auth, ww.port, ports.app)  # the same shape as the one taken apart below
    plain = without_auth(nginx_shape(generated(ports.plain), ww.port, ports.app))
    parts = [app_block(ports.app), "# The generated output, verbatim (nginx_auth).\n" + auth, plain]
    return nginx_http_wrapper(parts, folder), auth


def check_nginx(ports: NginxPorts, ww: Watchword) -> None:
    """Through each block once: the app's 200, with bob's identity where auth ran and
    without bob's token either way (the block strips watchword's credentials), another
    Authorization header passed on, 401 without the token where auth runs, and 404 for
    /auth/verify on the public path."""
    token = f"Bearer {ww.seeded.member_token}"
    with httpx.Client(timeout=10.0) as client:
        for name, port, subject in (("plain", ports.plain, None), ("auth", ports.auth, MEMBER)):
            base = f"http://127.0.0.1:{port}"
            url = f"{base}{ww.original_uri}"
            host = {"Host": nginx_host(port), "Accept": "application/json"}
            answer = client.get(url, headers={**host, "Authorization": token})
            seen = answer.headers.get("x-seen-subject")
            seen_authorization = answer.headers.get("x-seen-authorization")
            if answer.status_code != 200 or answer.text != "ok" or seen != subject:
                raise BenchmarkError(
                    f"nginx_{name}: {url} answered {answer.status_code} {answer.text[:300]!r} "
                    f"and the app saw X-Watchword-Subject {seen!r}, not 200 'ok' and {subject!r}"
                )
            if seen_authorization is not None:
                raise BenchmarkError(
                    f"nginx_{name}: the app received watchword's credential in Authorization: "
                    f"{seen_authorization!r}"
                )
            hidden = client.get(
                f"{base}{proxyconf.VERIFY_PATH}", headers={**host, "Authorization": token}
            )
            if hidden.status_code != 404:
                raise BenchmarkError(
                    f"nginx_{name}: {proxyconf.VERIFY_PATH} on the public path answered "
                    f"{hidden.status_code}, not 404"
                )
            if subject is None:
                other = "Basic YmVuY2g6YmVuY2g="
                answer = client.get(url, headers={**host, "Authorization": other})
                if answer.headers.get("x-seen-authorization") != other:
                    raise BenchmarkError(
                        f"nginx_{name}: the app did not receive another Authorization "
                        f"header as sent: {dict(answer.headers)}"
                    )
            else:
                anonymous = client.get(url, headers=host)
                if anonymous.status_code != 401:
                    raise BenchmarkError(
                        f"nginx_{name}: {url} without a token answered "
                        f"{anonymous.status_code}, not 401: {anonymous.text[:300]}"
                    )


# ---------------------------------------------------------------------------------------------
# wrk

# Per-thread state for request()/response(), summed by the done() hook, which prints one
# JSON line (latencies in microseconds).
WRK_COMMON = r"""
local threads = {}
local thread_count = 0
setup = function(thread)
  thread_count = thread_count + 1
  thread:set("thread_id", thread_count)
  table.insert(threads, thread)
end
bad = 0
"""
WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  local failed = 0
  for _, thread in ipairs(threads) do failed = failed + (tonumber(thread:get("bad")) or 0) end
  io.write(string.format(
    "WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
    "\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d, " ..
    "\"bad\": %d, " ..
    "\"p50_us\": %d, \"p90_us\": %d, \"p99_us\": %d, \"mean_us\": %.1f, \"max_us\": %d}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout, failed,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
"""


def lua_string(text: str) -> str:
    """``text`` as a Lua long-bracket literal (no escapes inside)."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


@dataclass(frozen=True, slots=True)
class Target:
    """One request, sent over and over by wrk at ``connections`` connections."""

    key: str  # unique: "<group>/<name>"
    group: str  # "plain", "fast" (watchword straight), "nginx" (loaded), "c1" (one connection)
    name: str
    what: str
    url: str
    connections: int
    server: str  # the watchword whose CPU is counted
    via_nginx: bool = False
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    counter_in_body: bool = False  # COUNTER_MARK in body: replaced per request
    expect_body: str | None = None  # response() checks: a substring of the body
    expect_subject: str | None = None  # ... the X-Watchword-Subject header
    org: str | None = None  # the organization id in the URL (shown as <org>)

    def lua(self) -> str:
        lines = [WRK_COMMON, f"wrk.method = {lua_string(self.method)}"]
        lines += [
            # The spaces matter: `t[[[k]]]` would parse as a call with a long string.
            f"wrk.headers[ {lua_string(k)} ] = {lua_string(v)}"
            for k, v in self.headers.items()
        ]
        if self.body is not None and self.counter_in_body:
            head, tail = self.body.split(COUNTER_MARK)
            lines += [
                f"local head, tail = {lua_string(head)}, {lua_string(tail)}",
                "local counter = 0",
                "request = function()",
                "  counter = counter + 1",
                '  return wrk.format(nil, nil, nil, head .. thread_id .. "-" .. counter .. tail)',
                "end",
            ]
        elif self.body is not None:
            lines.append(f"wrk.body = {lua_string(self.body)}")
        checks = []
        if self.expect_body is not None:
            checks.append(f"string.find(body, {lua_string(self.expect_body)}, 1, true)")
        if self.expect_subject is not None:
            want = lua_string(self.expect_subject)
            checks.append(
                f'(headers["x-watchword-subject"] == {want} '
                f'or headers["X-Watchword-Subject"] == {want})'
            )
        if checks:
            lines += [
                "response = function(status, headers, body)",
                f"  if not ({' and '.join(checks)}) then bad = bad + 1 end",
                "end",
            ]
        return "\n".join(lines) + "\n" + WRK_DONE


@dataclass(frozen=True, slots=True)
class Run:
    """One wrk run against one target."""

    round: int
    requests: int
    seconds: float
    rps: float
    p50_us: int
    p90_us: int
    p99_us: int
    mean_us: float
    max_us: int
    non_2xx_3xx: int
    failed_checks: int
    socket_errors: int
    watchword_cpu_s: float
    nginx_cpu_s: float

    @property
    def server_cpu_s(self) -> float:
        return self.watchword_cpu_s + self.nginx_cpu_s

    @property
    def rps_per_cpu_s(self) -> float | None:
        """Requests per CPU-second of the server processes on the path."""
        return round(self.requests / self.server_cpu_s, 1) if self.server_cpu_s > 0 else None


_WRK_JSON = re.compile(r"^WRK_JSON (\{.*\})$", re.MULTILINE)
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
_WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True, slots=True)
class Wrk:
    binary: str
    threads: int
    folder: Path

    def run(
        self, target: Target, seconds: int, round_: int, watchword: int, nginx: int | None
    ) -> Run:
        script = self.folder / f"{target.key.replace('/', '-')}.lua"
        script.write_text(target.lua())
        command = [
            self.binary,
            f"-t{min(self.threads, target.connections)}",
            f"-c{target.connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "--latency",
            "-s",
            str(script),
            target.url,
        ]
        ww_before = cpu_seconds([watchword])
        nginx_before = cpu_seconds([nginx]) if nginx is not None else 0.0
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=seconds + 60
        )
        ww_cpu = cpu_seconds([watchword]) - ww_before
        nginx_cpu = cpu_seconds([nginx]) - nginx_before if nginx is not None else 0.0
        output = done.stdout + done.stderr
        found = _WRK_JSON.search(done.stdout)
        if done.returncode != 0 or found is None:
            raise BenchmarkError(
                f"wrk failed on {target.key} (exit {done.returncode}): {shlex.join(command)}\n"
                f"{output[-3000:]}"
            )
        stats = json.loads(found.group(1))
        # The hook's count and wrk's own line must agree; either being non-zero is fatal.
        text_non_2xx = _WRK_NON_2XX.search(output)
        non_2xx = max(int(stats["status"]), int(text_non_2xx.group(1)) if text_non_2xx else 0)
        socket_errors = sum(int(stats[k]) for k in ("connect", "read", "write", "timeout"))
        text_socket = _WRK_SOCKET.search(output)
        if text_socket:
            socket_errors = max(socket_errors, sum(int(n) for n in text_socket.groups()))
        failed = int(stats["bad"])
        if non_2xx or failed or socket_errors or not stats["requests"]:
            raise BenchmarkError(
                f"{target.key}, round {round_}: {non_2xx} non-2xx/3xx answers, {failed} "
                f"answers that failed the check and {socket_errors} socket errors in "
                f"{stats['requests']} requests; the figures would not be of the request "
                f"meant. wrk said:\n{output[-3000:]}"
            )
        duration = int(stats["duration_us"]) / 1e6
        return Run(
            round=round_,
            requests=int(stats["requests"]),
            seconds=round(duration, 3),
            rps=round(int(stats["requests"]) / duration, 1),
            p50_us=int(stats["p50_us"]),
            p90_us=int(stats["p90_us"]),
            p99_us=int(stats["p99_us"]),
            mean_us=float(stats["mean_us"]),
            max_us=int(stats["max_us"]),
            non_2xx_3xx=non_2xx,
            failed_checks=failed,
            socket_errors=socket_errors,
            watchword_cpu_s=round(ww_cpu, 2),
            nginx_cpu_s=round(nginx_cpu, 2),
        )


WATCHWORD_TARGETS = ("healthz", "authz_check", "authz_check_distinct", "forward_auth")
NGINX_TARGETS = ("nginx_plain", "nginx_auth")


def watchword_target(name: str, group: str, ww: Watchword, connections: int, host: str) -> Target:
    key = f"{group}/{name}"
    if name == "healthz":
        what = "`GET /healthz`: the HTTP floor"
        return Target(key, group, name, what, f"{ww.base}/healthz", connections, ww.name)
    if name == "forward_auth":
        return Target(
            key,
            group,
            name,
            what=f"`GET {proxyconf.VERIFY_PATH}` straight to watchword (a kept-alive "
            "connection) with bob's personal token and the headers the generated nginx block "
            f"sends (X-Original-URI /orgs/<org>/projects/{PROJECT}, ...): token cache, route "
            "match, policy engine; answer 200 with X-Watchword-Subject: bob",
            url=f"{ww.base}{proxyconf.VERIFY_PATH}",
            connections=connections,
            server=ww.name,
            headers=forward_auth_headers(ww, host),
            expect_subject=MEMBER,
        )
    admin = {"Authorization": f"Bearer {ww.seeded.admin_key}", "Content-Type": "application/json"}
    if name == "authz_check":
        what = (
            "`POST /v1/authz/check`, admin key, the same inline subject every request (alice, "
            "org-reader in acme, reads project web of acme): compile cache hits"
        )
        body = json.dumps(AUTHZ_CHECK_BODY, separators=(",", ":"))
    else:
        assert name == "authz_check_distinct"
        what = (
            "the same question with a new subject id every request (`alice-<thread>-<n>`, a "
            "wrk Lua counter): every request parses and compiles a subject (cache misses)"
        )
        body = distinct_body(0).replace("alice-0", f"alice-{COUNTER_MARK}")
    return Target(
        key,
        group,
        name,
        what=what,
        url=f"{ww.base}/v1/authz/check",
        connections=connections,
        server=ww.name,
        method="POST",
        headers=admin,
        body=body,
        counter_in_body=COUNTER_MARK in body,
        expect_body=ALLOWED_JSON,
    )


def nginx_target(
    name: str, group: str, ww: Watchword, ports: NginxPorts, connections: int
) -> Target:
    port, what = {
        "nginx_plain": (
            ports.plain,
            "through the generated nginx configuration without its auth_request machinery "
            "(captures, error_page 401, the subrequest and sign-in locations) to the app (`return "
            '200 "ok"`): the proxy without auth (host check, Cookie and Authorization '
            "filtering, kept-alive upstream as generated)",
        ),
        "nginx_auth": (
            ports.auth,
            "through the nginx configuration exactly as `watchword edge config nginx` prints "
            "it (`proxyconf.nginx_server`: upstreams with `keepalive 32`, HTTP/1.1): "
            "auth_request to the fast watchword's /auth/verify, then the app",
        ),
    }[name]
    return Target(
        f"{group}/{name}",
        group,
        name,
        f"`GET /orgs/<org>/projects/{PROJECT}` with bob's token, {what}",
        f"http://127.0.0.1:{port}{ww.original_uri}",
        connections,
        ww.name,
        via_nginx=True,
        headers={"Host": nginx_host(port), "Authorization": f"Bearer {ww.seeded.member_token}"},
        org=ww.seeded.org,
    )


def targets(servers: Mapping[str, Watchword], ports: NginxPorts, connections: int) -> list[Target]:
    """Every target, in the order of the first round: each watchword target on plain then
    fast, the nginx targets at load, then the one-connection targets."""
    host = nginx_host(ports.auth)
    out = [
        watchword_target(name, server, servers[server], connections, host)
        for name in WATCHWORD_TARGETS
        for server in SERVERS
    ]
    fast = servers["fast"]
    out += [nginx_target(name, "nginx", fast, ports, connections) for name in NGINX_TARGETS]
    out += [
        watchword_target(name, "c1", fast, LATENCY_CONNECTIONS, host)
        for name in ("healthz", "forward_auth")
    ]
    out += [nginx_target(name, "c1", fast, ports, LATENCY_CONNECTIONS) for name in NGINX_TARGETS]
    return out


# ---------------------------------------------------------------------------------------------
# Results


@dataclass
class TargetResult:
    target: Target
    runs: list[Run] = field(default_factory=list)

    def median(self, attribute: str) -> float | None:
        values = [getattr(run, attribute) for run in self.runs]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def to_dict(self) -> dict[str, object]:
        summary = {
            name: self.median(name)
            for name in ("rps", "p50_us", "p90_us", "p99_us", "server_cpu_s", "rps_per_cpu_s")
        }
        target = self.target
        return {
            "group": target.group,
            "name": target.name,
            "server": target.server,
            "connections": target.connections,
            "what": target.what,
            "request": f"{target.method} {target.url}",
            "median": summary,
            "rounds": [asdict(run) | {"rps_per_cpu_s": run.rps_per_cpu_s} for run in self.runs],
        }


@dataclass(frozen=True, slots=True)
class Goal:
    """A target the issue sets: the median compared with ``value``."""

    op: Literal[">=", "<"]
    value: float
    text: str

    def met(self, x: float) -> bool:
        return x >= self.value if self.op == ">=" else x < self.value


@dataclass(frozen=True, slots=True)
class Ratio:
    """``numerator`` over ``denominator`` (or minus it) of one attribute, per round."""

    name: str
    numerator: str
    denominator: str
    attribute: str
    kind: str  # "ratio" or "difference"
    per_round: tuple[float, ...]
    goal: Goal | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.per_round) if self.per_round else None

    def verdict(self) -> str:
        if self.goal is None or self.median is None:
            return ""
        rounds = sum(self.goal.met(v) for v in self.per_round)
        word = "**met**" if self.goal.met(self.median) else "**not met**"
        return f"{word} ({rounds} of {len(self.per_round)} rounds)"

    def to_dict(self) -> dict[str, object]:
        return asdict(self) | {
            "median": self.median,
            "min": min(self.per_round, default=None),
            "max": max(self.per_round, default=None),
            "verdict": self.verdict(),
        }


def pair_values(
    results: Mapping[str, TargetResult], a: str, b: str, attribute: str, kind: str
) -> tuple[float, ...]:
    """Per round in which both were measured: a / b (or a - b)."""
    if a not in results or b not in results:
        return ()
    b_runs = {run.round: run for run in results[b].runs}
    out = []
    for run in results[a].runs:
        other = b_runs.get(run.round)
        if other is None:
            continue
        x, y = getattr(run, attribute), getattr(other, attribute)
        if x is None or y is None:
            continue
        if kind == "difference":
            out.append(round(x - y, 1))
        elif y:
            out.append(round(x / y, 3))
    return tuple(out)


LABELS = {"rps": "rps", "rps_per_cpu_s": "rps per CPU-s", "p50_us": "p50 µs", "p99_us": "p99 µs"}
HALF = Goal(">=", 0.5, "≥ 0.5")
UNDER_1MS = Goal("<", 1000.0, "< 1,000 µs")


def ratio_specs() -> list[tuple[str, str, str, str, str, Goal | None]]:
    """(section, numerator, denominator, attribute, kind, goal)."""
    specs: list[tuple[str, str, str, str, str, Goal | None]] = []
    for server in SERVERS:
        for name, goal in (
            ("authz_check", HALF),
            ("forward_auth", HALF),
            ("authz_check_distinct", None),
        ):
            for attribute in ("rps", "rps_per_cpu_s"):
                specs.append(
                    (
                        f"within {server}",
                        f"{server}/{name}",
                        f"{server}/healthz",
                        attribute,
                        "ratio",
                        goal if attribute == "rps" else None,
                    )
                )
    specs += [
        ("fast over plain", f"fast/{name}", f"plain/{name}", "rps", "ratio", None)
        for name in WATCHWORD_TARGETS
    ]
    section = "one connection: where the time goes"
    specs += [
        (section, "c1/forward_auth", "c1/healthz", "p50_us", "difference", None),
        (section, "c1/nginx_auth", "c1/forward_auth", "p50_us", "difference", None),
    ]
    for group in ("nginx", "c1"):
        num, den = f"{group}/nginx_auth", f"{group}/nginx_plain"
        section = f"nginx, {'at load' if group == 'nginx' else 'one connection'}"
        specs += [
            (section, num, den, "rps", "ratio", None),
            (section, num, den, "p50_us", "difference", UNDER_1MS if group == "c1" else None),
            (section, num, den, "p99_us", "difference", None),
        ]
    return specs


def ratios(results: Mapping[str, TargetResult]) -> list[tuple[str, Ratio]]:
    out = []
    for section, a, b, attribute, kind, goal in ratio_specs():
        if kind == "difference":
            name = f"{a} - {b} ({LABELS[attribute]} added)"
        else:
            name = f"{a} / {b} ({LABELS[attribute]})"
        values = pair_values(results, a, b, attribute, kind)
        if values:
            out.append((section, Ratio(name, a, b, attribute, kind, values, goal)))
    return out


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


def spread(ratio: Ratio) -> str:
    digits = 0 if ratio.kind == "difference" else 2
    low, high = min(ratio.per_round), max(ratio.per_round)
    return f"{fmt(ratio.median, digits)} ({fmt(low, digits)} to {fmt(high, digits)})"


def render(info: Mapping[str, object], results: Mapping[str, TargetResult]) -> str:
    machine = info["machine"]
    versions = info["versions"]
    servers = info["servers"]
    assert isinstance(machine, dict)
    assert isinstance(versions, dict)
    assert isinstance(servers, dict)
    lines = [
        "# Edge benchmark results",
        "",
        f"- Command: `{info['command']}`",
        f"- Date: {info['when']}",
        f"- Machine: {machine['nproc']} CPUs ({machine['platform']}), load average "
        f"{machine['loadavg_start']} at the start, {machine['loadavg_end']} at the end "
        "(shared: read the ratios, not the absolute figures)",
        f"- Versions: watchword {versions['watchword']} (tree {versions['git']}), "
        f"uvicorn {versions['uvicorn']}, uvloop {versions['uvloop']}, httptools "
        f"{versions['httptools']}, {versions['nginx']}, {versions['wrk']}, Python "
        f"{versions['python']}",
        "- Servers: "
        + "; ".join(
            f"`{name}` = WATCHWORD_SERVER_LOOP={s['loop']} WATCHWORD_SERVER_HTTP={s['http']} "
            f"(native modules loaded: {', '.join(s['loaded']) or 'none'})"
            for name, s in servers.items()
        ),
        f"- Load: {info['settings']}",
        "",
        "Medians over rounds. CPU-s: CPU seconds used during one run by the server processes "
        "on the path (the watchword measured; plus nginx for the nginx rows); rps per CPU-s "
        "= requests / those CPU seconds. No run had a non-2xx/3xx answer, an answer failing "
        "its check or a socket error (the script stops on one).",
        "",
        "| target | conns | request | rps | p50 µs | p90 µs | p99 µs | CPU-s (ww + nginx) | "
        "rps per CPU-s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    groups = ["plain", "fast", "nginx", "c1"]
    ordered = sorted(results.values(), key=lambda r: groups.index(r.target.group))
    for result in ordered:
        target = result.target
        path = urlsplit(target.url).path.replace(target.org, "<org>") if target.org else None
        request = f"`{target.method} {path or urlsplit(target.url).path}`"
        ww = statistics.median(run.watchword_cpu_s for run in result.runs)
        ng = statistics.median(run.nginx_cpu_s for run in result.runs)
        lines.append(
            f"| {target.key} | {target.connections} | {request} | "
            f"{fmt(result.median('rps'))} | {fmt(result.median('p50_us'))} | "
            f"{fmt(result.median('p90_us'))} | {fmt(result.median('p99_us'))} | "
            f"{ww:.2f} + {ng:.2f} | {fmt(result.median('rps_per_cpu_s'))} |"
        )
    lines += [
        "",
        "Ratios and differences: computed per round from the two targets measured in that "
        "round; median (min to max over rounds), then every round.",
        "",
        "| | ratio | median (min to max) | per round | goal | verdict |",
        "|---|---|---:|---|---|---|",
    ]
    for section, ratio in ratios(results):
        digits = 0 if ratio.kind == "difference" else 2
        rounds = ", ".join(fmt(v, digits) for v in ratio.per_round)
        goal = ratio.goal.text if ratio.goal else ""
        lines.append(
            f"| {section} | {ratio.name} | {spread(ratio)} | {rounds} | {goal} | "
            f"{ratio.verdict()} |"
        )
    lines += ["", "What each target is:", ""]
    seen: set[tuple[str, str]] = set()
    for result in ordered:
        target = result.target
        if (target.name, target.what) in seen:
            continue
        seen.add((target.name, target.what))
        lines.append(f"- `{target.name}`: {target.what}")
    lines += [
        "",
        "What `nginx_auth` runs in nginx's `http { }` block, as `proxyconf.nginx_server` "
        "rendered it (`nginx_plain`: the same without its auth_request machinery):",
        "",
        "```nginx",
        str(info["nginx_server_block"]).rstrip(),
        "```",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The run


def _interrupt(signum: int, frame: FrameType | None) -> NoReturn:
    raise KeyboardInterrupt(f"signal {signum}")


def git_state() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    state = done.stdout.strip() or "?"
    # A copy of another revision can be measured with PYTHONPATH=<copy>/src: say so.
    pythonpath = os.environ.get("PYTHONPATH")
    return f"{state}, PYTHONPATH={pythonpath}" if pythonpath else state


@dataclass
class Bench:
    args: argparse.Namespace
    folder: Path
    stack: contextlib.ExitStack
    info: dict[str, object] = field(default_factory=dict)

    def run(self) -> dict[str, TargetResult]:
        args = self.args
        wrk_bin = find_or_install("wrk", "wrk")
        nginx_bin = find_or_install("nginx", "nginx", fallback="/usr/sbin/nginx")
        wrk = Wrk(wrk_bin, args.threads, self.folder)
        self.info["versions"] = {
            "watchword": first_line([str(WATCHWORD_BIN), "version"]).removeprefix("watchword "),
            "git": git_state(),
            "uvicorn": package_version("uvicorn"),
            "uvloop": package_version("uvloop"),
            "httptools": package_version("httptools"),
            "nginx": first_line([nginx_bin, "-v"]).removeprefix("nginx version: "),
            "wrk": " ".join(first_line([wrk_bin, "-v"]).split()[:2]),
            "python": platform.python_version(),
        }

        routes = self.folder / "routes.json"
        routes.write_text(json.dumps(EDGE_ROUTES, indent=2))
        servers: dict[str, Watchword] = {}
        for name in SERVERS:
            ww = start_watchword(name, self.folder, routes, dict(args.server_env))
            self.stack.callback(ww.child.stop)
            servers[name] = ww
        for ww in servers.values():
            ww.child.wait_for(f"{ww.base}/readyz", args.ready_timeout)
            ww.loaded = native_modules(ww.pid)
        missing = set(NATIVE_MODULES) - set(servers["fast"].loaded)
        if missing:
            servers["fast"].child.fail(
                f"does not have {', '.join(sorted(missing))} loaded (/proc/pid/maps)"
            )
        self.info["servers"] = {
            name: {"loop": ww.loop, "http": ww.http, "loaded": ww.loaded, "port": ww.port}
            for name, ww in servers.items()
        }

        fast = servers["fast"]
        ports = NginxPorts(free_port(), free_port(), free_port())
        host = nginx_host(ports.auth)
        for ww in servers.values():
            check_watchword(ww, host)
        conf_text, generated = nginx_conf(self.folder, ports, fast)
        self.info["nginx_server_block"] = generated
        conf = self.folder / "nginx.conf"
        conf.write_text(conf_text)
        nginx_command = [nginx_bin, "-c", str(conf), "-p", f"{self.folder}/"]
        nginx_command += ["-e", str(self.folder / "nginx-error.log")]
        tested = subprocess.run([*nginx_command, "-t"], capture_output=True, text=True, check=False)
        if tested.returncode != 0:
            raise BenchmarkError(f"nginx -t refused the config:\n{tested.stderr}\n{conf_text}")
        nginx = Child.start("nginx", [*nginx_command, "-g", "daemon off;"], os.environ, self.folder)
        self.stack.callback(nginx.stop)
        nginx.wait_for(f"http://127.0.0.1:{ports.app}/", 20.0)
        check_nginx(ports, fast)

        chosen = [
            t
            for t in targets(servers, ports, args.connections)
            if not args.only or any(fnmatch.fnmatchcase(t.key, p) for p in args.only)
        ]
        if not chosen:
            raise BenchmarkError(f"--only {' '.join(args.only)} matches no target")
        results = {t.key: TargetResult(t) for t in chosen}

        def once(target: Target, seconds: int, round_: int) -> Run:
            ww = servers[target.server]
            run = wrk.run(target, seconds, round_, ww.pid, nginx.pid if target.via_nginx else None)
            for child in (*(s.child for s in servers.values()), nginx):
                if child.process.poll() is not None:
                    child.fail(f"exited (status {child.process.returncode}) during the run")
            return run

        measured = list(results.values())
        if args.warmup > 0:
            for result in measured:
                once(result.target, args.warmup, 0)
        for round_ in range(1, args.rounds + 1):
            shift = (round_ - 1) % len(measured)
            for result in measured[shift:] + measured[:shift]:
                run = once(result.target, args.seconds, round_)
                result.runs.append(run)
                print(
                    f"round {round_}/{args.rounds} {result.target.key:26} "
                    f"{run.rps:9.1f} rps  p50 {run.p50_us:6d} µs  p99 {run.p99_us:6d} µs  "
                    f"CPU {run.watchword_cpu_s:.2f}+{run.nginx_cpu_s:.2f} s",
                    file=sys.stderr,
                )
        return results


def key_value(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3, help="per target and round")
    parser.add_argument("--warmup", type=int, default=1, help="seconds per target, once (0: none)")
    parser.add_argument("--threads", type=int, default=1, help="wrk -t")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c of the loaded targets")
    parser.add_argument(
        "--server-env",
        type=key_value,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an environment variable for both watchword servers (repeatable), e.g. "
        "WATCHWORD_LOG__LEVEL=warning; WATCHWORD_SERVER_LOOP and _HTTP are the benchmark's",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATTERN",
        help="measure only the targets whose key matches (repeatable; e.g. 'c1/*', "
        "'*/forward_auth'); keys: plain/..., fast/..., nginx/..., c1/...",
    )
    parser.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT)
    parser.add_argument("--out", type=Path, help="results .md; the .json is written beside it")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0 or args.connections < args.threads:
        parser.error("need --rounds ≥ 1, --seconds > 0, --connections ≥ --threads")

    # Every way of being stopped unwinds the ExitStack, which stops the servers (SIGINT too:
    # a shell starting this in the background would have it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    info: dict[str, object] = {
        "command": shlex.join([".venv/bin/python", *sys.argv]),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": (
            f"wrk -t{args.threads} -c{args.connections} (and -c{LATENCY_CONNECTIONS} for the "
            f"c1 targets), {args.rounds} rounds x {args.seconds:g} s per target (order "
            f"rotated each round), {args.warmup:g} s warm-up per target"
            + "".join(f"; {name}={value}" for name, value in args.server_env)
            + "".join(f"; only {pattern}" for pattern in args.only)
        ),
    }
    load_start = os.getloadavg()
    started = time.monotonic()
    try:
        with contextlib.ExitStack() as stack:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ww-edge-")))
            bench = Bench(args, folder, stack, info=info)
            results = bench.run()
    except BenchmarkError as exc:
        sys.exit(f"benchmarks/edge: {exc}")
    except KeyboardInterrupt:
        sys.exit("benchmarks/edge: interrupted; servers stopped")
    info["machine"] = {
        "nproc": os.cpu_count(),
        "platform": f"{platform.system()} {platform.machine()}",
        "loadavg_start": ", ".join(f"{x:.2f}" for x in load_start),
        "loadavg_end": ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    info["settings"] = f"{info['settings']}; whole run {time.monotonic() - started:.0f} s"
    text = render(info, results)
    print(text)
    if args.out is not None:
        document = info | {
            "targets": {key: r.to_dict() for key, r in results.items()},
            "ratios": [r.to_dict() | {"section": s} for s, r in ratios(results)],
        }
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
