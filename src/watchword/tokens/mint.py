"""Drawing new tokens: the only place a token's randomness comes from (``secrets``)."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Final

from watchword.ids import new_id
from watchword.secret import Secret, sha256_hex
from watchword.tokens.format import BASE62, BODY_LENGTH, TokenKind, compose, display_prefix
from watchword.tokens.model import Owner, TokenRecord
from watchword.tokens.scope import Permission

__all__ = ["TOKEN_ID_PREFIX", "mint", "new_token", "token_hash"]

TOKEN_ID_PREFIX: Final = "tok"  # noqa: S105 - not a secret: ids are ``tok_<ULID>``


def new_token(kind: TokenKind) -> Secret:
    """A fresh token of ``kind``; 178 bits from the OS CSPRNG."""
    body = "".join(secrets.choice(BASE62) for _ in range(BODY_LENGTH))
    return Secret(compose(kind, body))


def token_hash(token: Secret) -> str:
    """What is stored and looked up: hex SHA-256 of the whole token.

    A plain (unkeyed) hash is enough: the token has 178 random bits, so there is no
    dictionary to try and a stolen table of hashes cannot be reversed.
    """
    return sha256_hex(token.reveal())


def mint(
    kind: TokenKind,
    *,
    name: str,
    owner: Owner,
    organization_id: str | None,
    scopes: frozenset[str],
    permission: Permission,
    now: datetime,
    expires_at: datetime | None,
    rotated_from: str | None = None,
    parent_id: str | None = None,
) -> tuple[Secret, TokenRecord]:
    """A new token and the record that stores it (its hash and display prefix, never it)."""
    token = new_token(kind)
    record = TokenRecord(
        id=new_id(TOKEN_ID_PREFIX),
        kind=kind,
        name=name,
        owner=owner,
        organization_id=organization_id,
        scopes=scopes,
        permission=permission,
        display_prefix=display_prefix(token.reveal()),
        token_hash=token_hash(token),
        created_at=now,
        expires_at=expires_at,
        last_used_at=None,
        revoked_at=None,
        rotated_from=rotated_from,
        version=1,
        parent_id=parent_id,
    )
    return token, record
