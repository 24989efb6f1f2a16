"""Token verification benchmark, beside one indexed primary-key query in the same run.

    .venv/bin/python benchmarks/tokens/run.py [--reps 5] [--ops 2000] [--http-ops 500] \
        [--out benchmarks/tokens]

For SQLite (a file) and PostgreSQL (127.0.0.1, a database of its own, dropped after):

- ``pk_query``: ``SELECT … FROM api_tokens WHERE id = :id`` on a pooled connection
  (``async with engine.connect()``), the baseline;
- ``verify_hit``: :meth:`TokenService.verify` answered by the in-process cache
  (format + checksum, SHA-256, dict look-up, expiry check; zero SQL);
- ``verify_miss``: the same with the in-process cache cleared before each call
  (one indexed look-up by ``token_hash``);
- ``introspect_http``: ``POST /v1/oauth/introspect`` over loopback HTTP/1.1 keep-alive
  against a real uvicorn server in a subprocess (the caller authenticates with an API
  token too, so each request verifies two tokens, both cached after the first request),
  beside ``healthz_http`` (``GET /healthz``, the same server: the HTTP floor). The server
  is ``watchword serve`` (uvicorn, one worker) with logging at warning level.

Each figure is the median over ``--reps`` repetitions of the mean per-operation time
of ``--ops`` operations; ratios are computed per repetition, then the median is taken.
The machine is shared and noisy: read the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from sqlalchemy import select

from watchword.config import load_settings
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.storage.migrate import upgrade
from watchword.tokens import NewToken, Owner, TokenKind
from watchword.tokens.tables import api_tokens

PG_ADMIN = os.environ.get(
    "WATCHWORD_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)


async def per_op(op: Callable[[], Awaitable[object]], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        await op()
    return (time.perf_counter() - t0) / n


async def bench_database(url: str, reps: int, ops: int) -> dict[str, object]:
    runtime = Runtime.create(load_settings(environ={}, database_url=url))
    services = Services.build(runtime)
    try:
        service = services.tokens
        owner = Owner(runtime.settings.issuer_url, "bench")
        issued = await service.create(
            NewToken(TokenKind.SERVICE_ACCOUNT, "bench", owner, frozenset({"projects:read"}))
        )
        token, token_id = issued.token, issued.record.id
        stmt = select(api_tokens).where(api_tokens.c.id == token_id)

        async def pk_query() -> object:
            async with runtime.engine.connect() as conn:
                return (await conn.execute(stmt)).first()

        async def verify_hit() -> object:
            return await service.verify(token)

        async def verify_miss() -> object:
            service.cache.local.clear()
            return await service.verify(token)

        for op in (pk_query, verify_hit, verify_miss):  # warm pools and caches
            await per_op(op, 50)
        rows: dict[str, list[float]] = {"pk_query": [], "verify_hit": [], "verify_miss": []}
        plan = [("pk_query", pk_query, ops), ("verify_hit", verify_hit, ops * 10)]
        plan.append(("verify_miss", verify_miss, ops))
        for rep in range(reps):
            # Rotate the order each repetition so drift on a noisy machine hits all alike.
            for name, op, n in plan[rep % 3 :] + plan[: rep % 3]:
                rows[name].append(await per_op(op, n))
        return summarize(rows, "pk_query")
    finally:
        await services.aclose()
        await runtime.close()


def summarize(rows: dict[str, list[float]], baseline: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, values in rows.items():
        ratios = [b / v for b, v in zip(rows[baseline], values, strict=True)]
        out[name] = {
            "median_us": round(statistics.median(values) * 1e6, 2),
            "min_us": round(min(values) * 1e6, 2),
            "max_us": round(max(values) * 1e6, 2),
            f"{baseline}_over_this_median": round(statistics.median(ratios), 2),
        }
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    """``watchword serve`` (uvicorn) on loopback, logging at warning level only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHWORD_")}
    env |= {"WATCHWORD_DATABASE_URL": url, "WATCHWORD_LOG_LEVEL": "warning"}
    cli = str(Path(sys.executable).with_name("watchword"))
    command = [cli, "serve", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)


async def bench_http(url: str, reps: int, ops: int) -> dict[str, object]:
    runtime = Runtime.create(load_settings(environ={}, database_url=url))
    services = Services.build(runtime)
    try:
        service = services.tokens
        owner = Owner(runtime.settings.issuer_url, "bench-http")
        caller = await service.create(NewToken(TokenKind.SERVICE_ACCOUNT, "rs", owner, frozenset()))
        target = await service.create(
            NewToken(TokenKind.PERSONAL, "t", owner, frozenset({"projects:read"}))
        )
    finally:
        await services.aclose()
        await runtime.close()
    port = free_port()
    server = start_server(url, port)
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for _ in range(100):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            headers = {"Authorization": f"Bearer {caller.token.reveal()}"}
            form = {"token": target.token.reveal()}

            async def introspect() -> object:
                r = await client.post("/v1/oauth/introspect", data=form, headers=headers)
                assert r.status_code == 200, r.text
                assert r.json()["active"] is True
                return r

            async def healthz() -> object:
                return await client.get("/healthz")

            await per_op(introspect, 50)
            await per_op(healthz, 50)
            rows: dict[str, list[float]] = {"healthz_http": [], "introspect_http": []}
            for _ in range(reps):
                rows["healthz_http"].append(await per_op(healthz, ops))
                rows["introspect_http"].append(await per_op(introspect, ops))
        return summarize(rows, "healthz_http")
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--http-ops", type=int, default=500)
    parser.add_argument("--out", default="benchmarks/tokens")
    args = parser.parse_args()

    results: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "command": " ".join([".venv/bin/python", *sys.argv]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}"
        upgrade(sqlite_url)
        results["sqlite"] = asyncio.run(bench_database(sqlite_url, args.reps, args.ops))
        results["sqlite_http"] = asyncio.run(bench_http(sqlite_url, args.reps, args.http_ops))

    name = f"ww_bench_tokens_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        parts = dict(item.split("=", 1) for item in PG_ADMIN.split())
        pg_url = f"postgresql+psycopg://{parts['user']}@{parts['host']}:{parts['port']}/{name}"
        upgrade(pg_url)
        results["postgres"] = asyncio.run(bench_database(pg_url, args.reps, args.ops))
        results["postgres_http"] = asyncio.run(bench_http(pg_url, args.reps, args.http_ops))
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(render(results))
    print(render(results))


def render(results: dict[str, object]) -> str:
    lines = [
        "# Token verification benchmark",
        "",
        f"{results['when']}, Python {results['python']}, {results['machine']}.",
        f"Command: `{results['command']}`",
        "",
        "Median of per-repetition mean time per operation; the ratio is the baseline's",
        "time over this row's (median of per-repetition ratios): above 1 means cheaper.",
        "",
    ]
    for section, baseline in (
        ("sqlite", "pk_query"),
        ("postgres", "pk_query"),
        ("sqlite_http", "healthz_http"),
        ("postgres_http", "healthz_http"),
    ):
        data = results[section]
        assert isinstance(data, dict)
        lines += [
            f"## {section}",
            "",
            f"| operation | median µs | min µs | max µs | {baseline} / this |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in data.items():
            lines.append(
                f"| {name} | {row['median_us']} | {row['min_us']} | {row['max_us']} | "
                f"{row[f'{baseline}_over_this_median']} |"
            )
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
