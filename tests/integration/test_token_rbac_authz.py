"""End to end: an API token's owner is authorized by RBAC roles, narrowed by the token."""

from __future__ import annotations

import httpx

from watchword.rbac.service import store_context
from watchword.rbac.store.accounts import create_binding
from watchword.runtime import Runtime
from watchword.tokens.format import TokenKind
from watchword.tokens.model import Owner
from watchword.tokens.scope import Permission
from watchword.tokens.service import NewToken, token_service

QUESTION = {
    "subject": {"issuer": "https://i", "id": "x", "global_roles": []},
    "action": "read",
    "object": {"type": "watchword:organizations", "id": "o1"},
}


async def _token(
    runtime: Runtime, subject: str, scopes: set[str], permission: Permission
) -> dict[str, str]:
    issued = await runtime.service(token_service).create(
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
    client: httpx.AsyncClient, runtime: Runtime
) -> None:
    await create_binding(
        store_context(runtime),
        issuer=runtime.settings.issuer_url,
        role_ids=["authz-client"],
        subject_id="svc-orders",
    )
    granted = await _token(runtime, "svc-orders", {"watchword:authz:check"}, Permission.READ_ONLY)
    r = await client.post("/v1/authz/check", json=QUESTION, headers=granted)
    assert r.status_code == 200, r.text
    assert r.json()["allowed"] is False  # the inline subject has no roles

    # Same owner, but the token's scope does not include the authz check.
    narrowed = await _token(runtime, "svc-orders", {"watchword:acl:read"}, Permission.READ_WRITE)
    assert (
        await client.post("/v1/authz/check", json=QUESTION, headers=narrowed)
    ).status_code == 403

    # A subject without the role is refused whatever its token says.
    other = await _token(runtime, "svc-other", {"*:*"}, Permission.READ_WRITE)
    assert (await client.post("/v1/authz/check", json=QUESTION, headers=other)).status_code == 403
