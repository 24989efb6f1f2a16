"""Background refreshers' heartbeats (the fair share of shards).

Revision ID: 0009_refresher_members
Revises: 0008_session_refresh
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_refresher_members"
down_revision = "0008_session_refresh"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refresher_members",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_refresher_members"),
    )


def downgrade() -> None:
    op.drop_table("refresher_members")
