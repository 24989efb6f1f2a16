"""Table definitions shared by every part of watchword.

Each part defines its own tables on :data:`metadata` (for example ``watchword.locks.tables``);
:func:`load_all` imports them so Alembic and tests see the whole schema.
"""

from __future__ import annotations

import importlib

from sqlalchemy import Column, DateTime, MetaData, String, Table

__all__ = ["TABLE_MODULES", "admin_keys", "load_all", "metadata"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Bootstrap administration keys: shown once at creation, only the SHA-256 is stored.
admin_keys = Table(
    "admin_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Modules that define tables on ``metadata``; a module missing from the checkout is skipped.
TABLE_MODULES: tuple[str, ...] = (
    "watchword.locks.tables",
    "watchword.tokens.tables",
    "watchword.rbac.tables",
    "watchword.authz.tables",
    "watchword.sessions.tables",
)


def load_all() -> MetaData:
    for name in TABLE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return metadata
