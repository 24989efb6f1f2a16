"""Choose a lock backend from a URL, so settings can wire it.

- ``memory://`` → :class:`MemoryBackend` (one process);
- ``redis://`` / ``rediss://`` / ``unix://`` → :class:`RedisBackend`;
- ``postgresql[+psycopg]://`` → :class:`PostgresBackend`;
- ``sqlite[+aiosqlite]://`` → :class:`SQLiteBackend`.

The backend owns what it creates here (engine, Redis client) and frees it in ``aclose``.
"""

from __future__ import annotations

from watchword.clock import Clock
from watchword.errors import ConfigurationError
from watchword.locks.backend import LockBackend
from watchword.locks.front import Locks
from watchword.locks.memory import MemoryBackend
from watchword.locks.metrics import LockMetrics
from watchword.locks.postgres import PostgresBackend
from watchword.locks.redis import DEFAULT_PREFIX, RedisBackend
from watchword.locks.sqlite import SQLiteBackend
from watchword.runtime import Runtime
from watchword.storage.db import create_engine_for_url, normalize_url, redacted_url

__all__ = ["open_backend", "runtime_locks"]

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


def runtime_locks(runtime: Runtime) -> Locks:
    """The runtime's shared :class:`Locks` (use ``runtime.service(runtime_locks)``).

    Redis when ``redis_url`` is set (its prefix under ``redis_prefix``), otherwise the
    database: PostgreSQL leases (durable grants unless ``lock_durable_grants`` is off) or
    SQLite leases. Metrics go to the runtime's registry; ``Runtime.close`` closes it.
    """
    settings = runtime.settings
    backend: LockBackend
    if runtime.redis is not None:
        backend = RedisBackend(runtime.redis, prefix=settings.redis.prefix + "locks:")
    elif runtime.engine.dialect.name == "postgresql":
        backend = PostgresBackend(runtime.engine, durable_grants=settings.locks.durable_grants)
    else:
        backend = SQLiteBackend(runtime.engine, clock=runtime.clock)
    return Locks(backend, metrics=LockMetrics(runtime.registry))
