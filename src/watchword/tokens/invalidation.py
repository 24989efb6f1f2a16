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
import contextlib
from datetime import timedelta

import redis.asyncio as aioredis

from watchword.observability.logging import get_logger
from watchword.tokens.cache import VerifyCache

__all__ = ["run_invalidation_listener"]

log = get_logger("watchword.tokens")


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
    while not stop.is_set():
        pubsub = redis.pubsub()
        try:
            await pubsub.subscribe(cache.channel)
            cache.clear_local()  # whatever was published before we listened is unknown
            if ready is not None:
                ready.set()
            while not stop.is_set():
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=poll.total_seconds()
                )
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    cache.drop_local(data.decode() if isinstance(data, bytes) else str(data))
        except (aioredis.RedisError, OSError) as exc:
            log.warning("token_invalidation_listener_lost", error_type=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=reconnect_delay.total_seconds())
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
