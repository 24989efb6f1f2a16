"""Optimistic version and fence guards on SQLite and PostgreSQL, with a scratch table."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.errors import VersionConflict
from watchword.storage.db import create_engine_for_url
from watchword.storage.optimistic import retry_on_conflict, update_fenced, update_versioned

scratch_md = MetaData()
records = Table(
    "optimistic_scratch",
    scratch_md,
    Column("id", String(20), primary_key=True),
    Column("counter", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("fence", BigInteger, nullable=False),
)


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'scratch.sqlite3'}"
    url: str = request.getfixturevalue("locks_pg_url")
    return url


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine_for_url(db_url)
    async with engine.begin() as conn:
        await conn.run_sync(scratch_md.drop_all)
        await conn.run_sync(scratch_md.create_all)
        await conn.execute(records.insert().values(id="r", counter=0, version=1, fence=0))
    try:
        yield engine
    finally:
        async with engine.begin() as conn:
            await conn.run_sync(scratch_md.drop_all)
        await engine.dispose()


async def _read(engine: AsyncEngine) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        row = (await conn.execute(select(records).where(records.c.id == "r"))).one()
    return row.counter, row.version, row.fence


async def test_update_versioned_current_version_writes_and_bumps(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        new = await update_versioned(
            conn, records, records.c.id == "r", read_version=1, values={"counter": 5}
        )
    assert new == 2
    assert await _read(engine) == (5, 2, 0)


async def test_update_versioned_stale_version_raises_and_writes_nothing(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        await update_versioned(
            conn, records, records.c.id == "r", read_version=1, values={"counter": 1}
        )
    with pytest.raises(VersionConflict):
        async with engine.begin() as conn:
            await update_versioned(
                conn, records, records.c.id == "r", read_version=1, values={"counter": 99}
            )
    assert await _read(engine) == (1, 2, 0)


async def test_update_versioned_missing_row_raises_conflict(engine: AsyncEngine) -> None:
    with pytest.raises(VersionConflict):
        async with engine.begin() as conn:
            await update_versioned(
                conn, records, records.c.id == "nope", read_version=1, values={"counter": 1}
            )


async def test_retry_on_conflict_concurrent_increments_lose_no_update(
    engine: AsyncEngine,
) -> None:
    async def increment() -> int:
        async with engine.begin() as conn:
            row = (await conn.execute(select(records).where(records.c.id == "r"))).one()
            await asyncio.sleep(0.001)  # let others read the same version
            return await update_versioned(
                conn,
                records,
                records.c.id == "r",
                read_version=row.version,
                values={"counter": row.counter + 1},
            )

    async def with_retry() -> int:
        return await retry_on_conflict(increment, attempts=200)

    versions = await asyncio.gather(*(with_retry() for _ in range(10)))
    counter, version, _ = await _read(engine)
    assert counter == 10
    assert version == 11
    assert sorted(versions) == list(range(2, 12))


async def test_retry_on_conflict_gives_up_after_attempts() -> None:
    calls = 0

    async def always() -> int:
        nonlocal calls
        calls += 1
        raise VersionConflict("changed")

    with pytest.raises(VersionConflict):
        await retry_on_conflict(always, attempts=3)
    assert calls == 3


async def test_update_fenced_older_fence_is_refused(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        assert await update_fenced(conn, records, records.c.id == "r", fence=7, values={})
        assert not await update_fenced(
            conn, records, records.c.id == "r", fence=6, values={"counter": 66}
        )
        assert not await update_fenced(
            conn, records, records.c.id == "r", fence=7, values={"counter": 77}
        )
        assert await update_fenced(
            conn, records, records.c.id == "r", fence=8, values={"counter": 88}
        )
    assert await _read(engine) == (88, 1, 8)
