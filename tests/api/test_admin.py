from __future__ import annotations

import httpx

from watchword.bootstrap import create_admin_key
from watchword.runtime import Runtime


async def test_admin_route_without_credentials_is_401_problem(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/admin/keys")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.json()["code"] == "unauthenticated"


async def test_admin_route_with_wrong_key_is_401(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/admin/whoami", headers={"Authorization": "Bearer wwb_" + "x" * 40})
    assert r.status_code == 401


async def test_bootstrap_key_grants_admin_and_revocation_removes_it(
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    key, secret = await create_admin_key(runtime.engine, runtime.clock)
    auth = {"Authorization": f"Bearer {secret.reveal()}"}
    who = await client.get("/v1/admin/whoami", headers=auth)
    assert who.status_code == 200 and who.json() == {"kind": "admin_key", "id": key.id}

    listed = await client.get("/v1/admin/keys", headers=auth)
    assert [k["id"] for k in listed.json()] == [key.id]
    assert secret.reveal() not in listed.text

    other, other_secret = await create_admin_key(runtime.engine, runtime.clock)
    assert (await client.delete(f"/v1/admin/keys/{key.id}", headers=auth)).status_code == 204
    assert (await client.get("/v1/admin/whoami", headers=auth)).status_code == 401
    again = await client.delete(
        f"/v1/admin/keys/{key.id}", headers={"Authorization": f"Bearer {other_secret.reveal()}"}
    )
    assert again.status_code == 404 and again.json()["code"] == "not_found"
    assert other.id != key.id


async def test_bootstrap_key_is_stored_hashed(runtime: Runtime) -> None:
    from sqlalchemy import select

    from watchword.storage.tables import admin_keys

    _, secret = await create_admin_key(runtime.engine, runtime.clock)
    async with runtime.engine.connect() as conn:
        stored = (await conn.execute(select(admin_keys.c.key_hash))).scalar_one()
    assert secret.reveal() not in stored and len(stored) == 64
