from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from watchword.bootstrap import create_admin_key
from watchword.clock import FakeClock
from watchword.runtime import Runtime
from watchword.tokens.format import BODY_LENGTH, TokenKind, compose
from watchword.tokens.rotation import MAX_LIFETIME
from watchword.tokens.tables import api_tokens

Headers = dict[str, str]


@pytest.fixture
async def admin(runtime: Runtime) -> Headers:
    _, secret = await create_admin_key(runtime.engine, runtime.clock)
    return {"Authorization": f"Bearer {secret.reveal()}"}


def _bearer(token: str) -> Headers:
    return {"Authorization": f"Bearer {token}"}


async def _create(client: httpx.AsyncClient, headers: Headers, **body: object) -> dict[str, object]:
    payload: dict[str, object] = {"name": "ci", "owner_subject": "alice", "scopes": ["projects:*"]}
    payload.update(body)
    r = await client.post("/v1/tokens", json=payload, headers=headers)
    assert r.status_code == 201, r.text
    data: dict[str, object] = r.json()
    return data


async def test_tokens_create_shows_plaintext_once_and_never_again(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    created = await _create(client, admin, permission="rw")
    token = str(created["token"])
    assert token.startswith("wwp_") and created["prefix"] == token[:8]
    assert created["state"] == "active" and created["owner_issuer"] == "http://127.0.0.1:8000"
    listed = await client.get("/v1/tokens", headers=admin)
    one = await client.get(f"/v1/tokens/{created['id']}", headers=admin)
    for r in (listed, one):
        assert r.status_code == 200 and token not in r.text and "token_hash" not in r.text
    assert one.json()["scopes"] == ["projects:*"]


async def test_tokens_token_principal_sees_and_manages_only_its_own(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    alice = await _create(client, admin, permission="rw")
    bob = await _create(client, admin, owner_subject="bob")
    a = _bearer(str(alice["token"]))
    ids = [t["id"] for t in (await client.get("/v1/tokens", headers=a)).json()["items"]]
    assert ids == [alice["id"]]
    for method, path in [
        ("GET", f"/v1/tokens/{bob['id']}"),
        ("POST", f"/v1/tokens/{bob['id']}/revoke"),
        ("POST", f"/v1/tokens/{bob['id']}/rotate"),
    ]:
        r = await client.request(method, path, headers=a)
        assert r.status_code == 404 and r.json()["code"] == "not_found"
    # bob's token still works
    r = await client.get("/v1/tokens", headers=_bearer(str(bob["token"])))
    assert r.status_code == 200


async def test_tokens_token_principal_creates_personal_tokens_within_its_scopes(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    parent = await _create(client, admin, scopes=["projects:*"], permission="rw")
    h = _bearer(str(parent["token"]))
    ok = await client.post(
        "/v1/tokens", json={"name": "child", "scopes": ["projects:read"]}, headers=h
    )
    assert ok.status_code == 201 and ok.json()["owner_subject"] == "alice"
    for body in (
        {"name": "x", "scopes": ["orgs:read"]},
        {"name": "x", "scopes": [], "kind": "integration"},
        {"name": "x", "scopes": [], "owner_subject": "bob"},
    ):
        r = await client.post("/v1/tokens", json=body, headers=h)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", body
    # A personal token belongs to no organization, whoever asks.
    for headers in (h, admin):
        r = await client.post(
            "/v1/tokens",
            json={"name": "x", "owner_subject": "alice", "organization_id": "org-1"},
            headers=headers,
        )
        assert r.status_code == 400 and r.json()["pointer"] == "/organization_id"


async def test_tokens_admin_create_without_owner_is_400_with_pointer(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    r = await client.post("/v1/tokens", json={"name": "x"}, headers=admin)
    assert r.status_code == 400 and r.json()["pointer"] == "/owner_subject"
    bad = await client.post(
        "/v1/tokens", json={"name": "x", "owner_subject": "a", "scopes": ["no"]}, headers=admin
    )
    assert bad.status_code == 400 and bad.json()["pointer"] == "/scopes"


async def test_tokens_list_paginates_with_a_cursor(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    made = [str((await _create(client, admin, name=f"t{i}"))["id"]) for i in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2, "owner_subject": "alice"}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/tokens", params=params, headers=admin)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(made)


async def test_tokens_rotate_then_revoke(
    client: httpx.AsyncClient, admin: Headers, runtime: Runtime
) -> None:
    old = await _create(client, admin, permission="rw")
    h = _bearer(str(old["token"]))
    rotated = await client.post(f"/v1/tokens/{old['id']}/rotate", headers=h)
    assert rotated.status_code == 201 and rotated.json()["rotated_from"] == old["id"]
    again = await client.post(f"/v1/tokens/{old['id']}/rotate", headers=h)
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    new = _bearer(rotated.json()["token"])
    r = await client.post(f"/v1/tokens/{old['id']}/revoke", headers=new)
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    assert (await client.get("/v1/tokens", headers=h)).json()["code"] == "token_revoked"


@pytest.mark.parametrize("case", ["malformed", "unknown", "expired", "revoked"])
async def test_tokens_bad_bearer_is_401_with_its_code_and_a_generic_detail(
    client: httpx.AsyncClient, admin: Headers, runtime: Runtime, case: str
) -> None:
    clock = runtime.clock
    assert isinstance(clock, FakeClock)
    if case == "malformed":
        token = "wwp_" + "x" * 36
    elif case == "unknown":
        token = compose(TokenKind.PERSONAL, "Z" * BODY_LENGTH)
    else:
        expires = (clock.now() + timedelta(minutes=1)).isoformat()
        created = await _create(client, admin, expires_at=expires)
        token = str(created["token"])
        if case == "expired":
            clock.advance(timedelta(minutes=1))
        else:
            await client.post(f"/v1/tokens/{created['id']}/revoke", headers=admin)
    r = await client.get("/v1/tokens", headers=_bearer(token))
    assert r.status_code == 401
    body = r.json()
    assert body["code"] == f"token_{case}"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert "alice" not in r.text and "tok_" not in r.text


async def test_oauth_introspect_active_and_inactive(
    client: httpx.AsyncClient, admin: Headers, runtime: Runtime
) -> None:
    created = await _create(client, admin, kind="integration", organization_id="org-9")
    r = await client.post("/v1/oauth/introspect", data={"token": created["token"]}, headers=admin)
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["active"] is True and body["sub"] == "alice"
    assert body["iss"] == runtime.settings.issuer_url and body["scope"] == "projects:*"
    assert body["client_id"] == created["id"] and body["organization_id"] == "org-9"
    for token in ("nonsense", compose(TokenKind.SERVICE_ACCOUNT, "Q" * BODY_LENGTH)):
        r = await client.post("/v1/oauth/introspect", data={"token": token}, headers=admin)
        assert r.json() == {"active": False}
    await client.post(f"/v1/tokens/{created['id']}/revoke", headers=admin)
    r = await client.post("/v1/oauth/introspect", data={"token": created["token"]}, headers=admin)
    assert r.json() == {"active": False}


async def test_oauth_introspect_needs_a_caller_and_a_token_parameter(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    r = await client.post("/v1/oauth/introspect", data={"token": "x"})
    assert r.status_code == 401
    r = await client.post("/v1/oauth/introspect", data={}, headers=admin)
    assert r.status_code == 400 and r.json()["pointer"] == "/token"
    r = await client.post("/v1/oauth/introspect", json={"token": "x"}, headers=admin)
    assert r.status_code == 400


async def test_oauth_revoke_is_200_for_unknown_and_revokes_a_presented_token(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    created = await _create(client, admin)
    caller = await _create(client, admin, owner_subject="resource-server")
    h = _bearer(str(caller["token"]))
    for token in ("garbage", compose(TokenKind.PERSONAL, "N" * BODY_LENGTH)):
        r = await client.post("/v1/oauth/revoke", data={"token": token}, headers=h)
        assert r.status_code == 200
    r = await client.post("/v1/oauth/revoke", data={"token": created["token"]}, headers=h)
    assert r.status_code == 200
    r = await client.get("/v1/tokens", headers=_bearer(str(created["token"])))
    assert r.json()["code"] == "token_revoked"
    r = await client.post("/v1/oauth/revoke", data={"token": created["token"]}, headers=h)
    assert r.status_code == 200


async def test_tokens_token_principal_cannot_rotate_a_broader_sibling_is_403(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    narrow = await _create(client, admin, scopes=["projects:read"], permission="rw")
    broad = await _create(client, admin, scopes=["*:*"], permission="rw")
    h = _bearer(str(narrow["token"]))
    r = await client.post(f"/v1/tokens/{broad['id']}/rotate", headers=h)
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert "token" not in r.json()
    # the broad token was not rotated: its owner can still rotate it once
    ok = await client.post(f"/v1/tokens/{broad['id']}/rotate", headers=_bearer(str(broad["token"])))
    assert ok.status_code == 201 and ok.json()["scopes"] == ["*:*"]
    # a token within the caller's own stays rotatable by it
    child = await _create(client, admin, scopes=["projects:read"], permission="ro")
    r = await client.post(f"/v1/tokens/{child['id']}/rotate", headers=h)
    assert r.status_code == 201


async def test_tokens_token_principal_cannot_rotate_a_sibling_of_another_organization_is_403(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    mine = await _create(
        client, admin, kind="integration", organization_id="org-1", permission="rw"
    )
    other = await _create(client, admin, kind="integration", organization_id="org-2")
    r = await client.post(f"/v1/tokens/{other['id']}/rotate", headers=_bearer(str(mine["token"])))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    same = await _create(client, admin, kind="integration", organization_id="org-1")
    r = await client.post(f"/v1/tokens/{same['id']}/rotate", headers=_bearer(str(mine["token"])))
    assert r.status_code == 201 and r.json()["organization_id"] == "org-1"


async def test_tokens_read_only_token_reads_but_cannot_change_tokens(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    ro = await _create(client, admin, scopes=["projects:*"], permission="ro")
    sibling = await _create(client, admin, scopes=["projects:read"], permission="ro")
    h = _bearer(str(ro["token"]))
    assert (await client.get("/v1/tokens", headers=h)).status_code == 200
    assert (await client.get(f"/v1/tokens/{sibling['id']}", headers=h)).status_code == 200
    for method, path, body in (
        ("POST", "/v1/tokens", {"name": "child", "scopes": ["projects:read"]}),
        ("POST", f"/v1/tokens/{sibling['id']}/rotate", None),
        ("POST", f"/v1/tokens/{sibling['id']}/revoke", None),
    ):
        r = await client.request(method, path, json=body, headers=h)
        assert r.status_code == 403 and "read-only" in r.json()["detail"], path


async def test_tokens_child_never_outlives_the_token_that_made_it(
    client: httpx.AsyncClient, admin: Headers, runtime: Runtime
) -> None:
    from datetime import timedelta

    parent_expiry = runtime.clock.now() + timedelta(days=1)
    parent = await _create(client, admin, permission="rw", expires_at=parent_expiry.isoformat())
    h = _bearer(str(parent["token"]))
    for requested in (None, (runtime.clock.now() + timedelta(days=30)).isoformat()):
        body: dict[str, object] = {"name": "child", "scopes": ["projects:read"]}
        if requested is not None:
            body["expires_at"] = requested
        child = await client.post("/v1/tokens", json=body, headers=h)
        assert child.status_code == 201
        assert child.json()["expires_at"] == parent["expires_at"]
    sooner = (runtime.clock.now() + timedelta(hours=1)).isoformat()
    short = await client.post(
        "/v1/tokens",
        json={"name": "short", "scopes": ["projects:read"], "expires_at": sooner},
        headers=h,
    )
    assert short.json()["expires_at"] != parent["expires_at"]


async def test_tokens_responses_carrying_a_plaintext_are_never_cached(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    created = await client.post(
        "/v1/tokens",
        json={"name": "ci", "owner_subject": "alice", "permission": "rw", "scopes": ["*:*"]},
        headers=admin,
    )
    # A personal token is rotated by its owner's credential (here: itself).
    own = _bearer(created.json()["token"])
    rotated = await client.post(f"/v1/tokens/{created.json()['id']}/rotate", headers=own)
    for r in (created, rotated):
        assert r.status_code == 201, r.text
        assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    listed = await client.get("/v1/tokens", headers=admin)
    assert "cache-control" not in listed.headers  # only responses with a secret


async def test_tokens_expires_at_needs_a_time_zone_and_is_422_with_a_pointer(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    for value in ("2030-01-01T00:00:00", "2030-01-01"):
        r = await client.post(
            "/v1/tokens",
            json={"name": "x", "owner_subject": "alice", "expires_at": value},
            headers=admin,
        )
        assert r.status_code == 422 and r.json()["pointer"] == "/expires_at", r.text


async def test_tokens_expiry_is_bounded_and_rotating_a_far_token_does_not_overflow(
    client: httpx.AsyncClient, admin: Headers, runtime: Runtime
) -> None:
    far = {"name": "x", "owner_subject": "alice", "expires_at": "9999-12-31T23:59:59Z"}
    r = await client.post("/v1/tokens", json=far, headers=admin)
    assert r.status_code == 400 and r.json()["pointer"] == "/expires_at", r.text
    latest = runtime.clock.now() + MAX_LIFETIME
    ok = await _create(client, admin, expires_at=latest.isoformat(), permission="rw")
    # a token stored before the bound existed (or by hand) rotates without overflow
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == ok["id"])
            .values(expires_at=datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC))
        )
    rotated = await client.post(f"/v1/tokens/{ok['id']}/rotate", headers=_bearer(str(ok["token"])))
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["expires_at"] == latest.isoformat().replace("+00:00", "Z")


async def test_tokens_list_with_a_cursor_it_did_not_return_is_400_with_a_pointer(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    await _create(client, admin)
    for cursor in ("garbage", "tok_", "org_01arz3ndektsv4rrffq69g5fav"):
        r = await client.get("/v1/tokens", params={"cursor": cursor}, headers=admin)
        assert r.status_code == 400, (cursor, r.text)
        assert r.json()["code"] == "invalid_request" and r.json()["pointer"] == "/cursor"


async def test_tokens_revoking_a_token_revokes_the_children_it_made_and_their_successors(
    client: httpx.AsyncClient, admin: Headers
) -> None:
    parent = await _create(client, admin, permission="rw")  # no expiry: children neither
    h = _bearer(str(parent["token"]))
    r = await client.post(
        "/v1/tokens",
        json={"name": "child", "scopes": ["projects:read"], "permission": "rw"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    child = r.json()
    # a personal token is rotated by its owner's credential: here, itself
    r = await client.post(f"/v1/tokens/{child['id']}/rotate", headers=_bearer(child["token"]))
    assert r.status_code == 201, r.text
    successor = r.json()  # the child's successor, while the child is in its grace period
    for token in (child["token"], successor["token"]):
        assert (await client.get("/v1/tokens", headers=_bearer(token))).status_code == 200
    r = await client.post(f"/v1/tokens/{parent['id']}/revoke", headers=admin)
    assert r.status_code == 200 and r.json()["state"] == "revoked"
    for token in (parent["token"], child["token"], successor["token"]):
        r = await client.get("/v1/tokens", headers=_bearer(str(token)))
        assert r.status_code == 401 and r.json()["code"] == "token_revoked"


async def test_tokens_rotating_a_longer_lived_sibling_never_outlives_the_caller(
    client: httpx.AsyncClient, admin: Headers, runtime: Runtime
) -> None:
    from datetime import timedelta

    ends = (runtime.clock.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    short = await _create(client, admin, permission="rw", scopes=["*:*"], expires_at=ends)
    forever = await _create(client, admin, permission="rw", scopes=["*:*"])
    r = await client.post(
        f"/v1/tokens/{forever['id']}/rotate", headers=_bearer(str(short["token"]))
    )
    assert r.status_code == 201, r.text
    assert r.json()["expires_at"] == ends


async def test_tokens_rotation_drops_an_old_organization_label_from_a_personal_token(
    client: httpx.AsyncClient, admin: Headers, runtime: Runtime
) -> None:
    made = await _create(client, admin, permission="rw")
    async with runtime.engine.begin() as conn:  # a row from before labels were refused
        await conn.execute(
            update(api_tokens).where(api_tokens.c.id == made["id"]).values(organization_id="org-1")
        )
    r = await client.post(f"/v1/tokens/{made['id']}/rotate", headers=_bearer(str(made["token"])))
    assert r.status_code == 201, r.text
    assert r.json()["organization_id"] is None
