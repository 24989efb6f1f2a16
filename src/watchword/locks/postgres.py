"""PostgreSQL lock backend: a lease table taken by compare-and-swap, woken by NOTIFY.

Why a lease table and not advisory locks:

- **Crash expiry needs leases.** An advisory lock lives as long as its session; a
  holder that hangs (GC pause, stuck upstream call) with its connection open keeps it
  forever, while a lease with ``expires_at`` is broken by the next waiter after its TTL.
- **Advisory locks pin a connection** for the whole critical section, which here spans
  an upstream HTTP call, and session-level ones break under PgBouncer transaction
  pooling. The lease table uses one short autocommit statement per operation.
- **Fencing needs a persisted counter.** Advisory locks hand out nothing; the lease row
  keeps ``fence`` and increments it with every grant, across releases and restarts.

Time is the **PostgreSQL server's** ``clock_timestamp()`` (not ``now()``, which is frozen
at transaction start), so replicas with skewed clocks agree on expiry.

Wake-up: a release runs ``pg_notify('<channel>', key)`` in the same statement as the
update, so the announcement is delivered exactly when the release commits. Each backend
keeps one dedicated connection in ``LISTEN``; it is listening before the first attempt,
so no release after that can be missed. If that connection drops, every waiter is woken
to retry, and waits are capped by the front's ``fallback_poll`` until it is back. An
expiring lease is not announced: the waiter sleeps until its ``expires_at``.

Grants are durable by default: they wait for the WAL flush, so a crash cannot lose a
grant, and no two holders can follow from one. ``durable_grants=False`` skips the wait
(the flush is most of a grant on a busy disk). Fences stay unique anyway: each fast
connection takes a durable epoch when it opens, and its grants' fences are at least
``epoch << 32``; a crash kills every connection, so all fences after it are above all
fences before it. What a crash can still do is lose a grant whose holder goes on working,
so it may overlap its successor; fencing refuses its writes.

The statements run on a few psycopg connections of the backend's own (``pool_size``),
in autocommit with server-side prepared statements, rather than through SQLAlchemy:
that cuts an acquire or release from about 0.8 ms to 0.3 ms on a local server, which is
most of a hand-off (see ``benchmarks/locks``). The table is still ``lock_leases`` from
migration ``0002_locks``, the same statements as :mod:`watchword.locks.sql`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta

import psycopg
from psycopg.rows import DictRow, dict_row
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.clock import utc
from watchword.errors import DatabaseUnavailable
from watchword.locks.backend import ReleaseSignal
from watchword.locks.lease import Attempt, Lease
from watchword.locks.signal import SignalHub

__all__ = ["DEFAULT_CHANNEL", "PostgresBackend"]

DEFAULT_CHANNEL = "watchword_lock_released"
LISTENER_APPLICATION_NAME = "watchword-locks-listen"  # visible in pg_stat_activity
_RECONNECT_DELAY_S = 0.5
_Conn = psycopg.AsyncConnection[DictRow]

# Rules: the compare-and-swap statements (the conflicting row is locked while ON
# CONFLICT's WHERE is evaluated, so two racers cannot both win).
_ACQUIRE = """
WITH won AS (
    INSERT INTO lock_leases AS l (key, holder, fence, expires_at, broken)
    VALUES (%(key)s, %(holder)s, greatest(1, %(floor)s), clock_timestamp() + %(ttl)s, false)
    ON CONFLICT (key) DO UPDATE
       SET holder = excluded.holder, fence = greatest(l.fence + 1, %(floor)s),
           expires_at = excluded.expires_at, broken = l.holder IS NOT NULL
     WHERE l.holder IS NULL OR l.expires_at <= clock_timestamp()
    RETURNING fence, expires_at, broken
)
SELECT true AS won, fence, expires_at, broken, NULL::interval AS left_for FROM won
UNION ALL
SELECT false, fence, expires_at, false, expires_at - clock_timestamp()
  FROM lock_leases WHERE key = %(key)s AND NOT EXISTS (SELECT 1 FROM won)
