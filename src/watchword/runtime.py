"""The running pieces one process shares: settings, database engine, Redis, metrics, clock.

The API and the CLI both open a :class:`Runtime` and hand it to the services, so there is
no import-time global state and tests can build as many as they like.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

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

T = TypeVar("T")


@dataclass(slots=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    redis: aioredis.Redis | None = None
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    clock: Clock = field(default_factory=SystemClock)
    _services: dict[Callable[..., Any], Any] = field(default_factory=dict, repr=False)

    def service(self, factory: Callable[[Runtime], T]) -> T:
        """The process-wide instance that ``factory`` builds from this runtime (built once).

        Subsystems keep their long-lived objects (caches, engines, lock clients) here, so
        each runtime (one per app or CLI command, several in tests) has its own.
        """
        try:
            return self._services[factory]  # type: ignore[no-any-return]
        except KeyError:
            instance = self._services[factory] = factory(self)
            return instance

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
            engine=create_engine_for_url(settings.database.url),
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
        """Close every service that can be closed, then Redis, then the engine."""
        for instance in reversed(list(self._services.values())):
            aclose = getattr(instance, "aclose", None)
            if aclose is not None:
                await aclose()
        self._services.clear()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()
