"""Drawing new tokens: the only place a token's randomness comes from (``secrets``)."""

from __future__ import annotations

import secrets

from watchword.secret import Secret, sha256_hex
from watchword.tokens.format import BASE62, BODY_LENGTH, TokenKind, compose

__all__ = ["new_token", "token_hash"]


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
