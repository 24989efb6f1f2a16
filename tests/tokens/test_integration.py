from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.errors import (
    AuthenticationError,
    DatabaseUnavailable,
    RedisUnavailable,
    TokenExpired,
)
from watchword.runtime import Runtime
from watchword.secret import Secret
from watchword.services import Services
from watchword.storage.db import create_engine_for_url
from watchword.storage.migrate import upgrade_engine
from watchword.tokens import Owner, TokenKind, store
from watchword.tokens.anchor import AnchorSeal
from watchword.tokens.cache import VerifyCache
from watchword.tokens.integration import IntegrationRotator, IntegrationSpec, rotate_integration
from watchword.tokens.keyring import KeyPurpose, derive_purpose_key
from watchword.tokens.metrics import TokenMetrics
from watchword.tokens.plaintext_cache import (
    CachedPlaintext,
    LocalPlaintextCache,
    RedisPlaintextCache,
    derive_key,
)
from watchword.tokens.scope import Permission
from watchword.tokens.service import TokenService
from watchword.tokens.tables import api_tokens


async def _count(runtime: Runtime) -> int:
    async with runtime.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(api_tokens))).scalar_one())


async def test_rotate_integration_serves_cache_then_rotates_once_per_ttl_keeping_grace(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    clock = runtime.clock
    assert isinstance(clock, FakeClock)
    settings = runtime.settings
    scopes = frozenset({"accounts:read"})
    first = await rotate_integration(services.integrations, owner, scopes=scopes)
    again = await rotate_integration(services.integrations, owner, scopes=scopes)
    assert again.reveal() == first.reveal()
    assert await _count(runtime) == 1
    record = await services.tokens.verify(first)
    assert record.kind is TokenKind.INTEGRATION and record.scopes == {"accounts:read"}

    clock.advance(settings.tokens.rotation_cache_ttl)
    rotated_at = clock.now()
    second = await rotate_integration(services.integrations, owner, scopes=scopes)
    assert second.reveal() != first.reveal()
    assert await _count(runtime) == 2
    new = await services.tokens.verify(second)
    assert new.rotated_from == record.id

    clock.set(rotated_at + settings.tokens.grace_period - timedelta(seconds=1))
    fresh = Services.build(Runtime(settings=settings, engine=runtime.engine, clock=clock))
    assert (await fresh.tokens.verify(first)).id == record.id
    clock.set(rotated_at + settings.tokens.grace_period)
    with pytest.raises(TokenExpired):
        await fresh.tokens.verify(first)


async def test_rotate_integration_names_are_independent(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    a = await rotate_integration(services.integrations, owner, name="sync")
    b = await rotate_integration(services.integrations, owner, name="billing")
    c = await rotate_integration(services.integrations, Owner(owner.issuer, "other"), name="sync")
    assert len({a.reveal(), b.reveal(), c.reveal()}) == 3


async def test_rotate_integration_concurrent_misses_on_sqlite_file_rotate_once(
    tmp_path: Path,
) -> None:
    engine = create_engine_for_url(f"sqlite+aiosqlite:///{tmp_path / 'rot.sqlite3'}")
    await upgrade_engine(engine)
    clock = FakeClock()
    shared = LocalPlaintextCache()  # stands in for Redis: one cache, two replicas
    # ... and Redis needs a secret key, which also seals the current token on the anchor row
    seal = AnchorSeal(derive_purpose_key("a" * 40, KeyPurpose.ROTATION_ANCHOR))
    try:
        settings = load_settings(environ={})
        rotators = [
            IntegrationRotator(
                engine,
                clock,
                cache=shared,
                metrics=TokenMetrics(CollectorRegistry()),
                cache_ttl=settings.tokens.rotation_cache_ttl,
                grace=settings.tokens.grace_period,
                seal=seal,
            )
            for _ in range(2)
        ]
        spec = IntegrationSpec(owner=Owner("https://idp.test", "svc"))
        results = await asyncio.gather(*(rotators[i % 2].current(spec) for i in range(30)))
        assert len({r.reveal() for r in results}) == 1
        async with engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(api_tokens))).scalar()
        assert count == 1
    finally:
        await engine.dispose()


async def test_redis_plaintext_cache_when_redis_is_down_raises_redis_unavailable() -> None:
    client = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    cache = RedisPlaintextCache(client, prefix="ww-test:", key=derive_key("k" * 32))
    value = CachedPlaintext(Secret("wwi_x"), datetime(2026, 1, 1, tzinfo=UTC))
    try:
        for call in (
            cache.load("k"),
            cache.save("k", value, timedelta(seconds=1)),
            cache.forget("k"),
        ):
            with pytest.raises(RedisUnavailable) as info:
                await call
            assert info.value.code == "redis_unavailable"
            assert "127.0.0.1" not in info.value.detail
    finally:
        await client.aclose()


