"""``watchword org|project|group|role|acl|issuer|service-account``: RBAC administration.

The commands call the same repositories as the HTTP API; they act as the operator (no
engine check: whoever runs the CLI holds the database credentials). Updates read the
current version and write conditionally on it, so a concurrent change is reported (exit
1, ``version_conflict``) instead of lost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.table import Table

from watchword.cli.output import console, emit, fail, run_with_runtime
from watchword.errors import InvalidInput
from watchword.rbac.model import GroupMember
from watchword.rbac.routes.schemas import (
    GroupOut,
    IssuerOut,
    OrganizationOut,
    ProjectOut,
    RoleOut,
    ServiceAccountOut,
)
from watchword.rbac.service import rbac_service, store_context
from watchword.rbac.store import accounts, groups, organizations, roles
from watchword.runtime import Runtime

__all__ = ["GROUPS", "NAME", "app"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
Limit = Annotated[int, typer.Option(help="Page size (1-500).")]
Cursor = Annotated[str | None, typer.Option(help="next_cursor of the previous page.")]

org_app = typer.Typer(help="Organizations.", no_args_is_help=True)
project_app = typer.Typer(help="Projects of an organization.", no_args_is_help=True)
group_app = typer.Typer(help="Groups of an organization and their members.", no_args_is_help=True)
role_app = typer.Typer(help="Roles (catalogue and per organization).", no_args_is_help=True)
acl_app = typer.Typer(help="ACL documents.", no_args_is_help=True)
issuer_app = typer.Typer(help="Trusted issuers.", no_args_is_help=True)
sa_app = typer.Typer(help="Service accounts (one organization each).", no_args_is_help=True)

GROUPS = [
    (org_app, "org"),
    (project_app, "project"),
    (group_app, "group"),
    (role_app, "role"),
    (acl_app, "acl"),
    (issuer_app, "issuer"),
    (sa_app, "service-account"),
]
# cli.main evaluates getattr(module, "GROUPS", [(module.app, module.NAME)]) with an eager
# default, so a GROUPS module needs these two as well; GROUPS is what gets registered.
app, NAME = GROUPS[0]


def _run(
    ctx: typer.Context,
    body: Callable[[Runtime], Coroutine[Any, Any, Any]],
    as_json: bool,
    columns: Sequence[str] = (),
) -> None:
    result = run_with_runtime(ctx, body, as_json=as_json)
    data = _plain(result)

    def human() -> None:
        rows = data.get("items") if isinstance(data, dict) and "items" in data else data
        if isinstance(rows, list) and columns:
            table = Table(*columns)
            for row in rows:
                table.add_row(*(_cell(row.get(c)) for c in columns))
            console.print(table)
            if isinstance(data, dict) and data.get("next_cursor"):
                console.print(f"more: --cursor {data['next_cursor']}")
        else:
            console.print_json(json.dumps(data, default=str))

    emit(data, as_json=as_json, human=human)


def _plain(value: object) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _cell(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) if not isinstance(v, dict) else v.get("id", str(v)) for v in value)
    return "" if value is None else str(value)


def _page(items: Sequence[BaseModel], next_cursor: str | None) -> dict[str, object]:
    return {"items": list(items), "next_cursor": next_cursor}


def _json_arg(value: str, what: str) -> Any:
    """A JSON value, or ``@FILE`` to read it from a file."""
    try:
        text = Path(value[1:]).read_text() if value.startswith("@") else value
        return json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        fail(InvalidInput(f"{what}: not valid JSON ({exc})"))


# Organizations -----------------------------------------------------------------------------


@org_app.command("create")
def org_create(
    ctx: typer.Context, name: str, description: str = "", as_json: JsonOpt = False
) -> None:
    """Create an organization."""

    async def body(rt: Runtime) -> OrganizationOut:
        org = await organizations.create_organization(
            store_context(rt), name=name, description=description
        )
        return OrganizationOut.of(org)

    _run(ctx, body, as_json)


@org_app.command("list")
def org_list(
    ctx: typer.Context,
    name: str | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    as_json: JsonOpt = False,
) -> None:
    """List organizations."""

    async def body(rt: Runtime) -> dict[str, object]:
        page = await organizations.list_organizations(
            store_context(rt), limit=limit, cursor=cursor, name=name
        )
        return _page([OrganizationOut.of(o) for o in page.items], page.next_cursor)

    _run(ctx, body, as_json, ("id", "name", "version"))


@org_app.command("show")
def org_show(ctx: typer.Context, organization_id: str, as_json: JsonOpt = False) -> None:
    """Show an organization."""

    async def body(rt: Runtime) -> OrganizationOut:
        return OrganizationOut.of(
            await organizations.get_organization(store_context(rt), organization_id)
        )

    _run(ctx, body, as_json)


@org_app.command("update")
def org_update(
    ctx: typer.Context,
    organization_id: str,
    name: str | None = None,
    description: str | None = None,
    as_json: JsonOpt = False,
) -> None:
    """Rename or describe an organization."""

    async def body(rt: Runtime) -> OrganizationOut:
        sc = store_context(rt)
        current = await organizations.get_organization(sc, organization_id)
        org = await organizations.update_organization(
            sc, organization_id, if_match=current.stamp.version, name=name, description=description
        )
        return OrganizationOut.of(org)

    _run(ctx, body, as_json)


@org_app.command("delete")
def org_delete(ctx: typer.Context, organization_id: str, as_json: JsonOpt = False) -> None:
    """Delete an empty organization."""

    async def body(rt: Runtime) -> dict[str, str]:
        await organizations.delete_organization(store_context(rt), organization_id, if_match=None)
        return {"deleted": organization_id}

    _run(ctx, body, as_json)


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

    async def body(rt: Runtime) -> ProjectOut:
        p = await organizations.create_project(
            store_context(rt), organization_id=organization_id, name=name, description=description
        )
        return ProjectOut.of(p)

    _run(ctx, body, as_json)


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

    async def body(rt: Runtime) -> dict[str, object]:
        page = await organizations.list_projects(
            store_context(rt),
            organization_id=organization_id,
            limit=limit,
            cursor=cursor,
            name=name,
        )
        return _page([ProjectOut.of(p) for p in page.items], page.next_cursor)

    _run(ctx, body, as_json, ("id", "name", "version"))


@project_app.command("delete")
def project_delete(
    ctx: typer.Context, organization_id: str, project_id: str, as_json: JsonOpt = False
) -> None:
    """Delete a project (groups lose their link to it)."""

    async def body(rt: Runtime) -> dict[str, str]:
        sc = store_context(rt)
        await organizations.get_project(sc, project_id, organization_id=organization_id)
        await organizations.delete_project(sc, project_id, if_match=None)
        return {"deleted": project_id}

    _run(ctx, body, as_json)


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

    async def body(rt: Runtime) -> GroupOut:
        g = await groups.create_group(
            store_context(rt),
            organization_id=organization_id,
            name=name,
            role_ids=role or [],
            project_ids=project or [],
        )
        return GroupOut.of(g)

    _run(ctx, body, as_json)


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

    async def body(rt: Runtime) -> dict[str, object]:
        page = await groups.list_groups(
            store_context(rt),
            organization_id=organization_id,
            limit=limit,
            cursor=cursor,
            name=name,
        )
        return _page([GroupOut.of(g) for g in page.items], page.next_cursor)

    _run(ctx, body, as_json, ("id", "name", "role_ids", "project_ids", "members"))


@group_app.command("show")
def group_show(
    ctx: typer.Context, organization_id: str, group_id: str, as_json: JsonOpt = False
) -> None:
    """Show a group with its members."""

    async def body(rt: Runtime) -> GroupOut:
        return GroupOut.of(
            await groups.get_group(store_context(rt), group_id, organization_id=organization_id)
        )

    _run(ctx, body, as_json)


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

    async def body(rt: Runtime) -> GroupOut:
        sc = store_context(rt)
        await groups.get_group(sc, group_id, organization_id=organization_id)
        member = GroupMember(issuer or sc.issuer_url, subject, email)
        return GroupOut.of(await groups.add_member(sc, group_id, member))

    _run(ctx, body, as_json)


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

    async def body(rt: Runtime) -> GroupOut:
        sc = store_context(rt)
        await groups.get_group(sc, group_id, organization_id=organization_id)
        return GroupOut.of(
            await groups.remove_member(sc, group_id, issuer or sc.issuer_url, subject)
        )

    _run(ctx, body, as_json)


@group_app.command("delete")
def group_delete(
    ctx: typer.Context, organization_id: str, group_id: str, as_json: JsonOpt = False
) -> None:
    """Delete a group."""

    async def body(rt: Runtime) -> dict[str, str]:
        sc = store_context(rt)
        await groups.get_group(sc, group_id, organization_id=organization_id)
        await groups.delete_group(sc, group_id, if_match=None)
        return {"deleted": group_id}

    _run(ctx, body, as_json)


# Roles -------------------------------------------------------------------------------------


@role_app.command("list")
def role_list(
    ctx: typer.Context,
    org: Annotated[str | None, typer.Option(help="Catalogue + this organization's roles.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
    as_json: JsonOpt = False,
) -> None:
    """List roles."""

    async def body(rt: Runtime) -> dict[str, object]:
        page = await roles.list_roles(
            store_context(rt), organization_id=org, limit=limit, cursor=cursor
        )
        return _page([RoleOut.of(r) for r in page.items], page.next_cursor)

    _run(ctx, body, as_json, ("id", "name", "organization_id", "description"))


@role_app.command("show")
def role_show(ctx: typer.Context, role_id: str, as_json: JsonOpt = False) -> None:
    """Show a role and its permissions."""

    async def body(rt: Runtime) -> RoleOut:
        return RoleOut.of(await roles.get_role(store_context(rt), role_id))

    _run(ctx, body, as_json)


@role_app.command("create")
def role_create(
    ctx: typer.Context,
    name: str,
    permissions: Annotated[str, typer.Option(help='JSON {"organization": [...]} or @FILE.')],
    org: Annotated[str | None, typer.Option(help="Make it a role of this organization.")] = None,
    description: str = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a role (validated against the registered resource types)."""
    doc = _json_arg(permissions, "--permissions")

    async def body(rt: Runtime) -> RoleOut:
        r = await roles.create_role(
            store_context(rt),
            name=name,
            permissions=doc,
            organization_id=org,
            description=description,
        )
        return RoleOut.of(r)

    _run(ctx, body, as_json)


