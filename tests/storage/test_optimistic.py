"""update_fenced on a row that was never written under a fence (SQLite, in memory)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, select

from watchword.storage.db import create_engine_for_url
from watchword.storage.optimistic import update_fenced

metadata = MetaData()
rows = Table(
    "fenced_scratch",
    metadata,
    Column("id", String(20), primary_key=True),
    Column("value", Integer, nullable=False),
    Column("fence", BigInteger, nullable=True),
)


async def test_update_fenced_when_row_has_no_fence_yet_writes_then_refuses_older() -> None:
    engine = create_engine_for_url("sqlite+aiosqlite:///:memory:")
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(rows.insert().values(id="r", value=0, fence=None))
            assert await update_fenced(conn, rows, rows.c.id == "r", fence=5, values={"value": 1})
            assert not await update_fenced(
                conn, rows, rows.c.id == "r", fence=4, values={"value": 2}
            )
            row = (await conn.execute(select(rows))).one()
        assert (row.value, row.fence) == (1, 5)
    finally:
        await engine.dispose()
