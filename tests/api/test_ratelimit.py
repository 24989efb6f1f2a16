"""Failed authentications are limited per client address: past the limit, 429 with
Retry-After before any database look-up."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.api.app import create_app
from watchword.bootstrap import create_admin_key
from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.storage.migrate import upgrade_engine
from watchword.tokens.format import BODY_LENGTH, TokenKind, compose


def _made_up() -> str:
    """A well-formed token with a valid checksum that nobody issued (costs a look-up)."""
    body = "".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(BODY_LENGTH))
    return compose(TokenKind.PERSONAL, body)


async def _client(
    engine: AsyncEngine, limit: str, introspect_limit: str = "5/hour"
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    await upgrade_engine(engine)
    settings = load_settings(
        environ={}, auth={"failed_limit": limit, "introspect_unknown_limit": introspect_limit}
    )
    runtime = Runtime(settings=settings, engine=engine, clock=FakeClock())
    services = Services.build(runtime)
    _, key = await create_admin_key(engine, runtime.clock)
    transport = httpx.ASGITransport(app=create_app(services=services))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client, key.reveal()
    finally:
        await services.aclose()


@pytest.fixture
async def limited(sqlite_engine: AsyncEngine) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async for pair in _client(sqlite_engine, "3/hour"):
        yield pair


async def _whoami(client: httpx.AsyncClient, credential: str) -> httpx.Response:
    return await client.get("/v1/admin/keys", headers={"Authorization": f"Bearer {credential}"})


async def test_failures_past_the_limit_are_429_with_retry_after_and_no_sql(
    limited: tuple[httpx.AsyncClient, str], sqlite_engine: AsyncEngine
) -> None:
    client, admin_key = limited
    for _ in range(3):
        r = await _whoami(client, _made_up())
        assert r.status_code == 401 and r.json()["code"] == "token_unknown"
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(sqlite_engine.sync_engine, "before_cursor_execute", record)
    try:
        refused = await _whoami(client, _made_up())
        also_refused = await _whoami(client, admin_key)  # a good key from that address too
    finally:
        event.remove(sqlite_engine.sync_engine, "before_cursor_execute", record)
    for r in (refused, also_refused):
        assert r.status_code == 429
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "too_many_failed_authentications"
        assert 0 < int(r.headers["retry-after"]) <= 3600
    assert statements == []


async def test_successful_authentications_do_not_count(
    limited: tuple[httpx.AsyncClient, str],
) -> None:
    client, admin_key = limited
    for _ in range(10):
        assert (await _whoami(client, admin_key)).status_code == 200
    for _ in range(3):
        assert (await _whoami(client, "wwb_" + "x" * 40)).status_code == 401  # admin keys count
    assert (await _whoami(client, admin_key)).status_code == 429


async def test_limit_off_never_refuses(sqlite_engine: AsyncEngine) -> None:
    async for client, _ in _client(sqlite_engine, "off"):
        for _ in range(20):
            assert (await _whoami(client, _made_up())).status_code == 401


def _from(client: httpx.AsyncClient, address: str) -> httpx.AsyncClient:
    """Another client on the same app whose connections come from ``address``."""
    app = client._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://t")


async def test_the_limit_is_per_client_address(limited: tuple[httpx.AsyncClient, str]) -> None:
    client, admin_key = limited
    async with _from(client, "192.0.2.1") as a, _from(client, "192.0.2.2") as b:
        for _ in range(3):
            assert (await _whoami(a, _made_up())).status_code == 401
        assert (await _whoami(a, admin_key)).status_code == 429
        assert (await _whoami(b, admin_key)).status_code == 200


@pytest.mark.parametrize("path", ["/v1/oauth/introspect", "/v1/oauth/revoke"])
async def test_unknown_tokens_a_resource_server_asks_about_never_lock_it_out(
    limited: tuple[httpx.AsyncClient, str], path: str
) -> None:
    """A resource server introspects (or revokes) whatever tokens its own clients send; an
    attacker sending it made-up tokens must not get the server's address refused by
    watchword (it was: each unknown token counted as a failed authentication of the
    caller's address, so past the limit every call of the resource server got 429)."""
    client, admin_key = limited
    headers = {"Authorization": f"Bearer {admin_key}"}
    for _ in range(5):  # over the address limit of 3, up to the caller's budget of 5
        r = await client.post(path, data={"token": _made_up()}, headers=headers)
        assert r.status_code == 200, r.text  # RFC 7662 / 7009: an unknown token is no error
    # The caller's own budget of unknown look-ups is spent: those two endpoints refuse it...
    r = await client.post(path, data={"token": _made_up()}, headers=headers)
    assert r.status_code == 429 and r.json()["code"] == "too_many_failed_authentications"
    # ... and nothing else does.
    assert (await _whoami(client, admin_key)).status_code == 200
    # Failed authentications of the caller itself are still limited.
    for _ in range(3):
        assert (await _whoami(client, _made_up())).status_code == 401
    assert (await _whoami(client, admin_key)).status_code == 429
