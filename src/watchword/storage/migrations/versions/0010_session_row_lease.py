"""The refresh-once lock of a session is its own row: a lease beside the intent; the due index
carries the slot (a replica's shard filter is applied inside the index).

Revision ID: 0010_session_row_lease
Revises: 0009_refresher_members
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_session_row_lease"
down_revision = "0009_refresher_members"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("lease_holder", sa.String(200), nullable=True))
    op.drop_index("ix_sessions_due_at", table_name="sessions")
    op.create_index("ix_sessions_due_at", "sessions", ["refresh_due_at", "shard"])
    op.create_index(
        "ix_sessions_intent_lease",
        "sessions",
        ["lease_until"],
        postgresql_where=sa.text("intent_fence IS NOT NULL"),
        sqlite_where=sa.text("intent_fence IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_intent_lease", table_name="sessions")
    op.drop_index("ix_sessions_due_at", table_name="sessions")
    op.create_index("ix_sessions_due_at", "sessions", ["refresh_due_at"])
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("lease_holder")
        batch.drop_column("lease_until")