@role_app.command("delete")
def role_delete(ctx: typer.Context, role_id: str, as_json: JsonOpt = False) -> None:
    """Delete a role nothing holds."""

    async def body(rt: Runtime) -> dict[str, str]:
        await roles.delete_role(store_context(rt), role_id, if_match=None)
        return {"deleted": role_id}

    _run(ctx, body, as_json)


@role_app.command("seed")
def role_seed(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Add the catalogue's missing resource types and roles (edited ones are kept)."""

    async def body(rt: Runtime) -> dict[str, list[str]]:
        return dict(await roles.seed_catalogue(store_context(rt)))

    _run(ctx, body, as_json)


# ACL ---------------------------------------------------------------------------------------


@acl_app.command("show")
def acl_show(
    ctx: typer.Context,
    issuer: Annotated[str, typer.Option(help="The subject's issuer (exact).")],
    subject: Annotated[str, typer.Option(help="The subject id.")],
    claims: Annotated[str | None, typer.Option(help="Verified claims: JSON or @FILE.")] = None,
    org: Annotated[str | None, typer.Option(help="Scope to one organization.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compute a subject's ACL document (exit 1 with not_a_member for a foreign org)."""
    parsed = {} if claims is None else _json_arg(claims, "--claims")
    if not isinstance(parsed, dict):
        fail(InvalidInput("--claims must be a JSON object"), as_json=as_json)

    async def body(rt: Runtime) -> dict[str, object]:
        return await rt.service(rbac_service).acl(issuer, subject, parsed, organization_id=org)

    _run(ctx, body, as_json)


# Issuers -----------------------------------------------------------------------------------


@issuer_app.command("add")
def issuer_add(
    ctx: typer.Context,
    url: str,
    membership_from_claims: Annotated[
        bool, typer.Option(help="Honour orgIds in its claims.")
    ] = False,
    authz_claim: Annotated[str | None, typer.Option(help="Default: settings.authz_claim.")] = None,
    groups_claim: str | None = None,
    audience: Annotated[list[str] | None, typer.Option(help="Repeatable.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Trust an issuer (its URL is matched exactly)."""

    async def body(rt: Runtime) -> IssuerOut:
        rec = await accounts.create_issuer(
            store_context(rt),
            url=url,
            authz_claim=authz_claim or rt.settings.authz_claim,
            groups_claim=groups_claim,
            audiences=audience or [],
            membership_from_claims=membership_from_claims,
        )
        return IssuerOut.of(rec)

    _run(ctx, body, as_json)


@issuer_app.command("list")
def issuer_list(
    ctx: typer.Context, limit: Limit = 50, cursor: Cursor = None, as_json: JsonOpt = False
) -> None:
    """List trusted issuers."""

    async def body(rt: Runtime) -> dict[str, object]:
        page = await accounts.list_issuers(store_context(rt), limit=limit, cursor=cursor)
        return _page([IssuerOut.of(i) for i in page.items], page.next_cursor)

    _run(ctx, body, as_json, ("id", "url", "membership_from_claims", "authz_claim"))


# Service accounts --------------------------------------------------------------------------


@sa_app.command("create")
def sa_create(
    ctx: typer.Context, organization_id: str, name: str, as_json: JsonOpt = False
) -> None:
    """Create a service account in (only) this organization."""

    async def body(rt: Runtime) -> ServiceAccountOut:
        sa = await accounts.create_service_account(
            store_context(rt), organization_id=organization_id, name=name
        )
        return ServiceAccountOut.of(sa, rt.settings.issuer_url)

    _run(ctx, body, as_json)


@sa_app.command("list")
def sa_list(
    ctx: typer.Context,
    organization_id: str,
    limit: Limit = 50,
    cursor: Cursor = None,
    as_json: JsonOpt = False,
) -> None:
    """List an organization's service accounts."""

    async def body(rt: Runtime) -> dict[str, object]:
        page = await accounts.list_service_accounts(
            store_context(rt), organization_id=organization_id, limit=limit, cursor=cursor
        )
        url = rt.settings.issuer_url
        return _page([ServiceAccountOut.of(s, url) for s in page.items], page.next_cursor)

    _run(ctx, body, as_json, ("id", "name", "organization_id"))


@sa_app.command("delete")
def sa_delete(
    ctx: typer.Context, organization_id: str, sa_id: str, as_json: JsonOpt = False
) -> None:
    """Delete a service account and its group memberships."""

    async def body(rt: Runtime) -> dict[str, str]:
        sc = store_context(rt)
        await accounts.get_service_account(sc, sa_id, organization_id=organization_id)
        await accounts.delete_service_account(sc, sa_id, if_match=None)
        return {"deleted": sa_id}

    _run(ctx, body, as_json)
