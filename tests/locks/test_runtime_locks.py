from __future__ import annotations

from datetime import timedelta

import pytest

from watchword.config import load_settings
from watchword.locks import PostgresBackend, RedisBackend, SQLiteBackend
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.storage.migrate import upgrade_engine


async def _hold_once(services: Services) -> int:
    locks = services.locks
    async with locks.hold("runtime-locks-test", ttl=timedelta(seconds=5), wait=timedelta(0)) as a:
        fence = a.fence
    async with locks.hold("runtime-locks-test", ttl=timedelta(seconds=5), wait=timedelta(0)) as b:
        assert b.fence > fence
    return b.fence


async def test_runtime_locks_default_to_the_sqlite_database(
    runtime: Runtime, services: Services
) -> None:
    await _hold_once(services)
    assert isinstance(services.locks._backend, SQLiteBackend)


@pytest.mark.postgres
async def test_runtime_locks_use_postgres_with_configured_durability(pg_url: str) -> None:
    rt = Runtime.create(load_settings(environ={}, database_url=pg_url, lock_durable_grants=False))
    try:
        await upgrade_engine(rt.engine)
        services = Services.build(rt)
        await _hold_once(services)
        backend = services.locks._backend
        assert isinstance(backend, PostgresBackend)
        await services.aclose()
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
        services = Services.build(rt)
        await _hold_once(services)
        assert isinstance(services.locks._backend, RedisBackend)
        await services.aclose()
    finally:
        await rt.close()