"""
# Fast grants: every connection of the fast pool first takes a new epoch, durably; its
# grants' fences are at least ``epoch << EPOCH_SHIFT``. A crash that loses fast grants
# also kills every connection, and the epochs taken after it are higher than any taken
# before, so the fences that follow are above every fence handed out before the crash.
EPOCH_SHIFT = 32
_NEXT_EPOCH = """
INSERT INTO lock_epochs AS e (id, epoch) VALUES (1, 1)
ON CONFLICT (id) DO UPDATE SET epoch = e.epoch + 1
RETURNING epoch
"""

_RENEW = """
UPDATE lock_leases SET expires_at = clock_timestamp() + %(ttl)s
 WHERE key = %(key)s AND holder = %(holder)s AND fence = %(fence)s
   AND expires_at > clock_timestamp()
RETURNING expires_at
"""
_RELEASE = """
WITH released AS (
    UPDATE lock_leases SET holder = NULL, expires_at = NULL
     WHERE key = %(key)s AND holder = %(holder)s AND fence = %(fence)s
       AND expires_at > clock_timestamp()
    RETURNING key
)
SELECT pg_notify(%(channel)s, key) FROM released
"""


def conninfo_for(url: URL) -> str:
    """A libpq URI for a SQLAlchemy PostgreSQL URL (any driver suffix dropped)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class _Pool:
    """A few autocommit connections, each with its fence floor; one in doubt (error,
    cancellation) is closed."""

    __slots__ = ("_conninfo", "_fast", "_idle", "_slots")

    def __init__(self, conninfo: str, size: int, *, fast: bool = False) -> None:
        self._conninfo = conninfo
        self._idle: list[tuple[_Conn, int]] = []
        self._slots = asyncio.Semaphore(size)
        self._fast = fast

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[tuple[_Conn, int, bool]]:
        """Yields (connection, fence floor, reused): ``reused`` connections may have
        died while idle (a server restart), which the caller may retry once."""
        async with self._slots:
            reused = bool(self._idle)
            conn, floor = self._idle.pop() if reused else await self._connect()
            try:
                yield conn, floor, reused
            except BaseException:
                await conn.close()
                raise
            if not conn.closed:
                self._idle.append((conn, floor))

    async def _connect(self) -> tuple[_Conn, int]:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=5,
            row_factory=dict_row,
            application_name="watchword-locks",
        )
        try:
            # The statements are tiny; one that runs for seconds means trouble, not work.
            await conn.execute("SET statement_timeout TO 5000")
            floor = 0
            if self._fast:
                row = await (await conn.execute(_NEXT_EPOCH)).fetchone()
                if row is None:  # pragma: no cover - RETURNING always yields the row
                    raise psycopg.DataError("no epoch returned")
                floor = int(row["epoch"]) << EPOCH_SHIFT
                await conn.execute("SET synchronous_commit TO off")
        except BaseException:
            await conn.close()
            raise
        return conn, floor

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop()[0].close()


