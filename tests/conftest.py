"""Shared fixtures: a fresh PostgreSQL database per test run, a Redis keyspace per test
run, in-memory SQLite, and an app on a migrated in-memory database (``runtime``, ``app``,
``client``).

PostgreSQL (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379) are real servers.
Without ``CI=true`` a test that needs one that is down is skipped with a message saying
how to start it; with ``CI=true`` it fails instead (``scripts/services`` starts them
before the suite when it can).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import psycopg
import pytest
import redis
from fastapi import FastAPI
from hypothesis import Phase, settings
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.api.app import create_app
from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.storage.db import create_engine_for_url
from watchword.storage.migrate import upgrade_engine

# oidc_provider, oidc_provider_factory; browser_page, shot; live_watchword, free_port
pytest_plugins = [
    "tests.oidc.plugin",
    "tests.support.browser",
    "tests.support.live",
    "tests.support.proxies",
    "tests.support.echo_app",
]

# `--hypothesis-profile=mutation` (scripts/mutation): a fixed seed, so a score is reproducible;
# no example database, so one run's counter-examples do not leak into the next; no shrinking,
# since any counter-example kills a mutant.
settings.register_profile(
    "mutation", derandomize=True, database=None, phases=[Phase.explicit, Phase.generate]
)

PG_ADMIN_DSN = os.environ.get(
    "WATCHWORD_TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
REDIS_TEST_URL = os.environ.get("WATCHWORD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

PG_HINT = (
    "PostgreSQL is not answering on 127.0.0.1:5432; start it with "
    "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
)
REDIS_HINT = (
    "Redis is not answering on 127.0.0.1:6379; start it with "
    '`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`'
)


def _unavailable(hint: str, exc: Exception) -> None:
    if IN_CI:
        pytest.fail(f"{hint} (CI=true makes this test mandatory): {exc}", pytrace=False)
    pytest.skip(hint)


class PgDatabases:
    """Creates PostgreSQL databases for tests (``create(prefix)`` returns a SQLAlchemy URL)
    and drops every one of them at the end of the run."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def create(self, prefix: str = "ww_test") -> str:
        name = f"{prefix}_{secrets.token_hex(6)}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return _sqlalchemy_url(PG_ADMIN_DSN.replace("dbname=test", f"dbname={name}"))

    def drop_all(self) -> None:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            for name in self.names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _sqlalchemy_url(dsn: str) -> str:
    parts = dict(item.split("=", 1) for item in dsn.split())
    return f"postgresql+psycopg://{parts['user']}@{parts['host']}:{parts['port']}/{parts['dbname']}"


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    """Fresh PostgreSQL databases on demand (``pg_databases.create("ww_tokens")``), all
    dropped after the run; fails (CI) or skips when PostgreSQL does not answer."""
    databases = PgDatabases()
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3):
            pass
    except psycopg.OperationalError as exc:
        _unavailable(PG_HINT, exc)
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(scope="session")
def pg_url(pg_databases: PgDatabases) -> str:
    """SQLAlchemy URL (psycopg 3 driver) of a database for this run, shared by the whole
    run: tests migrate it and leave rows in it."""
    return pg_databases.create()


@pytest.fixture(scope="session")
def pg_dsn(pg_url: str) -> str:
    """The libpq DSN of ``pg_url``'s database."""
    url = make_url(pg_url)
    return f"host={url.host} port={url.port} user={url.username} dbname={url.database}"


@pytest.fixture
def pg_empty_url(pg_databases: PgDatabases) -> str:
    """SQLAlchemy URL of a database created empty for one test."""
    return pg_databases.create()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis server; pair it with ``redis_prefix`` for isolation."""
    try:
        client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        _unavailable(REDIS_HINT, exc)
    return REDIS_TEST_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix owned by one test; every key under it is deleted afterwards."""
    prefix = f"ww-test-{secrets.token_hex(6)}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def sqlite_engine() -> AsyncIterator[AsyncEngine]:
    """An in-memory SQLite engine (one shared connection), empty schema."""
    engine = create_engine_for_url("sqlite+aiosqlite:///:memory:")
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def runtime(sqlite_engine: AsyncEngine) -> Runtime:
    """A runtime on a migrated in-memory SQLite database with a FakeClock."""
    await upgrade_engine(sqlite_engine)
    return Runtime(settings=load_settings(environ={}), engine=sqlite_engine, clock=FakeClock())


@pytest.fixture
async def services(runtime: Runtime) -> AsyncIterator[Services]:
    """The services of ``runtime``, wired as a serving process wires them."""
    built = Services.build(runtime)
    try:
        yield built
    finally:
        await built.aclose()


@pytest.fixture
def app(services: Services) -> FastAPI:
    """The real app factory's app over ``services``."""
    return create_app(services=services)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking ASGI to ``app``."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://watchword.test") as c:
        yield c
