"""Alembic, driven from code: upgrade, downgrade, current revision, and the start-up check.

The version table is ``watchword_schema_version`` so that watchword can share a database
with an application that has its own Alembic history.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.errors import DatabaseUnavailable, InvalidInput, SchemaOutdated
from watchword.storage.db import (
    check_sqlite_location,
    create_engine_for_url,
    describe_error,
    normalize_url,
    redacted_url,
)

__all__ = [
    "VERSION_TABLE",
    "SchemaStatus",
    "alembic_config",
    "current_revisions",
    "downgrade",
    "ensure_current",
    "head_revisions",
    "schema_status",
    "upgrade",
    "upgrade_engine",
]

VERSION_TABLE = "watchword_schema_version"
MIGRATIONS = Path(__file__).with_name("migrations")


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    current: frozenset[str]
    heads: frozenset[str]

    @property
    def is_current(self) -> bool:
        return self.current == self.heads


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would eat a '%' in a password.
    rendered = normalize_url(url).render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def head_revisions() -> frozenset[str]:
    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


def upgrade(url: str, revision: str = "heads") -> None:
    """Migrate the database at ``url`` up to ``revision`` (all heads by default).

    The one command that may create a SQLite file.
    """
    check_sqlite_location(url, may_create=True)
    _run_command(url, lambda cfg: command.upgrade(cfg, revision))


async def upgrade_engine(engine: AsyncEngine, revision: str = "heads") -> None:
    """Upgrade through an existing engine (needed for in-memory SQLite, usable anywhere)."""

    def run(connection: Connection) -> None:
        cfg = alembic_config(str(engine.url))
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailable(
            f"database {redacted_url(engine.url)} is unreachable or refused the migration: "
            f"{describe_error(exc)}"
        ) from exc


def downgrade(url: str, revision: str) -> None:
    """Migrate down to ``revision`` (``base`` removes everything, ``-1`` one step)."""
    check_sqlite_location(url, may_create=False)
    _run_command(url, lambda cfg: command.downgrade(cfg, revision))


def _run_command(url: str, action: Callable[[Config], None]) -> None:
    cfg = alembic_config(url)
    try:
        action(cfg)
    except CommandError as exc:
        raise InvalidInput(f"migration failed: {exc}") from exc
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailable(
            f"database {redacted_url(url)} is unreachable or refused the migration: "
            + describe_error(exc)
        ) from exc


def _current(connection: Connection) -> frozenset[str]:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return frozenset(context.get_current_heads())


async def schema_status(engine: AsyncEngine) -> SchemaStatus:
    try:
        async with engine.connect() as connection:
            current = await connection.run_sync(_current)
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailable(
            f"database {redacted_url(engine.url)} is unreachable: {describe_error(exc)}"
        ) from exc
    return SchemaStatus(current=current, heads=head_revisions())


async def ensure_current(engine: AsyncEngine) -> SchemaStatus:
    """Raise SchemaOutdated (naming the fix) unless the schema is at the newest revision."""
    status = await schema_status(engine)
    if not status.is_current:
        have = ", ".join(sorted(status.current)) or "empty"
        want = ", ".join(sorted(status.heads))
        raise SchemaOutdated(
            f"database schema is at {have}, watchword needs {want}; "
            "run `watchword db upgrade` (or start with WATCHWORD_ENV=development)"
        )
    return status


def current_revisions(url: str) -> SchemaStatus:
    """Synchronous wrapper for the CLI; a missing SQLite file is an error, not created."""
    check_sqlite_location(url, may_create=False)

    async def run() -> SchemaStatus:
        engine = create_engine_for_url(url)
        try:
            return await schema_status(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())
