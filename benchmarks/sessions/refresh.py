"""The refresh scheduler (the indexed ``sessions`` table) and refresh throughput.

    .venv/bin/python benchmarks/sessions/refresh.py [--sizes 100000,1000000] \
        [--sqlite-sizes 100000] [--n 5000] [--workers 1,2,3] [--profile] \
        [--append benchmarks/sessions/results.md]

**Scheduler** (PostgreSQL, a database of its own, created with psycopg and dropped after; and
SQLite, a file in a temporary directory): the table is filled with ``size`` session rows of
realistic widths (ids from ``new_id``, claims JSON of ~300 bytes, dummy sealed tokens of 900,
120 and 900 bytes, due times spread over [now - 10 min, now + 60 min)), by ``COPY`` on
PostgreSQL and chunked ``executemany`` on SQLite, then ``ANALYZE``. Then, each operation timed
alone (``perf_counter_ns``):

- ``add``: ``SessionService.create`` (seals three tokens, one ``INSERT`` in a transaction);
- ``next due time``: the pure schedule (``refresh_due``) for 100 sessions: the decision alone;
- ``reschedule``: ``SessionRefresher._write`` with the values a successful refresh writes
  (new sealed access token, expiry, ``refreshed_at``, cleared failures, error and intent, the
  next ``refresh_due_at``): the fenced ``UPDATE ... WHERE id = ? AND fence = ?`` of one random
  existing row, alone (its own transaction); and 500 of them finishing together, as in a storm
  (gathered into one transaction): the whole's time per session;
- ``pop_due``: ``SessionRefresher.claim_due`` (the pass's claim: ``UPDATE sessions SET fence =
  fence + 1, intent_fence = …, lease_until = … WHERE id IN (SELECT id … WHERE provider = ? AND
  state = 'active' AND slot % 16 IN (…) AND refresh_due_at <= now AND intent_fence IS NULL
  ORDER BY refresh_due_at LIMIT 500 FOR UPDATE SKIP LOCKED) RETURNING *``) for one shard of 16
  and for all 16 (one replica alone); the claimed rows are released (untimed) after each.

"Scheduler memory" is the database's: ``pg_relation_size('ix_sessions_due_at')`` and the table
per row (SQLite: ``dbstat``). The process keeps nothing per session; checked by
``tracemalloc`` (peak) and RSS around one ``run_pass()`` + ``drain()`` over the full table.

**Throughput** (PostgreSQL, a second database with ``--n`` sessions made by
``SessionService.create``): 1, 2 and 3 worker processes (``subprocess``, this file's
``worker`` command), each a ``Services`` on the database with a fast fake provider (answers
at once, rotating tokens) injected in ``services.signin.clients``, default refresher settings
(16 shards, pool 64, 16 per provider). Workers heartbeat and balance (no claims) while
nothing is due; once each holds its fair share, every session is made due (``refresh_due_at``
1 s ago, access token expiring in 30 s, refresh fields cleared) and a start instant is
given; workers run the refresher's own loop (``BackgroundRefresher.run``) until every session
has ``refreshed_at`` after the start. Throughput = N / (latest ``refreshed_at`` - start).
Beside it, in the same run, the naive design (``naive`` command): one process that every
second selects every due row (no shards, no locks, no fences, no intent) and refreshes them
with 16 at once.
CPU seconds are the workers' own (``time.process_time``) and PostgreSQL's (all ``postgres``
processes, ``/proc/<pid>/stat``), over the measured part.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import itertools
import json
import os
import platform
import pstats
import random
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import ColumnElement, func, insert, select, text, update

from watchword.clock import utc
from watchword.config import OidcProviderSettings, Settings, load_settings
from watchword.federation.client import TokenSet
from watchword.ids import new_id
from watchword.observability.logging import configure_logging
from watchword.runtime import Runtime
from watchword.secret import Secret
from watchword.services import Services
from watchword.sessions import NewSession
from watchword.sessions.schedule import RefreshState, refresh_due
from watchword.sessions.sealing import SealedColumn
from watchword.sessions.store import SLOTS, in_shards
from watchword.sessions.tables import sessions
from watchword.storage.migrate import upgrade_engine

PG_DSN = os.environ.get(
    "WATCHWORD_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
SECRET_KEY = "benchmark-only-secret-key-" + "0" * 16
PROVIDER = "bench"
LIFETIME = timedelta(minutes=5)
HERE = Path(__file__).resolve()


def settings_for(url: str) -> Settings:
    return load_settings(environ={}, secret_key=SECRET_KEY, database={"url": url})


def pg_url(dsn: str, name: str) -> str:
    parts = dict(item.split("=", 1) for item in dsn.split())
    return (
        f"postgresql+psycopg://{parts['user']}@{parts['host']}:{parts.get('port', '5432')}/{name}"
    )


def create_pg(dsn: str, prefix: str) -> str:
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def drop_pg(dsn: str, name: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def new_session(i: int, expires: datetime | None) -> NewSession:
    return NewSession(
        provider=PROVIDER,
        issuer="https://idp.bench.example",
        subject=f"user-{i:08d}",
        upstream_sid=None,
        email=f"user{i}@bench.example",
        display_name=f"User {i}",
        claims={"sub": f"user-{i:08d}", "email": f"user{i}@bench.example"},
        organization_ids=[],
        access_token=Secret("a" * 800),
        refresh_token=Secret(f"rt-{i}"),
        id_token=None,
        access_expires_at=expires,
    )


def pct(samples: list[int], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


async def timed(op: Callable[[], Awaitable[object]], n: int) -> dict[str, float]:
    for _ in range(max(5, n // 10)):  # warm-up
        await op()
    gc.collect()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        await op()
        samples.append(time.perf_counter_ns() - t0)
    return {
        "median_us": round(statistics.median(samples) / 1000, 1),
        "p95_us": round(pct(samples, 0.95), 1),
        "n": n,
    }


# --- the scheduler: bulk rows, then add / reschedule / pop due -------------------------------


_CLAIMS = json.dumps(
    {
        "sub": "0" * 36,
        "email": "someone@example.com",
        "name": "Some One",
        "given_name": "Some",
        "family_name": "One",
        "groups": ["engineering", "staff", "everyone"],
        "preferred_username": "some.one",
        "email_verified": True,
        "locale": "en-GB",
        "picture": "https://idp.example/avatars/0000000000000000.png",
    }
)


def bulk_rows(size: int, now: datetime) -> Any:
    """``size`` rows as dicts (column name to value): realistic widths, dummy sealed bytes."""
    rnd = random.Random(7)
    access, refresh, id_token = os.urandom(900), os.urandom(120), os.urandom(900)
    for i in range(size):
        session_id = new_id("ses")
        due = now + timedelta(seconds=rnd.uniform(-600, 3600))
        yield {
            "id": session_id,
            "secret_hash": f"{i:064x}",
            "provider": PROVIDER,
            "issuer": "https://idp.bench.example",
            "subject": f"{i:036d}",
            "upstream_sid": None,
            "email": f"user{i}@bench.example",
            "display_name": f"User {i}",
            "claims": _CLAIMS,
            "organization_ids": "|",
            "access_token": access,
            "refresh_token": refresh,
            "id_token": id_token,
            "key_id": "k1",
            "access_expires_at": due + timedelta(minutes=1),
            "created_at": now,
            "last_seen_at": now,
            "expires_at": now + timedelta(days=7),
            "version": 1,
            "state": "active",
            "shard": zlib.crc32(session_id.encode()) % SLOTS,
            "refresh_due_at": due,
            "refresh_failures": 0,
            "userinfo_at": now,
            "fence": 1,
        }


def copy_pg(dsn: str, size: int, now: datetime) -> None:
    rows = bulk_rows(size, now)
    first = next(rows)
    columns = list(first)
    with psycopg.connect(dsn) as conn:
        copying = f"COPY sessions ({', '.join(columns)}) FROM STDIN"
        with conn.cursor() as cur, cur.copy(copying) as copy:
            for row in itertools.chain([first], rows):
                copy.write_row([row[c] for c in columns])
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE sessions")


async def fill_sqlite(services: Services, size: int, now: datetime) -> None:
    rows = bulk_rows(size, now)
    while True:
        chunk = list(itertools.islice(rows, 10_000))
        if not chunk:
            break
        async with services.runtime.engine.begin() as conn:
            await conn.execute(insert(sessions), chunk)
    async with services.runtime.engine.begin() as conn:
        await conn.execute(text("ANALYZE"))


async def storage_pg(services: Services, size: int) -> dict[str, Any]:
    async with services.runtime.engine.connect() as conn:
        got = (
            await conn.execute(
                text(
                    "SELECT pg_relation_size('ix_sessions_due_at'), pg_relation_size('sessions'),"
                    " pg_table_size('sessions'), pg_indexes_size('sessions'),"
                    " pg_total_relation_size('sessions'), count(*) FROM sessions"
                )
            )
        ).one()
    index, heap, table, indexes, total, rows = (int(v) for v in got)
    return {
        "rows": rows,
        "due_index_bytes": index,
        "due_index_per_row": round(index / rows, 1),
        "heap_per_row": round(heap / rows, 1),
        "table_with_toast_per_row": round(table / rows, 1),
        "all_indexes_per_row": round(indexes / rows, 1),
        "total_per_row": round(total / rows, 1),
    }


async def storage_sqlite(services: Services) -> dict[str, Any]:
    async with services.runtime.engine.connect() as conn:
        rows = int((await conn.execute(select(func.count()).select_from(sessions))).scalar_one())
        sizes = {
            str(name): int(size)
            for name, size in (
                await conn.execute(text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name"))
            ).all()
        }
    index_names = [n for n in sizes if n.startswith(("ix_sessions", "sqlite_autoindex_sessions"))]
    indexes = sum(sizes[n] for n in index_names)
    return {
        "rows": rows,
        "due_index_bytes": sizes["ix_sessions_due_at"],
        "due_index_per_row": round(sizes["ix_sessions_due_at"] / rows, 1),
        "heap_per_row": round(sizes["sessions"] / rows, 1),
        "table_with_toast_per_row": round(sizes["sessions"] / rows, 1),
        "all_indexes_per_row": round(indexes / rows, 1),
        "total_per_row": round((sizes["sessions"] + indexes) / rows, 1),
    }


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def scheduler(url: str, kind: str, size: int, dsn: str | None) -> dict[str, Any]:
    runtime = Runtime.create(settings_for(url))
    services = Services.build(runtime)
    try:
        await upgrade_engine(runtime.engine)
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        if dsn is not None:
            await asyncio.to_thread(copy_pg, dsn, size, now)
        else:
            await fill_sqlite(services, size, now)
        fill_s = time.perf_counter() - t0
        storage = await storage_pg(services, size) if dsn else await storage_sqlite(services)
        async with runtime.engine.connect() as conn:
            ids = [
                str(r)
                for r in (
                    await conn.execute(select(sessions.c.id).order_by(func.random()).limit(2000))
                ).scalars()
            ]
        counter = itertools.count()
        expires = now + timedelta(hours=2)

        async def add() -> None:
            await services.sessions.create(new_session(next(counter), expires))

        sealer = services.sessions.sealer
        refresher = services.refresher

        async def reschedule(session_id: str | None = None) -> None:
            session_id = session_id or random.choice(ids)
            moment = datetime.now(UTC)
            written = await refresher._write(
                session_id,
                1,
                access_token=sealer.seal(
                    "a" * 800, session_id=session_id, column=SealedColumn.ACCESS_TOKEN
                ),
                access_expires_at=moment + LIFETIME,
                key_id=sealer.primary_id,
                refreshed_at=moment,
                refresh_failures=0,
                retry_after=None,
                last_error=None,
                last_error_at=None,
                intent_fence=None,
                intent_at=None,
                refresh_due_at=moment + LIFETIME - timedelta(minutes=1),
            )
            assert written

        async def reschedule_gathered(n: int, rounds: int) -> dict[str, float]:
            """``n`` outcomes finishing together (a storm): the writes share one transaction;
            the cost per session of the whole, over ``rounds`` rounds."""
            per: list[int] = []
            for round_ in range(rounds + 2):
                chosen = random.sample(ids, n)
                t0 = time.perf_counter_ns()
                await asyncio.gather(*(reschedule(i) for i in chosen))
                if round_ >= 2:  # warm-up
                    per.append((time.perf_counter_ns() - t0) // n)
            return {
                "median_us": round(statistics.median(per) / 1000, 1),
                "p95_us": round(pct(per, 0.95), 1),
                "n": rounds,
            }

        policy = refresher.policy
        state = RefreshState(now + LIFETIME, has_refresh_token=True, last_attempt_at=now)

        async def next_due() -> None:  # the pure schedule: the decision, no storage
            for _ in range(100):
                refresh_due(state, policy, jitter=0.5)

        dialect = runtime.engine.dialect.name
        one_shard = in_shards([0], 16, dialect=dialect)  # the 64 slots of shard 0
        every = in_shards(range(16), 16, dialect=dialect)  # nothing to filter
        popped: dict[str, int] = {}

        def pop(slots: ColumnElement[bool], name: str) -> Callable[[], Awaitable[None]]:
            async def op() -> None:
                claims = await refresher.claim_due(slots, now, 500, provider=PROVIDER)
                popped[name] = len(claims)
                claimed.extend(c.session_id for c in claims)

            return op

        claimed: list[str] = []

        async def unclaim() -> None:  # untimed: the popped rows as they were, for the next pop
            async with runtime.engine.begin() as conn:
                await conn.execute(
                    update(sessions)
                    .where(sessions.c.id.in_(claimed))
                    .values(
                        intent_fence=None,
                        intent_at=None,
                        lease_until=None,
                        lease_holder=None,
                        # each row's own due time back (bulk rows: expiry - 1 minute)
                        refresh_due_at=sessions.c.access_expires_at - timedelta(minutes=1),
                    )
                )
            claimed.clear()

        async def timed_pop(op: Callable[[], Awaitable[None]], n: int) -> dict[str, float]:
            samples = []
            for i in range(n + 5):
                t0 = time.perf_counter_ns()
                await op()
                if i >= 5:  # warm-up
                    samples.append(time.perf_counter_ns() - t0)
                await unclaim()
            return {
                "median_us": round(statistics.median(samples) / 1000, 1),
                "p95_us": round(pct(samples, 0.95), 1),
                "n": n,
            }

        ops = {
            "add (SessionService.create)": await timed(add, 300),
            "next due time (pure schedule), 100 sessions": await timed(next_due, 500),
            "reschedule (fenced UPDATE of the refresh fields)": await timed(reschedule, 500),
            "reschedule, 500 outcomes gathered, per session": await reschedule_gathered(500, 20),
            "pop due (claim_due), 1 shard of 16 (64 slots), 500": await timed_pop(
                pop(one_shard, "one"), 50
            ),
            "pop due (claim_due), 16 shards (1,024 slots), 500": await timed_pop(
                pop(every, "all"), 50
            ),
        }
        # The process: one pass over the whole table (it claims what can start at once, the
        # per-provider limit, 16; the dummy sealed tokens do not open, so each ends as a
        # permanent failure): what the process keeps does not grow with the table.
        services.signin.clients[PROVIDER] = FastClient()  # type: ignore[assignment]
        gc.collect()
        rss_before = rss_kib()
        tracemalloc.start()
        counted = services.refresher.metrics.refreshes
        before = sum(
            m.value
            for metric in counted.collect()
            for m in metric.samples
            if m.name.endswith("_total")
        )
        await services.background.run_pass()
        await services.background.drain()
        started = round(
            sum(
                m.value
                for metric in counted.collect()
                for m in metric.samples
                if m.name.endswith("_total")
            )
            - before
        )
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        gc.collect()
        process = {
            "pass_sessions_started": started,
            "tracemalloc_peak_kib": round(peak / 1024),
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_kib(),
            "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }
        return {
            "kind": kind,
            "size": size,
            "fill_s": round(fill_s, 1),
            "storage": storage,
            "ops": ops,
            "popped": popped,
            "process": process,
        }
    finally:
        await services.aclose()
        await runtime.close()


# --- throughput: workers, the naive loop ------------------------------------------------------


class FastUpstream:
    issuer = "https://idp.bench.example"

    async def metadata(self) -> None:  # discovery: cached, nothing to fetch here
        return None


class FastClient:
    """A provider that answers at once (rotating refresh tokens, no ID token)."""

    def __init__(self) -> None:
        self.provider = FastUpstream()
        self.settings = OidcProviderSettings(
            name=PROVIDER,
            issuer=self.provider.issuer,
            client_id="c",
            client_secret="s",  # noqa: S106 - a fake provider
            rotating_refresh_tokens=True,
        )
        self.calls = 0

    async def refresh(self, refresh_token: Secret) -> TokenSet:
        self.calls += 1
        return TokenSet(
            access_token=Secret(f"at-{self.calls}-" + "a" * 800),
            id_token=None,
            refresh_token=Secret(refresh_token.reveal() + "+"),
            expires_at=datetime.now(UTC) + LIFETIME,
            scope=None,
        )


async def refreshed_since(services: Services, start: datetime) -> int:
    async with services.runtime.engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    select(func.count())
                    .select_from(sessions)
                    .where(sessions.c.refreshed_at >= start)
                )
            ).scalar_one()
        )


def engine_pool(size: int) -> None:
    """An experiment: the engine's SQLAlchemy pool keeps ``size`` connections (default 5,
    overflow 10: with 16 refreshes at once, connections past 5 are opened and closed)."""
    import functools

    from watchword.storage import db

    names = vars(db)
    names["create_async_engine"] = functools.partial(
        names["create_async_engine"], pool_size=size, max_overflow=10
    )


async def worker(url: str, rundir: Path, me: str, n: int, profile: bool, pool: int) -> None:
    configure_logging("warning")
    if pool:
        engine_pool(pool)
    runtime = Runtime.create(settings_for(url))
    services = Services.build(runtime)
    client = FastClient()
    services.signin.clients[PROVIDER] = client  # type: ignore[assignment]
    bg = services.background
    go = rundir / "go"
    try:
        while not go.exists():  # heartbeat and balance only: nothing is claimed before "go"
            await bg._balance(await bg._heartbeat(datetime.now(UTC)))
            (rundir / f"held-{me}").write_text(str(len(bg.held)))
            await asyncio.sleep(0.2)
        start = datetime.fromtimestamp(float(go.read_text()), UTC)
        profiler = cProfile.Profile(time.process_time) if profile else None  # CPU, not wall
        cpu0 = time.process_time()
        if profiler:
            profiler.enable()
        passes = 0
        real_pass, real_top_up = bg.run_pass, bg.top_up

        async def counted(real: Callable[[], Awaitable[float]]) -> float:
            nonlocal passes
            passes += 1
            return await real()

        bg.run_pass = lambda: counted(real_pass)  # type: ignore[method-assign]
        bg.top_up = lambda: counted(real_top_up)  # type: ignore[method-assign]
        stop = asyncio.Event()
        loop = asyncio.create_task(bg.run(stop=stop))  # the refresher's own loop
        while await refreshed_since(services, start) < n:
            await asyncio.sleep(0.1)
            if loop.done():
                await loop  # it failed: say how
        stop.set()
        await loop
        if profiler:
            profiler.disable()
            out = StringIO()
            stats = pstats.Stats(profiler, stream=out)
            stats.sort_stats("tottime").print_stats(30)
            stats.sort_stats("cumulative").print_stats(45)
            (rundir / f"profile-{me}.txt").write_text(out.getvalue())
        result = {
            "calls": client.calls,
            "cpu_s": time.process_time() - cpu0,
            "passes": passes,
            "held": len(bg.held),
        }
        (rundir / f"result-{me}.json").write_text(json.dumps(result))
        while not (rundir / "stop").exists():  # noqa: ASYNC110 - PG backends kept for the CPU sample
            await asyncio.sleep(0.05)
    finally:
        await bg.aclose()
        await services.aclose()
        await runtime.close()


async def naive(url: str, rundir: Path, n: int) -> None:
    """The naive design: every second, select every due row and refresh it; no shards, no
    lock, no intent, no fence."""
    configure_logging("warning")
    runtime = Runtime.create(settings_for(url))
    services = Services.build(runtime)
    engine, sealer, client = runtime.engine, services.sessions.sealer, FastClient()
    limit = asyncio.Semaphore(16)
    go = rundir / "go"
    while not go.exists():  # noqa: ASYNC110 - another process writes it
        await asyncio.sleep(0.05)
    start = datetime.fromtimestamp(float(go.read_text()), UTC)
    cpu0 = time.process_time()

    async def one(session_id: str, sealed: bytes) -> None:
        async with limit:
            token = sealer.open(sealed, session_id=session_id, column=SealedColumn.REFRESH_TOKEN)
            fresh = await client.refresh(token)
            now = datetime.now(UTC)
            assert fresh.refresh_token is not None
            assert fresh.expires_at is not None
            async with engine.begin() as conn:
                await conn.execute(
                    update(sessions)
                    .where(sessions.c.id == session_id)
                    .values(
                        access_token=sealer.seal(
                            fresh.access_token.reveal(),
                            session_id=session_id,
                            column=SealedColumn.ACCESS_TOKEN,
                        ),
                        refresh_token=sealer.seal(
                            fresh.refresh_token.reveal(),
                            session_id=session_id,
                            column=SealedColumn.REFRESH_TOKEN,
                        ),
                        access_expires_at=fresh.expires_at,
                        refreshed_at=now,
                        refresh_attempt_at=now,
                        refresh_due_at=fresh.expires_at - timedelta(minutes=1),
                    )
                )

    ticks = 0
    while True:
        tick = time.monotonic()
        ticks += 1
        async with engine.connect() as conn:
            due = (
                await conn.execute(
                    select(sessions.c.id, sessions.c.refresh_token).where(
                        sessions.c.state == "active",
                        sessions.c.refresh_due_at <= datetime.now(UTC),
                    )
                )
            ).all()
        await asyncio.gather(*(one(row.id, row.refresh_token) for row in due))
        if not due and await refreshed_since(services, start) >= n:
            break
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    result = {"calls": client.calls, "cpu_s": time.process_time() - cpu0, "passes": ticks}
    (rundir / "result-naive.json").write_text(json.dumps(result))
    while not (rundir / "stop").exists():  # noqa: ASYNC110 - another process writes it
        await asyncio.sleep(0.05)
    await services.aclose()
    await runtime.close()


def postgres_cpu_s() -> float:
    """CPU seconds (user + system) of every process named ``postgres`` now alive."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if name.startswith("postgres"):
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / tick


