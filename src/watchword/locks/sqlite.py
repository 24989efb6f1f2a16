"""SQLite lock backend: several processes on one host sharing a database file.

The same lease table and single-statement compare-and-swap as PostgreSQL (SQLite runs
one writer at a time, so the upsert is atomic; ``busy_timeout`` queues the others).

Time is the injected :class:`~watchword.clock.Clock`: every process is on the same
host, so they share its clock.

Wake-up: SQLite has no notification of its own. Waiters in the same process (same
backend object) are woken at once by a release; other processes on the host are rung
through a Unix datagram :class:`~watchword.locks.doorbell.Doorbell`. Behind both, a
waiter polls with a cheap read every ``poll_interval`` (default 20 ms) and retries the
write only when the key looks free, so a lost datagram costs latency, never safety.

SQLite's own settings decide the cost of each write: with the default rollback journal
every grant and release waits for an fsync; ``journal_mode=WAL`` with
``synchronous=NORMAL`` makes them about three times cheaper (see ``benchmarks/locks``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, DateTime, bindparam
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.clock import Clock, SystemClock
from watchword.locks.backend import ReleaseSignal
from watchword.locks.doorbell import Doorbell
from watchword.locks.lease import Attempt, Lease
from watchword.locks.signal import EventSignal, SignalHub
from watchword.locks.sql import LeaseTable

__all__ = ["ClockTime", "SQLiteBackend"]


class ClockTime:
    """ "now" is the injected clock, bound as a parameter at each call."""

    __slots__ = ("_clock",)

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    def now(self) -> ColumnElement[datetime]:
        return bindparam("p_now", type_=DateTime(timezone=True))

    def after(self) -> ColumnElement[datetime]:
        return bindparam("p_expires_at", type_=DateTime(timezone=True))

    def params(self, ttl: timedelta) -> Mapping[str, object]:
        now = self._clock.now()
        return {"p_now": now, "p_expires_at": now + ttl}


class _PollingSignal:
    """Woken by a release announced in-process or by the doorbell, or by seeing the key
    free on a poll."""

    __slots__ = ("_interval", "_key", "_local", "_table")

    def __init__(self, local: EventSignal, table: LeaseTable, key: str, interval: float) -> None:
        self._local = local
        self._table = table
        self._key = key
        self._interval = interval

    async def wait(self, limit: timedelta) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit.total_seconds()
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            step = timedelta(seconds=min(self._interval, remaining))
            if await self._local.wait(step):
                return True
            if await self._table.is_free(self._key):
                return True


class SQLiteBackend:
    """Leases in ``lock_leases`` of a SQLite file; see the module docstring."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        clock: Clock | None = None,
        poll_interval: timedelta = timedelta(milliseconds=20),
        owns_engine: bool = False,
        doorbell: bool = True,
    ) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError("SQLiteBackend needs a SQLite engine")
        if poll_interval <= timedelta(0):
            raise ValueError("poll_interval must be positive")
        self._engine = engine
        self._owns_engine = owns_engine
        self._table = LeaseTable(
            engine, ClockTime(clock if clock is not None else SystemClock()), label="SQLite"
        )
        self._hub = SignalHub()
        self._poll = poll_interval.total_seconds()
        database = engine.url.database
        self._doorbell = (
            Doorbell(database, self._hub)
            if doorbell and database not in (None, "", ":memory:")
            else None
        )

    @property
    def name(self) -> str:
        return "sqlite"

    async def try_acquire(self, key: str, holder: str, ttl: timedelta) -> Attempt:
        return await self._table.try_acquire(key, holder, ttl)

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease | None:
        return await self._table.renew(lease, ttl)

    async def release(self, lease: Lease) -> bool:
        released = await self._table.release(lease)
        if released:
            self._hub.notify(lease.key)
            if self._doorbell is not None:
                self._doorbell.ring(lease.key)
        return released

    def watch(self, key: str) -> AbstractAsyncContextManager[ReleaseSignal]:
        return self._watch(key)

    @asynccontextmanager
    async def _watch(self, key: str) -> AsyncIterator[ReleaseSignal]:
        if self._doorbell is not None:
            await self._doorbell.listen()
        async with self._hub.watch(key) as local:
            yield _PollingSignal(local, self._table, key, self._poll)

    async def aclose(self) -> None:
        if self._doorbell is not None:
            self._doorbell.close()
        if self._owns_engine:
            await self._engine.dispose()
