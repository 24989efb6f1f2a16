from __future__ import annotations

from datetime import timedelta

import pytest

from watchword.config import load_settings
from watchword.locks import PostgresBackend, RedisBackend, SQLiteBackend, runtime_locks
from watchword.runtime import Runtime
from watchword.storage.migrate import upgrade_engine


async def _hold_once(runtime: Runtime) -> int:
    locks = runtime.service(runtime_locks)
    assert runtime.service(runtime_locks) is locks
    async with locks.hold("runtime-locks-test", ttl=timedelta(seconds=5), wait=timedelta(0)) as a:
        fence = a.fence
    async with locks.hold("runtime-locks-test", ttl=timedelta(seconds=5), wait=timedelta(0)) as b:
        assert b.fence > fence
    return b.fence


async def test_runtime_locks_default_to_the_sqlite_database(runtime: Runtime) -> None:
    await _hold_once(runtime)
    assert isinstance(runtime.service(runtime_locks)._backend, SQLiteBackend)


@pytest.mark.postgres
async def test_runtime_locks_use_postgres_with_configured_durability(pg_url: str) -> None:
    rt = Runtime.create(load_settings(environ={}, database_url=pg_url, lock_durable_grants=False))
    try:
        await upgrade_engine(rt.engine)
        await _hold_once(rt)
        backend = rt.service(runtime_locks)._backend
        assert isinstance(backend, PostgresBackend)
    finally:
        await rt.close()


@pytest.mark.redis
async def test_runtime_locks_prefer_redis_when_configured(redis_url: str) -> None:
    rt = Runtime.create(
        load_settings(
            environ={},
            database_url="sqlite+aiosqlite:///:memory:",
            redis_url=redis_url,
            redis_prefix="ww-test-runtime-locks:",
        )
    )
    try:
        await upgrade_engine(rt.engine)
        await _hold_once(rt)
        assert isinstance(rt.service(runtime_locks)._backend, RedisBackend)
    finally:
        await rt.close()
