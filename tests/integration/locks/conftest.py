"""Fixtures for lock tests against real servers: a migrated database of our own, a
backend of each kind, and a factory for backends of the same kind sharing one store."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.locks import LockBackend, MemoryBackend
from watchword.locks.postgres import PostgresBackend
from watchword.locks.redis import RedisBackend
from watchword.locks.sqlite import SQLiteBackend
from watchword.storage.db import create_engine_for_url
from watchword.storage.migrate import upgrade

if TYPE_CHECKING:
    from tests.conftest import PgDatabases


@pytest.fixture(scope="session")
def locks_pg_url(pg_databases: PgDatabases) -> str:
    """A database of the lock tests' own, migrated to ``0002_locks``.

    Not the shared ``pg_url`` database: the migration tests expect to find it empty.
    """
    url = pg_databases.create("ww_locks")
    upgrade(url, "0002_locks")
    return url


@pytest.fixture
def sqlite_locks_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'locks.sqlite3'}"
    upgrade(url, "0002_locks")
    return url


BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("sqlite", id="sqlite"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    pytest.param("postgres-fast", id="postgres-fast", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def lock_store(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(kind, where): the database URL, or the Redis URL and key prefix, set up here in
    a synchronous fixture because migrations run their own event loop."""
    kind: str = request.param
    if kind == "sqlite":
        return kind, request.getfixturevalue("sqlite_locks_url")
    if kind == "redis":
        url = request.getfixturevalue("redis_url")
        return kind, f"{url} {request.getfixturevalue('redis_prefix')}"
    if kind.startswith("postgres"):
        return kind, request.getfixturevalue("locks_pg_url")
    return kind, ""


@pytest.fixture
async def backend_factory(lock_store: tuple[str, str]) -> AsyncIterator[Callable[[], LockBackend]]:
    """Returns a function making backends of one kind over one shared store, as several
    replicas would have (memory: the same object, it cannot be shared otherwise)."""
    kind, where = lock_store
    made: list[LockBackend] = []
    engines: list[AsyncEngine] = []
    memory = MemoryBackend()

    def make() -> LockBackend:
        backend: LockBackend
        if kind == "memory":
            return memory
        if kind == "redis":
            url, prefix = where.split(" ")
            backend = RedisBackend.from_url(url, prefix=prefix)
        else:
            engine = create_engine_for_url(where)
            engines.append(engine)
            if kind == "sqlite":
                backend = SQLiteBackend(engine)
            else:
                backend = PostgresBackend(engine, durable_grants=kind == "postgres")
        made.append(backend)
        return backend

    try:
        yield make
    finally:
        for backend in made:
            await backend.aclose()
        for engine in engines:
            await engine.dispose()


@pytest.fixture
def backend(backend_factory: Callable[[], LockBackend]) -> LockBackend:
    return backend_factory()


@pytest.fixture
def key() -> str:
    return f"test-{secrets.token_hex(6)}"
