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
from watchword.services import Services
from watchword.tokens import NewToken, Owner, TokenKind
from watchword.tokens.tables import api_tokens

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(tokens_pg_url: str) -> AsyncIterator[Services]:
    runtime = Runtime.create(
        load_settings(environ={}, database_url=tokens_pg_url), clock=FakeClock()
    )
    services = Services.build(runtime)
    yield services
    await services.aclose()
    await runtime.close()


async def test_postgres_verify_hit_is_zero_sql_and_expiry_still_applies(
    pg: Services,
) -> None:
    service = pg.tokens
    owner = Owner(pg.runtime.settings.issuer_url, f"pg-{secrets.token_hex(4)}")
    clock = pg.runtime.clock
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

    event.listen(pg.runtime.engine.sync_engine, "before_cursor_execute", record)
    try:
        await service.verify(issued.token)
        misses = len(statements)
        await service.verify(issued.token)
        assert misses > 0 and len(statements) == misses
    finally:
        event.remove(pg.runtime.engine.sync_engine, "before_cursor_execute", record)
    clock.advance(timedelta(seconds=10))
    with pytest.raises(TokenExpired):
        await service.verify(issued.token)


async def test_postgres_api_create_and_introspect(pg: Services) -> None:
    _, key = await create_admin_key(pg.runtime.engine, pg.runtime.clock)
    app = create_app(services=pg)
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


async def test_postgres_janitor_deletes_under_the_postgres_lease(pg: Services) -> None:
    service = pg.tokens
    clock = pg.runtime.clock
    assert isinstance(clock, FakeClock)
    owner = Owner(pg.runtime.settings.issuer_url, f"jan-{secrets.token_hex(4)}")
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
    dry = await pg.janitor.run(dry_run=True)
    assert dry.ran and dry.total >= 1
    report = await pg.janitor.run()
    assert report.ran and report.total >= 1
    async with pg.runtime.engine.connect() as conn:
        left = set(
            (
                await conn.execute(
                    select(api_tokens.c.id).where(api_tokens.c.owner_subject == owner.subject)
                )
            ).scalars()
        )
    assert left == {live.record.id} and old.record.id not in left


async def test_postgres_revoke_revokes_children_successors_and_grandchildren(
    pg: Services,
) -> None:
    from tests.tokens.test_lineage import revoking_a_root_revokes_its_whole_subtree

    await revoking_a_root_revokes_its_whole_subtree(pg)


async def test_postgres_create_child_of_a_revoked_token_is_token_revoked(pg: Services) -> None:
    from tests.tokens.test_lineage import a_revoked_token_cannot_make_a_child

    await a_revoked_token_cannot_make_a_child(pg)
