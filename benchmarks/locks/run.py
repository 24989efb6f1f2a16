"""Lock benchmark: uncontended acquire+release per backend, and the hand-off delay from
a release to the next waiter's acquisition, event-driven (watchword) beside a waiter
that retries the compare-and-swap every 100 ms (dex's loop), measured in the same run.

    .venv/bin/python benchmarks/locks/run.py [--reps 3] [--samples 40] [--out benchmarks/locks]

Needs PostgreSQL (trust auth) and Redis on 127.0.0.1 like the test suite; a backend whose
server is down is reported as skipped. Writes results.json and results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import event

from watchword.locks import (
    Lease,
    LockBackend,
    Locks,
    PostgresBackend,
    SQLiteBackend,
    new_holder_id,
    open_backend,
)
from watchword.storage.db import create_engine_for_url
from watchword.storage.migrate import upgrade

PG_ADMIN = os.environ.get(
    "WATCHWORD_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
REDIS_URL = os.environ.get("WATCHWORD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TTL = timedelta(seconds=30)
POLL_S = 0.100  # dex lockCheckPeriod


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def uncontended(locks: Locks, n: int) -> list[float]:
    out = []
    key = f"bench-u-{secrets.token_hex(4)}"
    for _ in range(n):
        t0 = time.perf_counter()
        lease = await locks.acquire(key, ttl=TTL, wait=timedelta(0))
        await locks.release(lease)
        out.append(time.perf_counter() - t0)
    return out


async def poll_acquire(backend: LockBackend, key: str) -> Lease:
    """dex's loop: try the CAS, sleep 100 ms, try again."""
    holder = new_holder_id()
    while True:
        attempt = await backend.try_acquire(key, holder, TTL)
        if attempt.lease is not None:
            return attempt.lease
        await asyncio.sleep(POLL_S)


async def handoff(
    holder: Locks, waiter_acquire: Callable[[str], Awaitable[Lease]], waiter: LockBackend, n: int
) -> list[float]:
    """Release-to-acquisition delay: the clock starts when the holder calls release."""
    out = []
    for _ in range(n):
        key = f"bench-h-{secrets.token_hex(4)}"
        lease = await holder.acquire(key, ttl=TTL, wait=timedelta(0))
        got: list[float] = []

        async def wait_for_it(k: str = key, into: list[float] = got) -> Lease:
            won = await waiter_acquire(k)
            into.append(time.perf_counter())
            return won

        task = asyncio.create_task(wait_for_it())
        # Release at a random phase of the poller's 100 ms cycle, after it has tried once.
        await asyncio.sleep(0.02 + random.uniform(0, POLL_S))
        t0 = time.perf_counter()
        await holder.release(lease)
        won = await asyncio.wait_for(task, 10)
        out.append(got[0] - t0)
        await waiter.release(won)
    return out


def fresh_pg_url() -> str | None:
    name = "ww_bench_locks"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None
    parts = dict(item.split("=", 1) for item in PG_ADMIN.split())
    url = f"postgresql+psycopg://{parts['user']}@{parts['host']}:{parts['port']}/{name}"
    upgrade(url, "0002_locks")
    return url


def redis_up() -> bool:
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError:
        return False
    return True


def rollback_journal_backend(url: str) -> LockBackend:
    """SQLite with a rollback journal and synchronous=FULL (SQLite's own defaults; watchword
    itself runs SQLite files in WAL with synchronous=NORMAL): every commit waits for fsync."""
    engine = create_engine_for_url(url)

    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=DELETE")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    event.listen(engine.sync_engine, "connect", pragmas)
    return SQLiteBackend(engine, owns_engine=True)


async def bench_backend(
    make: Callable[[], LockBackend], reps: int, samples: int, *, shared: bool = False
) -> dict[str, object]:
    a = make()
    b = a if shared else make()  # a second "replica" (memory cannot be shared otherwise)
    holder, waiter = Locks(a), Locks(b)
    rounds = []
    try:
        await uncontended(holder, 20)  # warm connections and scripts
        for _ in range(reps):
            un = await uncontended(holder, samples * 5)
            ev = await handoff(
                holder, lambda k: waiter.acquire(k, ttl=TTL, wait=timedelta(seconds=10)), b, samples
            )
            po = await handoff(holder, lambda k: poll_acquire(b, k), b, samples)
            rounds.append({"uncontended_s": un, "handoff_event_s": ev, "handoff_poll100_s": po})
    finally:
        await a.aclose()
        if b is not a:
            await b.aclose()
    return summarise(rounds)


