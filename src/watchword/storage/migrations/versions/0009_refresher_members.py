"""Background refreshers' heartbeats (the fair share of shards); the due index in due order.

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
    op.drop_index("ix_sessions_due", table_name="sessions")
    op.create_index("ix_sessions_due_at", "sessions", ["refresh_due_at"])
    op.create_table(
        "refresher_members",
        sa.Column("id", sa.String(200), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_refresher_members"),
    )


def downgrade() -> None:
    op.drop_table("refresher_members")
    op.drop_index("ix_sessions_due_at", table_name="sessions")
    op.create_index("ix_sessions_due", "sessions", ["shard", "refresh_due_at"])
