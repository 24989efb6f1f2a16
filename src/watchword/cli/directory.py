"""``watchword org``, ``project``, ``group``: the directory of organizations."""

from __future__ import annotations

from typing import Annotated

import typer

from watchword.api.schemas import GroupOut, OrganizationOut, ProjectOut
from watchword.cli.rbac_output import Cursor, JsonOpt, Limit, deleted, listed, run
from watchword.rbac.model import GroupMember
from watchword.rbac.store import groups, organizations
from watchword.services import Services

__all__ = ["group_app", "org_app", "project_app"]

org_app = typer.Typer(help="Organizations.", no_args_is_help=True)
project_app = typer.Typer(help="Projects of an organization.", no_args_is_help=True)
group_app = typer.Typer(help="Groups of an organization and their members.", no_args_is_help=True)


# Organizations -----------------------------------------------------------------------------


@org_app.command("create")
def org_create(
    ctx: typer.Context, name: str, description: str = "", as_json: JsonOpt = False
) -> None:
    """Create an organization."""

    async def body(svc: Services) -> OrganizationOut:
        org = await organizations.create_organization(svc.store, name=name, description=description)
        return OrganizationOut.of(org)

    run(ctx, body, as_json)


@org_app.command("list")
def org_list(
    ctx: typer.Context,
    name: str | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    as_json: JsonOpt = False,
) -> None:
    """List organizations."""

    async def body(svc: Services) -> dict[str, object]:
        page = await organizations.list_organizations(
            svc.store, limit=limit, cursor=cursor, name=name
        )
        return listed(page, OrganizationOut.of)

    run(ctx, body, as_json, ("id", "name", "version"))


@org_app.command("show")
def org_show(ctx: typer.Context, organization_id: str, as_json: JsonOpt = False) -> None:
    """Show an organization."""

    async def body(svc: Services) -> OrganizationOut:
        return OrganizationOut.of(await organizations.get_organization(svc.store, organization_id))

    run(ctx, body, as_json)


@org_app.command("update")
def org_update(
    ctx: typer.Context,
    organization_id: str,
    name: str | None = None,
    description: str | None = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename or describe an organization."""

    async def body(svc: Services) -> OrganizationOut:
        sc = svc.store
        current = await organizations.get_organization(sc, organization_id)
        org = await organizations.update_organization(
            sc, organization_id, if_match=current.stamp.version, name=name, description=description
        )
        return OrganizationOut.of(org)

    run(ctx, body, as_json)


@org_app.command("delete")
def org_delete(ctx: typer.Context, organization_id: str, as_json: JsonOpt = False) -> None:
    """Delete an empty organization."""

    async def body(svc: Services) -> dict[str, str]:
        await organizations.delete_organization(svc.store, organization_id, if_match=None)
        return deleted(organization_id)

    run(ctx, body, as_json)


# Projects ----------------------------------------------------------------------------------


@project_app.command("create")
def project_create(
    ctx: typer.Context,
    organization_id: str,
    name: str,
    description: str = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a project in an organization."""

    async def body(svc: Services) -> ProjectOut:
        p = await organizations.create_project(
            svc.store, organization_id=organization_id, name=name, description=description
        )
        return ProjectOut.of(p)

    run(ctx, body, as_json)


@project_app.command("list")
def project_list(
    ctx: typer.Context,
    organization_id: str,
    name: str | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    as_json: JsonOpt = False,
) -> None:
    """List an organization's projects."""

    async def body(svc: Services) -> dict[str, object]:
        page = await organizations.list_projects(
            svc.store,
            organization_id=organization_id,
            limit=limit,
            cursor=cursor,
            name=name,
        )
        return listed(page, ProjectOut.of)

    run(ctx, body, as_json, ("id", "name", "version"))


@project_app.command("delete")
def project_delete(
    ctx: typer.Context, organization_id: str, project_id: str, as_json: JsonOpt = False
) -> None:
    """Delete a project (groups lose their link to it)."""

    async def body(svc: Services) -> dict[str, str]:
        sc = svc.store
        await organizations.get_project(sc, project_id, organization_id=organization_id)
        await organizations.delete_project(sc, project_id, if_match=None)
        return deleted(project_id)

    run(ctx, body, as_json)


# Groups ------------------------------------------------------------------------------------

RoleOpt = Annotated[list[str] | None, typer.Option("--role", help="A role id (repeatable).")]
ProjectOpt = Annotated[
    list[str] | None, typer.Option("--project", help="A project id (repeatable).")
]
IssuerOpt = Annotated[
    str | None, typer.Option(help="The subject's issuer; default: watchword's own (settings).")
]


@group_app.command("create")
def group_create(
    ctx: typer.Context,
    organization_id: str,
    name: str,
    role: RoleOpt = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a group with roles and linked projects."""

    async def body(svc: Services) -> GroupOut:
        g = await groups.create_group(
            svc.store,
            organization_id=organization_id,
            name=name,
            role_ids=role or [],
            project_ids=project or [],
        )
        return GroupOut.of(g)

    run(ctx, body, as_json)


@group_app.command("list")
def group_list(
    ctx: typer.Context,
    organization_id: str,
    name: str | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    as_json: JsonOpt = False,
) -> None:
    """List an organization's groups."""

    async def body(svc: Services) -> dict[str, object]:
        page = await groups.list_groups(
            svc.store,
            organization_id=organization_id,
            limit=limit,
            cursor=cursor,
            name=name,
        )
        return listed(page, GroupOut.of)

    run(ctx, body, as_json, ("id", "name", "role_ids", "project_ids", "members"))


@group_app.command("show")
def group_show(
    ctx: typer.Context, organization_id: str, group_id: str, as_json: JsonOpt = False
) -> None:
    """Show a group with its members."""

    async def body(svc: Services) -> GroupOut:
        return GroupOut.of(
            await groups.get_group(svc.store, group_id, organization_id=organization_id)
        )

    run(ctx, body, as_json)


@group_app.command("add-member")
def group_add_member(
    ctx: typer.Context,
    organization_id: str,
    group_id: str,
    subject: str,
    issuer: IssuerOpt = None,
    email: str | None = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a subject (issuer, id) to a group."""

    async def body(svc: Services) -> GroupOut:
        sc = svc.store
        await groups.get_group(sc, group_id, organization_id=organization_id)
        member = GroupMember(issuer or sc.issuer_url, subject, email)
        return GroupOut.of(await groups.add_member(sc, group_id, member))

    run(ctx, body, as_json)


@group_app.command("remove-member")
def group_remove_member(
    ctx: typer.Context,
    organization_id: str,
    group_id: str,
    subject: str,
    issuer: IssuerOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a subject (issuer, id) from a group."""

    async def body(svc: Services) -> GroupOut:
        sc = svc.store
        await groups.get_group(sc, group_id, organization_id=organization_id)
        return GroupOut.of(
            await groups.remove_member(sc, group_id, issuer or sc.issuer_url, subject)
        )

    run(ctx, body, as_json)


@group_app.command("delete")
def group_delete(
    ctx: typer.Context, organization_id: str, group_id: str, as_json: JsonOpt = False
) -> None:
    """Delete a group."""

    async def body(svc: Services) -> dict[str, str]:
        sc = svc.store
        await groups.get_group(sc, group_id, organization_id=organization_id)
        await groups.delete_group(sc, group_id, if_match=None)
        return deleted(group_id)

    run(ctx, body, as_json)
