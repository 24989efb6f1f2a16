"""What every RBAC repository shares: write transactions, versions, cursors, pages.

- :func:`writing` opens a transaction, yields it, then bumps the generation in the same
  transaction (last, so PostgreSQL holds the counter row's lock only until commit) and
  announces the change (:mod:`watchword.storage.changes`: this process's caches at once,
  the others by ``NOTIFY`` at commit); integrity errors become
  :class:`~watchword.errors.Conflict`.
- Updates are conditional on the version the caller read (``If-Match``); a missing record
  is :class:`~watchword.errors.NotFound`, a changed one
  :class:`~watchword.errors.VersionConflict`.
- Lists are keyset-paginated by primary key; the cursor is opaque (base64url JSON of the
  last key) and a tampered one is :class:`~watchword.errors.InvalidInput`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, Row, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watchword.clock import utc
from watchword.errors import AlreadyExists, Conflict, NotFound
from watchword.rbac.model import Stamp
from watchword.rbac.store.generation import bump_generation
from watchword.storage.changes import RBAC, changing
from watchword.storage.optimistic import update_versioned
from watchword.storage.paging import MAX_LIMIT, Page, decode_cursor, encode_cursor, page_rows

__all__ = [
    "MAX_LIMIT",
    "Page",
    "decode_cursor",
    "delete_row",
    "encode_cursor",
    "fetch_row",
    "given",
    "insert_row",
    "list_records",
    "page_rows",
    "read_record",
    "require_name_free",
    "stamp_of",
    "update_row",
    "writing",
]

T = TypeVar("T")
RowOf = Row[tuple[object, ...]]


def stamp_of(row: Row[tuple[object, ...]]) -> Stamp:
    m = row._mapping
    created: datetime = m["created_at"]
    updated: datetime = m["updated_at"]
    return Stamp(version=int(m["version"]), created_at=utc(created), updated_at=utc(updated))


@asynccontextmanager
async def writing(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction that bumps the RBAC generation before it commits."""
    try:
        async with changing(engine, RBAC) as conn:
            yield conn
            await bump_generation(conn)
    except IntegrityError as exc:
        raise Conflict(
            "the change conflicts with existing records (a duplicate name, or a record "
            "that is still referenced)"
        ) from exc


async def fetch_row(
    conn: AsyncConnection, table: Table, key: str, *, what: str
) -> Row[tuple[object, ...]]:
    pk = next(iter(table.primary_key.columns))
    row = (await conn.execute(select(table).where(pk == key))).first()
    if row is None:
        raise NotFound(f"{what} {key!r} does not exist")
    return row


async def require_name_free(
    conn: AsyncConnection,
    table: Table,
    name: str,
    *,
    scope: ColumnElement[bool] | None = None,
    except_key: str | None = None,
    what: str,
) -> None:
    """Refuse a duplicate name (``already_exists``, pointer ``/name``) before the database
    does it less helpfully; the unique constraint stays the backstop for races."""
    pk = next(iter(table.primary_key.columns))
    stmt = select(pk).where(table.c.name == name)
    if scope is not None:
        stmt = stmt.where(scope)
    if except_key is not None:
        stmt = stmt.where(pk != except_key)
    if (await conn.execute(stmt)).first() is not None:
        raise AlreadyExists(f"a {what} named {name!r} already exists", pointer="/name")


async def update_row(
    conn: AsyncConnection,
    table: Table,
    key: str,
    *,
    if_match: int | None,
    values: Mapping[str, object],
    now: datetime,
    what: str,
) -> int:
    """Apply ``values`` if the record is still at version ``if_match`` (``None``: at any
    version, as ``If-Match: *``); the new version."""
    pk = next(iter(table.primary_key.columns))
    row = await fetch_row(conn, table, key, what=what)
    read_version: int = row._mapping["version"] if if_match is None else if_match
    return await update_versioned(
        conn, table, pk == key, read_version=read_version, values={**values, "updated_at": now}
    )


async def delete_row(
    conn: AsyncConnection, table: Table, key: str, *, if_match: int | None, what: str
) -> None:
    pk = next(iter(table.primary_key.columns))
    row = await fetch_row(conn, table, key, what=what)
    if if_match is not None and row._mapping["version"] != if_match:
        from watchword.errors import VersionConflict

        raise VersionConflict(f"{what} {key!r} changed since version {if_match} was read")
    await conn.execute(delete(table).where(pk == key))


def given(**values: object | None) -> dict[str, object]:
    """The fields of a partial update that the caller gave (``None`` means unchanged)."""
    return {k: v for k, v in values.items() if v is not None}


async def insert_row(conn: AsyncConnection, table: Table, now: datetime, **values: object) -> None:
    """Insert a new record at version 1, created and updated ``now``."""
    await conn.execute(insert(table).values(**values, version=1, created_at=now, updated_at=now))


async def read_record(
    engine: AsyncEngine, table: Table, key: str, of: Callable[[RowOf], T], *, what: str
) -> T:
    """One record by primary key, outside any write transaction."""
    async with engine.connect() as conn:
        return of(await fetch_row(conn, table, key, what=what))


async def list_records(
    engine: AsyncEngine,
    table: Table,
    of: Callable[[RowOf], T],
    *,
    limit: int,
    cursor: str | None,
    where: Sequence[ColumnElement[bool]] = (),
) -> Page[T]:
    """One page of a table's records (see :func:`page_rows`)."""
    async with engine.connect() as conn:
        rows, nxt = await page_rows(
            conn, select(table), table, limit=limit, cursor=cursor, where=where
        )
    return Page(tuple(of(r) for r in rows), nxt)
