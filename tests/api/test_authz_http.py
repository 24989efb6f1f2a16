from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.bootstrap import create_admin_key
from watchword.rbac.store.roles import create_resource_type, create_role
from watchword.runtime import Runtime
from watchword.services import Services

ISS = "https://id.example.com"


@pytest.fixture
async def admin(runtime: Runtime, services: Services) -> dict[str, str]:
    return await seed_policy(runtime, services)


async def seed_policy(runtime: Runtime, services: Services) -> dict[str, str]:
    """Store a small policy and return admin credentials."""
    ctx = services.store
    await create_resource_type(
        ctx, name="compute:clusters", actions=["create", "read", "update", "delete"]
    )
    await create_role(
        ctx,
        role_id="role_member",
        name="member",
        permissions={
            "organization": [{"resource_type": "compute:clusters", "actions": ["read"]}],
            "owner": [{"resource_type": "compute:clusters", "actions": ["*"]}],
        },
    )
    await create_role(
        ctx,
        role_id="role_nodelete",
        name="no-delete",
        permissions={
            "organization": [
                {"resource_type": "compute:clusters", "actions": ["delete"], "effect": "deny"}
            ]
        },
    )
    _, secret = await create_admin_key(runtime.engine, runtime.clock)
    return {"Authorization": f"Bearer {secret.reveal()}"}


BOB: dict[str, Any] = {
    "issuer": ISS,
    "id": "bob",
    "organizations": {"acme": ["role_member", "role_nodelete"]},
    "groups": ["grp_sre"],
}


def _obj(i: str, org: str | None = "acme", **extra: Any) -> dict[str, Any]:
    return {"type": "compute:clusters", "id": i, "org_id": org, **extra}


