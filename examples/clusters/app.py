"""The app factory: ``create_app()`` (``uvicorn examples.clusters.app:create_app --factory``).

The mode comes from :class:`~.config.Config` (``CLUSTERS_WATCHWORD_URL`` set: remote):

- **embedded**: watchword's :class:`~watchword.services.Services` in this process, on
  watchword's database, which also holds the app's table. The guard installs the app's
  object mappings on the services' policy engine, so checks and the list's SQL read rows
  through them.
- **remote**: a watchword server decides, asked through ``watchword.client.AsyncClient``
  with the app's own token; the app keeps its table in its own database.

The routes (:mod:`.routes`) do not know which mode they run in. What the factory opens it
closes in the lifespan; what it is given (``services``, ``client``: tests, or an app that
shares them) stays open.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from watchword.client import AsyncClient
from watchword.config import load_settings
from watchword.errors import ConfigurationError
from watchword.integrations.fastapi import Guard
from watchword.runtime import Runtime
from watchword.services import Services

from .config import Config
from .models import Base, cluster_objects
from .routes import clusters_router

__all__ = ["create_app"]

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    config: Config | None = None,
    *,
    services: Services | None = None,
    client: AsyncClient | None = None,
) -> FastAPI:
    """The clusters app. ``config`` defaults to the environment's; ``services`` (embedded)
    or ``client`` (remote) are used as given, else built from the configuration."""
    config = config or Config.from_env()
    if config.remote:
        return _remote(config, client)
    return _embedded(config, services)


def _embedded(config: Config, services: Services | None) -> FastAPI:
    owned = services is None
    if services is None:
        services = Services.build(Runtime.create(load_settings()))  # nothing connects yet
    runtime = services.runtime
    issuer = config.issuer or runtime.settings.issuer_url
    objects = cluster_objects(issuer)
    guard = Guard.embedded(services, objects=objects)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            if owned:
                await runtime.prepare_schema()  # development: migrates watchword's tables
            await _create_tables(runtime.engine)
            yield
        finally:
            if owned:
                await services.aclose()
                await runtime.close()

    return _app(guard, runtime.engine, issuer, lifespan)


def _remote(config: Config, client: AsyncClient | None) -> FastAPI:
    url, issuer, token = config.watchword_url, config.issuer, config.watchword_token
    if url is None or issuer is None:
        raise ConfigurationError("remote mode needs CLUSTERS_WATCHWORD_URL and CLUSTERS_ISSUER")
    owned = client is None
    if client is None:
        if token is None:
            raise ConfigurationError("remote mode needs CLUSTERS_WATCHWORD_TOKEN")
        client = AsyncClient(url, credential=token)
    objects = cluster_objects(issuer)
    guard = Guard.remote(client, objects=objects)
    database = create_async_engine(config.database_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await _create_tables(database)
            yield
        finally:
            await database.dispose()
            if owned:
                await client.aclose()

    return _app(guard, database, issuer, lifespan)


def _app(guard: Guard, database: AsyncEngine, issuer: str, lifespan: Lifespan) -> FastAPI:
    app = FastAPI(title="clusters", summary="A watchword example", lifespan=lifespan)
    # watchword's errors, and FastAPI's 404, 405 and 422, as problem+json; the policy is
    # checked at start-up.
    guard.install(app, all_errors=True)
    sessions = async_sessionmaker(database, expire_on_commit=False)

    async def session() -> AsyncIterator[AsyncSession]:
        async with sessions() as opened:
            yield opened

    app.include_router(clusters_router(guard, session, issuer=issuer))
    app.state.database = database
    return app


async def _create_tables(database: AsyncEngine) -> None:
    # An example's shortcut: a real app migrates its own tables (Alembic), as watchword does.
    async with database.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
