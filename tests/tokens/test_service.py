from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword.clock import FakeClock
from watchword.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    TokenExpired,
    TokenMalformed,
    TokenRevoked,
    TokenUnknown,
)
from watchword.runtime import Runtime
from watchword.secret import Secret
from watchword.services import Services
from watchword.tokens import (
    NewToken,
    Owner,
    Permission,
    TokenKind,
    TokenRecord,
    store,
)
from watchword.tokens.format import BODY_LENGTH, compose
from watchword.tokens.tables import api_tokens

from .conftest import StatementLog


def _spec(owner: Owner, **kw: object) -> NewToken:
    values: dict[str, object] = {
        "kind": TokenKind.PERSONAL,
        "name": "ci",
        "owner": owner,
        "scopes": frozenset({"projects:read"}),
    }
    values.update(kw)
    return NewToken(**values)  # type: ignore[arg-type]


def _clock(runtime: Runtime) -> FakeClock:
    assert isinstance(runtime.clock, FakeClock)
    return runtime.clock


async def test_verify_cache_hit_runs_zero_sql_statements_and_miss_runs_some(
    runtime: Runtime, owner: Owner, sql_log: StatementLog, services: Services
) -> None:
    service = services.tokens
    issued = await service.create(_spec(owner))
    sql_log.clear()
    first = await service.verify(issued.token)
    assert len(sql_log) > 0
    assert any("api_tokens" in s for s in sql_log.statements)
    sql_log.clear()
    for _ in range(50):
        again = await service.verify(issued.token)
    assert len(sql_log) == 0
    assert again.id == first.id == issued.record.id


async def test_verify_malformed_runs_no_sql_and_unknown_is_negative_cached(
    runtime: Runtime, sql_log: StatementLog, services: Services
) -> None:
    service = services.tokens
    with pytest.raises(TokenMalformed):
        await service.verify(Secret("wwp_" + "a" * 36))
    assert len(sql_log) == 0
    unknown = Secret(compose(TokenKind.PERSONAL, "b" * BODY_LENGTH))
    with pytest.raises(TokenUnknown) as info:
        await service.verify(unknown)
    assert info.value.detail == "credentials are not valid"
    assert len(sql_log) == 1
    with pytest.raises(TokenUnknown):
        await service.verify(unknown)
    assert len(sql_log) == 1  # the negative cache answered


