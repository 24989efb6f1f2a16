"""Service accounts (``/v1/organizations/{org}/service-accounts``), system accounts
(``/v1/system-accounts``), role bindings (``/v1/role-bindings``), issuers (``/v1/issuers``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from watchword.rbac.model import ServiceAccount
from watchword.rbac.routes.access import AccessDep
from watchword.rbac.routes.etag import IfMatch, optional_version, required_version, tagged
from watchword.rbac.routes.schemas import (
    BindingIn,
    BindingOut,
    BindingPatch,
    IssuerIn,
    IssuerOut,
    IssuerPatch,
    PageOut,
    ServiceAccountIn,
    ServiceAccountOut,
    ServiceAccountPatch,
    SystemAccountIn,
    SystemAccountOut,
    SystemAccountPatch,
    page_out,
)
from watchword.rbac.store import accounts as store
from watchword.rbac.tables import issuers, role_bindings, service_accounts, system_accounts

router = APIRouter()
Limit = Annotated[int, Query(ge=1, le=500)]

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
    limit: Limit = 50,
    cursor: str | None = None,
    name: str | None = None,
) -> PageOut[ServiceAccountOut]:
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
    organization_id: str, sa_id: str, access: AccessDep, if_match: IfMatch = None
) -> None:
    """Delete a service account and its group memberships."""
    await _sa(access, organization_id, sa_id, "delete")
    await store.delete_service_account(access.ctx, sa_id, if_match=optional_version(if_match))


# System accounts ---------------------------------------------------------------------------

SYS = "/v1/system-accounts"


@router.post(SYS, status_code=status.HTTP_201_CREATED, tags=["system-accounts"])
async def create_system_account(
    body: SystemAccountIn, access: AccessDep, response: Response
) -> SystemAccountOut:
    """Create a system account holding catalogue roles (global grants only)."""
    await access.require_create("system-accounts")
    acct = await store.create_system_account(
        access.ctx,
        subject_id=body.subject_id,
        issuer=body.issuer,
        role_ids=body.role_ids,
        description=body.description,
    )
    return tagged(response, acct, SystemAccountOut.of)


@router.get(SYS, tags=["system-accounts"], summary="List system accounts")
async def list_system_accounts(
    access: AccessDep, limit: Limit = 50, cursor: str | None = None
) -> PageOut[SystemAccountOut]:
    visible = await access.visible("system-accounts", id=system_accounts.c.id)
    page = await store.list_system_accounts(access.ctx, limit=limit, cursor=cursor, extra=visible)
    return page_out(page, SystemAccountOut.of)


@router.get(SYS + "/{sys_id}", tags=["system-accounts"], summary="Read a system account")
async def get_system_account(
    sys_id: str, access: AccessDep, response: Response
) -> SystemAccountOut:
    await access.require("system-accounts", "read", sys_id, what="system account")
    acct = await store.get_system_account(access.ctx, sys_id)
    return tagged(response, acct, SystemAccountOut.of)


@router.patch(SYS + "/{sys_id}", tags=["system-accounts"], summary="Update a system account")
async def update_system_account(
    sys_id: str,
    body: SystemAccountPatch,
    access: AccessDep,
    response: Response,
    if_match: IfMatch = None,
) -> SystemAccountOut:
    await store.get_system_account(access.ctx, sys_id)
    await access.require("system-accounts", "update", sys_id, what="system account")
    acct = await store.update_system_account(
        access.ctx,
        sys_id,
        if_match=required_version(if_match),
        role_ids=body.role_ids,
        description=body.description,
    )
    return tagged(response, acct, SystemAccountOut.of)


@router.delete(SYS + "/{sys_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["system-accounts"])
async def delete_system_account(sys_id: str, access: AccessDep, if_match: IfMatch = None) -> None:
    """Delete a system account."""
    await store.get_system_account(access.ctx, sys_id)
    await access.require("system-accounts", "delete", sys_id, what="system account")
    await store.delete_system_account(access.ctx, sys_id, if_match=optional_version(if_match))


# Role bindings -----------------------------------------------------------------------------

RB = "/v1/role-bindings"


@router.post(RB, status_code=status.HTTP_201_CREATED, tags=["role-bindings"])
async def create_binding(body: BindingIn, access: AccessDep, response: Response) -> BindingOut:
    """Grant catalogue roles globally to a subject, an issuer's subjects (`*`) or an IdP group."""
    await access.require_create("role-bindings")
    binding = await store.create_binding(
        access.ctx,
        issuer=body.issuer,
        subject_id=body.subject_id,
        idp_group=body.idp_group,
        role_ids=body.role_ids,
        description=body.description,
    )
    return tagged(response, binding, BindingOut.of)


