"""End to end: an API token's owner is authorized by RBAC roles, narrowed by the token."""

from __future__ import annotations

import httpx
from sqlalchemy import update

from watchword.rbac.store.accounts import create_binding
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.tokens.format import TokenKind
from watchword.tokens.model import Owner
from watchword.tokens.scope import Permission
from watchword.tokens.service import NewToken
from watchword.tokens.tables import api_tokens

QUESTION = {
    "subject": {"issuer": "https://i", "id": "x", "global_roles": []},
    "action": "read",
    "object": {"type": "watchword:organizations", "id": "o1"},
}


async def _token(
    runtime: Runtime, services: Services, subject: str, scopes: set[str], permission: Permission
) -> dict[str, str]:
    issued = await services.tokens.create(
        NewToken(
            kind=TokenKind.PERSONAL,
            name="t",
            owner=Owner(runtime.settings.issuer_url, subject),
            scopes=frozenset(scopes),
            permission=permission,
        )
    )
    return {"Authorization": f"Bearer {issued.token.reveal()}"}


async def test_token_owner_with_authz_client_role_may_ask_and_scope_narrows(
    client: httpx.AsyncClient, runtime: Runtime, services: Services
) -> None:
    await create_binding(
        services.store,
        issuer=runtime.settings.issuer_url,
        role_ids=["authz-client"],
        subject_id="svc-orders",
    )
    granted = await _token(
        runtime, services, "svc-orders", {"watchword:authz:check"}, Permission.READ_ONLY
    )
    r = await client.post("/v1/authz/check", json=QUESTION, headers=granted)
    assert r.status_code == 200, r.text
    assert r.json()["allowed"] is False  # the inline subject has no roles

    # Same owner, but the token's scope does not include the authz check.
    narrowed = await _token(
        runtime, services, "svc-orders", {"watchword:acl:read"}, Permission.READ_WRITE
    )
    assert (
        await client.post("/v1/authz/check", json=QUESTION, headers=narrowed)
    ).status_code == 403

    # A subject without the role is refused whatever its token says.
    other = await _token(runtime, services, "svc-other", {"*:*"}, Permission.READ_WRITE)
    assert (await client.post("/v1/authz/check", json=QUESTION, headers=other)).status_code == 403


async def test_org_admin_manages_service_account_tokens_of_its_organization_only(
    client: httpx.AsyncClient, runtime: Runtime, services: Services
) -> None:
    from watchword.rbac.model import GroupMember
    from watchword.rbac.store.accounts import create_service_account
    from watchword.rbac.store.groups import create_group
    from watchword.rbac.store.organizations import create_organization

    ctx = services.store
    iss = runtime.settings.issuer_url
    acme = await create_organization(ctx, name="acme")
    globex = await create_organization(ctx, name="globex")
    acme_sa = await create_service_account(ctx, organization_id=acme.id, name="deployer")
    globex_sa = await create_service_account(ctx, organization_id=globex.id, name="deployer")
    await create_group(
        ctx,
        organization_id=acme.id,
        name="admins",
        members=[GroupMember(iss, "carol")],
        role_ids=["org-admin"],
    )
    admin_scopes = {"watchword:tokens:*", "compute:clusters:*"}
    carol = await _token(runtime, services, "carol", admin_scopes, Permission.READ_WRITE)
    dave = await _token(runtime, services, "dave", {"watchword:tokens:*"}, Permission.READ_WRITE)

    def sa_token(org: str, sa: str) -> dict[str, object]:
        return {
            "kind": "service_account",
            "name": "deploy",
            "organization_id": org,
            "owner_subject": f"sa:{sa}",
            "scopes": ["compute:clusters:*"],
            "permission": "rw",
        }

    made = await client.post("/v1/tokens", json=sa_token(acme.id, acme_sa.id), headers=carol)
    assert made.status_code == 201, made.text
    assert made.json()["token"].startswith("wws_")
    assert made.json()["owner_subject"] == f"sa:{acme_sa.id}"
    token_id = made.json()["id"]

    # Another organization, or this organization's admin naming a foreign service account.
    foreign = await client.post("/v1/tokens", json=sa_token(globex.id, globex_sa.id), headers=carol)
    assert foreign.status_code == 404
    smuggled = await client.post("/v1/tokens", json=sa_token(acme.id, globex_sa.id), headers=carol)
    assert smuggled.status_code == 404

    listed = await client.get("/v1/tokens", params={"organization_id": acme.id}, headers=carol)
    assert [t["id"] for t in listed.json()["items"]] == [token_id]
    assert "token" not in listed.json()["items"][0]

    # Someone without a role there sees nothing, and may not revoke.
    assert (await client.get(f"/v1/tokens/{token_id}", headers=dave)).status_code == 404
    assert (await client.post(f"/v1/tokens/{token_id}/revoke", headers=dave)).status_code == 404
    denied = await client.get("/v1/tokens", params={"organization_id": acme.id}, headers=dave)
    assert denied.status_code == 404

    # An administrator hands out nothing beyond its own credential, new or rotated: a carol
    # token scoped to token administration alone can neither mint nor rotate a compute token.
    narrow = await _token(runtime, services, "carol", {"watchword:tokens:*"}, Permission.READ_WRITE)
    refused = await client.post("/v1/tokens", json=sa_token(acme.id, acme_sa.id), headers=narrow)
    assert refused.status_code == 403 and "within" in refused.json()["detail"]
    refused = await client.post(f"/v1/tokens/{token_id}/rotate", headers=narrow)
    assert refused.status_code == 403 and "token" not in refused.json()
    rotated = await client.post(f"/v1/tokens/{token_id}/rotate", headers=carol)
    assert rotated.status_code == 201 and rotated.json()["token"].startswith("wws_")
    token_id = rotated.json()["id"]

    # A member's personal token (labelled with the organization, as rows from before labels
    # were refused on personal tokens): the administrator may revoke it, never rotate it.
    legacy = await services.tokens.create(
        NewToken(
            kind=TokenKind.PERSONAL,
            name="laptop",
            owner=Owner(iss, "erin"),
            scopes=frozenset({"*:*"}),
            permission=Permission.READ_WRITE,
        )
    )
    async with runtime.engine.begin() as conn:
        await conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == legacy.record.id)
            .values(organization_id=acme.id)
        )
    taken = await client.post(f"/v1/tokens/{legacy.record.id}/rotate", headers=carol)
    assert taken.status_code == 403 and "token" not in taken.json()
    gone = await client.post(f"/v1/tokens/{legacy.record.id}/revoke", headers=carol)
    assert gone.status_code == 200 and gone.json()["state"] == "revoked"

    revoked = await client.post(f"/v1/tokens/{token_id}/revoke", headers=carol)
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"


