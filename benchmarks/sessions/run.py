"""Authenticating a request by session cookie beside an API token, in one run.

    .venv/bin/python benchmarks/sessions/run.py [--rounds 20] [--hit-ops 1000] \
        [--miss-ops 100] [--http-ops 50] [--pg-dsn 'host=… user=… dbname=…'] \
        [--out benchmarks/sessions/results.md]

For SQLite (a file in a temporary directory) and PostgreSQL (127.0.0.1, a database of its
own, created with psycopg and dropped after; ``--pg-dsn ''`` leaves it out), each on its own
:class:`Services` (no Redis, ``sessions.cache_ttl`` and ``tokens.verify_cache_ttl`` 1 h so no
cached entry expires during the run):

- ``session_hit``: ``services.authenticate(Credential(COOKIE, cookie))``, the same cookie
  again: the session service's in-process cache answers;
- ``token_hit``: ``services.authenticate(Credential(BEARER, token))``, the same API token
  again: the token verify cache answers;
- ``session_miss``: the same cookie with ``services.sessions.forget_all()`` before each call
  (one primary-key ``SELECT`` of the session row);
- ``token_miss``: the same token with ``services.tokens.cache.local.clear()`` before each call
  (one indexed ``SELECT`` by token hash);
- over HTTP in-process (httpx ``ASGITransport`` against ``create_app(services=services)``, no
  socket): ``healthz_http`` (``GET /healthz``, no credential: the floor) and
  ``GET /v1/admin/whoami`` with the cookie (``whoami_session_http``) or the token
  (``whoami_token_http``). ``/v1/admin/whoami`` is the lightest authenticated route: the full
  authentication dependency (bearer/cookie extraction, failed-authentication limiter,
  ``services.authenticate``) and then ``require_admin``, which answers 403 (problem JSON) to
  any principal that is not a bootstrap admin key. Every other authenticated route does more
  (``/v1/me`` and ``/v1/acl`` compute the ACL, ``/v1/tokens`` lists rows, introspection
  verifies a second token).

Every operation is timed alone (``time.perf_counter_ns``). The variants compared run
interleaved one operation at a time (session, token, token, session, …; the HTTP rows three
at a time), ``--rounds`` times, so load from other users of the shared machine hits them
alike. Median and p95 are over the samples of all rounds; the session/token ratio is also
taken per round (its range is reported). SQL statements are counted with a
``before_cursor_execute`` listener on the engine, per variant, over the whole timed run.

The idle-timeout write (``last_seen_at``, at most once per minute per session) is shown
separately with a :class:`FakeClock`: a hit 61 s after the last write makes one ``UPDATE``,
the hits after it none.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.api.app import create_app
from watchword.api.deps import session_cookie_name
from watchword.clock import FakeClock
from watchword.config import Settings, load_settings
from watchword.observability.logging import configure_logging
from watchword.principal import Credential, CredentialSource, PrincipalKind
from watchword.runtime import Runtime
from watchword.secret import Secret
from watchword.services import Services
from watchword.sessions import NewSession
from watchword.storage.migrate import upgrade_engine
from watchword.tokens import NewToken, Owner, TokenKind

PG_DSN = os.environ.get(
    "WATCHWORD_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
SECRET_KEY = "benchmark-only-secret-key-" + "0" * 16

Op = Callable[[], Awaitable[object]]


class StatementCounter:
    """Counts the statements an engine sends (``before_cursor_execute``), with their text."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self.texts: Counter[str] = Counter()
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.count += 1
        self.texts[" ".join(statement.split())[:70]] += 1


@dataclass
class Variant:
    name: str
    op: Op
    n: int
    samples: list[int] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)
    statements: int = 0
    calls: int = 0


def settings_for(url: str) -> Settings:
    return load_settings(
        environ={},
        secret_key=SECRET_KEY,
        database={"url": url},
        sessions={"cache_ttl": "1h"},
        tokens={"verify_cache_ttl": "1h"},
    )


