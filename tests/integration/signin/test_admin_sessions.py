"""Administering sessions: the policy engine decides, as for every administrative endpoint.
A platform administrator (admin key) reaches every session; an organization's ``org-admin``
reaches only the sessions of that organization's members; a plain member reaches none. One
source of truth per issuer: the provider's issuer record in RBAC gives a signed-in person
exactly the ACL that ``/v1/acl`` computes for that (issuer, subject)."""

from __future__ import annotations

import httpx
import pytest
from tests.integration.signin.conftest import BASE, SigninApp, SigninFactory
from tests.oidc.plugin import AUTHZ_CLAIM, DEFAULT_ACCOUNTS, OidcProviderFactory

from watchword.bootstrap import create_admin_key

ORIGIN = {"Origin": BASE}
ACCOUNTS = {
    **DEFAULT_ACCOUNTS,
    "carol": {
        "sub": "carol-0003",
        "email": "carol@example.com",
        "name": "Carol Outsider",
        "groups": [],
        AUTHZ_CLAIM: {"acctype": "user", "orgIds": []},
    },
}


async def _browser(made: SigninApp, login: str) -> httpx.AsyncClient:
    """Another browser signed in as ``login`` (its own cookies, its own provider agent)."""
    browser = httpx.AsyncClient(transport=made.client._transport, base_url=BASE)
    async with httpx.AsyncClient() as agent:
        started = await browser.get("/auth/login", params={"provider": "test"})
        back = await made.provider.authorize(started.headers["location"], login=login, agent=agent)
    done = await browser.get(back.removeprefix(BASE))
    assert done.status_code == 302, done.text
    return browser


@pytest.fixture
async def org_world(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> tuple[SigninApp, dict[str, str], str]:
    provider = oidc_provider_factory(accounts=ACCOUNTS)
    made = await signin_app(provider)
    _, secret = await create_admin_key(made.services.runtime.engine, made.services.runtime.clock)
    admin = {"Authorization": f"Bearer {secret.reveal()}"}
    org = await made.client.post("/v1/organizations", json={"name": "acme"}, headers=admin)
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    members = [
        {"id": "alice-0001", "issuer": provider.issuer},
        {"id": "bob-0002", "issuer": provider.issuer},
    ]
    group = await made.client.post(
        f"/v1/organizations/{org_id}/groups",
        json={"name": "staff", "members": members[:1]},
        headers=admin,
    )
    assert group.status_code == 201, group.text
    admins = await made.client.post(
        f"/v1/organizations/{org_id}/groups",
        json={"name": "admins", "members": members[1:], "role_ids": ["org-admin"]},
        headers=admin,
    )
    assert admins.status_code == 201, admins.text
    return made, admin, org_id


async def test_who_sees_and_ends_which_sessions(
    org_world: tuple[SigninApp, dict[str, str], str],
) -> None:
    made, admin, org_id = org_world
    alice = await _browser(made, "alice")
    bob = await _browser(made, "bob")
    carol = await _browser(made, "carol")
    try:
        everything = await made.client.get("/v1/sessions", headers=admin)
        assert everything.status_code == 200
        by_subject = {s["subject"]: s for s in everything.json()["items"]}
        assert set(by_subject) == {"alice-0001", "bob-0002", "carol-0003"}
        assert by_subject["alice-0001"]["organization_ids"] == [org_id]
        assert by_subject["carol-0003"]["organization_ids"] == []
        for item in everything.json()["items"]:
            assert not {"access_token", "refresh_token", "id_token", "claims"} & set(item)

        # bob, org-admin of acme: acme's members' sessions only, and only when he names acme.
        unscoped = await bob.get("/v1/sessions")
        assert unscoped.status_code == 403
        scoped = await bob.get("/v1/sessions", params={"organization_id": org_id})
        assert scoped.status_code == 200
        assert {s["subject"] for s in scoped.json()["items"]} == {"alice-0001", "bob-0002"}
        carol_id = by_subject["carol-0003"]["id"]
        alice_id = by_subject["alice-0001"]["id"]
        assert (await bob.get(f"/v1/sessions/{carol_id}")).status_code == 404
        detail = await bob.get(f"/v1/sessions/{alice_id}")
        assert detail.status_code == 200 and detail.json()["email"] == "alice@example.com"
        assert detail.json()["claims"] is None  # an organization's admin: no claims snapshot
        full = await made.client.get(f"/v1/sessions/{alice_id}", headers=admin)
        assert full.json()["claims"]["groups"] == ["engineering", "admins"]
        assert (await bob.delete(f"/v1/sessions/{carol_id}", headers=ORIGIN)).status_code == 404

        # alice, a plain member: no session administration at all.
        assert (
            await alice.get("/v1/sessions", params={"organization_id": org_id})
        ).status_code == 403
        assert (await alice.get(f"/v1/sessions/{carol_id}")).status_code == 404

        # bob ends alice's session: her next request is refused.
        ended = await bob.delete(f"/v1/sessions/{alice_id}", headers=ORIGIN)
        assert ended.status_code == 204
        refused = await alice.get("/v1/me")
        assert refused.status_code == 401 and refused.json()["code"] == "session_invalid"

        # The administrator signs carol out everywhere.
        issuer = made.provider.issuer
        out = await made.client.delete(
            "/v1/sessions", params={"issuer": issuer, "subject": "carol-0003"}, headers=admin
        )
        assert out.status_code == 200 and out.json() == {"ended": 1}
        assert (await carol.get("/v1/me")).status_code == 401
        assert (await bob.get("/v1/me")).status_code == 200
    finally:
        for browser in (alice, bob, carol):
            await browser.aclose()


async def test_a_signed_in_person_gets_exactly_the_acl_rbac_computes_for_that_subject(
    org_world: tuple[SigninApp, dict[str, str], str],
) -> None:
    made, admin, org_id = org_world
    bob = await _browser(made, "bob")
    try:
        me = (await bob.get("/v1/me")).json()
        computed = await made.services.rbac.acl(made.provider.issuer, "bob-0002", me["claims"])
        assert me["acl"]["organizations"] == computed["organizations"]
        assert [o["id"] for o in me["acl"]["organizations"]] == [org_id]
        assert me["acl"]["subject"] == {
            "id": "bob-0002",
            "issuer": made.provider.issuer,
            "type": "user",
        }
        issuers = await made.client.get(
            "/v1/issuers", params={"url": made.provider.issuer}, headers=admin
        )
        (record,) = issuers.json()["items"]
        assert record["groups_claim"] == "groups" and record["subject_claim"] == "sub"
    finally:
        await bob.aclose()
