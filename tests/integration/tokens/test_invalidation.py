from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.errors import TokenRevoked
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.tokens import NewToken, Owner, TokenKind
from watchword.tokens.invalidation import run_invalidation_listener

pytestmark = pytest.mark.redis


@pytest.fixture
async def replicas(
    runtime: Runtime, redis_url: str, redis_prefix: str
) -> AsyncIterator[tuple[Services, Services]]:
    """Two replicas on one database and one Redis, each with its own client and caches."""
    settings = load_settings(
        environ={}, redis_url=redis_url, redis_prefix=redis_prefix, secret_key="s" * 40
    )
    clock = FakeClock()
    made = [
        Services.build(
            Runtime(
                settings=settings,
                engine=runtime.engine,
                redis=aioredis.Redis.from_url(redis_url),
                clock=clock,
            )
        )
        for _ in range(2)
    ]
    yield made[0], made[1]
    for replica in made:
        await replica.aclose()
        assert replica.runtime.redis is not None
        await replica.runtime.redis.aclose()


async def test_revocation_reaches_a_listening_replica_without_waiting_for_the_ttl(
    replicas: tuple[Services, Services],
) -> None:
    a, b = replicas
    issued = await a.tokens.create(
        NewToken(TokenKind.PERSONAL, "t", Owner("https://i", "s"), frozenset())
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    listener = asyncio.create_task(
        run_invalidation_listener(b.runtime.redis, b.tokens.cache, stop=stop, ready=ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), timeout=5)
        await b.tokens.verify(issued.token)  # cached in b's process
        assert len(b.tokens.cache.local) == 1
        await a.tokens.revoke(issued.record.id)
        for _ in range(200):
            if len(b.tokens.cache.local) == 0:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(TokenRevoked):
            await b.tokens.verify(issued.token)
    finally:
        stop.set()
        await asyncio.wait_for(listener, timeout=5)


async def test_redis_layer_serves_another_replica_without_sql(
    replicas: tuple[Services, Services],
) -> None:
    from sqlalchemy import event

    a, b = replicas
    issued = await a.tokens.create(
        NewToken(TokenKind.PERSONAL, "t", Owner("https://i", "s2"), frozenset())
    )
    await a.tokens.verify(issued.token)  # fills Redis
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(b.runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        assert (await b.tokens.verify(issued.token)).id == issued.record.id
    finally:
        event.remove(b.runtime.engine.sync_engine, "before_cursor_execute", record)
    assert statements == []


async def test_a_record_read_before_a_revocation_is_not_put_back_into_redis(
    replicas: tuple[Services, Services],
) -> None:
    a, b = replicas
    issued = await a.tokens.create(
        NewToken(TokenKind.PERSONAL, "t", Owner("https://i", "s3"), frozenset())
    )
    stale = await a.tokens.verify(issued.token)  # active, as read earlier
    await b.tokens.revoke(issued.record.id)
    # a's put of what it read before the revocation lands after it (a slow replica):
    await a.tokens.cache.put(stale)
    a.tokens.cache.clear_local()
    with pytest.raises(TokenRevoked):
        await a.tokens.verify(issued.token)
    with pytest.raises(TokenRevoked):
        await b.tokens.verify(issued.token)


async def test_an_entry_copied_from_redis_lives_no_longer_than_it_had_left_there(
    replicas: tuple[Services, Services],
) -> None:
    a, b = replicas
    issued = await a.tokens.create(
        NewToken(TokenKind.PERSONAL, "t", Owner("https://i", "s4"), frozenset())
    )
    await a.tokens.verify(issued.token)  # fills Redis for one TTL
    assert a.runtime.redis is not None
    key = a.tokens.cache._key(issued.record.token_hash)
    await a.runtime.redis.pexpire(key, 1000)  # the Redis entry is near the end of its TTL
    await b.tokens.verify(issued.token)  # copied into b's process
    assert isinstance(b.runtime.clock, FakeClock)
    b.runtime.clock.advance(timedelta(seconds=2))
    assert b.tokens.cache.local.get(issued.record.token_hash) is None


async def test_revoking_a_parent_drops_its_child_on_a_listening_replica(
    replicas: tuple[Services, Services],
) -> None:
    a, b = replicas
    owner = Owner("https://i", "lineage")
    parent = await a.tokens.create(NewToken(TokenKind.PERSONAL, "p", owner, frozenset()))
    child = await a.tokens.create(
        NewToken(TokenKind.PERSONAL, "c", owner, frozenset(), parent_id=parent.record.id)
    )
    stop, ready = asyncio.Event(), asyncio.Event()
    listener = asyncio.create_task(
        run_invalidation_listener(b.runtime.redis, b.tokens.cache, stop=stop, ready=ready)
    )
    try:
        await asyncio.wait_for(ready.wait(), timeout=5)
        await b.tokens.verify(child.token)  # cached in b's process
        await a.tokens.revoke(parent.record.id)
        for _ in range(200):
            if b.tokens.cache.local.get(child.record.token_hash) is None:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(TokenRevoked):
            await b.tokens.verify(child.token)
    finally:
        stop.set()
        await asyncio.wait_for(listener, timeout=5)
