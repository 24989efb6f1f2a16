"""Migration 0002_locks goes up and down on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from watchword.locks.tables import lock_epochs, lock_leases
from watchword.storage import migrate
from watchword.storage.db import create_engine_for_url


def _tables(url: str) -> set[str]:
    async def run() -> set[str]:
        engine = create_engine_for_url(url)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(run())


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrate.sqlite3'}"
        return
    yield request.getfixturevalue("pg_empty_url")


def test_migration_0002_locks_upgrade_downgrade_roundtrip(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url, "0002_locks")
    assert {"lock_leases", "lock_epochs"} <= _tables(empty_db_url)
    assert "0002_locks" in migrate.current_revisions(empty_db_url).current
    migrate.downgrade(empty_db_url, "0001_foundation")
    assert not {"lock_leases", "lock_epochs"} & _tables(empty_db_url)
    assert migrate.current_revisions(empty_db_url).current == frozenset({"0001_foundation"})
    migrate.upgrade(empty_db_url, "0002_locks")
    assert "lock_leases" in _tables(empty_db_url)


def test_migration_0002_locks_matches_table_definition(empty_db_url: str) -> None:
    migrate.upgrade(empty_db_url, "0002_locks")

    async def columns(table: str) -> dict[str, bool]:
        engine = create_engine_for_url(empty_db_url)
        try:
            async with engine.connect() as conn:
                cols = await conn.run_sync(lambda c: inspect(c).get_columns(table))
        finally:
            await engine.dispose()
        return {col["name"]: bool(col["nullable"]) for col in cols}

    for table in (lock_leases, lock_epochs):
        expected = {col.name: bool(col.nullable) for col in table.columns}
        assert asyncio.run(columns(table.name)) == expected
