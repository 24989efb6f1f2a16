"""The I/O handles one process shares: settings, database engine, Redis, metrics, clock.

A :class:`Runtime` holds handles, not services: :class:`watchword.services.Services` builds
the services from it, each given only what it uses. There is no import-time global state,
so tests can build as many runtimes as they like (one per simulated replica).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.clock import Clock, SystemClock
from watchword.config import Settings
from watchword.errors import DatabaseUnavailable, RedisUnavailable
from watchword.observability.redaction import redact_text
from watchword.storage import migrate
from watchword.storage.db import (
    check_sqlite_location,
    create_engine_for_url,
    describe_error,
    redacted_url,
)

__all__ = ["Runtime"]


@dataclass(slots=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    redis: aioredis.Redis | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    clock: Clock = field(default_factory=SystemClock)

    @classmethod
    def create(cls, settings: Settings, *, clock: Clock | None = None) -> Runtime:
        """Build engines and clients; nothing connects until first use."""
        redis_client = (
            aioredis.Redis.from_url(
                settings.redis.url,
                socket_connect_timeout=settings.database.connect_timeout.total_seconds(),
                socket_timeout=5,
            )
            if settings.redis.url
            else None
        )
        return cls(
            settings=settings,
            engine=create_engine_for_url(
                settings.database.url, pool_size=settings.database.pool_size
            ),
            redis=redis_client,
            clock=clock or SystemClock(),
        )

    async def prepare_schema(self) -> migrate.SchemaStatus:
        """Development: migrate to the newest schema. Otherwise: refuse an outdated one,
        and a missing SQLite file (which connecting would create empty)."""
        check_sqlite_location(self.engine.url, may_create=self.settings.is_development)
        if self.settings.is_development:
            await self.check_database()
            await migrate.upgrade_engine(self.engine)
        return await migrate.ensure_current(self.engine)

    async def check_database(self) -> None:
        timeout = self.settings.database.connect_timeout.total_seconds()
        try:
            async with asyncio.timeout(timeout), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else describe_error(exc)
            raise DatabaseUnavailable(
                f"database {redacted_url(self.engine.url)} is unreachable: {reason}"
            ) from exc

    async def check_redis(self) -> None:
        if self.redis is None:
            return
        try:
            await self.redis.ping()
        except (aioredis.RedisError, OSError) as exc:
            url = redact_text(self.settings.redis.url or "")
            raise RedisUnavailable(f"redis {url} is unreachable: {describe_error(exc)}") from exc

    async def close(self) -> None:
        """Close Redis, then the engine (close the services built on them first)."""
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()