async def test_rotate_integration_after_its_token_is_revoked_hands_out_a_new_one(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    service = services.tokens
    first = await rotate_integration(services.integrations, owner)
    record = await service.verify(first)
    await service.revoke(record.id)
    second = await rotate_integration(services.integrations, owner)  # within the rotation cache TTL
    assert second.reveal() != first.reveal()
    assert (await service.verify(second)).kind is TokenKind.INTEGRATION


async def test_rotate_integration_when_the_database_fails_raises_database_unavailable(
    runtime: Runtime, owner: Owner, monkeypatch: pytest.MonkeyPatch, services: Services
) -> None:
    async def broken(*args: object, **kwargs: object) -> list[object]:
        raise OperationalError("SELECT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(store, "load_lifetimes", broken)
    with pytest.raises(DatabaseUnavailable) as info:
        await rotate_integration(services.integrations, owner)
    assert info.value.code == "database_unavailable"


async def test_rotate_integration_narrow_request_is_never_handed_a_broader_cached_token(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    rotator = services.integrations
    broad = await rotate_integration(
        rotator, owner, scopes=frozenset({"accounts:*"}), permission=Permission.READ_WRITE
    )
    narrow = await rotate_integration(
        rotator, owner, scopes=frozenset({"accounts:read"}), permission=Permission.READ_ONLY
    )
    assert narrow.reveal() != broad.reveal()
    record = await services.tokens.verify(narrow)
    assert record.scopes == {"accounts:read"} and record.permission is Permission.READ_ONLY
    other_org = await rotate_integration(
        rotator, owner, scopes=frozenset({"accounts:read"}), organization_id="org-2"
    )
    assert (await services.tokens.verify(other_org)).organization_id == "org-2"
    again = await rotate_integration(
        rotator, owner, scopes=frozenset({"accounts:read"}), permission=Permission.READ_ONLY
    )
    assert (await services.tokens.verify(again)).organization_id is None


async def test_rotate_integration_late_call_gives_the_replaced_token_its_whole_grace(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    """Issue 15 item 32: the rotating call comes after the cache period (here half a grace
    later); the old token stays valid until that rotation + grace, not its first expiry."""
    clock = runtime.clock
    assert isinstance(clock, FakeClock)
    settings = runtime.settings
    grace = settings.tokens.grace_period
    first = await rotate_integration(services.integrations, owner)
    clock.advance(settings.tokens.rotation_cache_ttl + grace / 2)
    rotated_at = clock.now()
    second = await rotate_integration(services.integrations, owner)
    assert second.reveal() != first.reveal()
    clock.set(rotated_at + grace - timedelta(seconds=1))
    fresh = Services.build(Runtime(settings=settings, engine=runtime.engine, clock=clock))
    assert (await fresh.tokens.verify(first)).expires_at == rotated_at + grace
    clock.set(rotated_at + grace)
    with pytest.raises(TokenExpired):
        await fresh.tokens.verify(first)
    assert (await fresh.tokens.verify(second)).rotated_from is not None


async def test_rotate_integration_no_call_for_cache_period_plus_grace_mints_a_fresh_token(
    runtime: Runtime, owner: Owner, services: Services
) -> None:
    clock = runtime.clock
    assert isinstance(clock, FakeClock)
    settings = runtime.settings
    first = await rotate_integration(services.integrations, owner)
    clock.advance(settings.tokens.rotation_cache_ttl + settings.tokens.grace_period)
    with pytest.raises(TokenExpired):
        await services.tokens.verify(first)
    second = await rotate_integration(services.integrations, owner)
    assert (await services.tokens.verify(second)).rotated_from is None


class _VerifyOnPublish:
    """A rotation cache that, the moment a plaintext is published to it, has another
    connection verify it, as a consumer on another replica picking it up would."""

    def __init__(self, verifier: TokenService) -> None:
        self.verifier = verifier
        self.outcomes: list[str] = []
        self.inner = LocalPlaintextCache()

    async def load(self, key: str) -> CachedPlaintext | None:
        return await self.inner.load(key)

    async def save(self, key: str, value: CachedPlaintext, ttl: timedelta) -> None:
        try:
            await self.verifier.verify(value.token)
            self.outcomes.append("ok")
        except AuthenticationError as exc:
            self.outcomes.append(exc.code)
        await self.inner.save(key, value, ttl)

    async def forget(self, key: str) -> None:
        await self.inner.forget(key)


@pytest.mark.parametrize("sealed", [False, True], ids=["per_process", "sealed_anchor"])
async def test_rotate_integration_publishes_the_plaintext_only_once_it_is_committed(
    tmp_path: Path, sealed: bool
) -> None:
    """Issue 15 item 9: whoever picks the new plaintext up from the cache can use it."""
    engine = create_engine_for_url(f"sqlite+aiosqlite:///{tmp_path / 'pub.sqlite3'}")
    await upgrade_engine(engine)
    clock = FakeClock()
    settings = load_settings(environ={})
    registry = CollectorRegistry()
    metrics = TokenMetrics(registry)
    verifier = TokenService(
        engine,
        clock,
        cache=VerifyCache(clock, ttl_s=30, redis=None, redis_prefix=""),
        metrics=metrics,
        grace_period=settings.tokens.grace_period,
        rotation_cache_ttl=settings.tokens.rotation_cache_ttl,
    )
    cache = _VerifyOnPublish(verifier)
    seal = AnchorSeal(derive_purpose_key("a" * 40, KeyPurpose.ROTATION_ANCHOR)) if sealed else None
    rotator = IntegrationRotator(
        engine,
        clock,
        cache=cache,
        metrics=metrics,
        cache_ttl=settings.tokens.rotation_cache_ttl,
        grace=settings.tokens.grace_period,
        seal=seal,
    )
    spec = IntegrationSpec(owner=Owner("https://idp.test", "svc"))
    try:
        first = await rotator.current(spec)
        clock.advance(settings.tokens.rotation_cache_ttl)
        second = await rotator.current(spec)
        assert first.reveal() != second.reveal()
        assert cache.outcomes == ["ok", "ok"]
    finally:
        await engine.dispose()