async def test_authz_check_single_names_deciding_level(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.post(
        "/v1/authz/check",
        json={"subject": BOB, "action": "read", "object": _obj("c1")},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["allowed"] is True and r.json()["decided_by"] == "organization"
    r = await client.post(
        "/v1/authz/check",
        json={"subject": BOB, "action": "delete", "object": _obj("c1", owner=f"{ISS}|bob")},
        headers=admin,
    )
    body = r.json()
    assert body["allowed"] is False and body["role"] == "role_nodelete"


async def test_authz_check_batch_answers_in_order(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    batch = [
        {"action": "read", "object": _obj("c1")},
        {"action": "read", "object": _obj("c2", org="globex")},
        {"action": "update", "object": _obj("c3", owner=f"{ISS}|bob")},
        {"action": "read", "object": _obj("c4", org=None, acl={"groups": {"grp_sre": ["read"]}})},
    ]
    r = await client.post("/v1/authz/check", json={"subject": BOB, "batch": batch}, headers=admin)
    assert [x["allowed"] for x in r.json()["results"]] == [True, False, True, True]


async def test_authz_check_batch_over_limit_and_bad_shapes_are_refused(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    big = [{"action": "read", "object": _obj(f"c{i}")} for i in range(1001)]
    r = await client.post("/v1/authz/check", json={"subject": BOB, "batch": big}, headers=admin)
    assert r.status_code == 422 and r.json()["pointer"] == "/batch"
    both = await client.post(
        "/v1/authz/check",
        json={"subject": BOB, "subject_ref": {"issuer": ISS, "id": "x"}, "action": "read",
              "object": _obj("c1")},
        headers=admin,
    )  # fmt: skip
    assert both.status_code == 422


async def test_authz_unknown_action_is_an_error_not_a_deny(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.post(
        "/v1/authz/check",
        json={"subject": BOB, "action": "launch", "object": _obj("c1")},
        headers=admin,
    )
    assert r.status_code == 400 and r.json()["code"] == "unknown_action"
    r = await client.post(
        "/v1/authz/check",
        json={"subject": BOB, "action": "read", "object": {"type": "nope:x", "id": "1"}},
        headers=admin,
    )
    assert r.status_code == 400 and r.json()["code"] == "unknown_resource_type"


async def test_authz_malformed_subject_points_at_the_field(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    bad = {**BOB, "account_type": "robot"}
    r = await client.post(
        "/v1/authz/check",
        json={"subject": bad, "action": "read", "object": _obj("c1")},
        headers=admin,
    )
    assert r.status_code == 400 and r.json()["pointer"] == "/subject/account_type"


async def test_authz_explain_reports_every_level(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.post(
        "/v1/authz/explain",
        json={"subject": BOB, "action": "delete", "object": _obj("c1")},
        headers=admin,
    )
    body = r.json()
    assert r.status_code == 200 and body["decision"]["allowed"] is False
    assert "no-delete" in body["text"] or "role_nodelete" in body["text"]
    # the documented text (docs/authz.md), not a Python repr
    assert body["text"].startswith("DENY: ") and "Explanation(" not in body["text"]
    assert "\n  decided by: " in body["text"]


async def test_authz_requires_a_credential(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/authz/check", json={"subject": BOB, "action": "read", "object": _obj("c1")}
    )
    assert r.status_code == 401


async def test_authz_filter_residual_objects_and_sql_agree(
    client: httpx.AsyncClient, admin: dict[str, str], runtime: Runtime
) -> None:
    objects = [
        _obj("c1"),
        _obj("c2", org="globex"),
        _obj("c3", org="globex", owner=f"{ISS}|bob"),
        _obj("c4", org=None),
        _obj("c5", org=None, acl={"groups": {"grp_sre": ["read"]}}),
    ]
    r = await client.post(
        "/v1/authz/filter",
        json={
            "subject": BOB,
            "action": "read",
            "type": "compute:clusters",
            "objects": objects,
            "sql": {
                "dialect": "sqlite",
                "table": "clusters",
                "columns": {"id": "id", "org_id": "org_id", "owner": "owner"},
                "acl": {"kind": "json", "users": "user_acl", "groups": "group_acl"},
            },
        },
        headers=admin,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    # c3: owned by bob, but bob holds no role in globex, so no owner block applies there.
    assert body["allowed_ids"] == ["c1", "c5"]
    assert body["residual"] and body["node_count"] >= 1

    # The SQL text, run against a real table holding the same objects, selects the same rows.
    import json

    async with runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE clusters (id TEXT PRIMARY KEY, org_id TEXT, owner TEXT, "
                "user_acl TEXT, group_acl TEXT)"
            )
        )
        for o in objects:
            acl = o.get("acl", {})
            await conn.execute(
                text("INSERT INTO clusters VALUES (:id, :org, :owner, :u, :g)"),
                {
                    "id": o["id"],
                    "org": o["org_id"],
                    "owner": o.get("owner"),
                    "u": json.dumps(acl.get("users", {})),
                    "g": json.dumps(acl.get("groups", {})),
                },
            )
        rows = await conn.execute(
            text(f"SELECT id FROM clusters WHERE {body['sql']['sql']} ORDER BY id"),
            body["sql"]["params"],
        )
        assert [row.id for row in rows] == ["c1", "c5"]


async def test_authz_filter_sql_with_an_issuer_matches_the_apps_own_user_ids(
    client: httpx.AsyncClient, admin: dict[str, str], runtime: Runtime
) -> None:
    """Owner and user-ACL columns holding app user ids (``sql.issuer``) select the rows the
    same objects, given with subject keys, are allowed."""
    import json

    rows = [  # (id, org, owner app id, user ACL by app id)
        ("k1", "acme", "bob", {}),
        ("k2", "acme", "alice", {}),
        ("k3", "globex", None, {"bob": ["*"]}),
        ("k4", None, "bob", {"alice": ["*"]}),
        ("k5", None, None, {"bob": ["update"]}),
    ]
    async with runtime.engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE app_clusters "
                "(id TEXT PRIMARY KEY, org_id TEXT, owner TEXT, shares TEXT)"
            )
        )
        for i, org, owner, shares in rows:
            await conn.execute(
                text("INSERT INTO app_clusters VALUES (:i, :o, :w, :s)"),
                {"i": i, "o": org, "w": owner, "s": json.dumps(shares)},
            )
    objects = [
        _obj(i, org=org, owner=None if w is None else f"{ISS}|{w}",
             acl={"users": {f"{ISS}|{k}": v for k, v in acl.items()}})
        for i, org, w, acl in rows
    ]  # fmt: skip
    differs = False
    for action in ("read", "update", "delete"):
        sql = {
            "dialect": "sqlite",
            "table": "app_clusters",
            "columns": {"id": "id", "org_id": "org_id", "owner": "owner"},
            "acl": {"kind": "json", "users": "shares"},
        }
        answers = []
        for target in ({**sql, "issuer": ISS}, sql):
            r = await client.post(
                "/v1/authz/filter",
                json={"subject": BOB, "action": action, "type": "compute:clusters",
                      "objects": objects, "sql": target},
                headers=admin,
            )  # fmt: skip
            assert r.status_code == 200, r.text
            body = r.json()
            async with runtime.engine.connect() as conn:
                found = await conn.execute(
                    text(f"SELECT id FROM app_clusters WHERE {body['sql']['sql']} ORDER BY id"),
                    body["sql"]["params"],
                )
                answers.append(([row.id for row in found], body["allowed_ids"]))
        (with_issuer, allowed), (without, _) = answers
        assert with_issuer == allowed, action
        differs = differs or without != allowed
    assert differs  # without the issuer, app user ids match no subject key
    r = await client.post(
        "/v1/authz/filter",
        json={"subject": BOB, "action": "read", "type": "compute:clusters",
              "sql": {"dialect": "sqlite", "table": "t", "issuer": "a|b"}},
        headers=admin,
    )  # fmt: skip
    assert r.status_code == 400 and r.json()["pointer"] == "/sql/issuer"


async def test_authz_filter_rejects_unsafe_identifiers(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    r = await client.post(
        "/v1/authz/filter",
        json={
            "subject": BOB,
            "action": "read",
            "type": "compute:clusters",
            "sql": {"dialect": "postgresql", "table": "x; DROP TABLE y", "columns": {"id": "id"}},
        },
        headers=admin,
    )
    assert r.status_code == 400 and r.json()["pointer"] == "/sql/table"


async def test_authz_checks_are_measured_and_decisions_logged(
    sqlite_engine: AsyncEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    import json as jsonlib

    import structlog

    from watchword.api.app import create_app
    from watchword.clock import FakeClock
    from watchword.config import load_settings
    from watchword.observability.logging import LogFormat, configure_logging
    from watchword.storage.migrate import upgrade_engine

    await upgrade_engine(sqlite_engine)
    settings = load_settings(environ={}, authz_observe_every=1, decision_log_sample_rate=1.0)
    runtime = Runtime(settings=settings, engine=sqlite_engine, clock=FakeClock())
    services = Services.build(runtime)
    app = create_app(services=services)
    configure_logging("info", LogFormat.JSON)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            headers = await seed_policy(runtime, services)
            r = await client.post(
                "/v1/authz/check",
                json={"subject": BOB, "action": "read", "object": _obj("c1")},
                headers=headers,
            )
            assert r.json()["allowed"] is True
            metrics = (await client.get("/metrics")).text
    finally:
        structlog.reset_defaults()
    assert 'watchword_authz_check_duration_seconds_count{outcome="allowed"} 1.0' in metrics
    events = [
        jsonlib.loads(line)
        for line in capsys.readouterr().err.splitlines()
        if '"authz.decision"' in line
    ]
    assert len(events) == 1 and events[0]["action"] == "read"


async def test_authz_bad_role_update_is_refused_and_the_active_policy_stays(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    question = {"subject": BOB, "action": "read", "object": _obj("c1")}
    before = await client.post("/v1/authz/check", json=question, headers=admin)
    assert before.json()["allowed"] is True
    bad = await client.patch(
        "/v1/roles/role_member",
        json={
            "permissions": {
                "organization": [{"resource_type": "compute:clusters", "actions": ["fly"]}]
            }
        },
        headers={**admin, "If-Match": '"1"'},
    )
    assert bad.status_code == 400 and bad.json()["code"] == "unknown_action"
    assert bad.json()["pointer"] == "/permissions/organization/0/actions"
    after = await client.post("/v1/authz/check", json=question, headers=admin)
    assert after.json() == before.json()
    # A good update takes effect on the next question (no restart, no stale compiled subject).
    good = await client.patch(
        "/v1/roles/role_member",
        json={"permissions": {"organization": []}},
        headers={**admin, "If-Match": '"1"'},
    )
    assert good.status_code == 200, good.text
    now = await client.post("/v1/authz/check", json=question, headers=admin)
    assert now.json()["allowed"] is False


def _doc_example(name: str) -> dict[str, Any]:
    """The JSON block that follows ``<!-- example: NAME -->`` in docs/authz.md."""
    text = (Path(__file__).parents[2] / "docs" / "authz.md").read_text()
    after = text.split(f"<!-- example: {name} -->", 1)[1]
    block = after.split("```json", 1)[1].split("```", 1)[0]
    data: dict[str, Any] = json.loads(block)
    return data


async def test_documented_check_example_runs_as_written(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    _, key = await create_admin_key(runtime.engine, runtime.clock)
    r = await client.post(
        "/v1/authz/check",
        json=_doc_example("authz-check request"),
        headers={"Authorization": f"Bearer {key.reveal()}"},
    )
    assert r.status_code == 200, r.text
    answer = r.json()
    for field, value in _doc_example("authz-check answer").items():
        assert answer[field] == value, field
    # The former Python field names are refused over HTTP, with a pointer and the name to
    # use instead, as the docs say.
    bad = _doc_example("authz-check request")
    bad["subject"]["org_roles"] = bad["subject"].pop("organizations")
    r = await client.post(
        "/v1/authz/check", json=bad, headers={"Authorization": f"Bearer {key.reveal()}"}
    )
    assert r.status_code == 400 and r.json()["pointer"] == "/subject/org_roles"
    assert "use 'organizations'" in r.json()["detail"]


async def test_check_authenticates_before_it_reads_the_question(
    client: httpx.AsyncClient,
) -> None:
    nobody = await client.post("/v1/authz/check", json={"batch": "not a list"})
    assert nobody.status_code == 401  # not 422: a stranger's body is never validated


async def test_a_subject_in_a_thousand_organizations_is_read_where_the_question_needs(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    """Lazy compilation over HTTP: entries of the document are read when a check needs them
    (a malformed entry elsewhere does not matter; one the question reads is a 400 naming it),
    and a document too large for the compile cache is answered all the same, every time."""
    orgs: dict[str, Any] = {f"o{i}": ["role_member"] for i in range(1000)}
    orgs["o500"] = ["role_member", "role_nodelete"]
    orgs["broken"] = [""]  # never read by the questions below
    big = {**BOB, "organizations": orgs}
    for _ in range(2):
        answers = await client.post(
            "/v1/authz/check",
            json={
                "subject": big,
                "batch": [
                    {"action": "read", "object": _obj("c1", "o999")},
                    {"action": "delete", "object": _obj("c2", "o500", owner=f"{ISS}|bob")},
                    {"action": "read", "object": _obj("c3", "elsewhere")},
                ],
            },
            headers=admin,
        )
        assert answers.status_code == 200, answers.text
        got = [(r["allowed"], r["decided_by"]) for r in answers.json()["results"]]
        assert got == [(True, "organization"), (False, "organization"), (False, "nothing")]
    bad = await client.post(
        "/v1/authz/check",
        json={"subject": big, "action": "read", "object": _obj("c4", "broken")},
        headers=admin,
    )
    assert bad.status_code == 400, bad.text
    assert bad.json()["pointer"] == "/subject/organizations/broken/0"
