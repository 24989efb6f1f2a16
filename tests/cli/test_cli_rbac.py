from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from watchword.cli.main import app

runner = CliRunner()
ISSUER = "http://127.0.0.1:8000"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("WATCHWORD_") and not key.startswith("WATCHWORD_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("WATCHWORD_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}")
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0


def run(*args: str) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_cli_org_project_group_acl_round_trip(db: None) -> None:
    org = run("org", "create", "acme")["id"]
    other = run("org", "create", "globex")["id"]
    assert isinstance(org, str) and isinstance(other, str)
    project = run("project", "create", org, "web")["id"]
    assert isinstance(project, str)
    group = run("group", "create", org, "devs", "--role", "project-member", "--project", project)
    gid = group["id"]
    assert isinstance(gid, str)
    added = run("group", "add-member", org, gid, "ann@example.com")
    assert added["members"] == [{"id": "ann@example.com", "issuer": ISSUER, "email": None}]

    dup = runner.invoke(app, ["group", "add-member", org, gid, "ann@example.com", "--json"])
    assert dup.exit_code == 1 and json.loads(dup.stdout)["error"]["code"] == "duplicate_member"

    acl = run("acl", "show", "--issuer", ISSUER, "--subject", "ann@example.com")
    orgs = acl["organizations"]
    assert isinstance(orgs, list) and [o["id"] for o in orgs] == [org]
    assert [p["id"] for p in orgs[0]["projects"]] == [project]

    foreign = runner.invoke(
        app,
        [
            "acl",
            "show",
            "--issuer",
            ISSUER,
            "--subject",
            "ann@example.com",
            "--org",
            other,
            "--json",
        ],
    )
    assert foreign.exit_code == 1 and json.loads(foreign.stdout)["error"]["code"] == "not_a_member"

    run("group", "remove-member", org, gid, "ann@example.com")
    after = run("acl", "show", "--issuer", ISSUER, "--subject", "ann@example.com")
    assert after["organizations"] == []


def test_cli_role_create_refuses_unregistered_type_with_exit_2(db: None) -> None:
    bad = runner.invoke(
        app,
        [
            "role",
            "create",
            "r",
            "--json",
            "--permissions",
            '{"organization": [{"resource_type": "nope", "actions": ["read"]}]}',
        ],
    )
    assert bad.exit_code == 2
    assert json.loads(bad.stdout)["error"]["code"] == "unknown_resource_type"


def test_cli_role_seed_is_idempotent(db: None) -> None:
    assert run("role", "seed") == {"resource_types": [], "roles": []}
    roles = run("role", "list")["items"]
    assert isinstance(roles, list)
    assert {"platform-admin", "org-admin", "org-reader", "project-member"} <= {
        r["id"] for r in roles
    }


def test_cli_migrate_legacy_groups_dry_run_then_apply(db: None, tmp_path: Path) -> None:
    org = run("org", "create", "legacy")["id"]
    export = {
        "format": "watchword-legacy-groups/1",
        "users": [{"id": "u1", "email": "Dana@Example.com"}],
        "groups": [
            {
                "id": "grp-l",
                "organizationId": org,
                "name": "l",
                "userIds": ["u1"],
                "roleIds": ["org-reader"],
            }
        ],
    }
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export))
    dry = run("migrate", "legacy-groups", str(path), "--dry-run")
    assert dry["dry_run"] is True
    assert dry["changes"] == [
        {
            "group": "grp-l",
            "organization": org,
            "action": "create",
            "subjects": ["dana@example.com"],
            "unresolved_user_ids": [],
            "reason": "new group",
        }
    ]
    assert run("group", "list", str(org))["items"] == []  # nothing written
    run("migrate", "legacy-groups", str(path))
    again = run("migrate", "legacy-groups", str(path))
    assert [c["action"] for c in again["changes"]] == ["skip"]
    acl = run("acl", "show", "--issuer", ISSUER, "--subject", "dana@example.com")
    assert [o["id"] for o in acl["organizations"]] == [org]

    path.write_text('{"format": "nope"}')
    bad = runner.invoke(app, ["migrate", "legacy-groups", str(path)])
    assert bad.exit_code == 2 and "/format" in bad.stderr
