"""Bootstrap administration keys: the way in before any API token exists.

``watchword admin bootstrap`` prints a key once; only its SHA-256 is stored, compared in
constant time by the database index lookup on the digest (the digest of a 238-bit random
key leaks nothing useful through timing). A serving process caches the keys it verified
(by digest, never the key) so a request authenticated with one reads no database; a
revocation reaches every process's cache as a change (:mod:`watchword.storage.changes`).
"""

from __future__ import annotations

import secrets
import string
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.clock import Clock, utc
from watchword.errors import AuthenticationError, NotFound
from watchword.ids import new_id
from watchword.principal import Credential, CredentialSource, Principal, PrincipalKind
from watchword.secret import Secret, sha256_hex
from watchword.storage.changes import ADMIN_KEYS, Mark, changing, watch_for
from watchword.storage.tables import admin_keys

__all__ = [
    "KEY_PREFIX",
    "AdminKey",
    "AdminKeyAuthenticator",
    "create_admin_key",
    "list_admin_keys",
    "revoke_admin_key",
    "verify_admin_key",
]

KEY_PREFIX = "wwb_"
_ALPHABET = string.ascii_letters + string.digits
_BODY_LENGTH = 40


@dataclass(frozen=True, slots=True)
class AdminKey:
    id: str
    created_at: datetime
    revoked_at: datetime | None


async def create_admin_key(engine: AsyncEngine, clock: Clock) -> tuple[AdminKey, Secret]:
    plaintext = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LENGTH))
    key = AdminKey(id=new_id("adm"), created_at=clock.now(), revoked_at=None)
    async with engine.begin() as conn:
        await conn.execute(
            insert(admin_keys).values(
                id=key.id, key_hash=sha256_hex(plaintext), created_at=key.created_at
            )
        )
    return key, Secret(plaintext)


async def verify_admin_key(engine: AsyncEngine, presented: Secret) -> AdminKey:
    value = presented.reveal()
    if not value.startswith(KEY_PREFIX) or len(value) != len(KEY_PREFIX) + _BODY_LENGTH:
        raise AuthenticationError("credentials are not valid")
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(admin_keys).where(
                    admin_keys.c.key_hash == sha256_hex(value), admin_keys.c.revoked_at.is_(None)
                )
            )
        ).first()
    if row is None:
        raise AuthenticationError("credentials are not valid")
    return AdminKey(id=row.id, created_at=utc(row.created_at), revoked_at=None)


async def list_admin_keys(engine: AsyncEngine) -> list[AdminKey]:
    async with engine.connect() as conn:
        rows = (await conn.execute(select(admin_keys).order_by(admin_keys.c.id))).all()
    return [
        AdminKey(
            id=r.id,
            created_at=utc(r.created_at),
            revoked_at=utc(r.revoked_at) if r.revoked_at else None,
        )
        for r in rows
    ]


async def revoke_admin_key(engine: AsyncEngine, key_id: str, clock: Clock) -> None:
    """Revoke, and tell every process's admin-key cache (:mod:`watchword.storage.changes`)."""
    async with changing(engine, ADMIN_KEYS) as conn:
        result = await conn.execute(
            update(admin_keys)
            .where(admin_keys.c.id == key_id, admin_keys.c.revoked_at.is_(None))
            .values(revoked_at=clock.now())
        )
    if result.rowcount == 0:
        raise NotFound(f"no active admin key {key_id!r}")


class AdminKeyAuthenticator:
    """A bootstrap admin key (``Authorization: Bearer wwb_…``): a superuser.

    A verified key is cached by its digest for at most ``max_age``, and no longer than the
    change watch allows: a revocation in this process drops it at once, one elsewhere as
    soon as the change listener hears of it (or ``database.change_staleness`` without one).
    Failures are not cached (the failed-authentication limit bounds them).
    """

    __slots__ = ("_cache", "_engine", "_max_age", "_size")

    def __init__(
        self, engine: AsyncEngine, *, max_age: timedelta = timedelta(seconds=30), size: int = 256
    ) -> None:
        self._engine = engine
        self._max_age = max_age.total_seconds()
        self._size = size
        self._cache: OrderedDict[str, tuple[AdminKey, Mark]] = OrderedDict()

    def accepts(self, credential: Credential) -> bool:
        return (
            credential.source is CredentialSource.BEARER
            and credential.value.reveal().startswith(KEY_PREFIX)
        )

    async def authenticate(self, credential: Credential) -> Principal:
        watch = watch_for(self._engine)
        digest = sha256_hex(credential.value.reveal())
        hit = self._cache.get(digest)
        if hit is not None and watch.fresh(ADMIN_KEYS, hit[1], max_age=self._max_age):
            key = hit[0]
        else:
            mark = watch.mark(ADMIN_KEYS)
            try:
                key = await verify_admin_key(self._engine, credential.value)
            except AuthenticationError:
                self._cache.pop(digest, None)
                raise
            self._cache[digest] = (key, mark)
            self._cache.move_to_end(digest)
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return Principal(kind=PrincipalKind.ADMIN_KEY, id=key.id, superuser=True)
