"""``/v1/roles``: roles, administered.

A malformed role is refused before anything changes, with a pointer to the bad field
(``/permissions/organization/0/resource_type``); the active policy stays active.

Catalogue roles belong to no organization. Read with ``?organization_id=X``, they are
checked as objects of X, so an organization's administrators can see the catalogue they
assign from; without it, a global grant is needed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import ColumnElement, String, func, literal

from watchword.api.access import AccessDep
from watchword.api.etag import IfMatch, optional_version, required_version, tagged
from watchword.api.schemas import (
    PageLimit,
    PageOut,
    RoleIn,
    RoleOut,
    RolePatch,
    page_out,
)
from watchword.rbac.store import roles as store
from watchword.rbac.tables import roles

router = APIRouter(prefix="/v1/roles", tags=["roles"])

InOrg = Annotated[
    str | None, Query(description="Read catalogue entries as seen from this organization.")
]


def _permissions(body: RoleIn | RolePatch) -> dict[str, object] | None:
    if body.permissions is None:
        return None
    return {level: [p.model_dump() for p in entries] for level, entries in body.permissions.items()}


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a role")
async def create_role(body: RoleIn, access: AccessDep, response: Response) -> RoleOut:
    await access.require_create("roles", org_id=body.organization_id)
    role = await store.create_role(
        access.ctx,
        name=body.name,
        organization_id=body.organization_id,
        description=body.description,
        permissions=_permissions(body),
    )
    return tagged(response, role, RoleOut.of)


@router.get("", summary="List roles (with organization_id: the catalogue and its own)")
async def list_roles(
    access: AccessDep,
    organization_id: InOrg = None,
    limit: PageLimit = 50,
    cursor: str | None = None,
    name: str | None = None,
) -> PageOut[RoleOut]:
    org_col: ColumnElement[str | None] = (
        roles.c.organization_id
        if organization_id is None
        else func.coalesce(roles.c.organization_id, literal(organization_id, String()))
    )
    visible = await access.visible("roles", id=roles.c.id, org_id=org_col)
    page = await store.list_roles(
        access.ctx,
        organization_id=organization_id,
        limit=limit,
        cursor=cursor,
        name=name,
        extra=visible,
    )
    return page_out(page, RoleOut.of)


@router.get("/{role_id}", summary="Read a role")
async def get_role(
    role_id: str, access: AccessDep, response: Response, organization_id: InOrg = None
) -> RoleOut:
    role = await store.get_role(access.ctx, role_id)
    org = role.organization_id or organization_id
    await access.require("roles", "read", role_id, org_id=org, what="role")
    return tagged(response, role, RoleOut.of)


@router.patch("/{role_id}", summary="Update a role (validated against the policy)")
async def update_role(
    role_id: str,
    body: RolePatch,
    access: AccessDep,
    response: Response,
    if_match: IfMatch = None,
) -> RoleOut:
    current = await store.get_role(access.ctx, role_id)
    await access.require("roles", "update", role_id, org_id=current.organization_id, what="role")
    role = await store.update_role(
        access.ctx,
        role_id,
        if_match=required_version(if_match),
        name=body.name,
        description=body.description,
        permissions=_permissions(body),
    )
    return tagged(response, role, RoleOut.of)


@router.delete("/{role_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_role(role_id: str, access: AccessDep, if_match: IfMatch = None) -> None:
    """Delete a role that nothing holds any more (409 in_use otherwise)."""
    current = await store.get_role(access.ctx, role_id)
    await access.require("roles", "delete", role_id, org_id=current.organization_id, what="role")
    await store.delete_role(access.ctx, role_id, if_match=optional_version(if_match))


# Resource types ----------------------------------------------------------------------------
