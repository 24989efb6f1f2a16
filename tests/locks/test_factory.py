"""Choosing a backend from a URL (no connection is made while choosing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchword.errors import ConfigurationError
from watchword.locks import (
    MemoryBackend,
    PostgresBackend,
    RedisBackend,
    SQLiteBackend,
    open_backend,
)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("memory://", MemoryBackend),
        ("redis://127.0.0.1:6379/0", RedisBackend),
        ("rediss://cache.example:6380/1", RedisBackend),
        ("postgresql://u@db.example/ww", PostgresBackend),
        ("postgresql+psycopg://u@db.example/ww", PostgresBackend),
        ("sqlite+aiosqlite:///ww.sqlite3", SQLiteBackend),
        ("sqlite:///ww.sqlite3", SQLiteBackend),
    ],
)
async def test_open_backend_url_scheme_picks_backend(url: str, kind: type, tmp_path: Path) -> None:
    backend = open_backend(url)
    try:
        assert isinstance(backend, kind)
    finally:
        await backend.aclose()


def test_open_backend_unknown_scheme_raises_configuration_error_without_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        open_backend("mysql://user:hunter2@db/ww")
    assert "hunter2" not in str(info.value)
