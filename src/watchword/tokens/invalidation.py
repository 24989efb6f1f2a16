"""The subscriber side of cache invalidation: drop revoked tokens on every replica.

A revocation deletes the Redis entry and publishes the token's digest on
``<prefix>tokens:invalidate``. Each replica runs :func:`run_invalidation_listener`
(a background job, :mod:`watchword.jobs`) to drop its in-process entry as soon
as the message arrives, which brings revocation on every replica down from
``token_verify_cache_ttl`` to the pub/sub delivery time. Pub/sub is fire-and-forget: a
listener that loses its connection clears its whole in-process cache when it is back,
since it may have missed messages; without a listener the TTL bound still holds.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import redis.asyncio as aioredis

from watchword.storage.feed import listen_redis
from watchword.tokens.cache import VerifyCache

__all__ = ["run_invalidation_listener"]


async def run_invalidation_listener(
    redis: aioredis.Redis | None,
    cache: VerifyCache,
    *,
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    poll: timedelta = timedelta(milliseconds=200),
    reconnect_delay: timedelta = timedelta(seconds=1),
) -> None:
    """Listen until ``stop`` is set; returns at once when Redis is not configured."""
    if redis is None:
        if ready is not None:
            ready.set()
        return
    await listen_redis(
        redis,
        cache.channel,
        cache.drop_local,
        on_connect=cache.clear_local,  # whatever was published before we listened is unknown
        stop=stop,
        ready=ready,
        poll=poll,
        reconnect_delay=reconnect_delay,
        lost_event="token_invalidation_listener_lost",
    )
