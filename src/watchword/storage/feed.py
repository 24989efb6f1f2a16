"""A change feed between the processes of one deployment: "these ids changed, drop them".

Caches that serve authority without a database query (sessions today) are told of changes
made by other processes through one of:

- **Redis pub/sub** when Redis is configured (``<prefix>feed:<channel>``);
- **PostgreSQL LISTEN/NOTIFY** on PostgreSQL without Redis (one dedicated connection per
  process; ``pg_notify`` payloads are chunked below PostgreSQL's 8,000-byte limit);
- **nothing** on SQLite (one host; each process's cache TTL is the staleness bound).

A listener that (re)connects calls ``on_connect`` first, so the cache drops everything it may
have missed while it was not listening. Delivery is best effort: the cache TTL stays the
bound when the feed is down.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Protocol

import psycopg
import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.observability.logging import get_logger

__all__ = [
    "ChangeFeed",
    "NoFeed",
    "PostgresFeed",
    "RedisFeed",
    "change_feed",
    "chunks",
    "listen_redis",
]

log = get_logger("watchword.feed")
_MAX_PAYLOAD = 7900
_RECONNECT = timedelta(seconds=1)


def chunks(ids: Sequence[str], limit: int = _MAX_PAYLOAD) -> list[str]:
    """Comma-joined ``ids`` in payloads of at most ``limit`` bytes."""
    out: list[str] = []
    current: list[str] = []
    size = 0
    for item in ids:
        if current and size + len(item) + 1 > limit:
            out.append(",".join(current))
            current, size = [], 0
        current.append(item)
        size += len(item) + 1
    if current:
        out.append(",".join(current))
    return out


class ChangeFeed(Protocol):
    name: str

    async def publish(self, channel: str, ids: Sequence[str]) -> None: ...

    async def listen(
        self,
        channel: str,
        on_ids: Callable[[list[str]], None],
        *,
        on_connect: Callable[[], None],
        stop: asyncio.Event,
        ready: asyncio.Event | None = None,
    ) -> None: ...


class NoFeed:
    name = "none"

    async def publish(self, channel: str, ids: Sequence[str]) -> None:
        return None

    async def listen(
        self,
        channel: str,
        on_ids: Callable[[list[str]], None],
        *,
        on_connect: Callable[[], None],
        stop: asyncio.Event,
        ready: asyncio.Event | None = None,
    ) -> None:
        if ready is not None:
            ready.set()
        await stop.wait()


class RedisFeed:
    name = "redis"

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix

    def _channel(self, channel: str) -> str:
        return f"{self._prefix}feed:{channel}"

    async def publish(self, channel: str, ids: Sequence[str]) -> None:
        try:
            for payload in chunks(ids):
                await self._redis.publish(self._channel(channel), payload)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("feed_publish_failed", feed=self.name, error_type=type(exc).__name__)

    async def listen(
        self,
        channel: str,
        on_ids: Callable[[list[str]], None],
        *,
        on_connect: Callable[[], None],
        stop: asyncio.Event,
        ready: asyncio.Event | None = None,
    ) -> None:
        def on_message(raw: str) -> None:
            on_ids([i for i in raw.split(",") if i])

        await listen_redis(
            self._redis,
            self._channel(channel),
            on_message,
            on_connect=on_connect,
            stop=stop,
            ready=ready,
        )


async def listen_redis(
    client: aioredis.Redis,
    channel: str,
    on_message: Callable[[str], None],
    *,
    on_connect: Callable[[], None],
    stop: asyncio.Event,
    ready: asyncio.Event | None = None,
    poll: timedelta = timedelta(milliseconds=200),
    reconnect_delay: timedelta = _RECONNECT,
    lost_event: str = "feed_listener_lost",
) -> None:
    """Subscribe to ``channel`` (a full Redis channel name) until ``stop``: ``on_connect``
    at every (re)subscription (what was published meanwhile is unknown), ``on_message`` with
    each payload; a lost connection is logged as ``lost_event`` and retried after
    ``reconnect_delay``."""
    while not stop.is_set():
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel)
            on_connect()
            if ready is not None:
                ready.set()
            while not stop.is_set():
                message = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=poll.total_seconds()
                )
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    on_message(data.decode() if isinstance(data, bytes) else str(data))
        except (aioredis.RedisError, OSError) as exc:
            log.warning(lost_event, error_type=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=reconnect_delay.total_seconds())
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]


class PostgresFeed:
    name = "postgres"

    def __init__(self, engine: AsyncEngine, prefix: str = "watchword") -> None:
        self._engine = engine
        self._prefix = prefix
        url = engine.url.set(drivername="postgresql")
        self._conninfo = url.render_as_string(hide_password=False)

    def _channel(self, channel: str) -> str:
        return f"{self._prefix}_feed_{channel}"

    async def publish(self, channel: str, ids: Sequence[str]) -> None:
        try:
            async with self._engine.begin() as conn:
                for payload in chunks(ids):
                    await conn.execute(
                        text("SELECT pg_notify(:channel, :payload)"),
                        {"channel": self._channel(channel), "payload": payload},
                    )
        except Exception as exc:
            log.warning("feed_publish_failed", feed=self.name, error_type=type(exc).__name__)

    async def listen(
        self,
        channel: str,
        on_ids: Callable[[list[str]], None],
        *,
        on_connect: Callable[[], None],
        stop: asyncio.Event,
        ready: asyncio.Event | None = None,
    ) -> None:
        name = self._channel(channel)
        while not stop.is_set():
            conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo,
                    autocommit=True,
                    application_name="watchword-feed",
                    connect_timeout=5,
                )
                await conn.execute(f'LISTEN "{name}"')
                on_connect()
                if ready is not None:
                    ready.set()
                while not stop.is_set():
                    async for notify in conn.notifies(timeout=0.5):
                        on_ids([i for i in notify.payload.split(",") if i])
            except (psycopg.Error, OSError) as exc:
                log.warning("feed_listener_lost", feed=self.name, error_type=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=_RECONNECT.total_seconds())
            finally:
                if conn is not None:
                    with contextlib.suppress(psycopg.Error, OSError):
                        await conn.close()


def change_feed(engine: AsyncEngine, redis: aioredis.Redis | None, *, prefix: str) -> ChangeFeed:
    """Redis when configured, else PostgreSQL when the database is, else none."""
    if redis is not None:
        return RedisFeed(redis, prefix)
    if engine.dialect.name == "postgresql":
        return PostgresFeed(engine)
    return NoFeed()
