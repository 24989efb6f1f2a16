"""``/v1/organizations`` and ``/v1/organizations/{org}/projects``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from watchword.api.access import AccessDep
from watchword.api.etag import IfMatch, optional_version, required_version, tagged
from watchword.api.schemas import (
    OrganizationIn,
    OrganizationOut,
    OrganizationPatch,
    PageLimit,
    PageOut,
    ProjectIn,
    ProjectOut,
    ProjectPatch,
    page_out,
)
from watchword.rbac.store import organizations as store
from watchword.rbac.tables import organizations, projects

router = APIRouter(prefix="/v1/organizations", tags=["organizations"])

Cursor = Annotated[str | None, Query(description="`next_cursor` of the previous page.")]
NameFilter = Annotated[str | None, Query(description="Only records with this exact name.")]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create an organization")
async def create_organization(
    body: OrganizationIn, access: AccessDep, response: Response
) -> OrganizationOut:
    await access.require_create("organizations")
    org = await store.create_organization(access.ctx, name=body.name, description=body.description)
    return tagged(response, org, OrganizationOut.of)


@router.get("", summary="List the organizations the caller may read")
async def list_organizations(
    access: AccessDep, limit: PageLimit = 50, cursor: Cursor = None, name: NameFilter = None
) -> PageOut[OrganizationOut]:
    visible = await access.visible(
        "organizations", id=organizations.c.id, org_id=organizations.c.id
    )
    page = await store.list_organizations(
        access.ctx, limit=limit, cursor=cursor, name=name, extra=visible
    )
    return page_out(page, OrganizationOut.of)


@router.get("/{organization_id}", summary="Read an organization")
async def get_organization(
    organization_id: str, access: AccessDep, response: Response
) -> OrganizationOut:
    await access.require("organizations", "read", organization_id, org_id=organization_id)
    org = await store.get_organization(access.ctx, organization_id)
    return tagged(response, org, OrganizationOut.of)


@router.patch("/{organization_id}", summary="Update an organization (If-Match required)")
async def update_organization(
    organization_id: str,
    body: OrganizationPatch,
    access: AccessDep,
    response: Response,
    if_match: IfMatch = None,
) -> OrganizationOut:
    await store.get_organization(access.ctx, organization_id)
    await access.require("organizations", "update", organization_id, org_id=organization_id)
    org = await store.update_organization(
        access.ctx,
        organization_id,
        if_match=required_version(if_match),
        name=body.name,
        description=body.description,
    )
    return tagged(response, org, OrganizationOut.of)


@router.delete(
    "/{organization_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete an organization"
)
async def delete_organization(
    organization_id: str, access: AccessDep, if_match: IfMatch = None
) -> None:
    await store.get_organization(access.ctx, organization_id)
    await access.require("organizations", "delete", organization_id, org_id=organization_id)
    await store.delete_organization(
        access.ctx, organization_id, if_match=optional_version(if_match)
    )


# Projects ----------------------------------------------------------------------------------


@router.post(
    "/{organization_id}/projects", status_code=status.HTTP_201_CREATED, summary="Create a project"
)
async def create_project(
    organization_id: str, body: ProjectIn, access: AccessDep, response: Response
) -> ProjectOut:
    await access.require_create("projects", org_id=organization_id)
    project = await store.create_project(
        access.ctx, organization_id=organization_id, name=body.name, description=body.description
    )
    return tagged(response, project, ProjectOut.of)


@router.get("/{organization_id}/projects", summary="List an organization's projects")
async def list_projects(
    organization_id: str,
    access: AccessDep,
    limit: PageLimit = 50,
    cursor: Cursor = None,
    name: NameFilter = None,
) -> PageOut[ProjectOut]:
    await access.require_organization(organization_id)
    visible = await access.visible(
        "projects", id=projects.c.id, org_id=projects.c.organization_id, project_id=projects.c.id
    )
    page = await store.list_projects(
        access.ctx,
        organization_id=organization_id,
        limit=limit,
        cursor=cursor,
        name=name,
        extra=visible,
    )
    return page_out(page, ProjectOut.of)


async def _project(access: AccessDep, organization_id: str, project_id: str, action: str) -> None:
    await store.get_project(access.ctx, project_id, organization_id=organization_id)
    await access.require(
        "projects", action, project_id, org_id=organization_id, project_id=project_id
    )


@router.get("/{organization_id}/projects/{project_id}", summary="Read a project")
async def get_project(
    organization_id: str, project_id: str, access: AccessDep, response: Response
) -> ProjectOut:
    await _project(access, organization_id, project_id, "read")
    project = await store.get_project(access.ctx, project_id)
    return tagged(response, project, ProjectOut.of)


@router.patch("/{organization_id}/projects/{project_id}", summary="Update a project")
async def update_project(
    organization_id: str,
    project_id: str,
    body: ProjectPatch,
    access: AccessDep,
    response: Response,
    if_match: IfMatch = None,
) -> ProjectOut:
    await _project(access, organization_id, project_id, "update")
    project = await store.update_project(
        access.ctx,
        project_id,
        if_match=required_version(if_match),
        name=body.name,
        description=body.description,
    )
    return tagged(response, project, ProjectOut.of)


@router.delete(
    "/{organization_id}/projects/{project_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a project (its group links go with it)",
)
async def delete_project(
    organization_id: str, project_id: str, access: AccessDep, if_match: IfMatch = None
) -> None:
    await _project(access, organization_id, project_id, "delete")
    await store.delete_project(access.ctx, project_id, if_match=optional_version(if_match))
