"""A PostgreSQL database of the token tests' own, migrated to every head.

Not the shared ``pg_url`` database: the migration tests expect to find it empty.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import psycopg
import pytest

from watchword.storage.migrate import upgrade


@pytest.fixture(scope="session")
def tokens_pg_url(pg_dsn: str) -> Iterator[str]:
    name = f"ww_tokens_{secrets.token_hex(5)}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = dict(item.split("=", 1) for item in pg_dsn.split())
    url = f"postgresql+psycopg://{parts['user']}@{parts['host']}:{parts['port']}/{name}"
    upgrade(url)
    try:
        yield url
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
