"""Service accounts (``/v1/organizations/{org}/service-accounts``): one organization each."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Response, status

from watchword.api.access import AccessDep
from watchword.api.deps import ServicesDep
from watchword.api.etag import IfMatch, optional_version, required_version, tagged
from watchword.api.schemas import (
    PageLimit,
    PageOut,
    ServiceAccountIn,
    ServiceAccountOut,
    ServiceAccountPatch,
    page_out,
)
from watchword.rbac.model import ServiceAccount
from watchword.rbac.store import accounts as store
from watchword.rbac.tables import service_accounts

router = APIRouter()

SA = "/v1/organizations/{organization_id}/service-accounts"


@router.post(SA, status_code=status.HTTP_201_CREATED, tags=["service-accounts"])
async def create_service_account(
    organization_id: str, body: ServiceAccountIn, access: AccessDep, response: Response
) -> ServiceAccountOut:
    """Create a service account; it belongs to this organization only, for good."""
    await access.require_create("service-accounts", org_id=organization_id)
    sa = await store.create_service_account(
        access.ctx, organization_id=organization_id, name=body.name, description=body.description
    )
    return tagged(response, sa, _sa_out(access))


@router.get(SA, tags=["service-accounts"], summary="List an organization's service accounts")
async def list_service_accounts(
    organization_id: str,
    access: AccessDep,
    limit: PageLimit = 50,
    cursor: str | None = None,
    name: str | None = None,
) -> PageOut[ServiceAccountOut]:
    await access.require_organization(organization_id)
    visible = await access.visible(
        "service-accounts", id=service_accounts.c.id, org_id=service_accounts.c.organization_id
    )
    page = await store.list_service_accounts(
        access.ctx,
        organization_id=organization_id,
        limit=limit,
        cursor=cursor,
        name=name,
        extra=visible,
    )
    return page_out(page, _sa_out(access))


def _sa_out(access: AccessDep) -> Callable[[ServiceAccount], ServiceAccountOut]:
    url = access.ctx.issuer_url
    return lambda sa: ServiceAccountOut.of(sa, url)


async def _sa(access: AccessDep, organization_id: str, sa_id: str, action: str) -> None:
    await store.get_service_account(access.ctx, sa_id, organization_id=organization_id)
    await access.require(
        "service-accounts", action, sa_id, org_id=organization_id, what="service account"
    )


@router.get(SA + "/{sa_id}", tags=["service-accounts"], summary="Read a service account")
async def get_service_account(
    organization_id: str, sa_id: str, access: AccessDep, response: Response
) -> ServiceAccountOut:
    await _sa(access, organization_id, sa_id, "read")
    sa = await store.get_service_account(access.ctx, sa_id)
    return tagged(response, sa, _sa_out(access))


@router.patch(SA + "/{sa_id}", tags=["service-accounts"], summary="Update a service account")
async def update_service_account(
    organization_id: str,
    sa_id: str,
    body: ServiceAccountPatch,
    access: AccessDep,
    response: Response,
    if_match: IfMatch = None,
) -> ServiceAccountOut:
    await _sa(access, organization_id, sa_id, "update")
    sa = await store.update_service_account(
        access.ctx,
        sa_id,
        if_match=required_version(if_match),
        name=body.name,
        description=body.description,
        organization_id=body.organization_id,
    )
    return tagged(response, sa, _sa_out(access))


@router.delete(SA + "/{sa_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["service-accounts"])
async def delete_service_account(
    organization_id: str,
    sa_id: str,
    access: AccessDep,
    services: ServicesDep,
    if_match: IfMatch = None,
) -> None:
    """Delete a service account: its group memberships and role bindings go, and its API
    tokens are revoked, in one transaction."""
    await _sa(access, organization_id, sa_id, "delete")
    await services.delete_service_account(sa_id, if_match=optional_version(if_match))


# System accounts ---------------------------------------------------------------------------
