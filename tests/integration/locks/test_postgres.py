"""PostgreSQL backend specifics: the LISTEN connection dies and comes back."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import psycopg
import pytest

from watchword.locks import Locks, PostgresBackend
from watchword.locks.postgres import LISTENER_APPLICATION_NAME, conninfo_for
from watchword.storage.db import create_engine_for_url

pytestmark = pytest.mark.postgres
TTL = timedelta(seconds=30)


async def test_postgres_waiter_recovers_after_listen_connection_terminated(
    locks_pg_url: str,
) -> None:
    engine = create_engine_for_url(locks_pg_url)
    backend = PostgresBackend(engine, owns_engine=True)
    locks = Locks(backend, fallback_poll=timedelta(seconds=60))
    try:
        lease = await locks.acquire("listen-dies", ttl=TTL, wait=timedelta(0))
        waiter = asyncio.create_task(
            locks.acquire("listen-dies", ttl=TTL, wait=timedelta(seconds=30))
        )
        await asyncio.sleep(0.1)
        async with await psycopg.AsyncConnection.connect(
            conninfo_for(engine.url), autocommit=True
        ) as admin:
            cursor = await admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s AND datname = current_database()",
                (LISTENER_APPLICATION_NAME,),
            )
            row = await cursor.fetchone()
        assert row is not None and row[0] == 1
        await asyncio.sleep(1.5)  # the listener reconnects after 0.5 s
        assert not waiter.done()
        assert await locks.release(lease)
        async with asyncio.timeout(10):
            second = await waiter
        assert second.fence > lease.fence
    finally:
        await locks.aclose()


async def test_postgres_fast_grants_fences_after_crash_exceed_lost_grant(
    locks_pg_url: str,
) -> None:
    engine = create_engine_for_url(locks_pg_url)
    backend = PostgresBackend(engine, owns_engine=True, durable_grants=False)
    locks = Locks(backend)
    try:
        first = await locks.acquire("fast-lost", ttl=TTL, wait=timedelta(0))
        # A crash: every lock connection dies, and the newest (unflushed) grant is lost,
        # leaving the row as it was before it.
        async with await psycopg.AsyncConnection.connect(
            conninfo_for(engine.url), autocommit=True
        ) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'watchword-locks' AND datname = current_database()"
            )
            await admin.execute(
                "UPDATE lock_leases SET fence = 1, holder = NULL, expires_at = NULL"
                " WHERE key = 'fast-lost'"
            )
        second = await locks.acquire("fast-lost", ttl=TTL, wait=timedelta(0))
        assert second.fence > first.fence
    finally:
        await locks.aclose()


async def test_postgres_idle_connection_killed_is_retried_transparently(
    locks_pg_url: str,
) -> None:
    engine = create_engine_for_url(locks_pg_url)
    locks = Locks(PostgresBackend(engine, owns_engine=True))
    try:
        lease = await locks.acquire("idle-killed", ttl=TTL, wait=timedelta(0))
        async with await psycopg.AsyncConnection.connect(
            conninfo_for(engine.url), autocommit=True
        ) as admin:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'watchword-locks' AND datname = current_database()"
            )
        assert await locks.release(lease)
    finally:
        await locks.aclose()


async def test_postgres_backend_that_cannot_connect_says_the_database_is_unavailable(
    locks_pg_url: str,
) -> None:
    # A refused connection ("too many clients", a database that is not there) used to reach
    # the retry check before the pool had said whether it reused a connection: an
    # UnboundLocalError, which no caller handles, instead of DatabaseUnavailable.
    from sqlalchemy.engine import make_url

    from watchword.errors import DatabaseUnavailable

    url = make_url(locks_pg_url).set(database="ww_no_such_database")
    backend = PostgresBackend(create_engine_for_url(str(url)), owns_engine=True)
    try:
        with pytest.raises(DatabaseUnavailable):
            await backend.try_acquire("nowhere", "h", TTL)
    finally:
        await backend.aclose()
