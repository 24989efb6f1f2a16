"""Where the current plaintext of a rotated integration token is cached.

The rotation cache *is* a secret store (seed 001's caveat): whoever reads it can act as
the integration. In-process it stays in memory; in Redis it is sealed with AES-GCM under
a key derived (HKDF-SHA256) from the ``secret_key`` setting, with the Redis key as
associated data, so a value copied to another key or owner does not open.

Each value carries ``cached_at`` from the runtime's clock; freshness is decided by the
pure rule :func:`watchword.tokens.rotation.cached_value_fresh`, and Redis also expires
the key after the TTL in real time.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Protocol

import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from watchword.errors import RedisUnavailable
from watchword.observability.logging import get_logger
from watchword.secret import Secret
from watchword.tokens.keyring import MIN_SECRET_KEY_LENGTH, KeyPurpose, derive_purpose_key
from watchword.tokens.model import Owner
from watchword.tokens.scope import Permission

__all__ = [
    "MIN_SECRET_KEY_LENGTH",
    "CachedPlaintext",
    "LocalPlaintextCache",
    "NoPlaintextCache",
    "PlaintextCache",
    "RedisPlaintextCache",
    "UnkeyedPlaintextCache",
    "cache_key",
    "derive_key",
]

_NONCE_BYTES: Final = 12
log = get_logger("watchword.tokens")


@dataclass(frozen=True, slots=True)
class CachedPlaintext:
    token: Secret
    cached_at: datetime


class PlaintextCache(Protocol):
    async def load(self, key: str) -> CachedPlaintext | None: ...

    async def save(self, key: str, value: CachedPlaintext, ttl: timedelta) -> None: ...

    async def forget(self, key: str) -> None: ...


def cache_key(
    owner: Owner,
    name: str,
    *,
    scopes: frozenset[str],
    permission: Permission,
    organization_id: str | None,
) -> str:
    """A stable key for everything that defines an integration token (owner, name, scopes,
    permission, organization), so a caller asking for a narrow token is never handed a
    broader one cached for the same (owner, name); no subject id in Redis key names."""
    parts = (
        owner.issuer,
        owner.subject,
        name,
        " ".join(sorted(scopes)),
        permission.value,
        organization_id or "",
    )
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()


class LocalPlaintextCache:
    """One process's cache (no Redis): a dict; stale values are ignored by the caller."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[str, CachedPlaintext] = {}

    async def load(self, key: str) -> CachedPlaintext | None:
        return self._data.get(key)

    async def save(self, key: str, value: CachedPlaintext, ttl: timedelta) -> None:
        self._data[key] = value

    async def forget(self, key: str) -> None:
        self._data.pop(key, None)


class NoPlaintextCache:
    """No cache in front of the anchor row (no Redis, a secret key): every call reads the
    sealed current token from the database, so a revocation reaches every replica."""

    __slots__ = ()

    async def load(self, key: str) -> CachedPlaintext | None:
        return None

    async def save(self, key: str, value: CachedPlaintext, ttl: timedelta) -> None:
        return

    async def forget(self, key: str) -> None:
        return


def derive_key(secret_key: str | None) -> bytes:
    """The AES-256 key for Redis values; :class:`ConfigurationError` if the setting is
    missing or too short."""
    return derive_purpose_key(secret_key, KeyPurpose.ROTATION_CACHE)


class UnkeyedPlaintextCache:
    """Redis without a usable ``secret_key``: rotating an integration token is a
    :class:`ConfigurationError` naming the setting; nothing else needs the key."""

    __slots__ = ("_secret_key",)

    def __init__(self, secret_key: str | None) -> None:
        self._secret_key = secret_key

    async def load(self, key: str) -> CachedPlaintext | None:
        derive_key(self._secret_key)  # raises: the key is missing or too short
        return None

    async def save(self, key: str, value: CachedPlaintext, ttl: timedelta) -> None:
        derive_key(self._secret_key)

    async def forget(self, key: str) -> None:
        return  # nothing can have been saved


class RedisPlaintextCache:
    """Shared by every replica; values sealed with AES-GCM."""

    __slots__ = ("_aead", "_prefix", "_redis")

    def __init__(self, redis: aioredis.Redis, *, prefix: str, key: bytes) -> None:
        self._redis = redis
        self._prefix = prefix
        self._aead = AESGCM(key)

    def _name(self, key: str) -> str:
        return f"{self._prefix}tokens:rot:{key}"

    async def load(self, key: str) -> CachedPlaintext | None:
        name = self._name(key)
        try:
            raw = await self._redis.get(name)
        except (aioredis.RedisError, OSError) as exc:
            raise _unavailable(exc) from exc
        if raw is None:
            return None
        sealed: bytes = raw if isinstance(raw, bytes) else raw.encode()
        try:
            plain = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], name.encode())
        except (InvalidTag, ValueError):
            # Sealed under another secret_key (rotated setting) or tampered: a miss.
            log.warning("token_rotation_cache_undecryptable")
            return None
        try:
            data = json.loads(plain)
            return CachedPlaintext(
                token=Secret(data["t"]), cached_at=datetime.fromisoformat(data["at"])
            )
        except (ValueError, KeyError, TypeError):
            # Authenticated but not ours to read (another version's layout): a miss.
            log.warning("token_rotation_cache_unreadable")
            return None

    async def save(self, key: str, value: CachedPlaintext, ttl: timedelta) -> None:
        name = self._name(key)
        nonce = os.urandom(_NONCE_BYTES)
        plain = json.dumps({"t": value.token.reveal(), "at": value.cached_at.isoformat()})
        sealed = nonce + self._aead.encrypt(nonce, plain.encode(), name.encode())
        try:
            await self._redis.set(name, sealed, px=max(1, int(ttl.total_seconds() * 1000)))
        except (aioredis.RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def forget(self, key: str) -> None:
        try:
            await self._redis.delete(self._name(key))
        except (aioredis.RedisError, OSError) as exc:
            raise _unavailable(exc) from exc


def _unavailable(exc: BaseException) -> RedisUnavailable:
    # Only the class name: a Redis error's text can carry the URL (and its password).
    return RedisUnavailable(f"the rotation cache in Redis failed ({type(exc).__name__})")
