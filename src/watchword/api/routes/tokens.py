"""API tokens over HTTP (``/v1/tokens``): create, list, get, rotate, revoke.

Each handler parses, asks the rules in :mod:`watchword.tokens.access` (who may do what,
with organization grants from the policy engine), calls the token service and renders.
The plaintext is in the 201 response of create and rotate, and nowhere else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime, BaseModel, Field

from watchword.api.access import Access, AccessDep
from watchword.api.caching import NO_STORE
from watchword.api.deps import ServicesDep
from watchword.api.text import Line, PrintableModel
from watchword.principal import PrincipalKind
from watchword.services import Services
from watchword.tokens import IssuedToken, Permission, TokenKind, TokenRecord
from watchword.tokens.access import (
    Caller,
    OrgGrant,
    TokenRequest,
    check_rotate,
    check_visible,
    list_owner,
    new_token,
)

__all__ = ["TokenCreate", "TokenCreated", "TokenList", "TokenOut", "router"]

router = APIRouter(prefix="/v1/tokens", tags=["tokens"])

KindName = Literal["personal", "service_account", "integration"]


class TokenCreate(PrintableModel):
    kind: KindName = "personal"
    name: Line = Field(min_length=1, max_length=200)
    scopes: list[Line] = Field(default_factory=list, max_length=100)
    permission: Literal["ro", "rw"] = "ro"
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="With a time zone; at most ten years ahead. Omitted: never expires.",
    )
    owner_subject: Line | None = Field(default=None, max_length=255)
    owner_issuer: Line | None = Field(default=None, max_length=500)
    organization_id: Line | None = Field(default=None, max_length=64)


class TokenOut(BaseModel):
    id: str
    kind: KindName
    name: str
    owner_issuer: str
    owner_subject: str
    organization_id: str | None
    scopes: list[str]
    permission: Literal["ro", "rw"]
    prefix: str = Field(description="The first characters of the token, for recognizing it.")
    state: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    rotated_from: str | None


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself. Shown once: store it now.")


class TokenList(BaseModel):
    items: list[TokenOut]
    next_cursor: str | None


def _out(record: TokenRecord, now: datetime) -> dict[str, object]:
    return record.public_view(now)


def _created(issued: IssuedToken, now: datetime) -> TokenCreated:
    return TokenCreated.model_validate({**_out(issued.record, now), "token": issued.token.reveal()})


async def _caller(services: Services, access: Access) -> Caller:
    """The principal, with its own token record when it presented an API token."""
    principal = access.principal
    if principal.kind is PrincipalKind.API_TOKEN:
        return Caller(principal, await services.tokens.get(principal.id))
    return Caller(principal)


def _grant(access: Access) -> OrgGrant:
    async def grant(action: str, organization_id: str, token_id: str) -> bool:
        return await access.allowed("tokens", action, token_id, org_id=organization_id)

    return grant


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a token (shown once)",
    dependencies=[NO_STORE],
)
async def create_token(body: TokenCreate, access: AccessDep, services: ServicesDep) -> TokenCreated:
    async def service_account_exists(sa_id: str, organization_id: str) -> None:
        await services.rbac.service_account(sa_id, organization_id)

    caller = await _caller(services, access)
    request = TokenRequest(
        kind=TokenKind.from_label(body.kind),
        name=body.name,
        scopes=frozenset(body.scopes),
        permission=Permission(body.permission),
        expires_at=body.expires_at,
        owner_subject=body.owner_subject,
        owner_issuer=body.owner_issuer,
        organization_id=body.organization_id,
        parent_id=caller.token.id if caller.token is not None else None,
    )
    spec = await new_token(
        caller,
        request,
        grant=_grant(access),
        service_account_exists=service_account_exists,
        local_issuer=services.runtime.settings.issuer_url,
    )
    issued = await services.tokens.create(spec)
    return _created(issued, services.runtime.clock.now())


@router.get("", summary="List tokens (never their secrets), oldest first")
async def list_tokens(
    *,
    access: AccessDep,
    services: ServicesDep,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    owner_subject: Annotated[str | None, Query(max_length=255)] = None,
    owner_issuer: Annotated[str | None, Query(max_length=500)] = None,
    organization_id: Annotated[str | None, Query(max_length=64)] = None,
) -> TokenList:
    owner = await list_owner(
        Caller(access.principal),
        owner_subject=owner_subject,
        owner_issuer=owner_issuer,
        organization_id=organization_id,
        grant=_grant(access),
        local_issuer=services.runtime.settings.issuer_url,
    )
    page = await services.tokens.list(
        owner=owner, cursor=cursor, limit=limit, organization_id=organization_id
    )
    now = services.runtime.clock.now()
    return TokenList(
        items=[TokenOut.model_validate(_out(r, now)) for r in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{token_id}", summary="One token (never its secret)")
async def get_token(token_id: str, access: AccessDep, services: ServicesDep) -> TokenOut:
    record = await services.tokens.get(token_id)
    await check_visible(Caller(access.principal), record, "read", _grant(access))
    return TokenOut.model_validate(_out(record, services.runtime.clock.now()))


@router.post(
    "/{token_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    summary="Replace a token; the old one stays valid for the grace period",
    dependencies=[NO_STORE],
)
async def rotate_token(token_id: str, access: AccessDep, services: ServicesDep) -> TokenCreated:
    record = await services.tokens.get(token_id)
    not_after = await check_rotate(await _caller(services, access), record, _grant(access))
    issued = await services.tokens.rotate(token_id, not_after=not_after)
    return _created(issued, services.runtime.clock.now())


@router.post("/{token_id}/revoke", summary="Revoke a token now (idempotent)")
async def revoke_token(token_id: str, access: AccessDep, services: ServicesDep) -> TokenOut:
    record = await services.tokens.get(token_id)
    await check_visible(await _caller(services, access), record, "delete", _grant(access))
    record = await services.tokens.revoke(token_id)
    return TokenOut.model_validate(_out(record, services.runtime.clock.now()))