class PostgresBackend:
    """Leases in ``lock_leases`` (migration ``0002_locks``), releases announced by NOTIFY."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        channel: str = DEFAULT_CHANNEL,
        pool_size: int = 4,
        owns_engine: bool = False,
        durable_grants: bool = True,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("PostgresBackend needs a PostgreSQL engine")
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", channel):
            raise ValueError("channel must be a plain lower-case PostgreSQL identifier")
        self._engine = engine
        self._owns_engine = owns_engine
        self._conninfo = conninfo_for(engine.url)
        self._pool = _Pool(self._conninfo, pool_size)
        # A release lost in a server crash only leaves its lease to expire, so releases
        # need not wait for the WAL flush (a quarter of a millisecond off every
        # hand-off); they run on the fast pool, whose commits do not wait. Durable
        # grants and renewals wait. The next waiting commit flushes the others too.
        self._async_pool = _Pool(self._conninfo, pool_size, fast=True)
        self._durable_grants = durable_grants
        self._channel = channel
        self._hub = SignalHub()
        self._listener: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return "postgres"

    async def _one(
        self, sql: str, params: Mapping[str, object], pool: _Pool | None = None
    ) -> DictRow | None:
        for attempt in (1, 2):
            reused = False  # connecting itself may fail, before the pool says
            try:
                async with (pool or self._pool).connection() as (conn, floor, reused):
                    cursor = await conn.execute(sql, {**params, "floor": floor})
                    return await cursor.fetchone()
            except psycopg.OperationalError as exc:
                # An idle connection killed by a server restart fails on first use;
                # one retry on a fresh connection hides that from the caller.
                if attempt == 1 and reused:
                    continue
                raise DatabaseUnavailable(
                    f"PostgreSQL lock backend failed ({type(exc).__name__})"
                ) from exc
            except (psycopg.Error, OSError) as exc:
                raise DatabaseUnavailable(
                    f"PostgreSQL lock backend failed ({type(exc).__name__})"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def try_acquire(self, key: str, holder: str, ttl: timedelta) -> Attempt:
        params = {"key": key, "holder": holder, "ttl": ttl}
        pool = self._pool if self._durable_grants else self._async_pool
        row = await self._one(_ACQUIRE, params, pool)
        if row is None:
            return Attempt(lease=None)  # created concurrently, not yet in our snapshot
        if row["won"]:
            lease = Lease(key, holder, int(row["fence"]), utc(row["expires_at"]))
            return Attempt(lease=lease, broken=bool(row["broken"]))
        left_for: timedelta | None = row["left_for"]
        if left_for is None:
            return Attempt(lease=None)
        return Attempt(lease=None, retry_after=max(left_for, timedelta(0)))

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease | None:
        params = {"key": lease.key, "holder": lease.holder, "fence": lease.fence, "ttl": ttl}
        row = await self._one(_RENEW, params)
        if row is None:
            return None
        expires_at: datetime = row["expires_at"]
        return Lease(lease.key, lease.holder, lease.fence, utc(expires_at))

    async def release(self, lease: Lease) -> bool:
        params = {
            "key": lease.key,
            "holder": lease.holder,
            "fence": lease.fence,
            "channel": self._channel,
        }
        return await self._one(_RELEASE, params, self._async_pool) is not None

    def watch(self, key: str) -> AbstractAsyncContextManager[ReleaseSignal]:
        return self._watch(key)

    @asynccontextmanager
    async def _watch(self, key: str) -> AsyncIterator[ReleaseSignal]:
        await self._ensure_listener()
        async with self._hub.watch(key) as signal:
            yield signal

    async def _connect_listener(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo,
            autocommit=True,
            connect_timeout=5,
            application_name=LISTENER_APPLICATION_NAME,
        )
        try:
            await conn.execute(f"LISTEN {self._channel}")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _ensure_listener(self) -> None:
        if self._listener is not None and not self._listener.done():
            return
        async with self._start_lock:
            if self._listener is not None and not self._listener.done():
                return
            try:
                conn = await self._connect_listener()
            except (psycopg.Error, OSError) as exc:
                raise DatabaseUnavailable(
                    f"PostgreSQL lock backend cannot LISTEN ({type(exc).__name__})"
                ) from exc
            self._listener = asyncio.create_task(self._listen(conn), name="ww-lock-pg-listen")

    async def _listen(self, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
        try:
            while True:
                try:
                    async for notify in conn.notifies():
                        self._hub.notify(notify.payload)
                except (psycopg.Error, OSError):
                    pass
                # The connection dropped: announcements may be lost, so everybody retries.
                self._hub.notify_all()
                await conn.close()
                conn = await self._reconnect()
                self._hub.notify_all()
        finally:
            await conn.close()

    async def _reconnect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        while True:
            await asyncio.sleep(_RECONNECT_DELAY_S)
            try:
                return await self._connect_listener()
            except (psycopg.Error, OSError):
                continue

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        await self._pool.close()
        await self._async_pool.close()
        if self._owns_engine:
            await self._engine.dispose()
