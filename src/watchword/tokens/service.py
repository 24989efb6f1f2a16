"""The token service: verify, create, list, get, rotate and revoke API tokens.

One instance per process (built in :mod:`watchword.services`), holding the verification
cache and the metrics. The API and the CLI both call it. Verification order, cheapest first:

1. format and checksum, offline (:class:`TokenMalformed`, no I/O at all);
2. SHA-256 of the token, looked up in the in-process caches (positive, then negative);
3. the Redis layer when configured;
4. the database, by the unique index on ``token_hash``; the digest read back is compared
   with the presented one in constant time.

Steps 2 and 3 make **no SQL statement**. ``last_used_at`` is written only on a database
read (step 4), and only when the stored value is over a minute old, so it is exact to
within ``token_verify_cache_ttl`` + 1 minute and costs at most one write per token per
minute across all replicas.

Error details are generic on purpose: a malformed or unknown token says only that the
credential is not valid. ``token_expired`` and ``token_revoked`` are only ever answered
for a token whose hash matched a stored one, which already proves the caller holds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from watchword.clock import Clock
from watchword.errors import (
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    NotFound,
    TokenExpired,
    TokenMalformed,
    TokenRevoked,
    TokenUnknown,
    Unavailable,
)
from watchword.ids import is_id
from watchword.observability.logging import get_logger
from watchword.secret import Secret, constant_time_equal, sha256_hex
from watchword.storage.optimistic import update_versioned
from watchword.tokens import store
from watchword.tokens.anchor import clear_current
from watchword.tokens.cache import VerifyCache
from watchword.tokens.format import TokenKind, parse
from watchword.tokens.metrics import TokenMetrics
from watchword.tokens.mint import TOKEN_ID_PREFIX, mint, token_hash
from watchword.tokens.model import NewToken, Owner, TokenRecord, TokenState
from watchword.tokens.rotation import (
    MAX_LIFETIME,
    Lifetime,
    latest_expiry,
    retiring_expires_at,
    successor_expires_at,
)
from watchword.tokens.scope import normalize_scopes
from watchword.tokens.tables import api_tokens

__all__ = [
    "LAST_USED_INTERVAL",
    "IssuedToken",
    "NewToken",
    "TokenPage",
    "ForgetRotation",
    "TokenService",
]

LAST_USED_INTERVAL: Final = timedelta(minutes=1)
MAX_PAGE: Final = 200
_UNKNOWN_DETAIL: Final = "credentials are not valid"
log = get_logger("watchword.tokens")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just minted: the only moment its plaintext exists outside the caller."""

    record: TokenRecord
    token: Secret


@dataclass(frozen=True, slots=True)
class TokenPage:
    items: tuple[TokenRecord, ...]
    next_cursor: str | None


ForgetRotation = Callable[[TokenRecord], Awaitable[None]]


