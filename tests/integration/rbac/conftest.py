"""An RBAC runtime on SQLite (in memory) and on PostgreSQL (the per-run database).

The PostgreSQL database is shared by the whole run: tests use unique names and issuers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from watchword.api.app import create_app
from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.rbac.service import RbacService, rbac_service, store_context
from watchword.rbac.store.context import StoreContext
from watchword.runtime import Runtime
from watchword.storage.db import create_engine_for_url
from watchword.storage.migrate import upgrade_engine


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
async def db_runtime(request: pytest.FixtureRequest) -> AsyncIterator[Runtime]:
    if request.param == "sqlite":
        engine = create_engine_for_url("sqlite+aiosqlite:///:memory:")
        await upgrade_engine(engine)
    else:
        engine = create_engine_for_url(request.getfixturevalue("pg_url"))
        await upgrade_engine(engine)  # to every head; a no-op after the first test
    runtime = Runtime(settings=load_settings(environ={}), engine=engine, clock=FakeClock())
    try:
        yield runtime
    finally:
        await engine.dispose()


@pytest.fixture
def ctx(db_runtime: Runtime) -> StoreContext:
    return store_context(db_runtime)


@pytest.fixture
def service(db_runtime: Runtime) -> RbacService:
    return db_runtime.service(rbac_service)


@pytest.fixture
async def api(db_runtime: Runtime) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(runtime=db_runtime)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://watchword.test") as c:
        yield c
