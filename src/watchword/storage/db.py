"""Engines for the two supported databases.

SQLite (aiosqlite) is the embedded default; PostgreSQL (psycopg 3) is for production and
several replicas. The URL decides: ``sqlite+aiosqlite:///watchword.sqlite3`` or
``postgresql+psycopg://user@host/db``. Plain ``sqlite://`` and ``postgresql://`` URLs are
given their async driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from watchword.errors import ConfigurationError, DatabaseUnavailable
from watchword.observability.redaction import redact_text

__all__ = [
    "HOST_PORT_HINT",
    "check_sqlite_location",
    "create_engine_for_url",
    "describe_error",
    "normalize_url",
    "redacted_url",
    "sqlite_path",
]

HOST_PORT_HINT = (
    "its host and port cannot be read; the port must be a number and an IPv6 address goes "
    "in brackets (scheme://user@[::1]:5432/…)"
)

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and give it the async driver watchword uses for its dialect."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigurationError("database URL is not a valid URL") from exc
    except ValueError as exc:  # a port that is not a number, often an unbracketed IPv6 host
        raise ConfigurationError(f"database URL is not a valid URL: {HOST_PORT_HINT}") from exc
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigurationError(
            f"database URL scheme {parsed.drivername!r} is not supported; "
            "use sqlite+aiosqlite:///path or postgresql+psycopg://user@host/db"
        )
    return parsed.set(drivername=driver)


def redacted_url(url: str | URL) -> str:
    """The URL with its password and secret query parameters hidden, for logs and messages."""
    try:
        return redact_text(make_url(url).render_as_string(hide_password=False))
    except (ArgumentError, ValueError):
        return "<unparseable URL>"


def describe_error(exc: BaseException) -> str:
    """The first line of a driver error, credentials masked: safe for messages and logs."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    line = text.splitlines()[0] if text else type(orig).__name__
    return redact_text(line[:200])


def sqlite_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL; None for in-memory SQLite and for other databases."""
    parsed = normalize_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if parsed.query.get("uri") == "true" and database.startswith("file:"):
        if parsed.query.get("mode") == "memory":
            return None
        database = database.removeprefix("file:").partition("?")[0]
    return Path(database)


def check_sqlite_location(url: str | URL, *, may_create: bool) -> None:
    """Refuse, before connecting, a SQLite file that connecting would create or cannot open.

    sqlite3 creates a missing file on connect, so a command that needs an existing database
    (run from the wrong directory, say) would leave an empty one behind and fail on it; only
    ``db upgrade`` and development start-up (``may_create``) may create it. A missing
    directory would only get "unable to open database file", and aiosqlite's failed connect
    leaves its worker thread to report to an event loop that ``asyncio.run`` may already have
    closed ("Event loop is closed" tracebacks at the end of a CLI command).
    """
    path = sqlite_path(url)
    if path is None or path.exists():
        return
    elsewhere = (
        "point WATCHWORD_DATABASE_URL (or database.url in the --config file) at your database"
    )
    if not may_create:
        raise DatabaseUnavailable(
            f"database {redacted_url(url)} does not exist (no file {path.absolute()}); "
            f"{elsewhere}, or create it there with `watchword db upgrade`"
        )
    if not path.parent.is_dir():
        raise DatabaseUnavailable(
            f"database {redacted_url(url)}: directory {path.parent.absolute()} does not "
            f"exist; create it, or {elsewhere}"
        )


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    # WAL: readers never block the writer and a commit needs no fsync of the main file;
    # with synchronous=NORMAL a power loss may drop the newest commits but never corrupts
    # the database. It roughly triples lock hand-offs (benchmarks/locks). In-memory
    # databases keep their own journal mode.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine_for_url(
    url: str | URL, *, echo: bool = False, pool_size: int | None = None
) -> AsyncEngine:
    """Create an :class:`AsyncEngine`; in-memory SQLite shares one connection. ``pool_size``:
    connections a server pool keeps (SQLAlchemy's default, 5, when ``None``)."""
    parsed = normalize_url(url)
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"check_same_thread": False}
        engine = create_async_engine(parsed, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs["pool_pre_ping"] = True
    if pool_size is not None:
        kwargs["pool_size"] = pool_size
    kwargs["connect_args"] = {"connect_timeout": 5}
    return create_async_engine(parsed, **kwargs)
