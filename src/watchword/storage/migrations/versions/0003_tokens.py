"""Tokens: API tokens (hashed) and the anchor rows integration-token rotation locks.

Revision ID: 0003_tokens
Revises: 0002_locks
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_tokens"
down_revision = "0002_locks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(1), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("owner_issuer", sa.String(500), nullable=False),
        sa.Column("owner_subject", sa.String(255), nullable=False),
        sa.Column("organization_id", sa.String(64), nullable=True),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("permission", sa.String(2), nullable=False),
        sa.Column("display_prefix", sa.String(8), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotated_from", sa.String(40), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_owner", "api_tokens", ["owner_issuer", "owner_subject", "name"])
    op.create_index("ix_api_tokens_expires_at", "api_tokens", ["expires_at"])
    op.create_index("ix_api_tokens_rotated_from", "api_tokens", ["rotated_from"])
    op.create_table(
        "token_rotation_anchors",
        sa.Column("owner_issuer", sa.String(500), nullable=False),
        sa.Column("owner_subject", sa.String(255), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint(
            "owner_issuer", "owner_subject", "name", name="pk_token_rotation_anchors"
        ),
    )


def downgrade() -> None:
    op.drop_table("token_rotation_anchors")
    op.drop_index("ix_api_tokens_rotated_from", table_name="api_tokens")
    op.drop_index("ix_api_tokens_expires_at", table_name="api_tokens")
    op.drop_index("ix_api_tokens_owner", table_name="api_tokens")
    op.drop_table("api_tokens")