def new_session() -> NewSession:
    return NewSession(
        provider="test",
        issuer="https://idp.example",
        subject="alice",
        upstream_sid=None,
        email=None,
        display_name=None,
        claims={"sub": "alice"},
        organization_ids=[],
        access_token=Secret("a"),
        refresh_token=Secret("r"),
        id_token=Secret("i"),
        access_expires_at=None,
    )


async def credentials(services: Services) -> tuple[Credential, Credential]:
    """A session cookie and an API token, both of a fresh subject."""
    _, cookie = await services.sessions.create(new_session())
    owner = Owner(services.runtime.settings.issuer_url, "bench")
    issued = await services.tokens.create(
        NewToken(TokenKind.SERVICE_ACCOUNT, "bench", owner, frozenset({"projects:read"}))
    )
    return (
        Credential(CredentialSource.COOKIE, cookie),
        Credential(CredentialSource.BEARER, issued.token),
    )


async def run_rounds(groups: list[list[Variant]], counter: StatementCounter, rounds: int) -> None:
    """Each round, each group (the variants of one group have the same ``n``) runs its
    variants interleaved one operation at a time (A B, B A, A B, …), so the variants being
    compared meet the same load on the shared machine; groups take turns going first."""
    clock = time.perf_counter_ns
    for group in groups:  # warm-up: pools, caches, code paths
        for variant in group:
            for _ in range(max(50, variant.n // 10)):
                await variant.op()
    for r in range(rounds):
        for group in groups[r % len(groups) :] + groups[: r % len(groups)]:
            gc.collect()
            width = len(group)
            samples: list[list[int]] = [[] for _ in group]
            for i in range(group[0].n):
                for k in range(width):
                    j = (i + r + k) % width
                    before = counter.count
                    t0 = clock()
                    await group[j].op()
                    samples[j].append(clock() - t0)
                    group[j].statements += counter.count - before
            for variant, own in zip(group, samples, strict=True):
                variant.calls += len(own)
                variant.samples.extend(own)
                variant.round_medians.append(statistics.median(own))


def pct(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def row(v: Variant) -> dict[str, Any]:
    return {
        "median_us": round(statistics.median(v.samples) / 1000, 2),
        "p95_us": round(pct(v.samples, 0.95), 2),
        "n": len(v.samples),
        "statements_per_op": round(v.statements / v.calls, 3),
        "statements": v.statements,
    }


def ratio(a: Variant, b: Variant) -> dict[str, float]:
    per_round = [x / y for x, y in zip(a.round_medians, b.round_medians, strict=True)]
    return {
        "median": round(statistics.median(a.samples) / statistics.median(b.samples), 2),
        "p95": round(pct(a.samples, 0.95) / pct(b.samples, 0.95), 2),
        "round_min": round(min(per_round), 2),
        "round_max": round(max(per_round), 2),
    }


async def bench_database(url: str, args: argparse.Namespace) -> dict[str, Any]:
    runtime = Runtime.create(settings_for(url))
    services = Services.build(runtime)
    try:
        await upgrade_engine(runtime.engine)
        cookie, bearer = await credentials(services)
        session_principal = await services.authenticate(cookie)
        token_principal = await services.authenticate(bearer)
        assert session_principal.kind is PrincipalKind.SESSION
        assert token_principal.kind is PrincipalKind.API_TOKEN
        counter = StatementCounter(runtime.engine)

        async def session_hit() -> object:
            return await services.authenticate(cookie)

        async def token_hit() -> object:
            return await services.authenticate(bearer)

        async def session_miss() -> object:
            services.sessions.forget_all()
            return await services.authenticate(cookie)

        async def token_miss() -> object:
            services.tokens.cache.local.clear()
            return await services.authenticate(bearer)

        # Zero statements on a hit, checked on its own before anything is timed.
        await session_hit()
        await token_hit()
        before = counter.count
        for _ in range(1000):
            await session_hit()
        session_hit_check = counter.count - before
        before = counter.count
        for _ in range(1000):
            await token_hit()
        token_hit_check = counter.count - before

        groups = [
            [
                Variant("session_hit", session_hit, args.hit_ops),
                Variant("token_hit", token_hit, args.hit_ops),
            ],
            [
                Variant("session_miss", session_miss, args.miss_ops),
                Variant("token_miss", token_miss, args.miss_ops),
            ],
        ]
        counter.texts.clear()
        started = time.monotonic()
        await run_rounds(groups, counter, args.rounds)
        elapsed = time.monotonic() - started
        by = {v.name: v for group in groups for v in group}
        texts = dict(counter.texts.most_common(6))

        http = await bench_http(services, cookie, bearer, counter, args)
        return {
            "rows": {name: row(v) for name, v in by.items()},
            "ratios": {
                "cached (session_hit / token_hit)": ratio(by["session_hit"], by["token_hit"]),
                "uncached (session_miss / token_miss)": ratio(by["session_miss"], by["token_miss"]),
            },
            "hit_check": {"session": session_hit_check, "token": token_hit_check},
            "statement_texts": texts,
            "timed_seconds": round(elapsed, 1),
            "http": http,
        }
    finally:
        await services.aclose()
        await runtime.close()


async def bench_http(
    services: Services,
    cookie: Credential,
    bearer: Credential,
    counter: StatementCounter,
    args: argparse.Namespace,
) -> dict[str, Any]:
    app = create_app(services=services)
    cookie_header = f"{session_cookie_name(services)}={cookie.value.reveal()}"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        headers_session = {"Cookie": cookie_header}
        headers_token = {"Authorization": f"Bearer {bearer.value.reveal()}"}

        async def healthz() -> object:
            r = await client.get("/healthz")
            assert r.status_code == 200, r.text
            return r

        async def whoami_session() -> object:
            r = await client.get("/v1/admin/whoami", headers=headers_session)
            # Authenticated (a 401 would mean the cookie was refused), then not an admin.
            assert r.status_code == 403, r.text
            return r

        async def whoami_token() -> object:
            r = await client.get("/v1/admin/whoami", headers=headers_token)
            assert r.status_code == 403, r.text
            return r

        # The routes refuse a missing credential with 401: the 403 above is past authentication.
        assert (await client.get("/v1/admin/whoami")).status_code == 401
        variants = [
            Variant("healthz_http", healthz, args.http_ops),
            Variant("whoami_session_http", whoami_session, args.http_ops),
            Variant("whoami_token_http", whoami_token, args.http_ops),
        ]
        await run_rounds([variants], counter, args.rounds)
    by = {v.name: v for v in variants}
    return {
        "rows": {v.name: row(v) for v in variants},
        "ratios": {
            "whoami_session_http / whoami_token_http": ratio(
                by["whoami_session_http"], by["whoami_token_http"]
            ),
        },
    }


async def touch_check(url: str) -> dict[str, int]:
    """Statements on session hits around the once-a-minute ``last_seen_at`` write, on a
    fake clock: right after sign-in, 61 s later (one UPDATE), and right after that."""
    clock = FakeClock(datetime.now(UTC))
    runtime = Runtime.create(settings_for(url), clock=clock)
    services = Services.build(runtime)
    try:
        cookie, _ = await credentials(services)
        counter = StatementCounter(runtime.engine)
        out: dict[str, int] = {}

        async def hits(label: str, n: int) -> None:
            before = counter.count
            for _ in range(n):
                await services.authenticate(cookie)
            out[label] = counter.count - before

        await hits("100 hits within the first minute", 100)
        clock.advance(timedelta(seconds=61))
        counter.texts.clear()
        await hits("first hit 61 s later", 1)
        texts = ", ".join(f"`{text}…`" for text in counter.texts)
        out[f"first hit 61 s later ({texts or 'none'})"] = out.pop("first hit 61 s later")
        await hits("next 100 hits", 100)
        clock.advance(timedelta(seconds=30))
        await hits("100 hits 30 s after the write", 100)
        return out
    finally:
        await services.aclose()
        await runtime.close()


async def run_database(url: str, args: argparse.Namespace) -> dict[str, Any]:
    result = await bench_database(url, args)
    result["touch"] = await touch_check(url)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--hit-ops", type=int, default=1000)
    parser.add_argument("--miss-ops", type=int, default=100)
    parser.add_argument("--http-ops", type=int, default=50)
    parser.add_argument("--pg-dsn", default=PG_DSN)
    parser.add_argument("--out", default="benchmarks/sessions/results.md")
    args = parser.parse_args()
    configure_logging("warning")  # as `watchword serve` at warning: no per-request log line

    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "command": " ".join([".venv/bin/python", *sys.argv]),
        "args": vars(args),
        "databases": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        results["databases"]["sqlite"] = asyncio.run(run_database(url, args))

    if args.pg_dsn:
        name = f"ww_bench_sessions_{secrets.token_hex(4)}"
        with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            parts = dict(item.split("=", 1) for item in args.pg_dsn.split())
            url = (
                f"postgresql+psycopg://{parts['user']}@{parts['host']}:"
                f"{parts.get('port', '5432')}/{name}"
            )
            results["databases"]["postgres"] = asyncio.run(run_database(url, args))
        finally:
            with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    text = render(results)
    Path(args.out).write_text(text)
    print(text)


def render(results: dict[str, Any]) -> str:
    a = results["args"]
    lines = [
        "# Session cookie vs API token authentication",
        "",
        f"{results['when']}, Python {results['python']}, {results['machine']} (shared, noisy:",
        "read the ratios, not the absolute times).",
        "",
        f"Command: `{results['command']}`",
        "",
        f"{a['rounds']} rounds; per round and variant {a['hit_ops']} cached, {a['miss_ops']} "
        f"uncached, {a['http_ops']} HTTP operations, each timed alone, the variants compared "
        "interleaved one operation at a time. Median and p95 over all samples; "
        "SQL statements (`before_cursor_execute`) are counted over the whole timed run of the "
        "row. Ratios: session over token (below 1: the session is cheaper), of the "
        "medians, of the p95s, and the range over rounds of the "
        "per-round ratio of medians.",
        "",
    ]
    for db, data in results["databases"].items():
        lines += [f"## {db}", "", "### `services.authenticate`", ""]
        lines += table(data["rows"])
        lines += ratio_table(data["ratios"])
        hc = data["hit_check"]
        lines += [
            f"Statements over 1,000 consecutive hits, checked before timing: session "
            f"{hc['session']}, token {hc['token']}. Timed part: {data['timed_seconds']} s.",
            "",
        ]
        if data["statement_texts"]:
            lines += ["Statements seen during the timed run and its warm-up (count, text):", ""]
            lines += [f"- {n}x `{t}`" for t, n in data["statement_texts"].items()]
            lines.append("")
        lines += ["### HTTP in-process (`ASGITransport`)", ""]
        lines += table(data["http"]["rows"])
        lines += ratio_table(data["http"]["ratios"])
        lines += [
            "### The `last_seen_at` write on a hit (FakeClock)",
            "",
            "| hits | statements |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {v} |" for k, v in data["touch"].items()]
        lines.append("")
    return "\n".join(lines)


def table(rows: dict[str, dict[str, Any]]) -> list[str]:
    out = [
        "| operation | median µs | p95 µs | samples | SQL statements | per op |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        out.append(
            f"| {name} | {r['median_us']} | {r['p95_us']} | {r['n']} | {r['statements']} | "
            f"{r['statements_per_op']} |"
        )
    return [*out, ""]


def ratio_table(ratios: dict[str, dict[str, float]]) -> list[str]:
    out = ["| ratio | median | p95 | rounds |", "|---|---:|---:|---:|"]
    for name, r in ratios.items():
        out.append(
            f"| {name} | {r['median']} | {r['p95']} | {r['round_min']} to {r['round_max']} |"
        )
    return [*out, ""]


if __name__ == "__main__":
    main()
