"""``watchword role``, ``acl``, ``issuer``, ``service-account``."""

from __future__ import annotations

from typing import Annotated

import typer

from watchword.api.schemas import IssuerOut, RoleOut, ServiceAccountOut
from watchword.cli.output import fail
from watchword.cli.rbac_output import (
    Cursor,
    JsonOpt,
    Limit,
    deleted,
    json_arg,
    listed,
    run,
)
from watchword.errors import InvalidInput
from watchword.rbac.store import accounts, roles
from watchword.services import Services

__all__ = ["acl_app", "issuer_app", "role_app", "sa_app"]

role_app = typer.Typer(help="Roles (catalogue and per organization).", no_args_is_help=True)
acl_app = typer.Typer(help="ACL documents.", no_args_is_help=True)
issuer_app = typer.Typer(help="Trusted issuers.", no_args_is_help=True)
sa_app = typer.Typer(help="Service accounts (one organization each).", no_args_is_help=True)


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

    async def body(svc: Services) -> dict[str, object]:
        page = await roles.list_roles(svc.store, organization_id=org, limit=limit, cursor=cursor)
        return listed(page, RoleOut.of)

    run(ctx, body, as_json, ("id", "name", "organization_id", "description"))


@role_app.command("show")
def role_show(ctx: typer.Context, role_id: str, as_json: JsonOpt = False) -> None:
    """Show a role and its permissions."""

    async def body(svc: Services) -> RoleOut:
        return RoleOut.of(await roles.get_role(svc.store, role_id))

    run(ctx, body, as_json)


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
    doc = json_arg(permissions, "--permissions")

    async def body(svc: Services) -> RoleOut:
        r = await roles.create_role(
            svc.store,
            name=name,
            permissions=doc,
            organization_id=org,
            description=description,
        )
        return RoleOut.of(r)

    run(ctx, body, as_json)


@role_app.command("delete")
def role_delete(ctx: typer.Context, role_id: str, as_json: JsonOpt = False) -> None:
    """Delete a role nothing holds."""

    async def body(svc: Services) -> dict[str, str]:
        await roles.delete_role(svc.store, role_id, if_match=None)
        return deleted(role_id)

    run(ctx, body, as_json)


@role_app.command("seed")
def role_seed(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Add the catalogue's missing resource types and roles (edited ones are kept)."""

    async def body(svc: Services) -> dict[str, list[str]]:
        return dict(await roles.seed_catalogue(svc.store))

    run(ctx, body, as_json)


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
    parsed = {} if claims is None else json_arg(claims, "--claims")
    if not isinstance(parsed, dict):
        fail(InvalidInput("--claims must be a JSON object"), as_json=as_json)

    async def body(svc: Services) -> dict[str, object]:
        return await svc.rbac.acl(issuer, subject, parsed, organization_id=org)

    run(ctx, body, as_json)


# Issuers -----------------------------------------------------------------------------------


@issuer_app.command("add")
def issuer_add(
    ctx: typer.Context,
    url: str,
    membership_from_claims: Annotated[
        bool, typer.Option(help="Honour orgIds in its claims.")
    ] = False,
    authz_claim: Annotated[
        str | None, typer.Option(help="Default: settings.rbac.authz_claim.")
    ] = None,
    groups_claim: str | None = None,
    audience: Annotated[list[str] | None, typer.Option(help="Repeatable.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Trust an issuer (its URL is matched exactly)."""

    async def body(svc: Services) -> IssuerOut:
        rec = await accounts.create_issuer(
            svc.store,
            url=url,
            authz_claim=authz_claim or svc.runtime.settings.rbac.authz_claim,
            groups_claim=groups_claim,
            audiences=audience or [],
            membership_from_claims=membership_from_claims,
        )
        return IssuerOut.of(rec)

    run(ctx, body, as_json)


@issuer_app.command("list")
def issuer_list(
    ctx: typer.Context, limit: Limit = 50, cursor: Cursor = None, as_json: JsonOpt = False
) -> None:
    """List trusted issuers."""

    async def body(svc: Services) -> dict[str, object]:
        page = await accounts.list_issuers(svc.store, limit=limit, cursor=cursor)
        return listed(page, IssuerOut.of)

    run(ctx, body, as_json, ("id", "url", "membership_from_claims", "authz_claim"))


# Service accounts --------------------------------------------------------------------------


@sa_app.command("create")
def sa_create(
    ctx: typer.Context, organization_id: str, name: str, as_json: JsonOpt = False
) -> None:
    """Create a service account in (only) this organization."""

    async def body(svc: Services) -> ServiceAccountOut:
        sa = await accounts.create_service_account(
            svc.store, organization_id=organization_id, name=name
        )
        return ServiceAccountOut.of(sa, svc.runtime.settings.issuer_url)

    run(ctx, body, as_json)


@sa_app.command("list")
def sa_list(
    ctx: typer.Context,
    organization_id: str,
    limit: Limit = 50,
    cursor: Cursor = None,
    as_json: JsonOpt = False,
) -> None:
    """List an organization's service accounts."""

    async def body(svc: Services) -> dict[str, object]:
        page = await accounts.list_service_accounts(
            svc.store, organization_id=organization_id, limit=limit, cursor=cursor
        )
        url = svc.runtime.settings.issuer_url
        return listed(page, lambda sa: ServiceAccountOut.of(sa, url))

    run(ctx, body, as_json, ("id", "name", "organization_id"))


@sa_app.command("delete")
def sa_delete(
    ctx: typer.Context, organization_id: str, sa_id: str, as_json: JsonOpt = False
) -> None:
    """Delete a service account: its memberships and role bindings go, its tokens are revoked."""

    async def body(svc: Services) -> dict[str, str]:
        await accounts.get_service_account(svc.store, sa_id, organization_id=organization_id)
        await svc.delete_service_account(sa_id, if_match=None)
        return deleted(sa_id)

    run(ctx, body, as_json)
