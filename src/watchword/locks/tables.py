"""The lease table shared by the PostgreSQL and SQLite lock backends.

One row per key, kept after release so its ``fence`` keeps counting across releases
and restarts: a row is never deleted while anything may still hold a fence for it.
``holder`` and ``expires_at`` are NULL while the key is free; ``broken`` tells whether
the newest grant took over a lease that had expired without being released.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, SmallInteger, String, Table, false

from watchword.storage.tables import metadata

__all__ = ["lock_epochs", "lock_leases"]

lock_leases = Table(
    "lock_leases",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("holder", String(120), nullable=True),
    Column("fence", BigInteger, nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("broken", Boolean, nullable=False, server_default=false()),
)

# One row: the PostgreSQL backend's epoch counter, taken (durably) by every connection
# that grants without waiting for the WAL flush; see ``watchword.locks.postgres``.
lock_epochs = Table(
    "lock_epochs",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("epoch", BigInteger, nullable=False),
)
