from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watchword.cli.main import app

runner = CliRunner()


@pytest.fixture
def db_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"
    for key in list(__import__("os").environ):
        if key.startswith("WATCHWORD_") and not key.startswith("WATCHWORD_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("WATCHWORD_DATABASE_URL", url)
    return url


def test_cli_version_json() -> None:
    result = runner.invoke(app, ["version", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["version"]


def test_cli_db_upgrade_current_downgrade(db_env: str) -> None:
    missing = runner.invoke(app, ["db", "current", "--json"])
    assert missing.exit_code == 1 and "does not exist" in missing.stdout
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    now = json.loads(runner.invoke(app, ["db", "current", "--json"]).stdout)
    assert now["up_to_date"] is True and now["current"] == now["heads"]
    assert runner.invoke(app, ["db", "downgrade", "base"]).exit_code == 0
    assert json.loads(runner.invoke(app, ["db", "current", "--json"]).stdout)["current"] == []


def test_cli_admin_bootstrap_refuses_unmigrated_database(db_env: str) -> None:
    result = runner.invoke(app, ["admin", "bootstrap"])
    assert result.exit_code == 1
    assert "watchword db upgrade" in result.stderr


def test_cli_admin_bootstrap_prints_key_once(db_env: str) -> None:
    runner.invoke(app, ["db", "upgrade"])
    result = runner.invoke(app, ["admin", "bootstrap", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["key"].startswith("wwb_") and data["id"].startswith("adm_")


def test_cli_config_show_redacts_and_bad_config_exits_2(
    db_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHWORD_REDIS_URL", "redis://user:topsecret@cache:6379/0")
    shown = runner.invoke(app, ["config", "show", "--json"])
    assert shown.exit_code == 0 and "topsecret" not in shown.stdout
    assert json.loads(shown.stdout)["database"]["url"] == db_env
    table = runner.invoke(app, ["config", "show"]).stdout
    assert "tokens.grace_period" in table and "WATCHWORD_REDIS__URL" in table

    monkeypatch.setenv("WATCHWORD_PORT", "not-a-port")
    bad = runner.invoke(app, ["config", "show"])
    assert bad.exit_code == 2
    assert "WATCHWORD_PORT" in bad.stderr and "Traceback" not in bad.output


def test_cli_config_show_masks_otlp_endpoint_credentials(
    db_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = "https://collector:c0llect@otlp.example/v1/traces?api_key=ap1k3y"
    monkeypatch.setenv("WATCHWORD_TELEMETRY__OTLP_ENDPOINT", endpoint)
    for args in (["config", "show", "--json"], ["config", "show"]):
        shown = runner.invoke(app, args)
        assert shown.exit_code == 0
        assert "c0llect" not in shown.stdout and "ap1k3y" not in shown.stdout
        assert "otlp.example" in shown.stdout


def test_cli_unknown_setting_exits_2(db_env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHWORD_PROT", "1")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2 and "WATCHWORD_PROT" in result.stderr


def test_cli_serve_unreachable_database_exits_1_without_traceback(
    db_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHWORD_DATABASE_URL", "postgresql://u:pw@127.0.0.1:1/x")
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 1
    assert "unreachable" in result.stderr and "Traceback" not in result.output
    assert ":pw@" not in result.output


def test_cli_serve_refuses_outdated_schema_in_production(db_env: str) -> None:
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 1 and "watchword db upgrade" in result.stderr


def _run_cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # A real process: the failure showed at interpreter level, after asyncio.run returned.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WATCHWORD_")}
    code = "from watchword.cli.main import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("args", [["db", "current"], ["db", "upgrade"], ["admin", "bootstrap"]])
def test_cli_sqlite_in_missing_directory_is_one_clean_message(
    tmp_path: Path, args: list[str]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'ww.sqlite3'}"
    result = _run_cli(args, {"WATCHWORD_DATABASE_URL": url}, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Event loop is closed" not in result.stderr
    assert str(tmp_path / "missing") in result.stderr and "does not exist" in result.stderr


@pytest.mark.parametrize(
    "args", [["admin", "bootstrap"], ["db", "current"], ["db", "downgrade", "base"], ["serve"]]
)
def test_cli_command_needing_a_database_does_not_create_an_empty_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    for key in list(os.environ):
        if key.startswith("WATCHWORD_") and not key.startswith("WATCHWORD_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # "outside the clone": the default URL is ./watchword.sqlite3
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert list(tmp_path.iterdir()) == []
    message = " ".join(result.stderr.split())
    assert "sqlite+aiosqlite:///watchword.sqlite3 does not exist" in message
    assert str(tmp_path / "watchword.sqlite3") in message
    assert "WATCHWORD_DATABASE_URL" in message and "--config" in message


def test_cli_db_upgrade_may_create_the_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.sqlite3'}"
    result = _run_cli(["db", "upgrade"], {"WATCHWORD_DATABASE_URL": url}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "new.sqlite3").exists()
