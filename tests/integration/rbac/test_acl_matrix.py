"""The ACL matrix: users in several organizations, groups linked to projects, service
accounts at home and abroad, a system account, a missing claim, a claim from an untrusted
issuer, the same id under two issuers, all through storage and the service."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import pytest
from sqlalchemy import update

from watchword.authz.model import TokenScope
from watchword.clock import FakeClock
from watchword.errors import NotAMember
from watchword.rbac.errors import ServiceAccountForeignOrg, WrongOrganizationCount
from watchword.rbac.model import GroupMember, IdpGroup
from watchword.rbac.service import RbacService
from watchword.rbac.store import accounts, groups, organizations, roles
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.record import writing
from watchword.rbac.tables import roles as roles_table
from watchword.runtime import Runtime

CLAIM = "https://watchword.dev/authz"


@dataclass
class World:
    local: str
    trusted: str
    untrusted: str
    org_a: str
    org_b: str
    proj_a1: str
    proj_a2: str
    proj_b1: str
    sa_a: str
    sa_b: str
    system_cn: str
    alice: str
    bob: str


async def build_world(ctx: StoreContext) -> World:
    tag = secrets.token_hex(4)
    trusted = f"https://trusted-{tag}.example"
    untrusted = f"https://untrusted-{tag}.example"
    await accounts.create_issuer(ctx, url=trusted, authz_claim=CLAIM, membership_from_claims=True)
    await accounts.create_issuer(ctx, url=untrusted, authz_claim=CLAIM)
    org_a = (await organizations.create_organization(ctx, name=f"a-{tag}")).id
    org_b = (await organizations.create_organization(ctx, name=f"b-{tag}")).id
    a1 = (await organizations.create_project(ctx, organization_id=org_a, name="a1")).id
    a2 = (await organizations.create_project(ctx, organization_id=org_a, name="a2")).id
    b1 = (await organizations.create_project(ctx, organization_id=org_b, name="b1")).id
    existing = await roles.list_resource_types(ctx, limit=500)
    if "compute:clusters" not in {t.name for t in existing.items}:
        await roles.create_resource_type(
            ctx, name="compute:clusters", actions=["create", "read", "update", "delete"]
        )
    operator = await roles.create_role(
        ctx,
        name="cluster-operator",
        organization_id=org_a,
        permissions={"project": [{"resource_type": "compute:clusters", "actions": ["*"]}]},
    )
    sa_a = (await accounts.create_service_account(ctx, organization_id=org_a, name="ci")).id
    sa_b = (await accounts.create_service_account(ctx, organization_id=org_b, name="ci")).id
    local = ctx.issuer_url
    alice, bob = f"alice-{tag}@example.com", f"bob-{tag}@example.com"
    await groups.create_group(
        ctx,
        organization_id=org_a,
        name="admins",
        members=[
            GroupMember(local, alice, alice),
            GroupMember(trusted, "carol"),
        ],
        role_ids=["org-admin"],
    )
    await groups.create_group(
        ctx,
        organization_id=org_a,
        name="devs",
        members=[GroupMember(local, bob), GroupMember(local, f"sa:{sa_a}")],
        role_ids=["project-member", operator.id],
        project_ids=[a1],
    )
    await groups.create_group(
        ctx,
        organization_id=org_b,
        name="readers",
        members=[
            GroupMember(local, alice),
            GroupMember(trusted, "erin"),
            GroupMember(local, f"sa:{sa_b}"),
        ],
        role_ids=["org-reader", "project-member"],
        project_ids=[b1],
    )
    await accounts.create_system_account(
        ctx, subject_id=f"cn=ci-{tag}", role_ids=["platform-admin"]
    )
    return World(
        local, trusted, untrusted, org_a, org_b, a1, a2, b1, sa_a, sa_b, f"cn=ci-{tag}", alice, bob
    )


def ops(endpoints: object, name: str) -> list[str]:
    assert isinstance(endpoints, list)
    for e in endpoints:
        if e["name"] == name:
            return list(e["operations"])
    return []


def org_entry(doc: dict[str, object], org: str) -> dict[str, object]:
    orgs = doc["organizations"]
    assert isinstance(orgs, list)
    (entry,) = [o for o in orgs if o["id"] == org]
    return dict(entry)


def org_ids(doc: dict[str, object]) -> list[str]:
    orgs = doc["organizations"]
    assert isinstance(orgs, list)
    return sorted(o["id"] for o in orgs)


async def test_acl_matrix_user_in_two_orgs_sees_each_level(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    doc = await service.acl(w.local, w.alice)
    assert org_ids(doc) == sorted([w.org_a, w.org_b])
    a = org_entry(doc, w.org_a)
    assert ops(a["endpoints"], "watchword:projects") == ["create", "delete", "read", "update"]
    b = org_entry(doc, w.org_b)
    assert ops(b["endpoints"], "watchword:projects") == ["read"]
    assert ops(b["endpoints"], "watchword:groups") == ["read"]
    # project-member in B, linked to b1: tokens at project level.
    projects = b["projects"]
    assert isinstance(projects, list)
    (b1,) = projects
    assert b1["id"] == w.proj_b1 and ops(b1["endpoints"], "watchword:tokens") == [
        "create",
        "delete",
        "read",
        "update",
    ]
    assert doc["global"] == []
    scoped = await service.acl(w.local, w.alice, organization_id=w.org_b)
    assert scoped["organization"] == b and scoped["projects"] == b["projects"]


async def test_acl_matrix_group_linked_project_only(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    doc = await service.acl(w.local, w.bob)
    assert org_ids(doc) == [w.org_a]
    a = org_entry(doc, w.org_a)
    projects = {p["id"]: p for p in a["projects"]}  # type: ignore[attr-defined]
    assert set(projects) == {w.proj_a1}  # a2 is not linked to bob's group
    assert ops(projects[w.proj_a1]["endpoints"], "compute:clusters") == [
        "create",
        "delete",
        "read",
        "update",
    ]
    assert ops(a["endpoints"], "compute:clusters") == []
    with pytest.raises(NotAMember):
        await service.acl(w.local, w.bob, organization_id=w.org_b)


async def test_acl_matrix_service_account_home_and_foreign_org(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    home = await service.acl(w.local, f"sa:{w.sa_a}")
    assert home["subject"] == {"id": f"sa:{w.sa_a}", "issuer": w.local, "type": "service"}
    assert org_ids(home) == [w.org_a]
    with pytest.raises(NotAMember) as foreign:
        await service.acl(w.local, f"sa:{w.sa_a}", organization_id=w.org_b)
    with pytest.raises(NotAMember) as user_foreign:
        await service.acl(w.local, w.bob, organization_id=w.org_b)
    assert foreign.value.code == user_foreign.value.code == "not_a_member"
    # B's service account cannot be put into a group of A.
    with pytest.raises(ServiceAccountForeignOrg) as info:
        await groups.create_group(
            ctx, organization_id=w.org_a, name="x", members=[GroupMember(w.local, f"sa:{w.sa_b}")]
        )
    assert info.value.pointer == "/members/0"


async def test_acl_matrix_external_service_account_needs_exactly_one_claimed_org(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    claims = {CLAIM: {"acctype": "service", "orgIds": [w.org_a, w.org_b]}}
    with pytest.raises(WrongOrganizationCount):
        await service.acl(w.trusted, "robot", claims)
    one = await service.acl(
        w.trusted, "robot", {CLAIM: {"acctype": "service", "orgIds": [w.org_b]}}
    )
    assert org_ids(one) == [w.org_b] and one["subject"]["type"] == "service"  # type: ignore[index]
    with pytest.raises(NotAMember):
        await service.acl(
            w.trusted,
            "robot",
            {CLAIM: {"acctype": "service", "orgIds": [w.org_b]}},
            organization_id=w.org_a,
        )


async def test_acl_matrix_system_account_global_only(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    cn = w.system_cn
    doc = await service.acl(w.local, cn, {CLAIM: {"acctype": "system"}})
    assert doc["subject"]["type"] == "system"  # type: ignore[index]
    assert doc["organizations"] == []
    assert ops(doc["global"], "watchword:organizations") == ["create", "delete", "read", "update"]
    assert ops(doc["global"], "compute:clusters") == ["create", "delete", "read", "update"]
    with pytest.raises(NotAMember):
        await service.acl(w.local, cn, organization_id=w.org_a)


async def test_acl_matrix_missing_claim_is_a_user_with_local_membership(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    doc = await service.acl(w.trusted, "carol", {"sub": "carol"})
    assert doc["subject"]["type"] == "user"  # type: ignore[index]
    assert org_ids(doc) == [w.org_a]


async def test_acl_matrix_untrusted_issuer_claimed_orgs_are_ignored(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    claims = {CLAIM: {"acctype": "user", "orgIds": [w.org_a]}}
    doc = await service.acl(w.untrusted, "dave", claims)
    assert doc["organizations"] == []
    with pytest.raises(NotAMember):
        await service.acl(w.untrusted, "dave", claims, organization_id=w.org_a)
    # An issuer nobody configured is untrusted as well.
    unknown = await service.acl("https://nobody.example", "dave", claims)
    assert unknown["organizations"] == []
    # The same claim from the trusted issuer makes dave a member (with no grants yet).
    trusted = await service.acl(w.trusted, "dave", claims)
    assert org_ids(trusted) == [w.org_a]
    assert org_entry(trusted, w.org_a)["endpoints"] == []


async def test_acl_matrix_trusted_claims_replace_local_membership(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    # erin is in B's readers group, but her trusted claim lists only A.
    doc = await service.acl(w.trusted, "erin", {CLAIM: {"orgIds": [w.org_a]}})
    assert org_ids(doc) == [w.org_a]
    assert org_entry(doc, w.org_a)["endpoints"] == []


async def test_acl_matrix_same_id_under_two_issuers_are_two_subjects(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    local = await service.acl(w.local, w.alice)
    other = await service.acl(w.trusted, w.alice)
    assert len(org_ids(local)) == 2
    assert other["organizations"] == [] and other["groups"] == []


async def test_acl_cache_is_invalidated_by_any_rbac_write(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    before = await service.acl(w.local, w.bob)
    assert await service.acl(w.local, w.bob) is before  # served from cache
    group = (await groups.list_groups(ctx, organization_id=w.org_a, name="devs")).items[0]
    await groups.update_group(
        ctx, group.id, if_match=group.stamp.version, project_ids=[w.proj_a1, w.proj_a2]
    )
    after = await service.acl(w.local, w.bob)
    projects = org_entry(after, w.org_a)["projects"]
    assert sorted(p["id"] for p in projects) == sorted([w.proj_a1, w.proj_a2])  # type: ignore[attr-defined]


async def test_acl_cache_entry_expires_after_the_staleness_bound(
    ctx: StoreContext, service: RbacService, db_runtime: Runtime
) -> None:
    w = await build_world(ctx)
    first = await service.acl(w.local, w.bob)
    assert await service.acl(w.local, w.bob) is first
    clock = db_runtime.clock
    assert isinstance(clock, FakeClock)
    clock.advance(db_runtime.settings.rbac.acl_cache_ttl)
    again = await service.acl(w.local, w.bob)
    assert again is not first and again == first


async def test_policy_broken_behind_watchwords_back_keeps_the_active_one(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    before = await service.acl(w.local, w.bob)
    active = service.policy
    async with writing(ctx.engine) as conn:  # bumps the generation like any write
        await conn.execute(
            update(roles_table)
            .where(roles_table.c.id == "org-reader")
            .values(permissions={"organization": [{"resource_type": "gone", "actions": ["read"]}]})
        )
    try:
        assert await service.acl(w.local, w.bob) == before
        assert service.policy is active
    finally:
        async with writing(ctx.engine) as conn:
            await conn.execute(
                update(roles_table)
                .where(roles_table.c.id == "org-reader")
                .values(permissions=active.roles["org-reader"].to_dict()["permissions"])
            )


async def test_acl_idp_group_mapping_is_per_issuer(ctx: StoreContext, service: RbacService) -> None:
    w = await build_world(ctx)
    await accounts.update_issuer(
        ctx,
        (await accounts.list_issuers(ctx, url=w.trusted)).items[0].id,
        if_match=1,
        groups_claim="groups",
    )
    await accounts.update_issuer(
        ctx,
        (await accounts.list_issuers(ctx, url=w.untrusted)).items[0].id,
        if_match=1,
        groups_claim="groups",
    )
    await groups.create_group(
        ctx,
        organization_id=w.org_b,
        name="eng-mapped",
        idp_groups=[IdpGroup(w.trusted, "eng")],
        role_ids=["org-reader"],
    )
    mapped = await service.acl(w.trusted, "frank", {"groups": ["eng"]})
    assert org_ids(mapped) == [w.org_b]
    assert ops(org_entry(mapped, w.org_b)["endpoints"], "watchword:groups") == ["read"]
    # The same group name from another issuer maps to nothing.
    other = await service.acl(w.untrusted, "frank", {"groups": ["eng"]})
    assert other["organizations"] == []


async def test_acl_role_bindings_grant_globally_by_subject_wildcard_and_idp_group(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    issuer_id = (await accounts.list_issuers(ctx, url=w.untrusted)).items[0].id
    await accounts.update_issuer(ctx, issuer_id, if_match=1, groups_claim="groups")
    reader = await roles.create_role(
        ctx,
        name=f"global-reader-{secrets.token_hex(3)}",
        permissions={"global": [{"resource_type": "watchword:organizations", "actions": ["read"]}]},
    )
    await accounts.create_binding(ctx, issuer=w.untrusted, subject_id="*", role_ids=[reader.id])
    await accounts.create_binding(
        ctx, issuer=w.untrusted, idp_group="ops", role_ids=["platform-admin"]
    )
    anyone = await service.acl(w.untrusted, "gina")
    assert anyone["global"] == [{"name": "watchword:organizations", "operations": ["read"]}]
    ops_member = await service.acl(w.untrusted, "gina", {"groups": ["ops"]})
    assert ops(ops_member["global"], "watchword:issuers") == ["create", "delete", "read", "update"]
    # Bindings are per issuer: the trusted issuer's subjects get nothing from them.
    assert (await service.acl(w.trusted, "gina", {"groups": ["ops"]}))["global"] == []


async def test_acl_is_intersected_with_the_token_scope(
    ctx: StoreContext, service: RbacService
) -> None:
    w = await build_world(ctx)
    full = await service.acl(w.local, w.alice)
    narrowed = await service.acl(
        w.local, w.alice, scope=TokenScope(frozenset({"watchword:projects:read"}))
    )
    assert len(org_entry(full, w.org_a)["endpoints"]) > 1  # type: ignore[arg-type]
    assert org_entry(narrowed, w.org_a)["endpoints"] == [
        {"name": "watchword:projects", "operations": ["read"]}
    ]
    assert narrowed["scope"] == {
        "names": ["watchword:projects:read"],
        "allowList": [{"type": "*", "id": "*"}],
    }
    # An allow-list of specific ids admits no operation on *every* object of the type.
    pinned = await service.acl(
        w.local,
        w.alice,
        scope=TokenScope(frozenset({"*:*"}), frozenset({("watchword:projects", w.proj_a1)})),
    )
    assert org_entry(pinned, w.org_a)["endpoints"] == []


async def test_generation_reader_recovers_from_a_killed_connection(
    ctx: StoreContext, service: RbacService, db_runtime: Runtime
) -> None:
    if db_runtime.engine.dialect.name != "postgresql":
        pytest.skip("the held connection is PostgreSQL's")
    before = await service.generation()
    held = service._reader._conn
    assert held is not None
    pid = (await held.exec_driver_sql("SELECT pg_backend_pid()")).scalar_one()
    async with ctx.engine.connect() as other:
        await other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
    await organizations.create_organization(ctx, name=f"after-kill-{secrets.token_hex(3)}")
    assert await service.generation() == before + 1  # a fresh connection, the new value
    assert service._reader._conn is not held
