from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.errors import TokenRevoked
from watchword.runtime import Runtime
from watchword.tokens import NewToken, Owner, TokenKind, token_service
from watchword.tokens.invalidation import run_invalidation_listener

pytestmark = pytest.mark.redis


@pytest.fixture
async def replicas(
    runtime: Runtime, redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[Runtime, Runtime]]:
    """Two replicas on one database and one Redis, each with its own client and caches."""
    settings = load_settings(environ={}, redis_url=redis_url, redis_prefix=redis_prefix)
    clock = FakeClock()
    made = [
        Runtime(
            settings=settings,
            engine=runtime.engine,
            redis=aioredis.Redis.from_url(redis_url),
            clock=clock,
        )
        for _ in range(2)
    ]
    yield made[0], made[1]
    for replica in made:
        assert replica.redis is not None
        await replica.redis.aclose()


async def test_revocation_reaches_a_listening_replica_without_waiting_for_the_ttl(
    replicas: tuple[Runtime, Runtime],
) -> None:
    a, b = replicas
    issued = await a.service(token_service).create(
        NewToken(TokenKind.PERSONAL, "t", Owner("https://i", "s"), frozenset())
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    listener = asyncio.create_task(run_invalidation_listener(b, stop=stop, ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), timeout=5)
        await b.service(token_service).verify(issued.token)  # cached in b's process
        assert len(b.service(token_service).cache.local) == 1
        await a.service(token_service).revoke(issued.record.id)
        for _ in range(200):
            if len(b.service(token_service).cache.local) == 0:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(TokenRevoked):
            await b.service(token_service).verify(issued.token)
    finally:
        stop.set()
        await asyncio.wait_for(listener, timeout=5)


async def test_redis_layer_serves_another_replica_without_sql(
    replicas: tuple[Runtime, Runtime],
) -> None:
    from sqlalchemy import event

    a, b = replicas
    issued = await a.service(token_service).create(
        NewToken(TokenKind.PERSONAL, "t", Owner("https://i", "s2"), frozenset())
    )
    await a.service(token_service).verify(issued.token)  # fills Redis
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(b.engine.sync_engine, "before_cursor_execute", record)
    try:
        assert (await b.service(token_service).verify(issued.token)).id == issued.record.id
    finally:
        event.remove(b.engine.sync_engine, "before_cursor_execute", record)
    assert statements == []