class TokenService:
    """Verify, create, list, get, rotate and revoke tokens (see the module docstring).

    ``forget_rotation`` is called when an integration token is revoked, so the rotator
    stops handing it out (wired in :mod:`watchword.services`).
    """

    __slots__ = (
        "_clock",
        "_engine",
        "_forget_rotation",
        "_grace",
        "_rotation_ttl",
        "cache",
        "metrics",
    )

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        cache: VerifyCache,
        metrics: TokenMetrics,
        grace_period: timedelta,
        rotation_cache_ttl: timedelta,
        forget_rotation: ForgetRotation | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self.cache = cache
        self.metrics = metrics
        self._grace = grace_period
        self._rotation_ttl = rotation_cache_ttl
        self._forget_rotation = forget_rotation

    @asynccontextmanager
    async def _connection(self, *, begin: bool = False) -> AsyncIterator[AsyncConnection]:
        """A connection (in a transaction if ``begin``); driver and pool errors become
        :class:`DatabaseUnavailable` (only the class name: their text can hold the URL)."""
        engine = self._engine
        try:
            async with engine.begin() if begin else engine.connect() as conn:
                yield conn
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseUnavailable(f"token store failed ({type(exc).__name__})") from exc

    # --- verification --------------------------------------------------------------------

    async def verify(self, presented: Secret) -> TokenRecord:
        """The active token ``presented`` is, or an :class:`AuthenticationError` subclass."""
        value = presented.reveal()
        try:
            parse(value)
        except TokenMalformed:
            self.metrics.verifications.labels("malformed", "none").inc()
            raise
        digest = sha256_hex(value)
        record, source = await self._lookup(digest)
        if record is None:
            self.metrics.verifications.labels("unknown", source).inc()
            raise TokenUnknown(_UNKNOWN_DETAIL)
        state = record.state_at(self._clock.now())
        self.metrics.verifications.labels(
            state.value if state is not TokenState.ACTIVE else "ok", source
        ).inc()
        if state is TokenState.REVOKED:
            raise TokenRevoked("the token has been revoked")
        if state is TokenState.EXPIRED:
            raise TokenExpired("the token has expired")
        return record

    async def _lookup(self, digest: str) -> tuple[TokenRecord | None, str]:
        cached = self.cache.local.get(digest)
        if cached is not None:
            return cached, "local"
        if self.cache.negative.get(digest):
            return None, "negative"
        shared = await self.cache.get_shared(digest)
        if shared is not None:
            return shared, "redis"
        now = self._clock.now()
        generation = self.cache.generation()
        async with self._connection() as conn:
            record = await store.load_by_hash(conn, digest)
            if record is None or not constant_time_equal(record.token_hash, digest):
                self.cache.negative.put(digest, True)
                return None, "database"
            if record.state_at(now) is TokenState.ACTIVE and (
                record.last_used_at is None or record.last_used_at < now - LAST_USED_INTERVAL
            ):
                await store.touch_last_used(conn, record.id, now, now - LAST_USED_INTERVAL)
                await conn.commit()
        await self.cache.put(record, generation=generation)
        return record, "database"

    # --- management ----------------------------------------------------------------------

    async def create(self, spec: NewToken) -> IssuedToken:
        now = self._clock.now()
        name = spec.name.strip()
        if not name or len(name) > 200:
            raise InvalidInput("a token name is 1 to 200 characters", pointer="/name")
        if spec.expires_at is not None and spec.expires_at <= now:
            raise InvalidInput("expires_at must be in the future", pointer="/expires_at")
        if spec.kind is TokenKind.PERSONAL and spec.organization_id is not None:
            raise InvalidInput(
                "a personal token belongs to no organization", pointer="/organization_id"
            )
        if spec.expires_at is not None and spec.expires_at > latest_expiry(now):
            raise InvalidInput(
                f"expires_at must be within {MAX_LIFETIME.days} days (ten years) from now",
                pointer="/expires_at",
            )
        expires_at = spec.expires_at
        if expires_at is None and spec.kind is TokenKind.INTEGRATION:
            expires_at = self._successor_expiry(spec.kind, None, now)
        token, record = mint(
            spec.kind,
            name=name,
            owner=spec.owner,
            organization_id=spec.organization_id,
            scopes=normalize_scopes(spec.scopes),
            permission=spec.permission,
            now=now,
            expires_at=expires_at,
            parent_id=spec.parent_id,
        )
        async with self._connection(begin=True) as conn:
            if spec.parent_id is not None and not await store.parent_usable(
                conn, spec.parent_id, now
            ):
                raise TokenRevoked("the token has been revoked")
            await store.insert_token(conn, record)
        return IssuedToken(record=record, token=token)

    async def get(self, token_id: str) -> TokenRecord:
        async with self._connection() as conn:
            record = await store.load_by_id(conn, token_id)
        if record is None:
            raise NotFound(f"no token {token_id!r}")
        return record

    async def list(
        self,
        *,
        owner: Owner | None,
        cursor: str | None = None,
        limit: int = 50,
        organization_id: str | None = None,
    ) -> TokenPage:
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit is 1 to {MAX_PAGE}", pointer="/limit")
        if cursor is not None and not is_id(cursor, TOKEN_ID_PREFIX):
            # The cursor is the last id of the previous page; anything else would silently
            # restart (or skip) the listing.
            raise InvalidInput("the cursor is not one this API returned", pointer="/cursor")
        async with self._connection() as conn:
            items = await store.list_tokens(
                conn,
                owner=owner,
                after_id=cursor,
                limit=limit + 1,
                organization_id=organization_id,
            )
        more = len(items) > limit
        page = tuple(items[:limit])
        return TokenPage(items=page, next_cursor=page[-1].id if more and page else None)

    async def revoke(self, token_id: str) -> TokenRecord:
        """Revoke now, with everything the token made: the tokens it created (``parent_id``)
        and its successors (``rotated_from``), recursively, in one transaction; then drop
        every revoked digest from the caches of every replica. The rows stay (for audit)
        until the janitor's retention ends."""
        now = self._clock.now()
        async with self._connection(begin=True) as conn:
            root = await store.load_by_id(conn, token_id)
            if root is None:
                raise NotFound(f"no token {token_id!r}")
            if root.kind is TokenKind.INTEGRATION:
                # First, so a rotation of it holding the anchor finishes before the subtree
                # is read (and its successor is revoked too), or starts after (and finds
                # the anchor cleared).
                await clear_current(conn, root.owner, root.name)
            subtree = await store.revoke_subtree(conn, token_id, now)
            for integration in {
                (r.owner, r.name) for r in subtree[1:] if r.kind is TokenKind.INTEGRATION
            }:
                await clear_current(conn, *integration)
        await self.forget_revoked(subtree)
        return subtree[0]

    async def revoke_owned_in(self, conn: AsyncConnection, owner: Owner) -> tuple[TokenRecord, ...]:
        """Revoke every active token of ``owner`` inside the caller's transaction (e.g. the
        one deleting that owner); call :meth:`forget_revoked` with the result after commit."""
        try:
            revoked = tuple(await store.revoke_owned(conn, owner, self._clock.now()))
            for name in {r.name for r in revoked if r.kind is TokenKind.INTEGRATION}:
                await clear_current(conn, owner, name)  # no replica hands them out again
            return revoked
        except (SQLAlchemyError, OSError) as exc:
            raise DatabaseUnavailable(f"token store failed ({type(exc).__name__})") from exc

    async def forget_revoked(self, records: Sequence[TokenRecord]) -> None:
        """Drop revoked tokens from every cache (this process, Redis, other replicas)."""
        for record in records:
            await self.cache.invalidate(record.token_hash)
            if record.kind is TokenKind.INTEGRATION:
                await self._forget_rotation_cache(record)

    async def _forget_rotation_cache(self, record: TokenRecord) -> None:
        if self._forget_rotation is None:
            return
        try:
            await self._forget_rotation(record)
        except Unavailable as exc:
            # The revocation stands; the rotation cache then hands the dead token out
            # until token_rotation_cache_ttl, as if nothing had been forgotten.
            log.warning("token_rotation_cache_not_forgotten", code=exc.code)

    async def find_presented(self, presented: Secret) -> TokenRecord | None:
        """The stored token ``presented`` is, whatever its state; ``None`` if none."""
        try:
            parse(presented.reveal())
        except TokenMalformed:
            return None
        async with self._connection() as conn:
            return await store.load_by_hash(conn, token_hash(presented))

    async def rotate(self, token_id: str, *, not_after: datetime | None = None) -> IssuedToken:
        """Mint a successor with the same owner, scopes and name; the old token stays
        valid for ``token_grace_period``. A token is rotated once: a second rotation of
        it (or a concurrent one) is a :class:`Conflict`. ``not_after`` caps the successor's
        expiry (a token rotating another never hands out one that outlives itself)."""
        now = self._clock.now()
        grace = self._grace
        async with self._connection(begin=True) as conn:
            old = await store.load_by_id(conn, token_id)
            if old is None:
                raise NotFound(f"no token {token_id!r}")
            state = old.state_at(now)
            if state is not TokenState.ACTIVE:
                raise Conflict(f"token {token_id!r} is {state.value} and cannot be rotated")
            if await store.successor_of(conn, token_id) is not None:
                raise Conflict(f"token {token_id!r} was already rotated")
            await update_versioned(
                conn,
                api_tokens,
                api_tokens.c.id == token_id,
                read_version=old.version,
                values={"expires_at": retiring_expires_at(old.expires_at, now, grace)},
            )
            lifetime = Lifetime(old.id, old.created_at, old.expires_at, old.revoked_at)
            expires_at = self._successor_expiry(old.kind, lifetime, now)
            if not_after is not None and (expires_at is None or expires_at > not_after):
                expires_at = not_after
            issued = self._successor(old, now, expires_at)
            await store.insert_token(conn, issued.record)
        await self.cache.invalidate(old.token_hash)
        return issued

    def _successor_expiry(
        self, kind: TokenKind, replaced: Lifetime | None, now: datetime
    ) -> datetime | None:
        return successor_expires_at(
            kind, replaced, now, cache_ttl=self._rotation_ttl, grace=self._grace
        )

    def _successor(
        self, old: TokenRecord, now: datetime, expires_at: datetime | None
    ) -> IssuedToken:
        token, record = mint(
            old.kind,
            name=old.name,
            owner=old.owner,
            # A personal token belongs to no organization: a label from before that rule
            # is not carried over to the successor.
            organization_id=None if old.kind is TokenKind.PERSONAL else old.organization_id,
            scopes=old.scopes,
            permission=old.permission,
            now=now,
            expires_at=expires_at,
            rotated_from=old.id,
        )
        return IssuedToken(record=record, token=token)
