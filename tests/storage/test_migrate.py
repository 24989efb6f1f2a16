from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import inspect

from watchword.errors import DatabaseUnavailable, SchemaOutdated
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


def _roundtrip(url: str) -> None:
    assert migrate.current_revisions(url).current == frozenset()
    migrate.upgrade(url)
    status = migrate.current_revisions(url)
    assert status.is_current and status.current == migrate.head_revisions()
    assert {"admin_keys", migrate.VERSION_TABLE} <= _tables(url)
    migrate.downgrade(url, "base")
    assert migrate.current_revisions(url).current == frozenset()
    assert "admin_keys" not in _tables(url)
    migrate.upgrade(url)
    assert migrate.current_revisions(url).is_current


def test_migrate_sqlite_upgrade_downgrade_roundtrip(tmp_path: Path) -> None:
    (tmp_path / "ww.sqlite3").touch()  # current_revisions reads, never creates, a database
    _roundtrip(f"sqlite+aiosqlite:///{tmp_path / 'ww.sqlite3'}")


@pytest.mark.postgres
def test_migrate_postgres_upgrade_downgrade_roundtrip(pg_empty_url: str) -> None:
    _roundtrip(pg_empty_url)


async def test_ensure_current_refuses_empty_schema_naming_the_fix(tmp_path: Path) -> None:
    engine = create_engine_for_url(f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}")
    try:
        with pytest.raises(SchemaOutdated, match="watchword db upgrade"):
            await migrate.ensure_current(engine)
        await migrate.upgrade_engine(engine)
        assert (await migrate.ensure_current(engine)).is_current
    finally:
        await engine.dispose()


async def test_schema_status_unreachable_database_is_unavailable() -> None:
    engine = create_engine_for_url("postgresql+psycopg://nobody:pw@127.0.0.1:1/none")
    try:
        with pytest.raises(DatabaseUnavailable) as info:
            await migrate.schema_status(engine)
        assert "pw" not in info.value.detail
    finally:
        await engine.dispose()


async def test_sqlite_file_databases_use_wal(tmp_path: Path) -> None:
    from sqlalchemy import text

    engine = create_engine_for_url(f"sqlite+aiosqlite:///{tmp_path / 'wal.sqlite3'}")
    try:
        async with engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
            sync = (await conn.execute(text("PRAGMA synchronous"))).scalar_one()
    finally:
        await engine.dispose()
    assert (mode, sync) == ("wal", 1)


def _token_columns(url: str) -> set[str]:
    async def run() -> set[str]:
        engine = create_engine_for_url(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: (
                        {col["name"] for col in inspect(c).get_columns("api_tokens")}
                        | {ix["name"] or "" for ix in inspect(c).get_indexes("api_tokens")}
                    )
                )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _lineage_up_down(url: str) -> None:
    migrate.upgrade(url, "0005_token_lineage")
    assert {"parent_id", "ix_api_tokens_parent_id"} <= _token_columns(url)
    migrate.downgrade(url, "0004_rbac")
    columns = _token_columns(url)
    assert "parent_id" not in columns and "ix_api_tokens_parent_id" not in columns
    assert {"rotated_from", "ix_api_tokens_rotated_from"} <= columns  # the rest untouched
    migrate.upgrade(url)


def test_migrate_sqlite_0005_token_lineage_up_and_down(tmp_path: Path) -> None:
    _lineage_up_down(f"sqlite+aiosqlite:///{tmp_path / 'lineage.sqlite3'}")


@pytest.mark.postgres
def test_migrate_postgres_0005_token_lineage_up_and_down(pg_empty_url: str) -> None:
    _lineage_up_down(pg_empty_url)


def _anchor_columns(url: str) -> set[str]:
    async def run() -> set[str]:
        engine = create_engine_for_url(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(
                    lambda c: {
                        col["name"] for col in inspect(c).get_columns("token_rotation_anchors")
                    }
                )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _anchor_up_down(url: str) -> None:
    migrate.upgrade(url, "0006_rotation_anchor_current")
    assert {"current_key", "current_sealed", "rotated_at"} <= _anchor_columns(url)
    migrate.downgrade(url, "0005_token_lineage")
    columns = _anchor_columns(url)
    assert not {"current_key", "current_sealed"} & columns and "rotated_at" in columns
    migrate.upgrade(url)


def test_migrate_sqlite_0006_rotation_anchor_current_up_and_down(tmp_path: Path) -> None:
    _anchor_up_down(f"sqlite+aiosqlite:///{tmp_path / 'anchor.sqlite3'}")


@pytest.mark.postgres
def test_migrate_postgres_0006_rotation_anchor_current_up_and_down(pg_empty_url: str) -> None:
    _anchor_up_down(pg_empty_url)
