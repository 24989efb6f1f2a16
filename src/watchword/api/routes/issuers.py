"""Trusted issuers (``/v1/issuers``) and the claim mapping watchword applies to their tokens."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from watchword.api.access import AccessDep
from watchword.api.etag import IfMatch, optional_version, required_version, tagged
from watchword.api.schemas import (
    IssuerIn,
    IssuerOut,
    IssuerPatch,
    PageLimit,
    PageOut,
    page_out,
)
from watchword.rbac.store import accounts as store
from watchword.rbac.tables import issuers

router = APIRouter()

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
        authz_claim=body.authz_claim or access.service.authz_claim,
        membership_from_claims=body.membership_from_claims,
    )
    return tagged(response, record, IssuerOut.of)


@router.get(ISS, tags=["issuers"], summary="List trusted issuers")
async def list_issuers(
    access: AccessDep, limit: PageLimit = 50, cursor: str | None = None, url: str | None = None
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
