"""The token service on PostgreSQL: verification cache, API, janitor under a PG lease."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import event, select

from watchword.api.app import create_app
from watchword.bootstrap import create_admin_key
from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.errors import TokenExpired
from watchword.runtime import Runtime
from watchword.tokens import NewToken, Owner, TokenKind, token_service
from watchword.tokens.janitor import run_janitor
from watchword.tokens.tables import api_tokens

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg_runtime(tokens_pg_url: str) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(
        load_settings(environ={}, database_url=tokens_pg_url), clock=FakeClock()
    )
    yield runtime
    await runtime.close()


async def test_postgres_verify_hit_is_zero_sql_and_expiry_still_applies(
    pg_runtime: Runtime,
) -> None:
    service = pg_runtime.service(token_service)
    owner = Owner(pg_runtime.settings.issuer_url, f"pg-{secrets.token_hex(4)}")
    clock = pg_runtime.clock
    assert isinstance(clock, FakeClock)
    issued = await service.create(
        NewToken(
            TokenKind.PERSONAL,
            "t",
            owner,
            frozenset(),
            expires_at=clock.now() + timedelta(seconds=10),
        )
    )
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(pg_runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        await service.verify(issued.token)
        misses = len(statements)
        await service.verify(issued.token)
        assert misses > 0 and len(statements) == misses
    finally:
        event.remove(pg_runtime.engine.sync_engine, "before_cursor_execute", record)
    clock.advance(timedelta(seconds=10))
    with pytest.raises(TokenExpired):
        await service.verify(issued.token)


async def test_postgres_api_create_and_introspect(pg_runtime: Runtime) -> None:
    _, key = await create_admin_key(pg_runtime.engine, pg_runtime.clock)
    app = create_app(runtime=pg_runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ww.test") as client:
        admin = {"Authorization": f"Bearer {key.reveal()}"}
        subject = f"api-{secrets.token_hex(4)}"
        r = await client.post(
            "/v1/tokens", json={"name": "x", "owner_subject": subject}, headers=admin
        )
        assert r.status_code == 201
        token = r.json()["token"]
        r = await client.post("/v1/oauth/introspect", data={"token": token}, headers=admin)
        assert r.json()["active"] is True and r.json()["sub"] == subject


async def test_postgres_janitor_deletes_under_the_postgres_lease(pg_runtime: Runtime) -> None:
    service = pg_runtime.service(token_service)
    clock = pg_runtime.clock
    assert isinstance(clock, FakeClock)
    owner = Owner(pg_runtime.settings.issuer_url, f"jan-{secrets.token_hex(4)}")
    old = await service.create(
        NewToken(
            TokenKind.PERSONAL,
            "old",
            owner,
            frozenset(),
            expires_at=clock.now() + timedelta(days=1),
        )
    )
    live = await service.create(NewToken(TokenKind.PERSONAL, "live", owner, frozenset()))
    clock.advance(timedelta(days=30))
    dry = await run_janitor(pg_runtime, dry_run=True)
    assert dry.ran and dry.total >= 1
    report = await run_janitor(pg_runtime)
    assert report.ran and report.total >= 1
    async with pg_runtime.engine.connect() as conn:
        left = set(
            (
                await conn.execute(
                    select(api_tokens.c.id).where(api_tokens.c.owner_subject == owner.subject)
                )
            ).scalars()
        )
    assert left == {live.record.id} and old.record.id not in left
