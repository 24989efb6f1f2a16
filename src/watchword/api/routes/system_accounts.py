"""System accounts (``/v1/system-accounts``): machine identities with global roles."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from watchword.api.access import AccessDep
from watchword.api.etag import IfMatch, optional_version, required_version, tagged
from watchword.api.schemas import (
    PageLimit,
    PageOut,
    SystemAccountIn,
    SystemAccountOut,
    SystemAccountPatch,
    page_out,
)
from watchword.rbac.store import accounts as store
from watchword.rbac.tables import system_accounts

router = APIRouter()

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
    access: AccessDep, limit: PageLimit = 50, cursor: str | None = None
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
