"""The rotation anchor row of an integration (owner, name): the lock every rotation of it
takes, and the token the last rotation made, sealed, where every replica finds it.

Why the database and not only a cache: the next worker through the lock must find the
token the previous one made, or it rotates again. A cache written before the commit hands
out a token other connections cannot see yet (``token_unknown``, then a negative-cached
refusal); one written after it may not be there yet when the next worker gets the lock.
The anchor row is written in the rotation's own transaction, so the next lock holder, on
any replica, reads it as committed, and a revocation clears it in *its* transaction.

The plaintext is sealed with AES-256-GCM under a key derived (HKDF,
:attr:`~watchword.tokens.keyring.KeyPurpose.ROTATION_ANCHOR`) from ``WATCHWORD_SECRET_KEY``;
the associated data binds the owner, the name and the token definition it was minted for
(``current_key``), so a sealed value copied to another row or definition does not open. A
database dump alone does not give live tokens. Without a secret key nothing is sealed here.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import ColumnElement, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from watchword.clock import utc
from watchword.observability.logging import get_logger
from watchword.secret import Secret
from watchword.tokens.model import Owner
from watchword.tokens.tables import token_rotation_anchors

__all__ = [
    "AnchorSeal",
    "AnchorState",
    "clear_current",
    "load_anchor",
    "lock_anchor",
    "save_current",
]

_NONCE_BYTES: Final = 12
log = get_logger("watchword.tokens")


@dataclass(frozen=True, slots=True)
class AnchorState:
    rotated_at: datetime | None
    current_key: str | None
    current_sealed: bytes | None


class AnchorSeal:
    """Seals and opens the current plaintext of an anchor row."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @staticmethod
    def _context(owner: Owner, name: str, current_key: str) -> bytes:
        return json.dumps(["anchor", owner.issuer, owner.subject, name, current_key]).encode()

    def seal(self, owner: Owner, name: str, current_key: str, token: Secret) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        context = self._context(owner, name, current_key)
        return nonce + self._aead.encrypt(nonce, token.reveal().encode(), context)

    def open(self, owner: Owner, name: str, current_key: str, sealed: bytes) -> Secret | None:
        try:
            plain = self._aead.decrypt(
                sealed[:_NONCE_BYTES],
                sealed[_NONCE_BYTES:],
                self._context(owner, name, current_key),
            )
        except (InvalidTag, ValueError):
            # Another secret key (the setting changed), or moved or tampered: rotate.
            log.warning("token_rotation_anchor_undecryptable")
            return None
        return Secret(plain.decode())


def _where(owner: Owner, name: str) -> tuple[ColumnElement[bool], ...]:
    t = token_rotation_anchors.c
    return (t.owner_issuer == owner.issuer, t.owner_subject == owner.subject, t.name == name)


async def lock_anchor(conn: AsyncConnection, owner: Owner, name: str) -> None:
    """Begin the transaction holding the (owner, name) lock until commit or rollback."""
    values = {"owner_issuer": owner.issuer, "owner_subject": owner.subject, "name": name}
    if conn.dialect.name == "postgresql":
        await conn.execute(
            postgresql.insert(token_rotation_anchors).values(values).on_conflict_do_nothing()
        )
        await conn.execute(
            select(token_rotation_anchors.c.name).where(*_where(owner, name)).with_for_update()
        )
        return
    # SQLite has one writer at a time: taking the write lock up front serializes every
    # rotation in the database file (busy_timeout queues the others).
    await conn.exec_driver_sql("BEGIN IMMEDIATE")
    await conn.execute(
        sqlite.insert(token_rotation_anchors).values(values).on_conflict_do_nothing()
    )


async def load_anchor(conn: AsyncConnection, owner: Owner, name: str) -> AnchorState | None:
    t = token_rotation_anchors.c
    row = (
        await conn.execute(
            select(t.rotated_at, t.current_key, t.current_sealed).where(*_where(owner, name))
        )
    ).first()
    if row is None:
        return None
    rotated_at = utc(row.rotated_at) if row.rotated_at is not None else None
    return AnchorState(rotated_at, row.current_key, row.current_sealed)


async def save_current(
    conn: AsyncConnection,
    owner: Owner,
    name: str,
    *,
    rotated_at: datetime,
    current_key: str | None,
    sealed: bytes | None,
) -> None:
    await conn.execute(
        update(token_rotation_anchors)
        .where(*_where(owner, name))
        .values(rotated_at=rotated_at, current_key=current_key, current_sealed=sealed)
    )


async def clear_current(conn: AsyncConnection, owner: Owner, name: str) -> None:
    """Forget the current token of (owner, name) (it was revoked): the next call rotates.
    The ``UPDATE`` also waits for a rotation holding the row, so it serializes with it."""
    await conn.execute(
        update(token_rotation_anchors)
        .where(*_where(owner, name))
        .values(current_key=None, current_sealed=None)
    )
