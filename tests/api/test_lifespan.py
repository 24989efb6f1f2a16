from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from watchword.api.app import create_app
from watchword.config import load_settings
from watchword.errors import SchemaOutdated


async def test_owned_app_migrates_in_development_and_runs_background_jobs(tmp_path: Path) -> None:
    settings = load_settings(
        environ={},
        env="development",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'life.sqlite3'}",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            ready = await client.get("/readyz")
            # The janitor runs once at start-up in the background, under its lease, and
            # counts the run; wait (bounded) for it rather than racing it.
            done = 'watchword_token_janitor_runs_total{outcome="done"} 1.0'
            for _ in range(100):
                metrics = (await client.get("/metrics")).text
                if done in metrics:
                    break
                await asyncio.sleep(0.05)
    assert ready.status_code == 200
    assert done in metrics


async def test_owned_app_refuses_outdated_schema_in_production(tmp_path: Path) -> None:
    (tmp_path / "prod.sqlite3").touch()  # an empty database: schema behind
    settings = load_settings(
        environ={}, database_url=f"sqlite+aiosqlite:///{tmp_path / 'prod.sqlite3'}"
    )
    app = create_app(settings)
    with pytest.raises(SchemaOutdated):
        async with app.router.lifespan_context(app):
            pass
