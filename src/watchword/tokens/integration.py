"""Rotation of integration tokens, as in seed 001 (3scale's OIDC sync token).

``rotate_integration(rotator, owner)`` returns the plaintext an integration should use
now, minting a new token at most once per ``token_rotation_cache_ttl`` per (owner, name)
however many workers and replicas ask at once::

    cached = cache.load(key)                     # hot path: no SQL at all
    if fresh(cached): return cached
    BEGIN
      lock the (owner, name) anchor row          # PostgreSQL: INSERT … ON CONFLICT DO
                                                 # NOTHING, then SELECT … FOR UPDATE;
                                                 # SQLite: BEGIN IMMEDIATE (write lock)
      cached = cache.load(key)                   # a worker ahead of us may have rotated
      if fresh(cached): COMMIT; return cached
      expire current tokens at now + grace       # not deleted: holders keep working
      insert the successor
      cache.save(key, successor)                 # before COMMIT, while still locked
    COMMIT

The anchor row exists for the cold start: ``SELECT … FOR UPDATE`` over zero token rows
locks nothing, so without it the very first concurrent misses would each mint a token.
The cache is written before the commit so that the next worker to get the lock finds it;
if the commit fails the entry is removed again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import redis.asyncio as aioredis
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watchword.clock import Clock
from watchword.errors import ConfigurationError, DatabaseUnavailable
from watchword.secret import Secret
from watchword.tokens import store
from watchword.tokens.format import TokenKind
from watchword.tokens.metrics import TokenMetrics
from watchword.tokens.mint import mint
from watchword.tokens.model import Owner, TokenRecord
from watchword.tokens.plaintext_cache import (
    CachedPlaintext,
    LocalPlaintextCache,
    PlaintextCache,
    RedisPlaintextCache,
    UnkeyedPlaintextCache,
    cache_key,
    derive_key,
)
from watchword.tokens.rotation import cached_value_fresh, plan_rotation
from watchword.tokens.scope import Permission, normalize_scopes
from watchword.tokens.tables import token_rotation_anchors

__all__ = [
    "DEFAULT_NAME",
    "IntegrationRotator",
    "IntegrationSpec",
    "plaintext_cache",
    "rotate_integration",
]

DEFAULT_NAME = "integration"


@dataclass(frozen=True, slots=True)
class IntegrationSpec:
    """Which integration token: its owner and name, and what a new one is minted with."""

    owner: Owner
    name: str = DEFAULT_NAME
    scopes: frozenset[str] = frozenset()
    permission: Permission = Permission.READ_ONLY
    organization_id: str | None = None


class IntegrationRotator:
    """Hands out the current plaintext of each integration token, rotating it at most once
    per ``cache_ttl`` per (owner, name) (see the module docstring)."""

    __slots__ = ("_cache", "_cache_ttl", "_clock", "_engine", "_grace", "_metrics")

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        cache: PlaintextCache,
        metrics: TokenMetrics,
        cache_ttl: timedelta,
        grace: timedelta,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._cache = cache
        self._metrics = metrics
        self._cache_ttl = cache_ttl
        self._grace = grace

    async def _fresh(self, key: str) -> Secret | None:
        cached = await self._cache.load(key)
        if cached is not None and cached_value_fresh(
            cached.cached_at, self._clock.now(), self._cache_ttl
        ):
            return cached.token
        return None

    async def current(self, spec: IntegrationSpec) -> Secret:
        key = _key(spec)
        hit = await self._fresh(key)
        if hit is not None:
            self._metrics.rotations.labels("cached").inc()
            return hit
        try:
            async with self._engine.connect() as conn:
                await _lock_anchor(conn, spec.owner, spec.name)
                hit = await self._fresh(key)
                if hit is not None:
                    await conn.commit()
                    self._metrics.rotations.labels("cached_after_lock").inc()
                    return hit
                token = await self._rotate(conn, spec)
                now = self._clock.now()
                await self._cache.save(key, CachedPlaintext(token, now), self._cache_ttl)
                try:
                    await conn.commit()
                except BaseException:
                    await self._cache.forget(key)
                    raise
        except (SQLAlchemyError, OSError) as exc:
            # Only the class name: a driver's message can carry the database URL.
            raise DatabaseUnavailable(
                f"integration token rotation: database failed ({type(exc).__name__})"
            ) from exc
        self._metrics.rotations.labels("rotated").inc()
        return token

    async def forget(self, record: TokenRecord) -> None:
        """Drop the cached plaintext of the integration ``record`` is a token of, e.g.
        because it was revoked: the next :meth:`current` rotates instead of handing out a
        dead token."""
        spec = IntegrationSpec(
            owner=record.owner,
            name=record.name,
            scopes=record.scopes,
            permission=record.permission,
            organization_id=record.organization_id,
        )
        await self._cache.forget(_key(spec))

    async def _rotate(self, conn: AsyncConnection, spec: IntegrationSpec) -> Secret:
        now = self._clock.now()
        existing = await store.load_lifetimes(conn, spec.owner, spec.name, TokenKind.INTEGRATION)
        plan = plan_rotation(
            TokenKind.INTEGRATION,
            existing,
            now,
            cache_ttl=self._cache_ttl,
            grace=self._grace,
        )
        for token_id, expires_at in plan.expire:
            await store.set_expiry(conn, token_id, expires_at)
        token, record = mint(
            TokenKind.INTEGRATION,
            name=spec.name,
            owner=spec.owner,
            organization_id=spec.organization_id,
            scopes=spec.scopes,
            permission=spec.permission,
            now=now,
            expires_at=plan.successor_expires_at,
            rotated_from=plan.rotated_from,
        )
        await store.insert_token(conn, record)
        await conn.execute(
            update(token_rotation_anchors)
            .where(*_anchor_where(spec.owner, spec.name))
            .values(rotated_at=now)
        )
        return token


def _key(spec: IntegrationSpec) -> str:
    return cache_key(
        spec.owner,
        spec.name,
        scopes=spec.scopes,
        permission=spec.permission,
        organization_id=spec.organization_id,
    )


def _anchor_where(owner: Owner, name: str) -> tuple[ColumnElement[bool], ...]:
    t = token_rotation_anchors.c
    return (t.owner_issuer == owner.issuer, t.owner_subject == owner.subject, t.name == name)


async def _lock_anchor(conn: AsyncConnection, owner: Owner, name: str) -> None:
    """Begin the transaction holding the (owner, name) lock until commit or rollback."""
    values = {"owner_issuer": owner.issuer, "owner_subject": owner.subject, "name": name}
    if conn.dialect.name == "postgresql":
        await conn.execute(
            postgresql.insert(token_rotation_anchors).values(values).on_conflict_do_nothing()
        )
        await conn.execute(
            select(token_rotation_anchors.c.name)
            .where(*_anchor_where(owner, name))
            .with_for_update()
        )
        return
    # SQLite has one writer at a time: taking the write lock up front serializes every
    # rotation in the database file (busy_timeout queues the others).
    await conn.exec_driver_sql("BEGIN IMMEDIATE")
    await conn.execute(
        sqlite.insert(token_rotation_anchors).values(values).on_conflict_do_nothing()
    )


def plaintext_cache(
    redis: aioredis.Redis | None, *, prefix: str, secret_key: str | None
) -> PlaintextCache:
    """Where rotated plaintexts are kept: Redis (sealed with ``secret_key``) when there is
    one, so every replica hands out the same token; else this process's memory."""
    if redis is None:
        return LocalPlaintextCache()
    try:
        key = derive_key(secret_key)
    except ConfigurationError:
        return UnkeyedPlaintextCache(secret_key)
    return RedisPlaintextCache(redis, prefix=prefix, key=key)


async def rotate_integration(
    rotator: IntegrationRotator,
    owner: Owner,
    *,
    name: str = DEFAULT_NAME,
    scopes: frozenset[str] = frozenset(),
    permission: Permission = Permission.READ_ONLY,
    organization_id: str | None = None,
) -> Secret:
    """The plaintext the integration ``(owner, name)`` should use now (seed 001)."""
    spec = IntegrationSpec(
        owner=owner,
        name=name,
        scopes=normalize_scopes(scopes),
        permission=permission,
        organization_id=organization_id,
    )
    return await rotator.current(spec)
