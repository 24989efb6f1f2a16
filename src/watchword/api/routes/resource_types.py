"""``/v1/resource-types``: the resource types the policy may name, administered.

Catalogue resource types belong to no organization. Read with ``?organization_id=X``, they
are checked as objects of X; without it, a global grant is needed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status
from sqlalchemy import String, literal

from watchword.api.access import AccessDep
from watchword.api.etag import IfMatch, optional_version, required_version, tagged
from watchword.api.schemas import (
    PageLimit,
    PageOut,
    ResourceTypeIn,
    ResourceTypeOut,
    ResourceTypePatch,
    page_out,
)
from watchword.rbac.store import roles as store
from watchword.rbac.tables import resource_types

router = APIRouter(prefix="/v1/resource-types", tags=["resource-types"])

InOrg = Annotated[
    str | None, Query(description="Read catalogue entries as seen from this organization.")
]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Register a resource type")
async def create_resource_type(
    body: ResourceTypeIn, access: AccessDep, response: Response
) -> ResourceTypeOut:
    await access.require_create("resource-types")
    rt = await store.create_resource_type(
        access.ctx, name=body.name, actions=body.actions, description=body.description
    )
    return tagged(response, rt, ResourceTypeOut.of)


@router.get("", summary="List registered resource types")
async def list_resource_types(
    access: AccessDep,
    organization_id: InOrg = None,
    limit: PageLimit = 50,
    cursor: str | None = None,
) -> PageOut[ResourceTypeOut]:
    visible = await access.visible(
        "resource-types",
        id=resource_types.c.name,
        org_id=None if organization_id is None else literal(organization_id, String()),
    )
    page = await store.list_resource_types(access.ctx, limit=limit, cursor=cursor, extra=visible)
    return page_out(page, ResourceTypeOut.of)


@router.get("/{name}", summary="Read a resource type")
async def get_resource_type(
    name: str, access: AccessDep, response: Response, organization_id: InOrg = None
) -> ResourceTypeOut:
    await access.require(
        "resource-types", "read", name, org_id=organization_id, what="resource type"
    )
    rt = await store.get_resource_type(access.ctx, name)
    return tagged(response, rt, ResourceTypeOut.of)


@router.patch("/{name}", summary="Change a resource type's actions or description")
async def update_resource_type(
    name: str,
    body: ResourceTypePatch,
    access: AccessDep,
    response: Response,
    if_match: IfMatch = None,
) -> ResourceTypeOut:
    await store.get_resource_type(access.ctx, name)
    await access.require("resource-types", "update", name, what="resource type")
    rt = await store.update_resource_type(
        access.ctx,
        name,
        if_match=required_version(if_match),
        actions=body.actions,
        description=body.description,
    )
    return tagged(response, rt, ResourceTypeOut.of)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_resource_type(name: str, access: AccessDep, if_match: IfMatch = None) -> None:
    """Delete a resource type no role uses (409 in_use otherwise)."""
    await store.get_resource_type(access.ctx, name)
    await access.require("resource-types", "delete", name, what="resource type")
    await store.delete_resource_type(access.ctx, name, if_match=optional_version(if_match))
