"""Issue 15 item 3: Redis is not trusted with authority. A verification-cache entry that
was not signed by a replica holding the secret key is a miss, never a principal."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from watchword.clock import FakeClock
from watchword.config import load_settings
from watchword.errors import TokenUnknown
from watchword.runtime import Runtime
from watchword.secret import Secret
from watchword.services import Services
from watchword.tokens import NewToken, Owner, TokenKind
from watchword.tokens.cache import record_to_json, seal_entry
from watchword.tokens.format import TokenKind as Kind
from watchword.tokens.keyring import KeyPurpose, derive_purpose_key
from watchword.tokens.mint import mint
from watchword.tokens.model import TokenRecord
from watchword.tokens.scope import Permission

pytestmark = pytest.mark.redis

SECRET = "s" * 40


async def _replica(
    runtime: Runtime, redis_url: str, redis_prefix: str, secret_key: str | None
) -> Services:
    settings = load_settings(
        environ={}, redis_url=redis_url, redis_prefix=redis_prefix, secret_key=secret_key
    )
    return Services.build(
        Runtime(
            settings=settings,
            engine=runtime.engine,
            redis=aioredis.Redis.from_url(redis_url),
            clock=FakeClock(),
        )
    )


@pytest.fixture
async def made(runtime: Runtime) -> AsyncIterator[list[Services]]:
    replicas: list[Services] = []
    yield replicas
    for replica in replicas:
        await replica.aclose()
        assert replica.runtime.redis is not None
        await replica.runtime.redis.aclose()


def _forged_record() -> tuple[Secret, TokenRecord]:
    """A well-formed token that exists nowhere, and an all-powerful record for it."""
    return mint(
        Kind.PERSONAL,
        name="forged",
        owner=Owner("https://idp.example", "admin"),
        organization_id=None,
        scopes=frozenset({"*:*"}),
        permission=Permission.READ_WRITE,
        now=FakeClock().now(),
        expires_at=None,
    )


def _rejected(services: Services, reason: str) -> float:
    value: float = services.tokens.metrics.cache_rejected.labels(reason)._value.get()
    return value


async def test_verify_cache_plain_json_written_to_redis_is_not_a_principal(
    runtime: Runtime, redis_url: str, redis_prefix: str, made: list[Services]
) -> None:
    services = await _replica(runtime, redis_url, redis_prefix, SECRET)
    made.append(services)
    token, forged = _forged_record()
    assert services.runtime.redis is not None
    name = services.tokens.cache._key(forged.token_hash)
    await services.runtime.redis.set(name, record_to_json(forged))
    with pytest.raises(TokenUnknown):
        await services.tokens.verify(token)
    assert _rejected(services, "unsigned") == 1


async def test_verify_cache_entry_signed_under_another_secret_key_is_a_miss(
    runtime: Runtime, redis_url: str, redis_prefix: str, made: list[Services]
) -> None:
    services = await _replica(runtime, redis_url, redis_prefix, SECRET)
    made.append(services)
    token, forged = _forged_record()
    name = services.tokens.cache._key(forged.token_hash)
    foreign = derive_purpose_key("f" * 40, KeyPurpose.VERIFY_CACHE)
    until = services.runtime.clock.now() + timedelta(minutes=5)
    assert services.runtime.redis is not None
    await services.runtime.redis.set(
        name, seal_entry(foreign, name, forged.token_hash, forged, until)
    )
    with pytest.raises(TokenUnknown):
        await services.tokens.verify(token)
    assert _rejected(services, "bad_signature") == 1


async def test_verify_cache_entry_moved_to_another_digest_is_a_miss(
    runtime: Runtime, redis_url: str, redis_prefix: str, made: list[Services]
) -> None:
    a = await _replica(runtime, redis_url, redis_prefix, SECRET)
    made.append(a)
    issued = await a.tokens.create(
        NewToken(TokenKind.PERSONAL, "t", Owner("https://i", "victim"), frozenset({"*:*"}))
    )
    await a.tokens.verify(issued.token)  # a signed entry now in Redis
    assert a.runtime.redis is not None
    genuine = await a.runtime.redis.get(a.tokens.cache._key(issued.record.token_hash))
    _, other = _forged_record()
    assert genuine is not None
    await a.runtime.redis.set(a.tokens.cache._key(other.token_hash), genuine)
    assert await a.tokens.cache.get_shared(other.token_hash) is None
    assert _rejected(a, "bad_signature") == 1


async def test_verify_cache_signed_entry_replayed_after_its_ttl_is_a_miss(
    runtime: Runtime, redis_url: str, redis_prefix: str, made: list[Services]
) -> None:
    a = await _replica(runtime, redis_url, redis_prefix, SECRET)
    made.append(a)
    issued = await a.tokens.create(
        NewToken(TokenKind.PERSONAL, "t", Owner("https://i", "replayed"), frozenset())
    )
    await a.tokens.verify(issued.token)
    assert a.runtime.redis is not None
    name = a.tokens.cache._key(issued.record.token_hash)
    kept = await a.runtime.redis.get(name)
    clock = a.runtime.clock
    assert isinstance(clock, FakeClock)
    clock.advance(a.runtime.settings.tokens.verify_cache_ttl)
    assert kept is not None
    await a.runtime.redis.set(name, kept)  # e.g. to resurrect a revoked token
    assert await a.tokens.cache.get_shared(issued.record.token_hash) is None
    assert _rejected(a, "expired") == 1


async def test_verify_cache_signed_entry_serves_another_replica(
    runtime: Runtime, redis_url: str, redis_prefix: str, made: list[Services]
) -> None:
    a = await _replica(runtime, redis_url, redis_prefix, SECRET)
    b = await _replica(runtime, redis_url, redis_prefix, SECRET)
    made.extend((a, b))
    issued = await a.tokens.create(
        NewToken(TokenKind.PERSONAL, "t", Owner("https://i", "shared"), frozenset())
    )
    await a.tokens.verify(issued.token)
    shared = await b.tokens.cache.get_shared(issued.record.token_hash)
    assert shared is not None and shared.id == issued.record.id


async def test_verify_cache_without_secret_key_never_reads_or_writes_redis_records(
    runtime: Runtime, redis_url: str, redis_prefix: str, made: list[Services]
) -> None:
    services = await _replica(runtime, redis_url, redis_prefix, None)
    made.append(services)
    assert not services.tokens.cache.shared
    issued = await services.tokens.create(
        NewToken(TokenKind.PERSONAL, "t", Owner("https://i", "unkeyed"), frozenset())
    )
    await services.tokens.verify(issued.token)
    assert services.runtime.redis is not None
    assert (
        await services.runtime.redis.get(services.tokens.cache._key(issued.record.token_hash))
        is None
    )
    token, forged = _forged_record()
    name = services.tokens.cache._key(forged.token_hash)
    await services.runtime.redis.set(name, record_to_json(forged))
    with pytest.raises(TokenUnknown):
        await services.tokens.verify(token)
