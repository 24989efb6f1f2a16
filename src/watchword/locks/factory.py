"""Choose a lock backend from a URL, so settings can wire it.

- ``memory://`` → :class:`MemoryBackend` (one process);
- ``redis://`` / ``rediss://`` / ``unix://`` → :class:`RedisBackend`;
- ``postgresql[+psycopg]://`` → :class:`PostgresBackend`;
- ``sqlite[+aiosqlite]://`` → :class:`SQLiteBackend`.

The backend owns what it creates here (engine, Redis client) and frees it in ``aclose``.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.clock import Clock
from watchword.errors import ConfigurationError
from watchword.locks.backend import LockBackend
from watchword.locks.front import Locks
from watchword.locks.memory import MemoryBackend
from watchword.locks.metrics import LockMetrics
from watchword.locks.postgres import PostgresBackend
from watchword.locks.redis import DEFAULT_PREFIX, RedisBackend
from watchword.locks.sqlite import SQLiteBackend
from watchword.storage.db import create_engine_for_url, normalize_url, redacted_url

__all__ = ["database_or_redis_locks", "open_backend"]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def open_backend(
    url: str, *, redis_prefix: str = DEFAULT_PREFIX, clock: Clock | None = None
) -> LockBackend:
    """A backend for ``url``; ``clock`` is used by the memory and SQLite backends only
    (Redis and PostgreSQL use their server's clock)."""
    if url == "memory://" or url.startswith("memory:"):
        return MemoryBackend(clock)
    if url.startswith(_REDIS_SCHEMES):
        return RedisBackend.from_url(url, prefix=redis_prefix)
    try:
        dialect = normalize_url(url).get_backend_name()
    except ConfigurationError as exc:
        raise ConfigurationError(
            f"lock backend URL {redacted_url(url)} is not memory://, redis:// or a database URL"
        ) from exc
    engine = create_engine_for_url(url)
    if dialect == "postgresql":
        return PostgresBackend(engine, owns_engine=True)
    return SQLiteBackend(engine, clock=clock, owns_engine=True)


def database_or_redis_locks(
    engine: AsyncEngine,
    *,
    redis: aioredis.Redis | None,
    redis_prefix: str,
    durable_grants: bool,
    clock: Clock,
    registry: CollectorRegistry,
) -> Locks:
    """The process's shared :class:`Locks` (built once, in :mod:`watchword.services`).

    Redis when a client is given (keys under ``redis_prefix`` + ``locks:``), otherwise the
    database: PostgreSQL leases (durable grants unless ``durable_grants`` is off) or
    SQLite leases. Metrics go to ``registry``; whoever builds it closes it.
    """
    backend: LockBackend
    if redis is not None:
        backend = RedisBackend(redis, prefix=redis_prefix + "locks:")
    elif engine.dialect.name == "postgresql":
        backend = PostgresBackend(engine, durable_grants=durable_grants)
    else:
        backend = SQLiteBackend(engine, clock=clock)
    return Locks(backend, metrics=LockMetrics(registry))
