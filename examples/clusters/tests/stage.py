"""The stage of the clusters app's tests: the app against real components, in one mode.

:func:`staged` builds, per test: a migrated SQLite database with watchword's services over
it, a watchword server app (``watchword.api.app.create_app``) over ASGI, seeded through its
HTTP API with an admin key (:func:`examples.clusters.seed.seed`), and the clusters app,
started (its lifespan: the guard validates the policy) and driven over ASGI:

- ``embedded``: the app gets the services; its table lives in watchword's database;
- ``remote``: the app asks the watchword server through ``watchword.client.AsyncClient``
  with the ``clusters-app`` token; its table lives in its own database.

Three clusters are made through the app itself: ``alpha`` (alice's) and ``bravo`` (bob's)
in acme, ``golf`` (gus's) in globex. Every statement the app's database runs on the
``clusters`` table is recorded (``Stage.statements``).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from examples.clusters.app import create_app
from examples.clusters.config import Config
from examples.clusters.seed import APP_SUBJECT, Demo, seed
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.api.app import create_app as create_watchword_app
from watchword.bootstrap import create_admin_key
from watchword.client import AsyncClient
from watchword.config import load_settings
from watchword.runtime import Runtime
from watchword.services import Services

WATCHWORD = "http://watchword.test"
CLUSTERS = "http://clusters.test"


@dataclass
class Stage:
    mode: str
    demo: Demo
    http: httpx.AsyncClient  # the clusters app
    database: AsyncEngine  # the app's database
    ids: dict[str, int] = field(default_factory=dict)  # alpha, bravo, golf
    statements: list[tuple[str, Sequence[Any]]] = field(default_factory=list)

    def as_(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.demo.tokens[user].reveal()}"}

    def path(self, org: str, cluster: str | None = None) -> str:
        org_id = {"acme": self.demo.acme, "globex": self.demo.globex}[org]
        base = f"/orgs/{org_id}/clusters"
        return base if cluster is None else f"{base}/{self.ids[cluster]}"

    def cluster_statements(self) -> list[tuple[str, Sequence[Any]]]:
        return [(sql, params) for sql, params in self.statements if "FROM clusters" in sql]


@asynccontextmanager
async def staged(mode: str, tmp_path: Path) -> AsyncIterator[Stage]:
    """The app in ``mode`` (``embedded``, ``remote``), its files under ``tmp_path``."""
    settings = load_settings(
        environ={},
        env="development",  # prepare_schema migrates
        secret_key=secrets.token_urlsafe(32),
        database={"url": f"sqlite+aiosqlite:///{tmp_path / 'watchword.sqlite3'}"},
    )
    runtime = Runtime.create(settings)
    services = Services.build(runtime)
    opened: list[AsyncClient] = []
    try:
        await runtime.prepare_schema()
        server = httpx.ASGITransport(app=create_watchword_app(services=services))
        _, admin_key = await create_admin_key(runtime.engine, runtime.clock)
        demo = await seed(WATCHWORD, admin_key, transport=server)
        if mode == "embedded":
            app = create_app(Config(), services=services)
        else:
            client = AsyncClient(WATCHWORD, demo.tokens[APP_SUBJECT], transport=server)
            opened.append(client)
            config = Config(
                watchword_url=WATCHWORD,
                issuer=demo.issuer,
                database_url=f"sqlite+aiosqlite:///{tmp_path / 'clusters.sqlite3'}",
            )
            app = create_app(config, client=client)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                base_url=CLUSTERS,
            ) as http,
        ):
            staged = Stage(mode, demo, http, app.state.database)
            event.listen(staged.database.sync_engine, "before_cursor_execute", _recorder(staged))
            for name, owner, org in (
                ("alpha", "alice", "acme"),
                ("bravo", "bob", "acme"),
                ("golf", "gus", "globex"),
            ):
                made = await http.post(
                    staged.path(org), json={"name": name}, headers=staged.as_(owner)
                )
                assert made.status_code == 201, made.text
                staged.ids[name] = made.json()["id"]
            staged.statements.clear()
            yield staged
    finally:
        for client in opened:
            await client.aclose()
        await services.aclose()
        await runtime.close()


def _recorder(stage: Stage) -> Any:
    def record(
        conn: object,
        cursor: object,
        statement: str,
        parameters: Sequence[Any],
        context: object,
        executemany: bool,
    ) -> None:
        stage.statements.append((statement, tuple(parameters)))

    return record
