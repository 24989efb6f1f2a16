"""Rotation anchors keep the current integration token, sealed: ``current_key`` (which
token definition it was minted for) and ``current_sealed`` (AES-GCM under a key derived
from ``WATCHWORD_SECRET_KEY``), so every replica finds the token a rotation just made in the
database, with or without Redis.

Revision ID: 0006_rotation_anchor_current
Revises: 0005_token_lineage
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_rotation_anchor_current"
down_revision = "0005_token_lineage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("token_rotation_anchors") as batch:
        batch.add_column(sa.Column("current_key", sa.String(64), nullable=True))
        batch.add_column(sa.Column("current_sealed", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("token_rotation_anchors") as batch:
        batch.drop_column("current_sealed")
        batch.drop_column("current_key")