async def prepare_throughput(url: str, n: int) -> None:
    runtime = Runtime.create(settings_for(url))
    services = Services.build(runtime)
    try:
        await upgrade_engine(runtime.engine)
        far = datetime.now(UTC) + timedelta(days=1)
        for i in range(n):
            await services.sessions.create(new_session(i, far))
    finally:
        await services.aclose()
        await runtime.close()


def make_due(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE sessions SET refresh_due_at = now() - interval '1 second',"
            " access_expires_at = now() + interval '30 seconds', refreshed_at = NULL,"
            " refresh_attempt_at = NULL, refresh_failures = 0, intent_fence = NULL,"
            " intent_at = NULL, lease_until = NULL, lease_holder = NULL, state = 'active'"
        )
        conn.execute("DELETE FROM refresher_members")
        conn.execute("VACUUM ANALYZE sessions")


def hold_far(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE sessions SET refresh_due_at = now() + interval '1 day'")


def configuration(
    url: str, dsn: str, n: int, processes: int, design: str, profile: bool, pool: int = 0
) -> dict[str, Any]:
    hold_far(dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM refresher_members")
    with tempfile.TemporaryDirectory() as tmp:
        rundir = Path(tmp)
        names = ["naive"] if design == "naive" else [f"w{i}" for i in range(processes)]
        procs = []
        for name in names:
            cmd = [sys.executable, str(HERE), design, "--url", url, "--run", tmp, "--n", str(n)]
            if design == "worker":
                cmd += ["--me", name, "--engine-pool", str(pool)]
                cmd += ["--profile"] if profile else []
            procs.append(subprocess.Popen(cmd))
        fair = -(-16 // processes)
        held: list[int] = []
        deadline = time.monotonic() + 60
        while design == "worker":  # wait for the fair share
            held = []
            for name in names:
                f = rundir / f"held-{name}"
                held.append(int(f.read_text() or 0) if f.exists() else -1)
            if sum(held) == 16 and max(held) <= fair:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"workers did not balance: {held}")
            time.sleep(0.2)
        time.sleep(0.5)  # let every worker finish the pass it is in
        make_due(dsn)
        pg0 = postgres_cpu_s()
        start = time.time()
        (rundir / "go").write_text(repr(start))
        while not all((rundir / f"result-{name}.json").exists() for name in names):
            if any(p.poll() not in (None, 0) for p in procs):
                raise RuntimeError("a worker failed")
            time.sleep(0.02)
        pg_cpu = postgres_cpu_s() - pg0
        (rundir / "stop").write_text("")
        for p in procs:
            p.wait(timeout=60)
        results = [json.loads((rundir / f"result-{name}.json").read_text()) for name in names]
        profiles = [
            (rundir / f"profile-{name}.txt").read_text()
            for name in names
            if (rundir / f"profile-{name}.txt").exists()
        ]
    with psycopg.connect(dsn) as conn:
        got = conn.execute(
            "SELECT count(*), max(refreshed_at), count(*) FILTER (WHERE state <> 'active')"
            " FROM sessions WHERE refreshed_at >= to_timestamp(%s)",
            (start,),
        ).fetchone()
    assert got is not None
    count, last, inactive = int(got[0]), got[1], int(got[2])
    elapsed = utc(last).timestamp() - start
    calls = sum(r["calls"] for r in results)
    worker_cpu = sum(r["cpu_s"] for r in results)
    return {
        "design": design if not pool else f"worker, engine pool {pool} (experiment)",
        "processes": processes,
        "n": n,
        "refreshed": count,
        "calls": calls,
        "inactive": inactive,
        "elapsed_s": round(elapsed, 2),
        "per_s": round(count / elapsed, 1),
        "per_process": [r["calls"] for r in results],
        "held": held,
        "passes": [r["passes"] for r in results],
        "worker_cpu_s": round(worker_cpu, 2),
        "postgres_cpu_s": round(pg_cpu, 2),
        "per_cpu_s": round(count / (worker_cpu + pg_cpu), 1),
        "profiles": profiles,
    }


# --- the report -------------------------------------------------------------------------------


def render(results: dict[str, Any]) -> str:
    lines = [
        "",
        "# Refresh scheduler and refresh throughput (`benchmarks/sessions/refresh.py`)",
        "",
        f"{results['when']}, Python {results['python']}, {results['machine']}, "
        f"PostgreSQL {results['pg_version']}: the machine is shared and noisy; 2 cores serve "
        "the workers *and* PostgreSQL.",
        "",
        f"Command: `{results['command']}`",
        "",
        "## Scheduler: the indexed `sessions` table",
        "",
        "Medians and p95 in µs, each operation timed alone.",
        "",
        "| database | rows | operation | median µs | p95 µs | n |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for s in results["scheduler"]:
        for name, op in s["ops"].items():
            lines.append(
                f"| {s['kind']} | {s['size']:,} | {name} | {op['median_us']} | {op['p95_us']} "
                f"| {op['n']} |"
            )
    lines += [
        "",
        "Rows returned by one pop: "
        + "; ".join(
            f"{s['kind']} {s['size']:,}: {s['popped'].get('one')} (1 shard), "
            f"{s['popped'].get('all')} (16 shards)"
            for s in results["scheduler"]
        )
        + ".",
        "",
        "### Scheduler memory (the database's), bytes per session row",
        "",
        "| database | rows | fill s | due index | due index per row | heap per row "
        "| table incl. TOAST per row | all indexes per row | total per row |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results["scheduler"]:
        st = s["storage"]
        lines.append(
            f"| {s['kind']} | {st['rows']:,} | {s['fill_s']} | {st['due_index_bytes']:,} "
            f"| {st['due_index_per_row']} | {st['heap_per_row']} "
            f"| {st['table_with_toast_per_row']} | {st['all_indexes_per_row']} "
            f"| {st['total_per_row']} |"
        )
    lines += [
        "",
        "### The process during one `run_pass()` + `drain()` over the whole table (claims 16)",
        "",
        "| database | rows | sessions started | tracemalloc peak KiB | RSS before KiB "
        "| RSS after KiB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s in results["scheduler"]:
        p = s["process"]
        lines.append(
            f"| {s['kind']} | {s['size']:,} | {p['pass_sessions_started']} "
            f"| {p['tracemalloc_peak_kib']} | {p['rss_before_kib']} | {p['rss_after_kib']} |"
        )
    lines += [
        "",
        f"## Refresh throughput, PostgreSQL, {results['n']:,} sessions, fast fake provider",
        "",
        "| design | processes | refreshed | elapsed s | refreshes/s | per process "
        "| shards held | passes | worker CPU s | PostgreSQL CPU s | refreshes per CPU-s |",
        "|---|---:|---:|---:|---:|---|---|---|---:|---:|---:|",
    ]
    for t in results["throughput"]:
        lines.append(
            f"| {t['design']} | {t['processes']} | {t['refreshed']:,} | {t['elapsed_s']} "
            f"| {t['per_s']} | {t['per_process']} | {t['held']} | {t['passes']} "
            f"| {t['worker_cpu_s']} | {t['postgres_cpu_s']} | {t['per_cpu_s']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    for name in ("worker", "naive"):
        p = sub.add_parser(name)
        p.add_argument("--url", required=True)
        p.add_argument("--run", required=True)
        p.add_argument("--n", type=int, required=True)
        p.add_argument("--me", default="w0")
        p.add_argument("--profile", action="store_true")
        p.add_argument("--engine-pool", type=int, default=0)
    parser.add_argument("--pg-dsn", default=PG_DSN)
    parser.add_argument("--sizes", default="100000,1000000", help="PostgreSQL table sizes")
    parser.add_argument("--sqlite-sizes", default="100000")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--skip-scheduler", action="store_true")
    parser.add_argument("--profile", action="store_true", help="then profile one worker")
    parser.add_argument(
        "--experiment-pool", type=int, default=0, help="also run workers with this engine pool"
    )
    parser.add_argument("--append", default=None, help="append the report to this file")
    parser.add_argument("--json", default=None, help="write the raw results here")
    args = parser.parse_args()
    if args.command == "worker":
        asyncio.run(
            worker(args.url, Path(args.run), args.me, args.n, args.profile, args.engine_pool)
        )
        return
    if args.command == "naive":
        asyncio.run(naive(args.url, Path(args.run), args.n))
        return
    configure_logging("warning")
    base = dict(item.split("=", 1) for item in args.pg_dsn.split())
    with psycopg.connect(args.pg_dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "pg_version": row[0] if row else "?",
        "command": " ".join([".venv/bin/python", "benchmarks/sessions/refresh.py", *sys.argv[1:]]),
        "n": args.n,
        "scheduler": [],
        "throughput": [],
    }
    sizes = [int(s) for s in args.sizes.split(",") if s]
    sqlite_sizes = [int(s) for s in args.sqlite_sizes.split(",") if s]
    if not args.skip_scheduler:
        for size in sqlite_sizes:
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite+aiosqlite:///{Path(tmp) / 'refresh.sqlite3'}"
                got = asyncio.run(scheduler(url, "sqlite", size, None))
            results["scheduler"].append(got)
            print(json.dumps(got), flush=True)
        for size in sizes:
            name = create_pg(args.pg_dsn, "ww_bench_refresh")
            try:
                dsn = " ".join(f"{k}={v}" for k, v in {**base, "dbname": name}.items())
                got = asyncio.run(scheduler(pg_url(args.pg_dsn, name), "postgres", size, dsn))
            finally:
                drop_pg(args.pg_dsn, name)
            results["scheduler"].append(got)
            print(json.dumps(got), flush=True)
    name = create_pg(args.pg_dsn, "ww_bench_refresh")
    try:
        url = pg_url(args.pg_dsn, name)
        dsn = " ".join(f"{k}={v}" for k, v in {**base, "dbname": name}.items())
        asyncio.run(prepare_throughput(url, args.n))
        for processes in [int(w) for w in args.workers.split(",")]:
            got = configuration(url, dsn, args.n, processes, "worker", False)
            results["throughput"].append(got)
            print(json.dumps({k: v for k, v in got.items() if k != "profiles"}), flush=True)
        if args.experiment_pool:
            for processes in [int(w) for w in args.workers.split(",")]:
                got = configuration(
                    url, dsn, args.n, processes, "worker", False, args.experiment_pool
                )
                results["throughput"].append(got)
                print(json.dumps({k: v for k, v in got.items() if k != "profiles"}), flush=True)
        got = configuration(url, dsn, args.n, 1, "naive", False)
        results["throughput"].append(got)
        print(json.dumps({k: v for k, v in got.items() if k != "profiles"}), flush=True)
        if args.profile:
            got = configuration(url, dsn, args.n, 1, "worker", True)
            results["profile"] = got
            print(json.dumps({k: v for k, v in got.items() if k != "profiles"}), flush=True)
            print(got["profiles"][0])
    finally:
        drop_pg(args.pg_dsn, name)
    report = render(results)
    print(report)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    if args.append:
        with Path(args.append).open("a") as out:
            out.write(report)


if __name__ == "__main__":
    main()
