"""``watchword sessions list|show|revoke`` and ``watchword keys rotate`` (resumable, with every
row re-sealed under the first key and nothing lost)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from watchword.cli.main import app
from watchword.config import load_settings
from watchword.secret import Secret
from watchword.services import Services
from watchword.sessions import NewSession
from watchword.sessions.sealing import key_id_of
from watchword.sessions.tables import sessions

runner = CliRunner()
KEY_A = {"id": "a", "key": "a" * 40}
KEY_B = {"id": "b", "key": "b" * 40}


@pytest.fixture
def db_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"
    for key in list(os.environ):
        if key.startswith("WATCHWORD_") and not key.startswith("WATCHWORD_TEST_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("WATCHWORD_DATABASE__URL", url)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    return url


def _keys_env(monkeypatch: pytest.MonkeyPatch, *keys: dict[str, str]) -> None:
    for name in list(os.environ):
        if name.startswith("WATCHWORD_SESSIONS__KEYS__"):
            monkeypatch.delenv(name)
    for index, key in enumerate(keys):
        monkeypatch.setenv(f"WATCHWORD_SESSIONS__KEYS__{index}__ID", key["id"])
        monkeypatch.setenv(f"WATCHWORD_SESSIONS__KEYS__{index}__KEY", key["key"])


async def _with_services(url: str, keys: list[dict[str, str]], body: Any) -> Any:
    settings = load_settings(environ={}, database={"url": url}, sessions={"keys": keys})
    async with Services.open(settings) as services:
        return await body(services)


def _make_sessions(url: str, keys: list[dict[str, str]], count: int) -> list[str]:
    async def body(services: Services) -> list[str]:
        made = []
        for i in range(count):
            record, _cookie = await services.sessions.create(
                NewSession(
                    provider="test",
                    issuer="https://idp.example",
                    subject=f"user-{i}",
                    upstream_sid=None,
                    email=f"user{i}@example.com",
                    display_name=None,
                    claims={"sub": f"user-{i}"},
                    organization_ids=[],
                    access_token=Secret(f"access-{i}"),
                    refresh_token=Secret(f"refresh-{i}"),
                    id_token=None,
                    access_expires_at=None,
                )
            )
            made.append(record.id)
        return made

    return asyncio.run(_with_services(url, keys, body))


def _rows(url: str, keys: list[dict[str, str]]) -> dict[str, tuple[str, str]]:
    """session id → (key id of its refresh token column, the refresh token opened)."""

    async def body(services: Services) -> dict[str, tuple[str, str]]:
        async with services.runtime.engine.connect() as conn:
            rows = (await conn.execute(select(sessions))).all()
        sealer = services.sessions.sealer
        return {
            r.id: (
                key_id_of(r.refresh_token),
                sealer.open(r.refresh_token, session_id=r.id, column="refresh_token").reveal(),
            )
            for r in rows
        }

    return asyncio.run(_with_services(url, keys, body))


def _json(args: list[str], code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def test_keys_rotate_reseals_every_row_resumably_and_loses_nothing(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _make_sessions(db_url, [KEY_A], 7)
    before = _rows(db_url, [KEY_A])
    assert {kid for kid, _ in before.values()} == {"a"}

    # Interrupted after one batch of 3: the next run picks up the rest.
    async def one_batch(services: Services) -> tuple[int, int]:
        return await services.sessions.reseal_batch(limit=3)

    assert asyncio.run(_with_services(db_url, [KEY_B, KEY_A], one_batch)) == (3, 0)
    _keys_env(monkeypatch, KEY_B, KEY_A)
    result = _json(["keys", "rotate", "--batch", "2"])
    assert result == {"key_id": "b", "resealed": 4, "ended_unreadable": 0, "remaining": 0}

    after = _rows(db_url, [KEY_B])  # the old key is gone: every row still opens
    assert set(after) == set(ids)
    assert {kid for kid, _ in after.values()} == {"b"}
    assert {i: plain for i, (_, plain) in after.items()} == {
        i: plain for i, (_, plain) in before.items()
    }
    assert _json(["keys", "rotate"]) == {
        "key_id": "b",
        "resealed": 0,
        "ended_unreadable": 0,
        "remaining": 0,
    }


def test_keys_rotate_ends_sessions_sealed_under_a_key_no_longer_configured(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _make_sessions(db_url, [KEY_A], 2)
    _keys_env(monkeypatch, KEY_B)  # key a was dropped before rotating: those rows are lost
    assert _json(["keys", "rotate", "--dry-run"]) == {
        "key_id": "b",
        "sessions_by_key": {"a": 2},
        "to_reseal": 2,
        "unknown_keys": ["a"],
    }
    stopped = _json(["keys", "rotate"], code=2)
    assert stopped["error"]["code"] == "config_invalid" and "--end-unreadable" in str(stopped)
    assert len(_json(["sessions", "list"])["items"]) == 2  # nothing ended without consent
    result = _json(["keys", "rotate", "--end-unreadable"])
    assert result["ended_unreadable"] == 2 and result["remaining"] == 0
    assert _json(["sessions", "list"])["items"] == []


def test_sessions_list_show_revoke(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = _make_sessions(db_url, [KEY_A], 3)
    _keys_env(monkeypatch, KEY_A)
    listed = _json(["sessions", "list", "--limit", "2"])
    assert [s["id"] for s in listed["items"]] == ids[:2] and listed["next_cursor"]
    rest = _json(["sessions", "list", "--cursor", listed["next_cursor"]])
    assert [s["id"] for s in rest["items"]] == ids[2:]
    shown = _json(["sessions", "show", ids[0]])
    assert shown["claims"] == {"sub": "user-0"} and shown["email"] == "user0@example.com"
    assert "refresh-0" not in json.dumps(shown) and "access-0" not in json.dumps(shown)
    assert _json(["sessions", "revoke", ids[0]]) == {"ended": 1}
    assert _json(["sessions", "show", ids[0]], code=1)["error"]["code"] == "not_found"
    everywhere = _json(
        ["sessions", "revoke", "--issuer", "https://idp.example", "--subject", "user-1"]
    )
    assert everywhere == {"ended": 1}
    assert [s["id"] for s in _json(["sessions", "list"])["items"]] == ids[2:]
    human = runner.invoke(app, ["sessions", "list"])
    assert human.exit_code == 0 and ids[2] in human.stdout
    usage = runner.invoke(app, ["sessions", "revoke"])
    assert usage.exit_code == 2
