"""``/v1/organizations/{org}/groups`` and their ``/members``.

A member's issuer defaults to watchword's own (``settings.issuer_url``), never the request's
Host. Adding or removing a member is an ``update`` of the group and bumps its version.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from watchword.api.access import AccessDep
from watchword.api.etag import IfMatch, optional_version, required_version, tagged
from watchword.api.schemas import (
    GroupIn,
    GroupOut,
    GroupPatch,
    MemberIn,
    PageLimit,
    PageOut,
    page_out,
)
from watchword.rbac.model import GroupMember, IdpGroup
from watchword.rbac.store import groups as store
from watchword.rbac.tables import groups

router = APIRouter(prefix="/v1/organizations/{organization_id}/groups", tags=["groups"])


def _members(access: AccessDep, members: list[MemberIn]) -> list[GroupMember]:
    return [GroupMember(m.issuer or access.ctx.issuer_url, m.id, m.email) for m in members]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a group")
async def create_group(
    organization_id: str, body: GroupIn, access: AccessDep, response: Response
) -> GroupOut:
    await access.require_create("groups", org_id=organization_id)
    group = await store.create_group(
        access.ctx,
        organization_id=organization_id,
        name=body.name,
        description=body.description,
        members=_members(access, body.members),
        idp_groups=[IdpGroup(g.issuer, g.name) for g in body.idp_groups],
        role_ids=body.role_ids,
        project_ids=body.project_ids,
    )
    return tagged(response, group, GroupOut.of)


@router.get("", summary="List an organization's groups")
async def list_groups(
    organization_id: str,
    access: AccessDep,
    limit: PageLimit = 50,
    cursor: str | None = None,
    name: str | None = None,
) -> PageOut[GroupOut]:
    await access.require_organization(organization_id)
    visible = await access.visible("groups", id=groups.c.id, org_id=groups.c.organization_id)
    page = await store.list_groups(
        access.ctx,
        organization_id=organization_id,
        limit=limit,
        cursor=cursor,
        name=name,
        extra=visible,
    )
    return page_out(page, GroupOut.of)


async def _authorize(access: AccessDep, organization_id: str, group_id: str, action: str) -> None:
    await store.get_group(access.ctx, group_id, organization_id=organization_id)
    await access.require("groups", action, group_id, org_id=organization_id, what="group")


@router.get("/{group_id}", summary="Read a group")
async def get_group(
    organization_id: str, group_id: str, access: AccessDep, response: Response
) -> GroupOut:
    await _authorize(access, organization_id, group_id, "read")
    group = await store.get_group(access.ctx, group_id)
    return tagged(response, group, GroupOut.of)


@router.patch("/{group_id}", summary="Update a group (lists given are replaced)")
async def update_group(
    organization_id: str,
    group_id: str,
    body: GroupPatch,
    access: AccessDep,
    response: Response,
    if_match: IfMatch = None,
) -> GroupOut:
    await _authorize(access, organization_id, group_id, "update")
    group = await store.update_group(
        access.ctx,
        group_id,
        if_match=required_version(if_match),
        name=body.name,
        description=body.description,
        members=None if body.members is None else _members(access, body.members),
        idp_groups=None
        if body.idp_groups is None
        else [IdpGroup(g.issuer, g.name) for g in body.idp_groups],
        role_ids=body.role_ids,
        project_ids=body.project_ids,
    )
    return tagged(response, group, GroupOut.of)


@router.delete("/{group_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a group")
async def delete_group(
    organization_id: str, group_id: str, access: AccessDep, if_match: IfMatch = None
) -> None:
    await _authorize(access, organization_id, group_id, "delete")
    await store.delete_group(access.ctx, group_id, if_match=optional_version(if_match))


@router.post(
    "/{group_id}/members",
    status_code=status.HTTP_201_CREATED,
    summary="Add a member (409 duplicate_member if already there)",
)
async def add_member(
    organization_id: str,
    group_id: str,
    body: MemberIn,
    access: AccessDep,
    response: Response,
    if_match: IfMatch = None,
) -> GroupOut:
    await _authorize(access, organization_id, group_id, "update")
    (member,) = _members(access, [body])
    group = await store.add_member(
        access.ctx, group_id, member, if_match=optional_version(if_match)
    )
    return tagged(response, group, GroupOut.of)


@router.delete("/{group_id}/members", summary="Remove a member, named by issuer and id")
async def remove_member(
    organization_id: str,
    group_id: str,
    access: AccessDep,
    response: Response,
    subject: Annotated[str, Query(alias="id", min_length=1)],
    issuer: Annotated[str | None, Query(description="Omitted: watchword's own.")] = None,
    if_match: IfMatch = None,
) -> GroupOut:
    await _authorize(access, organization_id, group_id, "update")
    group = await store.remove_member(
        access.ctx,
        group_id,
        issuer or access.ctx.issuer_url,
        subject,
        if_match=optional_version(if_match),
    )
    return tagged(response, group, GroupOut.of)
