"""An RBAC runtime on SQLite (in memory) and on PostgreSQL.

PostgreSQL: a database of its own for the RBAC tests of this run (created next to the
per-run one, so other suites that expect an unmigrated database are not disturbed); it is
shared by the RBAC tests, which therefore use unique names, subjects and issuers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import httpx
import pytest
from fastapi import FastAPI

from watchword.api.app import create_app
from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.rbac.service import RbacService
from watchword.rbac.store.context import StoreContext
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.storage.db import create_engine_for_url
from watchword.storage.migrate import upgrade_engine

if TYPE_CHECKING:
    from tests.conftest import PgDatabases


@pytest.fixture(scope="session")
def rbac_pg_url(pg_databases: PgDatabases) -> str:
    return pg_databases.create("ww_rbac")


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
        engine = create_engine_for_url(request.getfixturevalue("rbac_pg_url"))
        await upgrade_engine(engine)  # to every head; a no-op after the first test
    runtime = Runtime(settings=load_settings(environ={}), engine=engine, clock=FakeClock())
    try:
        yield runtime
    finally:
        await runtime.close()


@pytest.fixture
async def db_services(db_runtime: Runtime) -> AsyncIterator[Services]:
    services = Services.build(db_runtime)
    try:
        yield services
    finally:
        await services.aclose()  # before the runtime: the RBAC service holds a connection


@pytest.fixture
def ctx(db_services: Services) -> StoreContext:
    return db_services.store


@pytest.fixture
def service(db_services: Services) -> RbacService:
    return db_services.rbac


@pytest.fixture
def app(db_services: Services) -> FastAPI:
    return create_app(services=db_services)


@pytest.fixture
async def api(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://watchword.test") as c:
        yield c