async def test_authz_check_by_subject_ref_resolves_stored_memberships(
    client: httpx.AsyncClient, runtime: Runtime, services: Services
) -> None:
    from watchword.bootstrap import create_admin_key
    from watchword.rbac.model import GroupMember
    from watchword.rbac.store.groups import create_group
    from watchword.rbac.store.organizations import create_organization

    ctx = services.store
    iss = runtime.settings.issuer_url
    acme = await create_organization(ctx, name="acme-ref")
    await create_group(
        ctx,
        organization_id=acme.id,
        name="readers",
        members=[GroupMember(iss, "erin")],
        role_ids=["org-reader"],
    )
    _, key = await create_admin_key(runtime.engine, runtime.clock)
    admin = {"Authorization": f"Bearer {key.reveal()}"}
    obj = {"type": "watchword:organizations", "id": acme.id, "org_id": acme.id}

    async def ask(subject: str, action: str) -> bool:
        r = await client.post(
            "/v1/authz/check",
            json={"subject_ref": {"issuer": iss, "id": subject}, "action": action, "object": obj},
            headers=admin,
        )
        assert r.status_code == 200, r.text
        return bool(r.json()["allowed"])

    assert await ask("erin", "read") is True
    assert await ask("erin", "update") is False
    # The same id under another issuer is another subject with nothing.
    other = await client.post(
        "/v1/authz/check",
        json={
            "subject_ref": {"issuer": "https://elsewhere.example", "id": "erin"},
            "action": "read",
            "object": obj,
        },
        headers=admin,
    )
    assert other.json()["allowed"] is False


async def test_deleting_a_service_account_revokes_its_tokens_and_drops_its_bindings(
    client: httpx.AsyncClient, runtime: Runtime, services: Services
) -> None:
    from watchword.bootstrap import create_admin_key
    from watchword.rbac.store.accounts import create_service_account, list_bindings
    from watchword.rbac.store.organizations import create_organization

    ctx = services.store
    acme = await create_organization(ctx, name="acme-sa")
    sa = await create_service_account(ctx, organization_id=acme.id, name="deployer")
    owner = Owner(runtime.settings.issuer_url, f"sa:{sa.id}")
    await create_binding(
        ctx, issuer=owner.issuer, subject_id=owner.subject, role_ids=["authz-client"]
    )
    issued = await services.tokens.create(
        NewToken(
            kind=TokenKind.SERVICE_ACCOUNT,
            name="deploy",
            owner=owner,
            scopes=frozenset({"*:*"}),
            permission=Permission.READ_WRITE,
            organization_id=acme.id,
        )
    )
    sa_headers = {"Authorization": f"Bearer {issued.token.reveal()}"}
    asked = await client.post("/v1/authz/check", json=QUESTION, headers=sa_headers)
    assert asked.status_code == 200  # cached as valid in this replica from now on
    _, key = await create_admin_key(runtime.engine, runtime.clock)
    admin = {"Authorization": f"Bearer {key.reveal()}"}

    gone = await client.delete(
        f"/v1/organizations/{acme.id}/service-accounts/{sa.id}", headers=admin
    )
    assert gone.status_code == 204

    after = await client.post("/v1/authz/check", json=QUESTION, headers=sa_headers)
    assert after.status_code == 401 and after.json()["code"] == "token_revoked"
    page = await list_bindings(ctx, issuer=owner.issuer)
    assert [b for b in page.items if b.subject_id == owner.subject] == []
