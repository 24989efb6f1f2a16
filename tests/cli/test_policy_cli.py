from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watchword.cli.main import app

runner = CliRunner()
EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "policy-test.yaml"

POLICY = """
resource_types:
  - {name: compute:clusters, actions: [read, delete]}
roles:
  - name: reader
    permissions:
      organization: [{resource_type: compute:clusters, actions: [read]}]
subjects:
  alice: {issuer: https://i, id: alice, organizations: {acme: [reader]}}
objects:
  c1: {type: compute:clusters, id: c1, org_id: acme}
cases:
  - {subject: alice, action: read, object: c1, expect: allow}
  - {name: wrong on purpose, subject: alice, action: delete, object: c1, expect: allow}
"""


def test_policy_test_shipped_example_passes() -> None:
    result = runner.invoke(app, ["policy", "test", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.stdout


def test_policy_test_failure_prints_diff_and_exits_1(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(POLICY)
    result = runner.invoke(app, ["policy", "test", str(f)])
    assert result.exit_code == 1
    assert "wrong on purpose" in result.stdout
    assert "expected: allow" in result.stdout and "got:      deny" in result.stdout
    assert "1 passed, 1 failed" in result.stdout
    data = json.loads(runner.invoke(app, ["policy", "test", str(f), "--json"]).stdout)
    assert (data["passed"], data["failed"]) == (1, 1)


def test_policy_test_malformed_file_exits_2_with_pointer(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(POLICY.replace("expect: allow}", "expect: maybe}", 1))
    result = runner.invoke(app, ["policy", "test", str(f)])
    assert result.exit_code == 2
    assert "/cases/0" in result.stderr


def test_authz_check_and_explain_with_policy_file(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(POLICY)
    args = [
        "--policy", str(f),
        "--subject", "{issuer: https://i, id: alice, organizations: {acme: [reader]}}",
        "--object", "{type: compute:clusters, id: c1, org_id: acme}",
    ]  # fmt: skip
    allowed = runner.invoke(app, ["authz", "check", "--action", "read", *args, "--json"])
    assert allowed.exit_code == 0 and json.loads(allowed.stdout)["allowed"] is True
    denied = runner.invoke(app, ["authz", "check", "--action", "delete", *args, "--fail-on-deny"])
    assert denied.exit_code == 1 and "deny" in denied.stdout
    why = runner.invoke(app, ["authz", "explain", "--action", "delete", *args])
    assert why.exit_code == 0 and "DENY" in why.stdout and "organization" in why.stdout
    unknown = runner.invoke(app, ["authz", "check", "--action", "fly", *args])
    assert unknown.exit_code == 2 and "unknown_action" in unknown.stderr


def test_authz_check_uses_the_stored_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from watchword.clock import SystemClock
    from watchword.rbac.store.context import StoreContext
    from watchword.rbac.store.roles import create_resource_type, create_role
    from watchword.storage.db import create_engine_for_url
    from watchword.storage.migrate import upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'ww.sqlite3'}"
    upgrade(url)

    async def seed() -> None:
        engine = create_engine_for_url(url)
        ctx = StoreContext(engine, SystemClock(), "https://ww.example")
        try:
            await create_resource_type(ctx, name="compute:clusters", actions=["read", "delete"])
            await create_role(
                ctx,
                role_id="role_reader",
                name="reader",
                permissions={
                    "organization": [{"resource_type": "compute:clusters", "actions": ["read"]}]
                },
            )
        finally:
            await engine.dispose()

    asyncio.run(seed())
    monkeypatch.setenv("WATCHWORD_DATABASE_URL", url)
    subject = "{issuer: https://i, id: a, organizations: {acme: [role_reader]}}"
    obj = "{type: compute:clusters, id: c1, org_id: acme}"
    base = ["authz", "check", "--subject", subject, "--object", obj, "--json"]
    read = runner.invoke(app, [*base, "--action", "read"])
    assert read.exit_code == 0, read.output
    assert json.loads(read.stdout)["allowed"] is True
    delete = runner.invoke(app, [*base, "--action", "delete"])
    assert json.loads(delete.stdout)["allowed"] is False
