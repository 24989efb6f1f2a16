"""Role bindings (``/v1/role-bindings``): global roles bound to subjects."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from watchword.api.access import AccessDep
from watchword.api.etag import IfMatch, optional_version, required_version, tagged
from watchword.api.schemas import (
    BindingIn,
    BindingOut,
    BindingPatch,
    PageLimit,
    PageOut,
    page_out,
)
from watchword.rbac.store import accounts as store
from watchword.rbac.tables import role_bindings

router = APIRouter()

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
    access: AccessDep, limit: PageLimit = 50, cursor: str | None = None, issuer: str | None = None
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
