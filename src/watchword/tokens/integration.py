"""Rotation of integration tokens, as in seed 001 (3scale's OIDC sync token).

``rotate_integration(rotator, owner)`` returns the plaintext an integration should use
now, minting a new token at most once per ``token_rotation_cache_ttl`` per (owner, name)
however many workers and replicas ask at once::

    cached = cache.load(key)                     # Redis, if any: no SQL at all
    if fresh(cached): return cached
    anchor = SELECT the (owner, name) anchor row # one primary-key read, no lock
    if fresh(anchor) and anchor.key == key: publish(anchor); return open(anchor.sealed)
    BEGIN
      lock the (owner, name) anchor row          # PostgreSQL: INSERT … ON CONFLICT DO
                                                 # NOTHING, then SELECT … FOR UPDATE;
                                                 # SQLite: BEGIN IMMEDIATE (write lock)
      anchor = read it again                     # a worker ahead of us may have rotated
      if fresh(anchor) and anchor.key == key: COMMIT; return open(anchor.sealed)
      expire current tokens at now + grace       # not deleted: holders keep working
      insert the successor
      anchor := (now, key, seal(successor))      # in the same transaction
    COMMIT
    cache.save(key, successor)                   # published only once committed

``key`` covers everything that defines the token (owner, name, scopes, permission,
organization). The anchor row exists for the cold start (``SELECT … FOR UPDATE`` over zero
token rows locks nothing) and, since it holds the current token sealed, it is what makes
one rotation per cycle hold across replicas with or without Redis: the next lock holder
reads the committed row, never a cache written before a commit (whose token other
connections cannot see yet). A revocation clears it in its own transaction
(:mod:`watchword.tokens.anchor`).

Without ``WATCHWORD_SECRET_KEY`` nothing is sealed in the anchor: each process keeps the
plaintext in its own memory and rotates once per cycle itself (the services warn at
start); with Redis but no secret key, rotating is a configuration error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import redis.asyncio as aioredis
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watchword.clock import Clock
from watchword.errors import DatabaseUnavailable, Unavailable
from watchword.observability.logging import get_logger
from watchword.secret import Secret
from watchword.tokens import store
from watchword.tokens.anchor import (
    AnchorSeal,
    AnchorState,
    load_anchor,
    lock_anchor,
    save_current,
)
from watchword.tokens.format import TokenKind
from watchword.tokens.keyring import usable_secret_key
from watchword.tokens.metrics import TokenMetrics
from watchword.tokens.mint import mint
from watchword.tokens.model import Owner, TokenRecord
from watchword.tokens.plaintext_cache import (
    CachedPlaintext,
    LocalPlaintextCache,
    NoPlaintextCache,
    PlaintextCache,
    RedisPlaintextCache,
    UnkeyedPlaintextCache,
    cache_key,
    derive_key,
)
from watchword.tokens.rotation import cached_value_fresh, plan_rotation
from watchword.tokens.scope import Permission, normalize_scopes

__all__ = [
    "DEFAULT_NAME",
    "IntegrationRotator",
    "IntegrationSpec",
    "plaintext_cache",
    "rotate_integration",
]

DEFAULT_NAME = "integration"
log = get_logger("watchword.tokens")


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
    per ``cache_ttl`` per (owner, name) (see the module docstring). ``seal`` (from
    ``WATCHWORD_SECRET_KEY``) keeps the current token on the anchor row for every replica;
    without it each process relies on its own ``cache``."""

    __slots__ = ("_cache", "_cache_ttl", "_clock", "_engine", "_grace", "_metrics", "_seal")

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        cache: PlaintextCache,
        metrics: TokenMetrics,
        cache_ttl: timedelta,
        grace: timedelta,
        seal: AnchorSeal | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._cache = cache
        self._metrics = metrics
        self._cache_ttl = cache_ttl
        self._grace = grace
        self._seal = seal

    async def _fresh(self, key: str) -> Secret | None:
        cached = await self._cache.load(key)
        if cached is not None and cached_value_fresh(
            cached.cached_at, self._clock.now(), self._cache_ttl
        ):
            return cached.token
        return None

    def _from_anchor(
        self, state: AnchorState | None, spec: IntegrationSpec, key: str
    ) -> CachedPlaintext | None:
        """The token the anchor row says is current for ``key``, if sealed and fresh."""
        if self._seal is None or state is None or state.current_key != key:
            return None
        if state.current_sealed is None or state.rotated_at is None:
            return None
        if not cached_value_fresh(state.rotated_at, self._clock.now(), self._cache_ttl):
            return None
        token = self._seal.open(spec.owner, spec.name, key, bytes(state.current_sealed))
        return CachedPlaintext(token, state.rotated_at) if token is not None else None

    async def _publish(self, key: str, value: CachedPlaintext) -> None:
        """Put a committed token in the cache; the database already has it, so a cache
        failure here only costs the next caller a database read."""
        try:
            await self._cache.save(key, value, self._cache_ttl)
        except Unavailable as exc:
            log.warning("token_rotation_cache_not_saved", code=exc.code)

    async def current(self, spec: IntegrationSpec) -> Secret:
        key = _key(spec)
        hit = await self._fresh(key)
        if hit is not None:
            self._metrics.rotations.labels("cached").inc()
            return hit
        try:
            if self._seal is not None:
                async with self._engine.connect() as conn:
                    state = await load_anchor(conn, spec.owner, spec.name)
                found = self._from_anchor(state, spec, key)
                if found is not None:
                    await self._publish(key, found)
                    self._metrics.rotations.labels("cached").inc()
                    return found.token
            async with self._engine.connect() as conn:
                await lock_anchor(conn, spec.owner, spec.name)
                if self._seal is not None:
                    found = self._from_anchor(
                        await load_anchor(conn, spec.owner, spec.name), spec, key
                    )
                    hit = found.token if found is not None else None
                else:
                    hit = await self._fresh(key)  # this process's own cache
                if hit is not None:
                    await conn.commit()
                    self._metrics.rotations.labels("cached_after_lock").inc()
                    return hit
                token, rotated_at = await self._rotate(conn, spec, key)
                await conn.commit()
                # Published only now: before the commit no other connection could see it.
                await self._publish(key, CachedPlaintext(token, rotated_at))
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
        dead token. (The anchor row is cleared by the revocation's own transaction.)"""
        spec = IntegrationSpec(
            owner=record.owner,
            name=record.name,
            scopes=record.scopes,
            permission=record.permission,
            organization_id=record.organization_id,
        )
        await self._cache.forget(_key(spec))

    async def _rotate(
        self, conn: AsyncConnection, spec: IntegrationSpec, key: str
    ) -> tuple[Secret, datetime]:
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
        sealed = None
        if self._seal is not None:
            sealed = self._seal.seal(spec.owner, spec.name, key, token)
        await save_current(
            conn,
            spec.owner,
            spec.name,
            rotated_at=now,
            current_key=key if sealed is not None else None,
            sealed=sealed,
        )
        return token, now


def _key(spec: IntegrationSpec) -> str:
    return cache_key(
        spec.owner,
        spec.name,
        scopes=spec.scopes,
        permission=spec.permission,
        organization_id=spec.organization_id,
    )


def plaintext_cache(
    redis: aioredis.Redis | None, *, prefix: str, secret_key: str | None
) -> PlaintextCache:
    """Where rotated plaintexts are cached in front of the anchor row: Redis (sealed with
    ``secret_key``) when there is one; without Redis, nothing when there is a secret key
    (every replica reads the sealed anchor row, so a revocation reaches them all), else
    this process's memory (each process rotates once per cycle on its own)."""
    if redis is None:
        return NoPlaintextCache() if usable_secret_key(secret_key) else LocalPlaintextCache()
    if not usable_secret_key(secret_key):
        return UnkeyedPlaintextCache(secret_key)
    return RedisPlaintextCache(redis, prefix=prefix, key=derive_key(secret_key))


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
