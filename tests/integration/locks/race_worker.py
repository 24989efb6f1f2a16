"""A worker process for the multi-process lock races (run by path, not collected).

Usage: ``python race_worker.py '<json arguments>'``; see ``main`` for the modes:

- ``mutex``: many tasks take the keys in turn and record (key, fence, enter, exit) on
  the host's monotonic clock, which all processes share;
- ``refresh``: many tasks run refresh-once rounds against a record in a SQLite file,
  the simulated upstream logging every token it is shown; every process logs each
  generation it reads as needing a refresh (and so goes for the lock), and the upstream
  call for a generation does not return before every process has done so, so every
  generation is raced for by all processes whatever the scheduling;
- ``holder``: take one key, say so on stdout, then keep writing under its fence until
  a write is refused (the parent SIGKILLs or SIGSTOPs it meanwhile).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    distinct,
    func,
    insert,
    select,
)

from watchword.locks import (
    LockBackend,
    Locks,
    PostgresBackend,
    RefreshSteps,
    open_backend,
    refresh_once,
)
from watchword.storage.db import create_engine_for_url
from watchword.storage.optimistic import update_fenced

race_md = MetaData()
records = Table(
    "race_records",
    race_md,
    Column("key", String(50), primary_key=True),
    Column("generation", Integer, nullable=False),
    Column("token", String(50), nullable=False),
    Column("fence", BigInteger, nullable=False),
)
seen = Table(
    "race_seen",
    race_md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(50), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("pid", Integer, nullable=False),
)
upstream_calls = Table(
    "race_upstream_calls",
    race_md,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(50), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("token", String(50), nullable=False),
    Column("pid", Integer, nullable=False),
)


def make_backend(args: dict[str, Any]) -> LockBackend:
    if args.get("fast_grants"):
        engine = create_engine_for_url(args["lock_url"])
        return PostgresBackend(engine, owns_engine=True, durable_grants=False)
    return open_backend(args["lock_url"], redis_prefix=args.get("redis_prefix", "ww:"))


async def wait_for_start(start_at: float) -> None:
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))


async def mutex(args: dict[str, Any]) -> list[list[object]]:
    backend = make_backend(args)
    locks = Locks(backend)
    keys: list[str] = args["keys"]
    rows: list[list[object]] = []

    async def task(n: int) -> None:
        for i in range(args["iterations"]):
            key = keys[(n + i) % len(keys)]
            async with locks.hold(
                key, ttl=timedelta(seconds=300), wait=timedelta(seconds=300)
            ) as lease:
                enter = time.monotonic()
                await asyncio.sleep(random.uniform(0, 0.002))
                leave = time.monotonic()
                rows.append([key, lease.fence, enter, leave, os.getpid()])

    await wait_for_start(args["start_at"])
    await asyncio.gather(*(task(n) for n in range(args["tasks"])))
    await backend.aclose()
    return rows


@dataclass(frozen=True)
class Record:
    key: str
    generation: int
    token: str
    fence: int


async def refresh(args: dict[str, Any]) -> None:
    backend = make_backend(args)
    locks = Locks(backend)
    engine = create_engine_for_url(args["records_url"])
    keys: list[str] = args["keys"]
    logged: set[tuple[str, int]] = set()

    async def all_processes_saw(key: str, generation: int) -> None:
        query = select(func.count(distinct(seen.c.pid))).where(
            seen.c.key == key, seen.c.generation == generation
        )
        # Waits out workers still starting up (imports take seconds on a loaded machine);
        # a bound only against a hang, well inside the lease's ttl.
        async with asyncio.timeout(240):
            while True:
                async with engine.connect() as conn:
                    if (await conn.execute(query)).scalar_one() >= args["processes"]:
                        return
                await asyncio.sleep(0.01)

    def steps(key: str, want: int) -> RefreshSteps[Record]:
        async def load() -> Record:
            async with engine.connect() as conn:
                row = (await conn.execute(select(records).where(records.c.key == key))).one()
            # Logged when it needs refreshing for this caller, who will race for the lock
            # with it; once per process and generation is enough.
            if row.generation < want and (key, row.generation) not in logged:
                logged.add((key, row.generation))
                async with engine.begin() as conn:
                    await conn.execute(
                        insert(seen).values(key=key, generation=row.generation, pid=os.getpid())
                    )
            return Record(key, row.generation, row.token, row.fence)

        async def call_upstream(current: Record) -> Record:
            # The upstream sees the refresh token presented; presenting one twice is
            # exactly what rotating providers punish.
            async with engine.begin() as conn:
                await conn.execute(
                    insert(upstream_calls).values(
                        key=key,
                        generation=current.generation,
                        token=current.token,
                        pid=os.getpid(),
                    )
                )
            # Contention by construction, not by luck: hold the lock until every
            # process has read this generation and so is racing for it.
            await all_processes_saw(key, current.generation)
            await asyncio.sleep(random.uniform(0, 0.005))
            nxt = current.generation + 1
            return Record(key, nxt, f"rt-{key}-{nxt}", current.fence)

        async def store(fresh: Record, fence: int) -> bool:
            async with engine.begin() as conn:
                return await update_fenced(
                    conn,
                    records,
                    records.c.key == key,
                    fence=fence,
                    values={"generation": fresh.generation, "token": fresh.token},
                )

        return RefreshSteps(load, lambda r: r.generation < want, call_upstream, store)

    async def task(n: int) -> None:
        for round_ in range(args["rounds"]):
            for key in keys:
                await refresh_once(
                    locks,
                    key,
                    steps(key, round_ + 1),
                    ttl=timedelta(seconds=300),
                    wait=timedelta(seconds=300),
                )
            await asyncio.sleep(random.uniform(0, 0.003))

    await wait_for_start(args["start_at"])
    await asyncio.gather(*(task(n) for n in range(args["tasks"])))
    await backend.aclose()
    await engine.dispose()


async def holder(args: dict[str, Any]) -> None:
    backend = make_backend(args)
    locks = Locks(backend)
    engine = create_engine_for_url(args["records_url"])
    key: str = args["keys"][0]
    lease = await locks.acquire(key, ttl=timedelta(milliseconds=args["ttl_ms"]), wait=timedelta(0))
    print(
        json.dumps({"acquired": lease.fence, "expires_at": lease.expires_at.isoformat()}),
        flush=True,
    )
    for n in range(200):
        async with engine.begin() as conn:
            ok = await update_fenced(
                conn,
                records,
                records.c.key == key,
                fence=lease.fence,
                values={"generation": n, "token": f"from-{os.getpid()}"},
            )
        print(json.dumps({"write": n, "ok": ok}), flush=True)
        if not ok:
            break
        await asyncio.sleep(0.05)
    await engine.dispose()
    await backend.aclose()


async def setup(args: dict[str, Any]) -> None:
    engine = create_engine_for_url(args["records_url"])
    async with engine.begin() as conn:
        await conn.run_sync(race_md.create_all)
        for key in args["keys"]:
            await conn.execute(
                insert(records).values(key=key, generation=0, token=f"rt-{key}-0", fence=0)
            )
    await engine.dispose()


def main() -> None:
    args = json.loads(sys.argv[1])
    if args["mode"] == "mutex":
        rows = asyncio.run(mutex(args))
        with open(args["out"], "w") as out:
            json.dump(rows, out)
        return
    mode = {"setup": setup, "refresh": refresh, "holder": holder}[args["mode"]]
    asyncio.run(mode(args))


if __name__ == "__main__":
    main()
