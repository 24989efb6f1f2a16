"""Sessions kept fresh: refresh state, the stored due time by shard, the redeem intent.

Revision ID: 0008_session_refresh
Revises: 0007_sessions
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_session_refresh"
down_revision = "0007_sessions"
branch_labels = None
depends_on = None


def _columns() -> list[sa.Column[object]]:
    return [
        sa.Column("state", sa.String(20), server_default="active", nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column("shard", sa.Integer(), server_default="0", nullable=False),
        sa.Column("refresh_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refresh_failures", sa.Integer(), server_default="0", nullable=False),
        sa.Column("retry_after", sa.DateTime(timezone=True), nullable=True),
        sa.Column("userinfo_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("intent_fence", sa.BigInteger(), nullable=True),
        sa.Column("intent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fence", sa.BigInteger(), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        for column in _columns():
            batch.add_column(column)
    op.create_index("ix_sessions_due", "sessions", ["shard", "refresh_due_at"])


def downgrade() -> None:
    op.drop_index("ix_sessions_due", table_name="sessions")
    with op.batch_alter_table("sessions") as batch:
        for column in reversed(_columns()):
            batch.drop_column(column.name)