@router.get(RB, tags=["role-bindings"], summary="List role bindings")
async def list_bindings(
    access: AccessDep, limit: Limit = 50, cursor: str | None = None, issuer: str | None = None
) -> PageOut[BindingOut]:
    visible = await access.visible("role-bindings", id=role_bindings.c.id)
    page = await store.list_bindings(
        access.ctx, limit=limit, cursor=cursor, issuer=issuer, extra=visible
    )
    return page_out(page, BindingOut.of)


@router.get(RB + "/{binding_id}", tags=["role-bindings"], summary="Read a role binding")
async def get_binding(binding_id: str, access: AccessDep, response: Response) -> BindingOut:
    await access.require("role-bindings", "read", binding_id, what="role binding")
    binding = await store.get_binding(access.ctx, binding_id)
    return tagged(response, binding, BindingOut.of)


@router.patch(RB + "/{binding_id}", tags=["role-bindings"], summary="Update a role binding")
async def update_binding(
    binding_id: str,
    body: BindingPatch,
    access: AccessDep,
    response: Response,
    if_match: IfMatch = None,
) -> BindingOut:
    await store.get_binding(access.ctx, binding_id)
    await access.require("role-bindings", "update", binding_id, what="role binding")
    binding = await store.update_binding(
        access.ctx,
        binding_id,
        if_match=required_version(if_match),
        role_ids=body.role_ids,
        description=body.description,
    )
    return tagged(response, binding, BindingOut.of)


@router.delete(RB + "/{binding_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["role-bindings"])
async def delete_binding(binding_id: str, access: AccessDep, if_match: IfMatch = None) -> None:
    """Delete a role binding."""
    await store.get_binding(access.ctx, binding_id)
    await access.require("role-bindings", "delete", binding_id, what="role binding")
    await store.delete_binding(access.ctx, binding_id, if_match=optional_version(if_match))


# Issuers -----------------------------------------------------------------------------------

ISS = "/v1/issuers"


@router.post(ISS, status_code=status.HTTP_201_CREATED, tags=["issuers"])
async def create_issuer(body: IssuerIn, access: AccessDep, response: Response) -> IssuerOut:
    """Trust an issuer (exact URL); `membership_from_claims` honours its `orgIds`."""
    await access.require_create("issuers")
    record = await store.create_issuer(
        access.ctx,
        url=body.url,
        audiences=body.audiences,
        subject_claim=body.subject_claim,
        groups_claim=body.groups_claim,
        authz_claim=body.authz_claim or access.runtime.settings.rbac.authz_claim,
        membership_from_claims=body.membership_from_claims,
    )
    return tagged(response, record, IssuerOut.of)


@router.get(ISS, tags=["issuers"], summary="List trusted issuers")
async def list_issuers(
    access: AccessDep, limit: Limit = 50, cursor: str | None = None, url: str | None = None
) -> PageOut[IssuerOut]:
    visible = await access.visible("issuers", id=issuers.c.id)
    page = await store.list_issuers(access.ctx, limit=limit, cursor=cursor, url=url, extra=visible)
    return page_out(page, IssuerOut.of)


@router.get(ISS + "/{issuer_id}", tags=["issuers"], summary="Read an issuer")
async def get_issuer(issuer_id: str, access: AccessDep, response: Response) -> IssuerOut:
    await access.require("issuers", "read", issuer_id, what="issuer")
    record = await store.get_issuer(access.ctx, issuer_id)
    return tagged(response, record, IssuerOut.of)


@router.patch(ISS + "/{issuer_id}", tags=["issuers"], summary="Update an issuer")
async def update_issuer(
    issuer_id: str,
    body: IssuerPatch,
    access: AccessDep,
    response: Response,
    if_match: IfMatch = None,
) -> IssuerOut:
    await store.get_issuer(access.ctx, issuer_id)
    await access.require("issuers", "update", issuer_id, what="issuer")
    record = await store.update_issuer(
        access.ctx,
        issuer_id,
        if_match=required_version(if_match),
        audiences=body.audiences,
        subject_claim=body.subject_claim,
        groups_claim=body.groups_claim,
        authz_claim=body.authz_claim,
        membership_from_claims=body.membership_from_claims,
    )
    return tagged(response, record, IssuerOut.of)


@router.delete(ISS + "/{issuer_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["issuers"])
async def delete_issuer(issuer_id: str, access: AccessDep, if_match: IfMatch = None) -> None:
    """Stop trusting an issuer (its subjects become untrusted for membership claims)."""
    await store.get_issuer(access.ctx, issuer_id)
    await access.require("issuers", "delete", issuer_id, what="issuer")
    await store.delete_issuer(access.ctx, issuer_id, if_match=optional_version(if_match))