def summarise(rounds: list[dict[str, list[float]]]) -> dict[str, object]:
    per_round: list[dict[str, Any]] = []
    for r in rounds:
        ev, po, un = r["handoff_event_s"], r["handoff_poll100_s"], r["uncontended_s"]
        per_round.append(
            {
                "uncontended_ms": {"p50": 1e3 * pct(un, 0.5), "p99": 1e3 * pct(un, 0.99)},
                "handoff_event_ms": {"p50": 1e3 * pct(ev, 0.5), "p90": 1e3 * pct(ev, 0.9)},
                "handoff_poll100_ms": {"p50": 1e3 * pct(po, 0.5), "p90": 1e3 * pct(po, 0.9)},
                "ratio_p50_poll_over_event": pct(po, 0.5) / pct(ev, 0.5),
            }
        )
    ratios = [r["ratio_p50_poll_over_event"] for r in per_round]
    return {
        "rounds": per_round,
        "median_of_rounds": {
            "uncontended_p50_ms": statistics.median(r["uncontended_ms"]["p50"] for r in per_round),
            "uncontended_p99_ms": statistics.median(r["uncontended_ms"]["p99"] for r in per_round),
            "handoff_event_p50_ms": statistics.median(
                r["handoff_event_ms"]["p50"] for r in per_round
            ),
            "handoff_poll100_p50_ms": statistics.median(
                r["handoff_poll100_ms"]["p50"] for r in per_round
            ),
            "ratio_p50_poll_over_event": statistics.median(ratios),
            "min_ratio_over_rounds": min(ratios),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    parser.add_argument("--only", nargs="*", default=None, help="backend names to run")
    opts = parser.parse_args()
    results: dict[str, object] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
        "load_average_at_start": os.getloadavg()[0],
        "reps": opts.reps,
        "samples_per_rep": opts.samples,
        "backends": {},
    }
    backends: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
        upgrade(sqlite_url, "0002_locks")
        journal_url = f"sqlite+aiosqlite:///{tmp}/bench-journal.sqlite3"
        upgrade(journal_url, "0002_locks")
        prefix = f"ww-bench-{secrets.token_hex(4)}:"
        targets: dict[str, Callable[[], LockBackend]] = {
            "memory": lambda: open_backend("memory://"),
            "sqlite": lambda: open_backend(sqlite_url),
            "sqlite-rollback-journal": lambda: rollback_journal_backend(journal_url),
        }
        if redis_up():
            targets["redis"] = lambda: open_backend(REDIS_URL, redis_prefix=prefix)
        pg = fresh_pg_url()
        if pg is not None:
            targets["postgres"] = lambda: open_backend(pg)
            targets["postgres-fast"] = lambda: PostgresBackend(
                create_engine_for_url(pg), owns_engine=True, durable_grants=False
            )
        for name, make in targets.items():
            if opts.only and name not in opts.only:
                continue
            print(f"{name} ...", flush=True)
            shared = name == "memory"
            backends[name] = asyncio.run(
                bench_backend(make, opts.reps, opts.samples, shared=shared)
            )
    for name in ("redis", "postgres", "postgres-fast"):
        if name not in backends and (not opts.only or name in opts.only):
            backends[name] = "skipped: server not reachable"
    results["backends"] = backends
    results["load_average_at_end"] = os.getloadavg()[0]
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (opts.out / "results.md").write_text(render(results))
    print(render(results))


def render(results: dict[str, object]) -> str:
    lines = [
        f"# Lock benchmark results ({results['when']}, {results['machine']})",
        "",
        f"1-minute load average {results['load_average_at_start']:.1f} at the start, "
        f"{results['load_average_at_end']:.1f} at the end (2 cores, shared).",
        "",
        f"{results['reps']} rounds x {results['samples_per_rep']} hand-offs (uncontended: 5x as "
        "many); figures are the median over rounds; ratio = poll p50 / event p50.",
        "",
        "| backend | uncontended p50 ms | uncontended p99 ms | hand-off event p50 ms "
        "| hand-off 100 ms poll p50 ms | ratio (median) | ratio (worst round) |",
        "|---|---|---|---|---|---|---|",
    ]
    backends = results["backends"]
    assert isinstance(backends, dict)
    for name, data in backends.items():
        if not isinstance(data, dict):
            lines.append(f"| {name} | {data} | | | | | |")
            continue
        m = data["median_of_rounds"]
        lines.append(
            f"| {name} | {m['uncontended_p50_ms']:.3f} | {m['uncontended_p99_ms']:.3f} "
            f"| {m['handoff_event_p50_ms']:.3f} | {m['handoff_poll100_p50_ms']:.1f} "
            f"| {m['ratio_p50_poll_over_event']:.0f}x | {m['min_ratio_over_rounds']:.0f}x |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
