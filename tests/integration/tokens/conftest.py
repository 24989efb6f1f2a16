"""A PostgreSQL database of the token tests' own, migrated to every head.

Not the shared ``pg_url`` database: the migration tests expect to find it empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from watchword.storage.migrate import upgrade

if TYPE_CHECKING:
    from tests.conftest import PgDatabases


@pytest.fixture(scope="session")
def tokens_pg_url(pg_databases: PgDatabases) -> str:
    url = pg_databases.create("ww_tokens")
    upgrade(url)
    return url