async def test_verify_expired_and_revoked_raise_their_own_codes(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    service = services.tokens
    clock = _clock(runtime)
    short = await service.create(_spec(owner, expires_at=clock.now() + timedelta(minutes=5)))
    assert (await service.verify(short.token)).id == short.record.id
    clock.advance(timedelta(minutes=5))
    with pytest.raises(TokenExpired) as expired:
        await service.verify(short.token)  # from cache: expiry is checked on every hit
    assert expired.value.code == "token_expired"

    live = await service.create(_spec(owner))
    await service.verify(live.token)
    await service.revoke(live.record.id)
    with pytest.raises(TokenRevoked) as revoked:
        await service.verify(live.token)  # the revoking replica forgets at once
    assert revoked.value.code == "token_revoked"


async def test_revocation_reaches_another_replica_within_the_cache_ttl(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    other = Services.build(
        Runtime(settings=runtime.settings, engine=runtime.engine, clock=runtime.clock)
    )
    issued = await services.tokens.create(_spec(owner))
    await other.tokens.verify(issued.token)
    await services.tokens.revoke(issued.record.id)
    # still trusted by the other replica's in-process cache ...
    await other.tokens.verify(issued.token)
    _clock(runtime).advance(runtime.settings.tokens.verify_cache_ttl)
    # ... never longer than token_verify_cache_ttl
    with pytest.raises(TokenRevoked):
        await other.tokens.verify(issued.token)


async def test_last_used_at_is_written_at_most_once_a_minute(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    service = services.tokens
    clock = _clock(runtime)
    issued = await service.create(_spec(owner))

    async def stored() -> object:
        async with runtime.engine.connect() as conn:
            return (
                await conn.execute(
                    select(api_tokens.c.last_used_at).where(api_tokens.c.id == issued.record.id)
                )
            ).scalar_one()

    await service.verify(issued.token)
    first = await stored()
    assert first is not None
    clock.advance(timedelta(seconds=31))  # cache expired, used again within the minute
    await service.verify(issued.token)
    assert await stored() == first
    clock.advance(timedelta(seconds=30))
    await service.verify(issued.token)
    assert await stored() != first


async def test_create_stores_only_the_hash_and_lists_without_secrets(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    service = services.tokens
    issued = [await service.create(_spec(owner, name=f"t{i}")) for i in range(5)]
    async with runtime.engine.connect() as conn:
        rows = (await conn.execute(select(api_tokens))).all()
    dump = repr([tuple(r) for r in rows])
    for item in issued:
        assert item.token.reveal() not in dump
    page1 = await service.list(owner=owner, limit=2)
    page2 = await service.list(owner=owner, cursor=page1.next_cursor, limit=2)
    page3 = await service.list(owner=owner, cursor=page2.next_cursor, limit=2)
    ids = [r.id for p in (page1, page2, page3) for r in p.items]
    assert ids == sorted(i.record.id for i in issued)  # id order (creation order to the ms)
    assert page3.next_cursor is None
    assert (await service.list(owner=Owner("x", "y"))).items == ()


async def test_create_integration_token_always_has_an_expiry(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    issued = await services.tokens.create(_spec(owner, kind=TokenKind.INTEGRATION))
    s = runtime.settings
    assert issued.record.expires_at == runtime.clock.now() + s.tokens.rotation_cache_ttl + (
        s.tokens.grace_period
    )


@pytest.mark.parametrize(
    ("field", "value", "pointer"),
    [("name", " ", "/name"), ("scopes", frozenset({"bad scope"}), "/scopes")],
)
async def test_create_invalid_input_names_the_field(
    runtime: Runtime, owner: Owner, field: str, value: object, pointer: str, services: Services
) -> None:
    with pytest.raises(InvalidInput) as info:
        await services.tokens.create(_spec(owner, **{field: value}))
    assert info.value.pointer == pointer


async def test_rotate_keeps_old_valid_for_grace_then_expires_and_only_once(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    service = services.tokens
    clock = _clock(runtime)
    old = await service.create(_spec(owner, permission=Permission.READ_WRITE))
    new = await service.rotate(old.record.id)
    assert new.record.rotated_from == old.record.id
    assert new.record.scopes == old.record.scopes and new.record.name == old.record.name
    with pytest.raises(Conflict, match="already rotated"):
        await service.rotate(old.record.id)
    clock.advance(runtime.settings.tokens.grace_period - timedelta(seconds=1))
    assert (await service.verify(old.token)).id == old.record.id
    clock.advance(timedelta(seconds=1))
    with pytest.raises(TokenExpired):
        await service.verify(old.token)
    assert (await service.verify(new.token)).id == new.record.id


async def test_get_and_revoke_unknown_id_is_not_found(runtime: Runtime, services: Services) -> None:
    service = services.tokens
    with pytest.raises(NotFound):
        await service.get("tok_nope")
    with pytest.raises(NotFound):
        await service.revoke("tok_nope")


async def test_verify_when_revoked_during_the_database_read_does_not_cache_the_stale_record(
    runtime: Runtime, owner: Owner, monkeypatch: pytest.MonkeyPatch, services: Services
) -> None:
    service = services.tokens
    issued = await service.create(_spec(owner))
    read_active = store.load_by_hash

    async def revoked_meanwhile(conn: AsyncConnection, digest: str) -> TokenRecord | None:
        record = await read_active(conn, digest)
        # The revocation commits and invalidates after this read, before the cache put.
        await service.cache.invalidate(digest)
        return record

    monkeypatch.setattr(store, "load_by_hash", revoked_meanwhile)
    await service.verify(issued.token)  # the read itself was before the revocation
    monkeypatch.undo()
    assert service.cache.local.get(issued.record.token_hash) is None
    await service.revoke(issued.record.id)
    with pytest.raises(TokenRevoked):
        await service.verify(issued.token)


async def test_verify_when_the_database_fails_raises_database_unavailable(
    runtime: Runtime, owner: Owner, monkeypatch: pytest.MonkeyPatch, services: Services
) -> None:
    service = services.tokens
    issued = await service.create(_spec(owner))

    async def broken(*args: object, **kwargs: object) -> TokenRecord | None:
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(store, "load_by_hash", broken)
    monkeypatch.setattr(store, "load_by_id", broken)
    with pytest.raises(DatabaseUnavailable) as info:
        await service.verify(issued.token)
    assert info.value.code == "database_unavailable"
    assert "server closed" not in info.value.detail
    for call in (service.get(issued.record.id), service.revoke(issued.record.id)):
        with pytest.raises(DatabaseUnavailable):
            await call
