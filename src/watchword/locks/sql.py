"""Compare-and-swap on the lease table, shared by the PostgreSQL and SQLite backends.

Each operation is **one statement in autocommit**, so no connection stays pinned while
a lease is held (an upstream token call can take seconds):

- acquire: ``INSERT … ON CONFLICT (key) DO UPDATE SET holder, fence = fence + 1, …
  WHERE holder IS NULL OR expires_at <= now RETURNING fence, expires_at, broken``;
  the conflicting row is locked while its ``WHERE`` is evaluated, so two racers cannot
  both win;
- renew / release: ``UPDATE … WHERE key AND holder AND fence AND expires_at > now``.

Where "now" comes from is the backend's choice (:class:`SqlTime`): the PostgreSQL
server's ``clock_timestamp()``, or the injected clock for SQLite on one host.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import ColumnElement, Executable, Select, and_, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watchword.clock import utc
from watchword.errors import DatabaseUnavailable
from watchword.locks.lease import Attempt, Lease
from watchword.locks.tables import lock_leases

__all__ = ["LeaseTable", "SqlTime"]

_T = TypeVar("_T")
_t = lock_leases.c


class SqlTime(Protocol):
    """Where the SQL statements get "now" from."""

    def now(self) -> ColumnElement[datetime]: ...

    def after(self, ttl: timedelta) -> ColumnElement[datetime]: ...


class LeaseTable:
    """The four lease operations as single autocommit statements on ``engine``."""

    __slots__ = ("_engine", "_label", "_time")

    def __init__(self, engine: AsyncEngine, time: SqlTime, *, label: str) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._time = time
        self._label = label

    async def run(self, op: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        try:
            async with self._engine.connect() as conn:
                return await op(conn)
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseUnavailable(
                f"{self._label} lock backend failed ({type(exc).__name__})"
            ) from exc

    async def try_acquire(self, key: str, holder: str, ttl: timedelta) -> Attempt:
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        base = insert(lock_leases).values(
            key=key, holder=holder, fence=1, expires_at=self._time.after(ttl), broken=False
        )
        stmt = base.on_conflict_do_update(
            index_elements=[_t.key],
            set_={
                "holder": base.excluded.holder,
                "fence": _t.fence + 1,
                "expires_at": base.excluded.expires_at,
                "broken": _t.holder.is_not(None),
            },
            where=or_(_t.holder.is_(None), _t.expires_at <= self._time.now()),
        ).returning(_t.fence, _t.expires_at, _t.broken)

        async def op(conn: AsyncConnection) -> Attempt:
            row = (await conn.execute(stmt)).first()
            if row is not None:
                lease = Lease(key, holder, int(row.fence), utc(row.expires_at))
                return Attempt(lease=lease, broken=bool(row.broken))
            left = (await conn.execute(self._time_left(key))).first()
            if left is None or left.expires_at is None:
                return Attempt(lease=None)
            left_for = max(utc(left.expires_at) - utc(left.now), timedelta(0))
            return Attempt(lease=None, retry_after=left_for)

        return await self.run(op)

    def _time_left(self, key: str) -> Select[tuple[datetime | None, datetime]]:
        return select(_t.expires_at, self._time.now().label("now")).where(_t.key == key)

    def _owned(self, lease: Lease) -> ColumnElement[bool]:
        return and_(
            _t.key == lease.key,
            _t.holder == lease.holder,
            _t.fence == lease.fence,
            _t.expires_at > self._time.now(),
        )

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease | None:
        stmt = (
            update(lock_leases)
            .where(self._owned(lease))
            .values(expires_at=self._time.after(ttl))
            .returning(_t.expires_at)
        )

        async def op(conn: AsyncConnection) -> Lease | None:
            row = (await conn.execute(stmt)).first()
            if row is None:
                return None
            return Lease(lease.key, lease.holder, lease.fence, utc(row.expires_at))

        return await self.run(op)

    async def release(self, lease: Lease, *, notify_channel: str | None = None) -> bool:
        """Free the lease if still owned; with ``notify_channel`` (PostgreSQL), announce it
        with ``pg_notify`` in the same statement, so the announcement commits with it."""
        freed = (
            update(lock_leases)
            .where(self._owned(lease))
            .values(holder=None, expires_at=None)
            .returning(_t.key)
        )
        stmt: Executable = freed
        if notify_channel is not None:
            released = freed.cte("released")
            stmt = select(func.pg_notify(notify_channel, released.c.key))

        async def op(conn: AsyncConnection) -> bool:
            return (await conn.execute(stmt)).first() is not None

        return await self.run(op)

    async def is_free(self, key: str) -> bool:
        """Whether ``key`` is free or its lease expired (a cheap read for pollers)."""

        async def op(conn: AsyncConnection) -> bool:
            row = (await conn.execute(self._time_left(key))).first()
            return row is None or row.expires_at is None or utc(row.expires_at) <= utc(row.now)

        return await self.run(op)
