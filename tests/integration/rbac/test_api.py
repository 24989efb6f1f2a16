"""The administration API on SQLite and PostgreSQL: CRUD, pagination, ETag/If-Match,
problem+json codes, and authorization by the engine (404 when unreadable, 403 when only
readable)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials

from watchword.api.deps import current_principal, get_services
from watchword.api.schemas import AclOut
from watchword.bootstrap import create_admin_key
from watchword.principal import Principal, PrincipalKind
from watchword.rbac.model import GroupMember
from watchword.rbac.store import groups, organizations
from watchword.rbac.store.context import StoreContext
from watchword.runtime import Runtime

Headers = dict[str, str]


@pytest.fixture
async def admin(db_runtime: Runtime) -> Headers:
    _, secret = await create_admin_key(db_runtime.engine, db_runtime.clock)
    return {"Authorization": f"Bearer {secret.reveal()}"}


TEST_TOKEN = "Bearer test-subject:"


@pytest.fixture
def act_as(app: FastAPI, db_runtime: Runtime) -> Callable[[str], Headers]:
    """Headers that authenticate as a token principal of watchword's issuer.

    The API-token authenticator is another part; its contract (a Principal with issuer and
    subject) is what the RBAC dependency consumes, so tests stand in for it; admin keys
    still go through the real authentication.
    """

    async def principal(request: Request) -> Principal:
        auth = request.headers.get("authorization", "")
        if auth.startswith(TEST_TOKEN):
            subject = auth.removeprefix(TEST_TOKEN)
            return Principal(
                kind=PrincipalKind.API_TOKEN,
                id="tok",
                issuer=db_runtime.settings.issuer_url,
                subject=subject,
            )
        scheme, _, value = auth.partition(" ")
        creds = HTTPAuthorizationCredentials(scheme=scheme, credentials=value) if value else None
        return await current_principal(request, await get_services(request), creds)

    app.dependency_overrides[current_principal] = principal
    return lambda subject: {"Authorization": TEST_TOKEN + subject}


def tag() -> str:
    return secrets.token_hex(4)


async def make_org(api: httpx.AsyncClient, admin: Headers, name: str) -> str:
    r = await api.post("/v1/organizations", json={"name": name}, headers=admin)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_organization_crud_with_etags(api: httpx.AsyncClient, admin: Headers) -> None:
    r = await api.post("/v1/organizations", json={"name": f"acme-{tag()}"}, headers=admin)
    assert r.status_code == 201 and r.headers["etag"] == '"1"'
    org = r.json()["id"]
    got = await api.get(f"/v1/organizations/{org}", headers=admin)
    assert got.status_code == 200 and got.json()["version"] == 1

    missing = await api.patch(f"/v1/organizations/{org}", json={"description": "x"}, headers=admin)
    assert missing.status_code == 428 and missing.json()["code"] == "precondition_required"

    ok = await api.patch(
        f"/v1/organizations/{org}", json={"description": "x"}, headers={**admin, "If-Match": '"1"'}
    )
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    stale = await api.patch(
        f"/v1/organizations/{org}", json={"description": "y"}, headers={**admin, "If-Match": '"1"'}
    )
    assert stale.status_code == 412 and stale.json()["code"] == "version_conflict"
    assert (await api.get(f"/v1/organizations/{org}", headers=admin)).json()["description"] == "x"

    assert (await api.delete(f"/v1/organizations/{org}", headers=admin)).status_code == 204
    gone = await api.get(f"/v1/organizations/{org}", headers=admin)
    assert gone.status_code == 404 and gone.json()["code"] == "not_found"


async def test_patch_if_match_beyond_the_version_column_is_412_like_delete(
    api: httpx.AsyncClient, admin: Headers
) -> None:
    org = await make_org(api, admin, f"huge-{tag()}")
    for version in ("2147483648", "9223372036854775808", "9" * 40):
        big = {**admin, "If-Match": f'"{version}"'}
        patch = await api.patch(f"/v1/organizations/{org}", json={"description": "x"}, headers=big)
        delete = await api.delete(f"/v1/organizations/{org}", headers=big)
        for r in (patch, delete):
            assert r.status_code == 412 and r.json()["code"] == "version_conflict", r.text


async def test_if_match_compares_strongly_and_star_matches_any_version(
    api: httpx.AsyncClient, admin: Headers
) -> None:
    org = await make_org(api, admin, f"rfc-{tag()}")
    path = f"/v1/organizations/{org}"
    weak = await api.patch(path, json={"description": "w"}, headers={**admin, "If-Match": 'W/"1"'})
    assert weak.status_code == 412 and weak.json()["code"] == "version_conflict"
    star = await api.patch(path, json={"description": "s"}, headers={**admin, "If-Match": "*"})
    assert star.status_code == 200 and star.headers["etag"] == '"2"'
    assert star.json()["description"] == "s"
    weak_delete = await api.delete(path, headers={**admin, "If-Match": 'W/"2"'})
    assert weak_delete.status_code == 412
    assert (await api.delete(path, headers={**admin, "If-Match": "*"})).status_code == 204
    gone = await api.patch(path, json={"description": "g"}, headers={**admin, "If-Match": "*"})
    assert gone.status_code == 404


async def test_list_pagination_cursor_walks_every_row_once(
    api: httpx.AsyncClient, admin: Headers
) -> None:
    org = await make_org(api, admin, f"paged-{tag()}")
    made = set()
    for i in range(5):
        r = await api.post(
            f"/v1/organizations/{org}/projects", json={"name": f"p{i}"}, headers=admin
        )
        made.add(r.json()["id"])
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (
            await api.get(f"/v1/organizations/{org}/projects", params=params, headers=admin)
        ).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen))
    named = await api.get(f"/v1/organizations/{org}/projects", params={"name": "p3"}, headers=admin)
    assert [p["name"] for p in named.json()["items"]] == ["p3"]
    bad = await api.get(f"/v1/organizations/{org}/projects", params={"cursor": "%%"}, headers=admin)
    assert bad.status_code == 400


async def test_invalid_input_is_refused_with_codes(api: httpx.AsyncClient, admin: Headers) -> None:
    unknown = await api.post(
        "/v1/organizations/org_nope/projects", json={"name": "p"}, headers=admin
    )
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_organization"

    org_a = await make_org(api, admin, f"a-{tag()}")
    org_b = await make_org(api, admin, f"b-{tag()}")
    grp = await api.post(
        f"/v1/organizations/{org_a}/groups",
        json={"name": "g", "members": [{"id": "alice@example.com"}]},
        headers=admin,
    )
    assert grp.status_code == 201
    gid = grp.json()["id"]
    dup = await api.post(
        f"/v1/organizations/{org_a}/groups/{gid}/members",
        json={"id": "alice@example.com"},
        headers=admin,
    )
    assert dup.status_code == 409 and dup.json()["code"] == "duplicate_member"
    dup_in_body = await api.post(
        f"/v1/organizations/{org_a}/groups",
        json={"name": "g2", "members": [{"id": "x"}, {"id": "x"}]},
        headers=admin,
    )
    assert dup_in_body.json()["code"] == "duplicate_member"
    assert dup_in_body.json()["pointer"] == "/members/1"

    sa = (
        await api.post(
            f"/v1/organizations/{org_b}/service-accounts", json={"name": "ci"}, headers=admin
        )
    ).json()
    into_a = await api.post(
        f"/v1/organizations/{org_a}/groups/{gid}/members",
        json={"id": sa["subject"]["id"]},
        headers=admin,
    )
    assert into_a.status_code == 400
    assert into_a.json()["code"] == "service_account_foreign_organization"
    move = await api.patch(
        f"/v1/organizations/{org_b}/service-accounts/{sa['id']}",
        json={"organization_id": org_a},
        headers={**admin, "If-Match": '"1"'},
    )
    assert move.status_code == 400 and move.json()["pointer"] == "/organization_id"

    bad_role = await api.post(
        "/v1/roles",
        json={
            "name": f"r-{tag()}",
            "organization_id": org_a,
            "permissions": {
                "organization": [{"resource_type": "no:such-type", "actions": ["read"]}]
            },
        },
        headers=admin,
    )
    assert bad_role.status_code == 400
    assert bad_role.json()["code"] == "unknown_resource_type"
    assert bad_role.json()["pointer"] == "/permissions/organization/0/resource_type"
    bad_action = await api.post(
        "/v1/roles",
        json={
            "name": f"r-{tag()}",
            "permissions": {"project": [{"resource_type": "watchword:acl", "actions": ["delete"]}]},
        },
        headers=admin,
    )
    assert bad_action.json()["code"] == "unknown_action"
    assert bad_action.json()["pointer"] == "/permissions/project/0/actions"


async def test_member_issuer_comes_from_configuration_not_host(
    api: httpx.AsyncClient, admin: Headers, db_runtime: Runtime
) -> None:
    org = await make_org(api, admin, f"host-{tag()}")
    r = await api.post(
        f"/v1/organizations/{org}/groups",
        json={"name": "g", "members": [{"id": "bob@example.com"}]},
        headers={**admin, "Host": "evil.example"},
    )
    assert r.json()["members"] == [
        {"id": "bob@example.com", "issuer": db_runtime.settings.issuer_url, "email": None}
    ]


async def test_endpoints_are_authorized_by_the_engine(
    api: httpx.AsyncClient, admin: Headers, act_as: Callable[[str], Headers]
) -> None:
    t = tag()
    org_a = await make_org(api, admin, f"a-{t}")
    org_b = await make_org(api, admin, f"b-{t}")
    org_c = await make_org(api, admin, f"c-{t}")
    alice = f"alice-{t}@example.com"
    for org, role in ((org_a, "org-admin"), (org_b, "org-reader")):
        r = await api.post(
            f"/v1/organizations/{org}/groups",
            json={"name": "g", "members": [{"id": alice}], "role_ids": [role]},
            headers=admin,
        )
        assert r.status_code == 201
    as_alice = act_as(alice)

    listed = await api.get("/v1/organizations", params={"limit": "500"}, headers=as_alice)
    assert {o["id"] for o in listed.json()["items"]} == {org_a, org_b}
    # Cannot read C: 404, as if it did not exist.
    hidden = await api.get(f"/v1/organizations/{org_c}", headers=as_alice)
    assert hidden.status_code == 404
    for inside in ("groups", "projects", "service-accounts"):
        listed_in_c = await api.get(f"/v1/organizations/{org_c}/{inside}", headers=as_alice)
        assert listed_in_c.status_code == 404, inside
        # the same answer as for an organization that does not exist
        nowhere = await api.get(f"/v1/organizations/org-{t}-none/{inside}", headers=as_alice)
        assert (nowhere.status_code, nowhere.json()["code"]) == (404, listed_in_c.json()["code"])
    no_create = await api.post(
        f"/v1/organizations/{org_c}/projects", json={"name": "p"}, headers=as_alice
    )
    assert no_create.status_code == 404
    # May read B, not change it: 403.
    readable = await api.get(f"/v1/organizations/{org_b}", headers=as_alice)
    assert readable.status_code == 200
    denied = await api.patch(
        f"/v1/organizations/{org_b}",
        json={"description": "x"},
        headers={**as_alice, "If-Match": '"1"'},
    )
    assert denied.status_code == 403 and denied.json()["code"] == "forbidden"
    create_b = await api.post(
        f"/v1/organizations/{org_b}/projects", json={"name": "p"}, headers=as_alice
    )
    assert create_b.status_code == 403
    # Administers A.
    made = await api.post(
        f"/v1/organizations/{org_a}/projects", json={"name": "p"}, headers=as_alice
    )
    assert made.status_code == 201
    # Global things need a global grant.
    assert (
        await api.post("/v1/organizations", json={"name": f"d-{t}"}, headers=as_alice)
    ).status_code == 403
    assert (await api.get("/v1/issuers", headers=as_alice)).json()["items"] == []
    # The catalogue is readable as seen from an organization alice belongs to.
    roles = await api.get(
        "/v1/roles", params={"organization_id": org_a, "limit": "500"}, headers=as_alice
    )
    assert {"org-admin", "platform-admin"} <= {r["id"] for r in roles.json()["items"]}
    assert (await api.get("/v1/roles", headers=as_alice)).json()["items"] == []


async def test_acl_endpoints_for_caller_and_admin_query(
    api: httpx.AsyncClient, admin: Headers, act_as: Callable[[str], Headers], db_runtime: Runtime
) -> None:
    t = tag()
    org_a = await make_org(api, admin, f"a-{t}")
    org_b = await make_org(api, admin, f"b-{t}")
    bob = f"bob-{t}@example.com"
    await api.post(
        f"/v1/organizations/{org_a}/groups",
        json={"name": "g", "members": [{"id": bob}], "role_ids": ["org-reader"]},
        headers=admin,
    )
    no_subject = await api.get("/v1/acl", headers=admin)
    assert no_subject.status_code == 400 and no_subject.json()["code"] == "subject_required"
    queried = await api.post(
        "/v1/acl/query",
        json={"issuer": db_runtime.settings.issuer_url, "subject": bob, "organization_id": org_a},
        headers=admin,
    )
    assert queried.status_code == 200 and queried.json()["organization"]["id"] == org_a

    as_bob = act_as(bob)
    mine = (await api.get("/v1/acl", headers=as_bob)).json()
    AclOut.model_validate(mine)  # the documented schema matches what is served
    assert [o["id"] for o in mine["organizations"]] == [org_a]
    assert queried.json()["organizations"] == mine["organizations"]
    scoped = await api.get(f"/v1/organizations/{org_a}/acl", headers=as_bob)
    assert scoped.status_code == 200
    foreign = await api.get(f"/v1/organizations/{org_b}/acl", headers=as_bob)
    assert foreign.status_code == 403 and foreign.json()["code"] == "not_a_member"
    # bob may not ask for someone else's ACL.
    other = await api.post(
        "/v1/acl/query",
        json={"issuer": db_runtime.settings.issuer_url, "subject": "x"},
        headers=as_bob,
    )
    assert other.status_code == 404


async def test_rejected_role_leaves_the_active_policy(
    api: httpx.AsyncClient, admin: Headers, act_as: Callable[[str], Headers]
) -> None:
    t = tag()
    org = await make_org(api, admin, f"a-{t}")
    role = await api.post(
        "/v1/roles",
        json={
            "name": f"viewer-{t}",
            "organization_id": org,
            "permissions": {
                "organization": [{"resource_type": "watchword:groups", "actions": ["read"]}]
            },
        },
        headers=admin,
    )
    assert role.status_code == 201
    rid = role.json()["id"]
    carol = f"carol-{t}"
    await api.post(
        f"/v1/organizations/{org}/groups",
        json={"name": "g", "members": [{"id": carol}], "role_ids": [rid]},
        headers=admin,
    )
    bad = await api.patch(
        f"/v1/roles/{rid}",
        json={"permissions": {"organization": [{"resource_type": "nope", "actions": ["read"]}]}},
        headers={**admin, "If-Match": '"1"'},
    )
    assert bad.status_code == 400
    as_carol = act_as(carol)
    acl = (await api.get("/v1/acl", headers=as_carol)).json()
    assert acl["organizations"][0]["endpoints"] == [
        {"name": "watchword:groups", "operations": ["read"]}
    ]
    in_use = await api.delete(f"/v1/roles/{rid}", headers=admin)
    assert in_use.status_code == 409 and in_use.json()["code"] == "in_use"


async def test_resource_types_crud_and_protection(api: httpx.AsyncClient, admin: Headers) -> None:
    name = f"demo{tag()}:things"
    made = await api.post(
        "/v1/resource-types", json={"name": name, "actions": ["read", "poke"]}, headers=admin
    )
    assert made.status_code == 201
    role = await api.post(
        "/v1/roles",
        json={
            "name": f"poker-{tag()}",
            "permissions": {"global": [{"resource_type": name, "actions": ["poke"]}]},
        },
        headers=admin,
    )
    assert role.status_code == 201
    narrowed = await api.patch(
        f"/v1/resource-types/{name}",
        json={"actions": ["read"]},
        headers={**admin, "If-Match": '"1"'},
    )
    assert narrowed.status_code == 409 and narrowed.json()["code"] == "in_use"
    own = await api.delete("/v1/resource-types/watchword:groups", headers=admin)
    assert own.status_code == 409
    await api.delete(f"/v1/roles/{role.json()['id']}", headers=admin)
    assert (await api.delete(f"/v1/resource-types/{name}", headers=admin)).status_code == 204


async def test_bindings_system_accounts_and_issuers_crud(
    api: httpx.AsyncClient, admin: Headers
) -> None:
    t = tag()
    iss = await api.post(
        "/v1/issuers",
        json={"url": f"https://idp-{t}.example", "membership_from_claims": True},
        headers=admin,
    )
    assert iss.status_code == 201 and iss.json()["authz_claim"] == "https://watchword.dev/authz"
    again = await api.post("/v1/issuers", json={"url": f"https://idp-{t}.example"}, headers=admin)
    assert again.status_code == 409
    binding = await api.post(
        "/v1/role-bindings",
        json={
            "issuer": f"https://idp-{t}.example",
            "subject_id": "ops",
            "role_ids": ["platform-admin"],
        },
        headers=admin,
    )
    assert binding.status_code == 201
    not_catalogue = await api.post(
        "/v1/role-bindings",
        json={"issuer": "https://x.example", "subject_id": "ops", "role_ids": ["nope"]},
        headers=admin,
    )
    assert not_catalogue.json()["code"] == "unknown_role"
    system = await api.post(
        "/v1/system-accounts",
        json={"subject_id": f"cn=svc-{t}", "role_ids": ["platform-admin"]},
        headers=admin,
    )
    assert system.status_code == 201
    sid = system.json()["id"]
    upd = await api.patch(
        f"/v1/system-accounts/{sid}",
        json={"description": "ci"},
        headers={**admin, "If-Match": '"1"'},
    )
    assert upd.status_code == 200 and upd.json()["version"] == 2
    assert (await api.delete(f"/v1/system-accounts/{sid}", headers=admin)).status_code == 204


async def test_acl_query_by_an_org_admin_shows_only_that_organization(
    api: httpx.AsyncClient, admin: Headers, act_as: Callable[[str], Headers], db_runtime: Runtime
) -> None:
    t = tag()
    org_a = await make_org(api, admin, f"a-{t}")
    org_b = await make_org(api, admin, f"b-{t}")
    boss, worker = f"boss-{t}", f"worker-{t}"
    await api.post(
        f"/v1/organizations/{org_a}/groups",
        json={"name": "admins", "members": [{"id": boss}], "role_ids": ["org-admin"]},
        headers=admin,
    )
    for org in (org_a, org_b):
        await api.post(
            f"/v1/organizations/{org}/groups",
            json={"name": "staff", "members": [{"id": worker}], "role_ids": ["org-reader"]},
            headers=admin,
        )
    query = {"issuer": db_runtime.settings.issuer_url, "subject": worker}
    bound = await api.post(
        "/v1/role-bindings",
        json={"issuer": query["issuer"], "subject_id": worker, "role_ids": ["authz-client"]},
        headers=admin,
    )
    assert bound.status_code == 201
    as_boss = act_as(boss)
    scoped = await api.post(
        "/v1/acl/query", json={**query, "organization_id": org_a}, headers=as_boss
    )
    assert scoped.status_code == 200
    body = scoped.json()
    assert [o["id"] for o in body["organizations"]] == [org_a]
    assert {g["organizationId"] for g in body["groups"]} == {org_a}
    assert body["global"] == []  # the worker's global grants are not the boss's to see
    # Not within an organization, or within one the boss does not administer: nothing.
    assert (await api.post("/v1/acl/query", json=query, headers=as_boss)).status_code == 404
    other = await api.post(
        "/v1/acl/query", json={**query, "organization_id": org_b}, headers=as_boss
    )
    assert other.status_code == 404
    # The platform's administrator sees the whole document.
    full = await api.post("/v1/acl/query", json=query, headers=admin)
    assert sorted(o["id"] for o in full.json()["organizations"]) == sorted([org_a, org_b])
    assert {e["name"] for e in full.json()["global"]} == {"watchword:authz"}


async def test_duplicate_names_are_already_exists_with_pointer(
    api: httpx.AsyncClient, admin: Headers
) -> None:
    name = f"dup-{tag()}"
    org = await make_org(api, admin, name)
    again = await api.post("/v1/organizations", json={"name": name}, headers=admin)
    assert again.status_code == 409
    assert again.json()["code"] == "already_exists" and again.json()["pointer"] == "/name"
    await api.post(f"/v1/organizations/{org}/projects", json={"name": "p"}, headers=admin)
    dup = await api.post(f"/v1/organizations/{org}/projects", json={"name": "p"}, headers=admin)
    assert dup.json()["code"] == "already_exists"
    other = await make_org(api, admin, f"other-{tag()}")
    elsewhere = await api.post(
        f"/v1/organizations/{other}/projects", json={"name": "p"}, headers=admin
    )
    assert elsewhere.status_code == 201  # names are unique per organization


async def test_concurrent_member_adds_without_if_match_all_land(
    ctx: StoreContext, db_runtime: Runtime
) -> None:
    if db_runtime.engine.dialect.name == "sqlite":
        pytest.skip("in-memory SQLite shares one connection: no concurrent transactions")
    org = await organizations.create_organization(ctx, name=f"race-{tag()}")
    group = await groups.create_group(ctx, organization_id=org.id, name="g")
    await asyncio.gather(
        *(groups.add_member(ctx, group.id, GroupMember(ctx.issuer_url, f"u{i}")) for i in range(6))
    )
    final = await groups.get_group(ctx, group.id)
    assert {m.id for m in final.members} == {f"u{i}" for i in range(6)}
    assert final.stamp.version == 7  # every add bumped the version once


async def test_lists_show_exactly_the_items_one_may_read(
    api: httpx.AsyncClient, admin: Headers, act_as: Callable[[str], Headers]
) -> None:
    t = tag()
    org_a = await make_org(api, admin, f"a-{t}")
    org_b = await make_org(api, admin, f"b-{t}")
    own = {}
    for org in (org_a, org_b):
        r = await api.post(
            "/v1/roles",
            json={"name": f"custom-{t}", "organization_id": org, "permissions": {}},
            headers=admin,
        )
        own[org] = r.json()["id"]
    pm = f"pm-{t}"
    project = await api.post(
        f"/v1/organizations/{org_a}/projects", json={"name": "x"}, headers=admin
    )
    hidden = await api.post(
        f"/v1/organizations/{org_a}/projects", json={"name": "y"}, headers=admin
    )
    await api.post(
        f"/v1/organizations/{org_a}/groups",
        json={
            "name": "g",
            "members": [{"id": pm}],
            "role_ids": ["project-member"],
            "project_ids": [project.json()["id"]],
        },
        headers=admin,
    )
    as_pm = act_as(pm)
    # Roles as seen from A: the catalogue and A's own, never B's; each listed one is readable.
    listed = await api.get(
        "/v1/roles", params={"organization_id": org_a, "limit": "500"}, headers=as_pm
    )
    ids = {r["id"] for r in listed.json()["items"]}
    assert own[org_a] in ids and own[org_b] not in ids and "org-admin" in ids
    for rid in ids:
        one = await api.get(f"/v1/roles/{rid}", params={"organization_id": org_a}, headers=as_pm)
        assert one.status_code == 200
    assert (await api.get(f"/v1/roles/{own[org_b]}", headers=as_pm)).status_code == 404
    # Projects: project-member reads only the project its group is linked to.
    projects = await api.get(f"/v1/organizations/{org_a}/projects", headers=as_pm)
    assert [p["id"] for p in projects.json()["items"]] == [project.json()["id"]]
    gone = await api.get(f"/v1/organizations/{org_a}/projects/{hidden.json()['id']}", headers=as_pm)
    assert gone.status_code == 404
    # Groups: project-member has no groups read; lists are empty, reads are 404.
    assert (await api.get(f"/v1/organizations/{org_a}/groups", headers=as_pm)).json()["items"] == []


async def test_lists_inside_an_organization_that_does_not_exist_are_404(
    api: httpx.AsyncClient, admin: Headers
) -> None:
    for inside in ("groups", "projects", "service-accounts"):
        r = await api.get(f"/v1/organizations/org-missing-{tag()}/{inside}", headers=admin)
        assert r.status_code == 404 and r.json()["code"] == "not_found", (inside, r.text)


async def test_an_organization_role_with_a_global_block_is_refused_with_a_pointer(
    api: httpx.AsyncClient, admin: Headers
) -> None:
    org = await make_org(api, admin, f"glob-{tag()}")
    allow_all = [{"resource_type": "*", "actions": ["*"]}]
    body = {"name": "sneaky", "organization_id": org, "permissions": {"global": allow_all}}
    refused = await api.post("/v1/roles", json=body, headers=admin)
    assert refused.status_code == 400, refused.text
    assert refused.json()["pointer"] == "/permissions/global"
    body["permissions"] = {"organization": allow_all}
    made = await api.post("/v1/roles", json=body, headers=admin)
    assert made.status_code == 201, made.text
    patched = await api.patch(
        f"/v1/roles/{made.json()['id']}",
        json={"permissions": {"global": allow_all}},
        headers={**admin, "If-Match": '"1"'},
    )
    assert patched.status_code == 400 and patched.json()["pointer"] == "/permissions/global"
    catalogue = {"name": f"cat-{tag()}", "permissions": {"global": allow_all}}
    assert (await api.post("/v1/roles", json=catalogue, headers=admin)).status_code == 201


async def test_nul_and_control_characters_are_refused_at_the_edge_with_a_pointer(
    api: httpx.AsyncClient, admin: Headers
) -> None:
    org = await make_org(api, admin, f"nul-{tag()}")
    cases: list[tuple[str, str, dict[str, object] | None, dict[str, str] | None, str]] = [
        ("POST", "/v1/organizations", {"name": "a\x00b"}, None, "/name"),
        ("POST", "/v1/organizations", {"name": "a\nb"}, None, "/name"),
        ("POST", "/v1/organizations", {"name": "ok", "description": "\x00"}, None, "/description"),
        ("GET", "/v1/organizations/org%00x", None, None, "/path/organization_id"),
        ("GET", "/v1/organizations", None, {"name": "a\x00"}, "/query/name"),
        ("GET", "/v1/organizations", None, {"cursor": "\x01"}, "/query/cursor"),
        (
            "POST",
            f"/v1/organizations/{org}/groups",
            {"name": "g", "role_ids": ["r\x00"]},
            None,
            "/role_ids/0",
        ),
        (
            "POST",
            f"/v1/organizations/{org}/groups/grp%00/members",
            {"id": "s"},
            None,
            "/path/group_id",
        ),
        (
            "POST",
            f"/v1/organizations/{org}/groups",
            {"name": "g", "members": [{"id": "s\x00"}]},
            None,
            "/members/0/id",
        ),
        ("POST", "/v1/issuers", {"url": "https://id.example.com/\x00"}, None, "/url"),
        (
            "POST",
            "/v1/acl/query",
            {"issuer": "i", "subject": "s", "claims": {"g": ["\x00"]}},
            None,
            "/claims",
        ),
        (
            "POST",
            "/v1/authz/check",
            {
                "subject_ref": {"issuer": "i", "id": "\x00"},
                "action": "read",
                "object": {"type": "t", "id": "1"},
            },
            None,
            "/subject_ref/id",
        ),
        ("POST", "/v1/tokens", {"name": "t", "owner_subject": "a\x00"}, None, "/owner_subject"),
        ("GET", "/v1/tokens/tok%00", None, None, "/path/token_id"),
        ("GET", "/v1/tokens", None, {"owner_subject": "a\x00"}, "/query/owner_subject"),
        ("POST", "/v1/tokens/tok%00/rotate", None, None, "/path/token_id"),
    ]
    for method, path, body, params, pointer in cases:
        r = await api.request(method, path, json=body, params=params, headers=admin)
        assert r.status_code == 422, (path, body, params, r.status_code, r.text)
        problem = r.json()
        assert problem["code"] == "invalid_request", problem
        assert problem["pointer"] == pointer, (pointer, problem["pointer"], problem["detail"])
        assert "control character" in problem["detail"] or path == "/v1/organizations", problem
