from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watchword.cli.main import app
from watchword.tokens.format import BODY_LENGTH, TokenKind, compose

runner = CliRunner()


@pytest.fixture
def db_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"
    for key in list(os.environ):
        if key.startswith("WATCHWORD_") and not key.startswith("WATCHWORD_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("WATCHWORD_DATABASE_URL", url)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    return url


def _json(args: list[str], code: int = 0) -> dict[str, object]:
    result = runner.invoke(app, ["token", *args, "--json"])
    assert result.exit_code == code, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_cli_token_check_is_offline_and_exit_code_tells_validity() -> None:
    good = compose(TokenKind.SERVICE_ACCOUNT, "x" * BODY_LENGTH)
    assert _json(["check", good]) == {"valid": True, "kind": "service_account", "prefix": good[:8]}
    bad = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert _json(["check", bad], code=1) == {"valid": False, "code": "token_malformed"}
    piped = runner.invoke(app, ["token", "check", "-"], input=good + "\n")
    assert piped.exit_code == 0 and "service_account" in piped.stdout
    human = runner.invoke(app, ["token", "check", "nonsense"])
    assert human.exit_code == 1 and "token_malformed" in human.stderr


def test_cli_token_create_list_rotate_revoke_janitor(db_env: str) -> None:
    created = _json(
        [
            "create",
            "--name",
            "deploy",
            "--owner-subject",
            "svc-1",
            "--kind",
            "service_account",
            "--scope",
            "projects:read",
            "--scope",
            "clusters:*",
            "--expires-in",
            "30d",
        ]
    )
    token = str(created["token"])
    assert token.startswith("wws_") and created["scopes"] == ["clusters:*", "projects:read"]
    listed = _json(["list", "--owner-subject", "svc-1"])
    assert [i["id"] for i in listed["items"]] == [created["id"]]  # type: ignore[attr-defined]
    assert token not in json.dumps(listed)
    rotated = _json(["rotate", str(created["id"])])
    assert rotated["rotated_from"] == created["id"] and rotated["token"] != token
    revoked = _json(["revoke", str(rotated["id"])])
    assert revoked["state"] == "revoked"
    dry = _json(["janitor", "--dry-run"])
    assert dry["ran"] is True and dry["dry_run"] is True and dry["total"] == 0
    human = runner.invoke(app, ["token", "janitor"])
    assert human.exit_code == 0 and "deleted 0 tokens" in human.stdout


def test_cli_token_errors_exit_with_codes(db_env: str) -> None:
    bad_kind = runner.invoke(
        app, ["token", "create", "--name", "x", "--owner-subject", "a", "--kind", "robot"]
    )
    assert bad_kind.exit_code == 2
    missing = runner.invoke(app, ["token", "revoke", "tok_missing", "--json"])
    assert missing.exit_code == 1
    assert json.loads(missing.stdout)["error"]["code"] == "not_found"
