"""Redis backend specifics: key layout under the prefix, fences after a lost counter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from watchword.locks import Locks, RedisBackend

pytestmark = pytest.mark.redis
TTL = timedelta(seconds=30)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_redis_backend_keeps_every_key_under_its_prefix(
    client: aioredis.Redis, redis_prefix: str
) -> None:
    locks = Locks(RedisBackend(client, prefix=redis_prefix))
    lease = await locks.acquire("session-1", ttl=TTL, wait=timedelta(0))
    keys = sorted([k.decode() async for k in client.scan_iter(match=redis_prefix + "*")])
    assert keys == [f"{redis_prefix}fence:session-1", f"{redis_prefix}lock:session-1"]
    assert 0 < await client.pttl(f"{redis_prefix}lock:session-1") <= 30_000
    assert await client.ttl(f"{redis_prefix}fence:session-1") == -1  # never expires
    await locks.release(lease)
    await locks.aclose()


async def test_redis_fence_still_grows_after_counter_lost_in_failover(
    client: aioredis.Redis, redis_prefix: str
) -> None:
    # A failover to a replica that never saw the newest grants loses the counter; the
    # server-time floor keeps the next fence above the lost one.
    locks = Locks(RedisBackend(client, prefix=redis_prefix))
    first = await locks.acquire("k", ttl=TTL, wait=timedelta(0))
    await client.delete(f"{redis_prefix}fence:k", f"{redis_prefix}lock:k")
    await asyncio.sleep(0.005)
    second = await locks.acquire("k", ttl=TTL, wait=timedelta(0))
    assert second.fence > first.fence
    await locks.aclose()


async def test_redis_waiter_recovers_after_subscription_connection_killed(
    client: aioredis.Redis, redis_prefix: str
) -> None:
    backend = RedisBackend(client, prefix=redis_prefix)
    locks = Locks(backend, fallback_poll=timedelta(seconds=60))
    lease = await locks.acquire("k", ttl=TTL, wait=timedelta(0))
    waiter = asyncio.create_task(locks.acquire("k", ttl=TTL, wait=timedelta(seconds=30)))
    await asyncio.sleep(0.1)
    # Kill the pub/sub connection server-side; the listener must resubscribe.
    await client.client_kill_filter(_type="pubsub")
    await asyncio.sleep(1.0)
    assert not waiter.done()
    assert await locks.release(lease)
    async with asyncio.timeout(10):
        second = await waiter
    assert second.fence > lease.fence
    await locks.aclose()
