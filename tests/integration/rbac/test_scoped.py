"""The repository shared by an organization's named records: projects and service accounts
behave alike (create, read through the owning organization only, list by name, rename)."""

from __future__ import annotations

import secrets

import pytest

from watchword.errors import AlreadyExists, InvalidInput, NotFound, VersionConflict
from watchword.rbac.errors import ServiceAccountForeignOrg, UnknownOrganization
from watchword.rbac.model import Project, ServiceAccount
from watchword.rbac.store import accounts, organizations
from watchword.rbac.store.context import StoreContext
from watchword.rbac.store.record import given


def tag() -> str:
    return secrets.token_hex(4)


async def _two_orgs(ctx: StoreContext) -> tuple[str, str]:
    a = await organizations.create_organization(ctx, name=f"a-{tag()}")
    b = await organizations.create_organization(ctx, name=f"b-{tag()}")
    return a.id, b.id


def test_given_drops_only_the_fields_left_out() -> None:
    assert given(name=None, description="", flag=False) == {"description": "", "flag": False}


async def test_scoped_project_and_service_account_read_through_their_organization_only(
    ctx: StoreContext,
) -> None:
    org_a, org_b = await _two_orgs(ctx)
    project = await organizations.create_project(ctx, organization_id=org_a, name="web")
    sa = await accounts.create_service_account(ctx, organization_id=org_a, name="ci")
    assert project.id.startswith("prj") and sa.id.startswith("sa")
    assert (await organizations.get_project(ctx, project.id, organization_id=org_a)) == project
    assert (await accounts.get_service_account(ctx, sa.id, organization_id=org_a)) == sa
    with pytest.raises(NotFound, match=f"project {project.id!r} does not exist"):
        await organizations.get_project(ctx, project.id, organization_id=org_b)
    with pytest.raises(NotFound, match=f"service account {sa.id!r} does not exist"):
        await accounts.get_service_account(ctx, sa.id, organization_id=org_b)


async def test_scoped_create_in_missing_organization_is_unknown_organization(
    ctx: StoreContext,
) -> None:
    with pytest.raises(UnknownOrganization) as project_exc:
        await organizations.create_project(ctx, organization_id="org_missing", name="x")
    with pytest.raises(UnknownOrganization) as sa_exc:
        await accounts.create_service_account(ctx, organization_id="org_missing", name="x")
    assert project_exc.value.pointer == sa_exc.value.pointer == "/organization_id"


async def test_scoped_duplicate_name_in_one_organization_is_already_exists(
    ctx: StoreContext,
) -> None:
    org_a, org_b = await _two_orgs(ctx)
    await organizations.create_project(ctx, organization_id=org_a, name="web")
    await accounts.create_service_account(ctx, organization_id=org_a, name="ci")
    with pytest.raises(AlreadyExists, match="project in this organization") as exc:
        await organizations.create_project(ctx, organization_id=org_a, name="web")
    assert exc.value.pointer == "/name"
    with pytest.raises(AlreadyExists, match="service account in this organization"):
        await accounts.create_service_account(ctx, organization_id=org_a, name="ci")
    # The same names are free in another organization.
    await organizations.create_project(ctx, organization_id=org_b, name="web")
    await accounts.create_service_account(ctx, organization_id=org_b, name="ci")


async def test_scoped_list_filters_by_organization_and_name_and_pages(
    ctx: StoreContext,
) -> None:
    org_a, org_b = await _two_orgs(ctx)
    for name in ("p1", "p2", "p3"):
        await organizations.create_project(ctx, organization_id=org_a, name=name)
        await accounts.create_service_account(ctx, organization_id=org_a, name=name)
    await organizations.create_project(ctx, organization_id=org_b, name="p1")

    seen: list[Project] = []
    cursor: str | None = None
    while True:
        page = await organizations.list_projects(ctx, organization_id=org_a, limit=2, cursor=cursor)
        seen.extend(page.items)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert sorted(p.name for p in seen) == ["p1", "p2", "p3"]
    assert [p.id for p in seen] == sorted(p.id for p in seen)

    named = await accounts.list_service_accounts(ctx, organization_id=org_a, name="p2")
    assert [s.name for s in named.items] == ["p2"]
    with pytest.raises(InvalidInput) as exc:
        await accounts.list_service_accounts(ctx, organization_id=org_a, limit=0)
    assert exc.value.pointer == "/limit"


async def test_scoped_rename_to_a_taken_name_is_already_exists_for_both_kinds(
    ctx: StoreContext,
) -> None:
    org_a, _ = await _two_orgs(ctx)
    await organizations.create_project(ctx, organization_id=org_a, name="web")
    api = await organizations.create_project(ctx, organization_id=org_a, name="api")
    with pytest.raises(AlreadyExists) as exc:
        await organizations.update_project(ctx, api.id, if_match=1, name="web")
    assert exc.value.pointer == "/name"

    await accounts.create_service_account(ctx, organization_id=org_a, name="ci")
    bot: ServiceAccount = await accounts.create_service_account(
        ctx, organization_id=org_a, name="bot"
    )
    with pytest.raises(AlreadyExists) as sa_exc:
        await accounts.update_service_account(ctx, bot.id, if_match=1, name="ci")
    assert sa_exc.value.pointer == "/name"


async def test_scoped_update_bumps_version_and_refuses_a_stale_or_foreign_one(
    ctx: StoreContext,
) -> None:
    org_a, org_b = await _two_orgs(ctx)
    sa = await accounts.create_service_account(ctx, organization_id=org_a, name="ci")
    renamed = await accounts.update_service_account(ctx, sa.id, if_match=1, description="d")
    assert (renamed.stamp.version, renamed.description, renamed.name) == (2, "d", "ci")
    with pytest.raises(ServiceAccountForeignOrg) as exc:
        await accounts.update_service_account(ctx, sa.id, if_match=2, organization_id=org_b)
    assert exc.value.pointer == "/organization_id"
    project = await organizations.create_project(ctx, organization_id=org_a, name="web")
    with pytest.raises(VersionConflict):
        await organizations.update_project(ctx, project.id, if_match=7, name="www")
