"""``watchword edge routes|explain``: the route table checked and a decision explained."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watchword.cli.main import app
from watchword.config import load_settings
from watchword.rbac.model import GroupMember
from watchword.rbac.store.groups import create_group
from watchword.rbac.store.organizations import create_organization
from watchword.services import Services

runner = CliRunner()
ROUTES = """\
routes:
  - name: public
    path: /public/**
    allow: anonymous
  - name: projects
    path: /orgs/{org}/projects/{project}/**
    resource: watchword:projects
    actions: {GET: read, HEAD: read}
    action: update
    object: {id: "{project}", organization: "{org}", project: "{project}"}
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"
    for key in list(os.environ):
        if key.startswith("WATCHWORD_") and not key.startswith("WATCHWORD_TEST_"):
            monkeypatch.delenv(key)
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    monkeypatch.setenv("WATCHWORD_DATABASE__URL", url)
    monkeypatch.setenv("WATCHWORD_EDGE__ROUTES_FILE", str(routes))
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    return routes


def test_routes_lists_the_table_and_a_bad_one_names_the_field(env: Path) -> None:
    shown = runner.invoke(app, ["edge", "routes", "--json"])
    assert shown.exit_code == 0, shown.output
    assert [r["name"] for r in json.loads(shown.output)["routes"]] == ["public", "projects"]
    env.write_text(ROUTES.replace("/public/**", "/public/**/x"))
    bad = runner.invoke(app, ["edge", "routes"])
    assert bad.exit_code == 2
    assert "/routes/0/path" in bad.output and "** may only be the last segment" in bad.output


def test_explain_names_the_route_and_the_engines_reasons(env: Path) -> None:
    async def member() -> str:
        settings = load_settings(environ=dict(os.environ))
        async with Services.open(settings) as services:
            org = await create_organization(services.store, name="acme")
            await create_group(
                services.store,
                organization_id=org.id,
                name="readers",
                members=[GroupMember("https://id.example", "bob")],
                role_ids=["org-reader"],
            )
            return org.id

    org = asyncio.run(member())
    url = f"https://app.example/orgs/{org}/projects/web/x"
    bob = "https://id.example|bob"
    read = runner.invoke(app, ["edge", "explain", "--url", url, "--subject", bob, "--json"])
    assert read.exit_code == 0, read.output
    data = json.loads(read.output)
    assert data["route"] == "projects" and data["status"] == 200
    assert data["explanation"]["decision"]["allowed"] is True and "org-reader" in data["text"]
    assert data["headers"]["X-Watchword-Organizations"] == org

    write = runner.invoke(
        app, ["edge", "explain", "--url", url, "--subject", bob, "--method", "DELETE"]
    )
    assert write.exit_code == 1
    assert "DENIED (403, denied)" in write.output and "update on watchword:projects" in write.output

    nobody = runner.invoke(app, ["edge", "explain", "--url", url])
    assert nobody.exit_code == 1 and "SIGN-IN NEEDED" in nobody.output
    unrouted = runner.invoke(app, ["edge", "explain", "--url", "https://app.example/admin"])
    assert unrouted.exit_code == 1 and "no_route" in unrouted.output
    bad = runner.invoke(app, ["edge", "explain", "--url", url, "--subject", "bob"])
    assert bad.exit_code == 2 and "ISSUER|ID" in bad.output


def test_serve_refuses_to_start_on_a_bad_route_table(env: Path) -> None:
    env.write_text(ROUTES.replace("resource: watchword:projects", "resource: 7"))
    started = runner.invoke(app, ["serve", "--port", "1"])
    assert started.exit_code == 2
    assert "/routes/1/resource" in started.output
