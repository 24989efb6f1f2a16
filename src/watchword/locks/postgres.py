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
keeps one dedicated psycopg connection in ``LISTEN``; it is listening before the first
attempt, so no release after that can be missed. If that connection drops, every waiter
is woken to retry, and waits are capped by the front's ``fallback_poll`` until it is
back. An expiring lease is not announced: the waiter sleeps until its ``expires_at``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta

import psycopg
from sqlalchemy import ColumnElement, DateTime, func
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.errors import DatabaseUnavailable
from watchword.locks.backend import ReleaseSignal
from watchword.locks.lease import Attempt, Lease
from watchword.locks.signal import SignalHub
from watchword.locks.sql import LeaseTable

__all__ = ["DEFAULT_CHANNEL", "PostgresBackend", "ServerTime"]

DEFAULT_CHANNEL = "watchword_lock_released"
_RECONNECT_DELAY_S = 0.5


class ServerTime:
    """ "now" is the PostgreSQL server's ``clock_timestamp()``."""

    __slots__ = ()

    def now(self) -> ColumnElement[datetime]:
        return func.clock_timestamp(type_=DateTime(timezone=True))

    def after(self, ttl: timedelta) -> ColumnElement[datetime]:
        return self.now() + ttl


class PostgresBackend:
    """Leases in ``lock_leases`` (migration ``0002_locks``), releases announced by NOTIFY."""

    def __init__(
        self, engine: AsyncEngine, *, channel: str = DEFAULT_CHANNEL, owns_engine: bool = False
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("PostgresBackend needs a PostgreSQL engine")
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", channel):
            raise ValueError("channel must be a plain lower-case PostgreSQL identifier")
        self._engine = engine
        self._owns_engine = owns_engine
        self._table = LeaseTable(engine, ServerTime(), label="PostgreSQL")
        self._channel = channel
        self._hub = SignalHub()
        self._listener: asyncio.Task[None] | None = None
        self._start_lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return "postgres"

    async def try_acquire(self, key: str, holder: str, ttl: timedelta) -> Attempt:
        return await self._table.try_acquire(key, holder, ttl)

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease | None:
        return await self._table.renew(lease, ttl)

    async def release(self, lease: Lease) -> bool:
        return await self._table.release(lease, notify_channel=self._channel)

    def watch(self, key: str) -> AbstractAsyncContextManager[ReleaseSignal]:
        return self._watch(key)

    @asynccontextmanager
    async def _watch(self, key: str) -> AsyncIterator[ReleaseSignal]:
        await self._ensure_listener()
        async with self._hub.watch(key) as signal:
            yield signal

    def _conninfo(self) -> str:
        url = self._engine.url.set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    async def _connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        conn = await psycopg.AsyncConnection.connect(
            self._conninfo(), autocommit=True, connect_timeout=5
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
                conn = await self._connect()
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
                return await self._connect()
            except (psycopg.Error, OSError):
                continue

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self._owns_engine:
            await self._engine.dispose()
