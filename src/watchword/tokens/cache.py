"""The verification cache: what a token hash resolved to, so a hit needs no database.

Layers, looked at in order:

1. in-process, bounded (LRU), entries live ``token_verify_cache_ttl`` by the runtime's
   monotonic clock; a separate bounded negative cache remembers hashes that matched no
   token, so a flood of made-up (well-formed) tokens does not reach the database;
2. Redis when configured *and* ``WATCHWORD_SECRET_KEY`` is set: ``<prefix>tokens:v:<sha256>``
   holding the record as JSON behind an HMAC-SHA256 tag, expiring after the same TTL;
   shared by every replica.

A Redis entry carries authority (whoever it names, with its scopes), so Redis is not
trusted with it: each entry is authenticated with HMAC-SHA256 under a key derived (HKDF,
:class:`~watchword.tokens.keyring.KeyPurpose.VERIFY_CACHE`) from the secret key, over the
Redis key name, the token digest and the entry, which also carries the wall-clock time it
stops being valid (so a copy replayed after its TTL is refused too). An entry that is
unsigned, signed under another key, moved to another key, expired or unreadable is a
miss: logged (``token_cache_entry_rejected``) and counted
(``watchword_token_cache_rejected_total{reason}``); the database answers instead. Without
a usable secret key the Redis layer is not used at all (in-process caches only; the
services warn at start); invalidation messages still go through Redis, since dropping an
entry never grants anything.

Keys are SHA-256 digests, never the token. Revocation replaces the Redis entry with a
tombstone (for one TTL) and publishes the digest on ``<prefix>tokens:invalidate``;
replicas that listen drop their local entry at once, and any replica that missed the
message stops trusting its entry when the TTL runs out: the revocation bound is
``token_verify_cache_ttl``.

Invariants that keep the bound under races:

- a record read from the database *before* a revocation and put *after* it must not be
  cached: in-process, :meth:`VerifyCache.put` is refused when an invalidation happened
  since :meth:`VerifyCache.generation` was read; in Redis, entries are only created
  (``SET NX``), so the tombstone cannot be overwritten by such a late put;
- an entry copied from Redis into the process lives no longer than it had left in Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta
from enum import StrEnum

import redis.asyncio as aioredis

from watchword.clock import Clock
from watchword.observability.logging import get_logger
from watchword.storage.localcache import LocalTTLCache
from watchword.tokens.format import TokenKind
from watchword.tokens.metrics import TokenMetrics
from watchword.tokens.model import Owner, TokenRecord
from watchword.tokens.scope import Permission

__all__ = [
    "LocalTTLCache",
    "RejectReason",
    "VerifyCache",
    "open_entry",
    "record_from_json",
    "record_to_json",
    "seal_entry",
]

log = get_logger("watchword.tokens")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def record_to_json(record: TokenRecord) -> str:
    return json.dumps(
        {
            "id": record.id,
            "kind": record.kind.value,
            "name": record.name,
            "iss": record.owner.issuer,
            "sub": record.owner.subject,
            "org": record.organization_id,
            "scopes": sorted(record.scopes),
            "perm": record.permission.value,
            "prefix": record.display_prefix,
            "hash": record.token_hash,
            "created_at": _iso(record.created_at),
            "expires_at": _iso(record.expires_at),
            "last_used_at": _iso(record.last_used_at),
            "revoked_at": _iso(record.revoked_at),
            "rotated_from": record.rotated_from,
            "version": record.version,
            "parent": record.parent_id,
        },
        separators=(",", ":"),
    )


def record_from_json(raw: str | bytes) -> TokenRecord:
    d = json.loads(raw)
    created_at = _dt(d["created_at"])
    if created_at is None:
        raise ValueError("cached token record without created_at")
    return TokenRecord(
        id=d["id"],
        kind=TokenKind(d["kind"]),
        name=d["name"],
        owner=Owner(issuer=d["iss"], subject=d["sub"]),
        organization_id=d["org"],
        scopes=frozenset(d["scopes"]),
        permission=Permission(d["perm"]),
        display_prefix=d["prefix"],
        token_hash=d["hash"],
        created_at=created_at,
        expires_at=_dt(d["expires_at"]),
        last_used_at=_dt(d["last_used_at"]),
        revoked_at=_dt(d["revoked_at"]),
        rotated_from=d["rotated_from"],
        version=int(d["version"]),
        parent_id=d.get("parent"),
    )


_TOMBSTONE = b"-"  # a revoked digest's Redis entry: not JSON, so never read as a record
_ENTRY_VERSION = b"1"
_TAG_BYTES = 32


class RejectReason(StrEnum):
    """Why a Redis entry was not trusted (the ``reason`` label of the metric)."""

    UNSIGNED = "unsigned"  # not in the signed layout (e.g. plain JSON written by anyone)
    BAD_SIGNATURE = "bad_signature"  # tampered, moved to another key, or another secret key
    EXPIRED = "expired"  # authentic, but past the validity it was signed with (a replay)
    UNREADABLE = "unreadable"  # authentic, but not a record this version understands


def _tag(key: bytes, name: str, token_hash: str, body: bytes) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in (name.encode(), token_hash.encode()):
        mac.update(len(part).to_bytes(4, "big"))
        mac.update(part)
    mac.update(body)
    return mac.digest()


def seal_entry(
    key: bytes, name: str, token_hash: str, record: TokenRecord, valid_until: datetime
) -> bytes:
    """The Redis value of ``record`` under ``name``: version, tag, then the signed body
    (validity end in epoch milliseconds, a dot, the record as JSON)."""
    body = f"{int(valid_until.timestamp() * 1000)}.".encode() + record_to_json(record).encode()
    return _ENTRY_VERSION + _tag(key, name, token_hash, body) + body


def open_entry(
    key: bytes, name: str, token_hash: str, raw: bytes, now: datetime
) -> TokenRecord | RejectReason:
    """The record in ``raw`` if it is authentic for (``name``, ``token_hash``) and still
    valid at ``now``; else why not."""
    head = len(_ENTRY_VERSION) + _TAG_BYTES
    if len(raw) <= head or not raw.startswith(_ENTRY_VERSION):
        return RejectReason.UNSIGNED
    tag, body = raw[len(_ENTRY_VERSION) : head], raw[head:]
    if not hmac.compare_digest(tag, _tag(key, name, token_hash, body)):
        return RejectReason.BAD_SIGNATURE
    until_ms, _, record_json = body.partition(b".")
    try:
        if int(until_ms) <= int(now.timestamp() * 1000):
            return RejectReason.EXPIRED
        record = record_from_json(record_json)
    except (ValueError, KeyError, TypeError):
        return RejectReason.UNREADABLE
    if record.token_hash != token_hash:
        return RejectReason.BAD_SIGNATURE  # cannot happen with an authentic tag; belt and braces
    return record


class VerifyCache:
    """In-process positive and negative caches, plus the shared Redis layer if any."""

    __slots__ = (
        "_clock",
        "_generation",
        "_metrics",
        "_redis",
        "_redis_prefix",
        "_signing_key",
        "_ttl_ms",
        "local",
        "negative",
    )

    def __init__(
        self,
        clock: Clock,
        *,
        ttl_s: float,
        redis: aioredis.Redis | None,
        redis_prefix: str,
        signing_key: bytes | None = None,
        metrics: TokenMetrics | None = None,
        max_entries: int = 100_000,
        max_negative: int = 10_000,
    ) -> None:
        """``signing_key`` (from :func:`watchword.tokens.keyring.derive_purpose_key`) turns
        the shared Redis layer on; without it Redis only carries invalidations."""
        self.local: LocalTTLCache[TokenRecord] = LocalTTLCache(
            clock, ttl_s=ttl_s, max_entries=max_entries
        )
        self.negative: LocalTTLCache[bool] = LocalTTLCache(
            clock, ttl_s=ttl_s, max_entries=max_negative
        )
        self._clock = clock
        self._redis = redis
        self._redis_prefix = redis_prefix
        self._signing_key = signing_key
        self._metrics = metrics
        self._ttl_ms = max(1, int(ttl_s * 1000))
        self._generation = 0

    @property
    def shared(self) -> bool:
        """Whether verified records are shared through Redis (Redis and a signing key)."""
        return self._redis is not None and self._signing_key is not None

    def generation(self) -> int:
        """A counter bumped by every invalidation; read it before a database look-up and
        pass it to :meth:`put`, so a record read before a revocation is not cached."""
        return self._generation

    @property
    def channel(self) -> str:
        return f"{self._redis_prefix}tokens:invalidate"

    def _key(self, token_hash: str) -> str:
        return f"{self._redis_prefix}tokens:v:{token_hash}"

    async def get_shared(self, token_hash: str) -> TokenRecord | None:
        if self._redis is None or self._signing_key is None:
            return None
        generation = self._generation
        name = self._key(token_hash)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.get(name)
                pipe.pttl(name)
                raw, pttl = await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            log.warning("token_cache_redis_unavailable", error_type=type(exc).__name__)
            return None
        if raw is None or raw == _TOMBSTONE:
            return None
        opened = open_entry(
            self._signing_key,
            name,
            token_hash,
            raw if isinstance(raw, bytes) else str(raw).encode(),
            self._clock.now(),
        )
        if isinstance(opened, RejectReason):
            log.warning("token_cache_entry_rejected", reason=opened.value)
            if self._metrics is not None:
                self._metrics.cache_rejected.labels(opened.value).inc()
            return None
        record = opened
        if generation == self._generation:
            # No longer than the Redis entry itself has left (-1/-2: no expiry / gone).
            left_s = pttl / 1000 if isinstance(pttl, int) and pttl > 0 else 0.0
            self.local.put(token_hash, record, ttl_s=left_s)
        return record

    async def put(self, record: TokenRecord, *, generation: int | None = None) -> None:
        """Cache ``record``, unless an invalidation happened since ``generation``."""
        if generation is not None and generation != self._generation:
            return
        self.local.put(record.token_hash, record)
        if self._redis is None or self._signing_key is None:
            return
        name = self._key(record.token_hash)
        valid_until = self._clock.now() + timedelta(milliseconds=self._ttl_ms)
        value = seal_entry(self._signing_key, name, record.token_hash, record, valid_until)
        try:
            await self._redis.set(name, value, px=self._ttl_ms, nx=True)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("token_cache_redis_unavailable", error_type=type(exc).__name__)

    async def invalidate(self, token_hash: str) -> None:
        """Forget ``token_hash`` here, in Redis, and (by pub/sub) on listening replicas.

        The Redis entry becomes a tombstone for one TTL rather than going away, so that a
        record some replica read before this invalidation cannot be put back there."""
        self.drop_local(token_hash)
        if self._redis is None:
            return
        try:
            await self._redis.set(self._key(token_hash), _TOMBSTONE, px=self._ttl_ms)
            await self._redis.publish(self.channel, token_hash)
        except (aioredis.RedisError, OSError) as exc:
            log.warning("token_cache_redis_unavailable", error_type=type(exc).__name__)

    def drop_local(self, token_hash: str) -> None:
        self._generation += 1
        self.local.pop(token_hash)
        self.negative.pop(token_hash)

    def clear_local(self) -> None:
        """Forget everything held in-process (after missing invalidation messages)."""
        self._generation += 1
        self.local.clear()
        self.negative.clear()
