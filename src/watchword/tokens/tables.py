"""Tables of API tokens.

``api_tokens`` keeps one row per token, found by the SHA-256 of the token
(``token_hash``, unique index); the plaintext is never stored. ``scopes`` is a
space-separated list of ``resource:action`` names (OAuth's own scope syntax).

``token_rotation_anchors`` has one row per (owner, name) of automatically rotated
tokens. Rotation locks that row (``SELECT … FOR UPDATE``) rather than the tokens, so
the very first rotation, when there is no token to lock yet, is serialized too; the row
is created with ``INSERT … ON CONFLICT DO NOTHING`` in the same transaction. It also keeps
the current token's plaintext, sealed (:mod:`watchword.tokens.anchor`).
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, String, Table, Text

from watchword.storage.tables import metadata

__all__ = ["api_tokens", "token_rotation_anchors"]

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("kind", String(1), nullable=False),
    Column("name", String(200), nullable=False),
    Column("owner_issuer", String(500), nullable=False),
    Column("owner_subject", String(255), nullable=False),
    Column("organization_id", String(64), nullable=True),
    Column("scopes", Text, nullable=False),
    Column("permission", String(2), nullable=False),
    Column("display_prefix", String(8), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("rotated_from", String(40), nullable=True),
    Column("version", Integer, nullable=False, server_default="1"),
    # The token that created this one (POST /v1/tokens with a token credential): revoking
    # a token revokes its children, as it does its successors (``rotated_from``).
    Column("parent_id", String(40), nullable=True),
    Index("ix_api_tokens_owner", "owner_issuer", "owner_subject", "name"),
    Index("ix_api_tokens_expires_at", "expires_at"),
    Index("ix_api_tokens_rotated_from", "rotated_from"),
    Index("ix_api_tokens_parent_id", "parent_id"),
)

token_rotation_anchors = Table(
    "token_rotation_anchors",
    metadata,
    Column("owner_issuer", String(500), primary_key=True),
    Column("owner_subject", String(255), primary_key=True),
    Column("name", String(200), primary_key=True),
    Column("rotated_at", DateTime(timezone=True), nullable=True),
    # The token the last rotation made: for which definition (the rotation-cache key) and
    # its plaintext sealed with AES-GCM (key derived from WATCHWORD_SECRET_KEY), so every
    # replica finds it here; cleared by a revocation in the same transaction.
    Column("current_key", String(64), nullable=True),
    Column("current_sealed", LargeBinary, nullable=True),
)
