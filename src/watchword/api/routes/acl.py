"""``GET /v1/acl``, ``GET /v1/organizations/{id}/acl`` (the caller's), and
``POST /v1/acl/query`` (an administrator computing someone else's).

The document is computed only from claims, groups, roles and bindings, intersected with
the token scope; a non-member (user or service account alike) asking about an
organization gets 403 ``not_a_member``, never an empty document.
"""

from __future__ import annotations

from typing import cast

from fastapi import APIRouter

from watchword.api.access import AccessDep, principal_scope
from watchword.api.schemas import AclOut, AclQuery
from watchword.authz.model import TokenScope
from watchword.errors import NotFound
from watchword.principal import Principal
from watchword.rbac.errors import SubjectRequired

router = APIRouter(tags=["acl"])


def _subject(principal: Principal) -> tuple[str, str]:
    if principal.issuer is None or principal.subject is None:
        raise SubjectRequired(
            "this credential (e.g. a bootstrap admin key) has no subject; "
            "use POST /v1/acl/query to compute a subject's ACL"
        )
    return principal.issuer, principal.subject


@router.get(
    "/v1/acl",
    response_model=None,
    responses={200: {"model": AclOut}},
    summary="The caller's ACL: global and every organization it belongs to",
)
async def my_acl(access: AccessDep) -> dict[str, object]:
    issuer, subject = _subject(access.principal)
    return await access.service.acl(
        issuer,
        subject,
        access.principal.claims,
        scope=principal_scope(access.principal),
    )


@router.get(
    "/v1/organizations/{organization_id}/acl",
    response_model=None,
    responses={200: {"model": AclOut}, 403: {"description": "not_a_member"}},
    summary="The caller's ACL scoped to one organization (403 not_a_member otherwise)",
)
async def my_org_acl(organization_id: str, access: AccessDep) -> dict[str, object]:
    issuer, subject = _subject(access.principal)
    return await access.service.acl(
        issuer,
        subject,
        access.principal.claims,
        scope=principal_scope(access.principal),
        organization_id=organization_id,
    )


@router.post(
    "/v1/acl/query",
    response_model=None,
    responses={200: {"model": AclOut}},
    summary="Compute a subject's ACL (needs watchword:acl read)",
)
async def query_acl(body: AclQuery, access: AccessDep) -> dict[str, object]:
    """With a global grant, the whole document. With an organization-level grant, only what
    the subject has in that organization (``organization_id`` is then required): an
    organization's administrators learn nothing about the subject's other memberships nor
    its global grants (``global`` is empty)."""
    global_reader = await access.allowed("acl", "read", body.subject)
    if not global_reader:
        if body.organization_id is None:
            raise NotFound("acl does not exist (ask within an organization: organization_id)")
        await access.require("acl", "read", body.subject, org_id=body.organization_id, what="acl")
    doc = await access.service.acl(
        body.issuer,
        body.subject,
        body.claims,
        scope=None if body.scope is None else TokenScope(frozenset(body.scope)),
        organization_id=body.organization_id,
    )
    if global_reader:
        return doc
    groups = cast("list[dict[str, str]]", doc["groups"])
    return {
        **doc,
        "global": [],
        "organizations": [doc["organization"]],
        "groups": [g for g in groups if g["organizationId"] == body.organization_id],
    }
