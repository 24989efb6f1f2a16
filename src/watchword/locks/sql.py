"""Compare-and-swap on the lease table through SQLAlchemy Core (the SQLite backend).

:mod:`watchword.locks.postgres` runs the same statements as raw SQL on psycopg, for
speed; this module keeps them dialect-neutral.

Each operation is **one statement in autocommit**, so no connection stays pinned while
a lease is held (an upstream token call can take seconds):

- acquire: ``INSERT … ON CONFLICT (key) DO UPDATE SET holder, fence = fence + 1, …
  WHERE holder IS NULL OR expires_at <= now RETURNING fence, expires_at, broken``;
  the conflicting row is locked while its ``WHERE`` is evaluated, so two racers cannot
  both win;
- renew / release: ``UPDATE … WHERE key AND holder AND fence AND expires_at > now``.

Statements are built once, with bound parameters, so each call costs one compiled-cache
hit rather than a statement construction. Where "now" comes from is the backend's
choice (:class:`SqlTime`), e.g. the injected clock for SQLite on one host.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    String,
    and_,
    bindparam,
    or_,
    select,
    update,
)
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
    """Where the SQL statements get "now" from: expressions, and the values they bind."""

    def now(self) -> ColumnElement[datetime]:
        """The current time, as SQL."""
        ...

    def after(self) -> ColumnElement[datetime]:
        """Now plus the ``ttl`` of the call, as SQL."""
        ...

    def params(self, ttl: timedelta) -> Mapping[str, object]:
        """Bound values the two expressions need for one call."""
        ...


class LeaseTable:
    """The lease operations as single autocommit statements on ``engine``."""

    __slots__ = (
        "_acquire",
        "_engine",
        "_label",
        "_release",
        "_renew",
        "_time",
        "_time_left",
    )

    def __init__(self, engine: AsyncEngine, time: SqlTime, *, label: str) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._time = time
        self._label = label
        # Parameter names differ from column names: SQLAlchemy would otherwise read a
        # "key" parameter as a value to SET on an UPDATE.
        key = bindparam("p_key", type_=String)
        holder = bindparam("p_holder", type_=String)
        fence = bindparam("p_fence", type_=BigInteger)

        insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
        base = insert(lock_leases).values(
            key=key, holder=holder, fence=1, expires_at=time.after(), broken=False
        )
        self._acquire = base.on_conflict_do_update(
            index_elements=[_t.key],
            set_={
                "holder": base.excluded.holder,
                "fence": _t.fence + 1,
                "expires_at": base.excluded.expires_at,
                "broken": _t.holder.is_not(None),
            },
            where=or_(_t.holder.is_(None), _t.expires_at <= time.now()),
        ).returning(_t.fence, _t.expires_at, _t.broken)
        self._time_left = select(_t.expires_at, time.now().label("now")).where(_t.key == key)
        owned = and_(
            _t.key == key, _t.holder == holder, _t.fence == fence, _t.expires_at > time.now()
        )
        self._renew = (
            update(lock_leases)
            .where(owned)
            .values(expires_at=time.after())
            .returning(_t.expires_at)
        )
        freed = (
            update(lock_leases).where(owned).values(holder=None, expires_at=None).returning(_t.key)
        )
        self._release = freed

    async def run(self, op: Callable[[AsyncConnection], Awaitable[_T]]) -> _T:
        try:
            async with self._engine.connect() as conn:
                return await op(conn)
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseUnavailable(
                f"{self._label} lock backend failed ({type(exc).__name__})"
            ) from exc

    async def try_acquire(self, key: str, holder: str, ttl: timedelta) -> Attempt:
        params = {"p_key": key, "p_holder": holder, **self._time.params(ttl)}

        async def op(conn: AsyncConnection) -> Attempt:
            row = (await conn.execute(self._acquire, params)).first()
            if row is not None:
                lease = Lease(key, holder, int(row.fence), utc(row.expires_at))
                return Attempt(lease=lease, broken=bool(row.broken))
            left = (await conn.execute(self._time_left, params)).first()
            if left is None or left.expires_at is None:
                return Attempt(lease=None)
            left_for = max(utc(left.expires_at) - utc(left.now), timedelta(0))
            return Attempt(lease=None, retry_after=left_for)

        return await self.run(op)

    def _owned(self, lease: Lease, ttl: timedelta) -> dict[str, object]:
        return {
            "p_key": lease.key,
            "p_holder": lease.holder,
            "p_fence": lease.fence,
            **self._time.params(ttl),
        }

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease | None:
        params = self._owned(lease, ttl)

        async def op(conn: AsyncConnection) -> Lease | None:
            row = (await conn.execute(self._renew, params)).first()
            if row is None:
                return None
            return Lease(lease.key, lease.holder, lease.fence, utc(row.expires_at))

        return await self.run(op)

    async def release(self, lease: Lease) -> bool:
        """Free the lease if still owned."""
        params = self._owned(lease, timedelta(0))

        async def op(conn: AsyncConnection) -> bool:
            return (await conn.execute(self._release, params)).first() is not None

        return await self.run(op)

    async def is_free(self, key: str) -> bool:
        """Whether ``key`` is free or its lease expired (a cheap read for pollers)."""
        params = {"p_key": key, **self._time.params(timedelta(0))}

        async def op(conn: AsyncConnection) -> bool:
            row = (await conn.execute(self._time_left, params)).first()
            return row is None or row.expires_at is None or utc(row.expires_at) <= utc(row.now)

        return await self.run(op)
