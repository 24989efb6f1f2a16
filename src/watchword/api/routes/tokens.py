"""API tokens over HTTP (``/v1/tokens``): create, list, get, rotate, revoke.

Who may do what:

- a superuser (bootstrap admin key) may do everything, for any owner;
- a token principal may list and get the tokens of its own owner (issuer, subject); if it
  is read-write it may also revoke them, rotate those of its organization whose scopes and
  permission are within its own, and create **personal** tokens for that owner, its
  organization, within its own scopes and expiring no later than itself (a token cannot
  mint a stronger or longer-lived one, neither new nor as a successor);
- beyond its own, a principal may act on the tokens of an organization where the policy
  engine grants it ``watchword:tokens`` (``read``, ``create``, ``update`` for rotate,
  ``delete`` for revoke), e.g. the seeded ``org-admin`` role: it may list them
  (``?organization_id=``), and create ``service_account`` tokens for that organization's
  service accounts (owner ``sa:<id>``);
- anything else on a token that is not the caller's own answers 404, not 403, so a
  caller learns nothing about other owners' tokens.

The plaintext is in the 201 response of create and rotate, and nowhere else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import AwareDatetime, BaseModel, Field

from watchword.api.access import Access
from watchword.api.caching import NO_STORE
from watchword.api.deps import Principal, PrincipalDep, RuntimeDep
from watchword.api.text import Line, PrintableModel
from watchword.errors import InvalidInput, NotFound, PermissionDenied
from watchword.rbac.service import store_context
from watchword.rbac.store.accounts import get_service_account
from watchword.runtime import Runtime
from watchword.tokens import (
    IssuedToken,
    NewToken,
    Owner,
    Permission,
    TokenKind,
    TokenRecord,
    token_service,
)
from watchword.tokens.scope import covers

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


def _owner_of(principal: Principal) -> Owner:
    if principal.issuer is None or principal.subject is None:
        raise PermissionDenied("this credential does not act for a subject")
    return Owner(issuer=principal.issuer, subject=principal.subject)


async def _org_allows(
    runtime: Runtime, principal: Principal, action: str, org_id: str | None, token_id: str = ""
) -> bool:
    """Whether the engine grants ``watchword:tokens`` ``action`` in ``org_id``."""
    if org_id is None or principal.issuer is None or principal.subject is None:
        return False
    return await Access(runtime, principal).allowed("tokens", action, token_id, org_id=org_id)


async def _visible(
    runtime: Runtime, principal: Principal, token_id: str, action: str = "read"
) -> TokenRecord:
    """The token, if the caller may do ``action`` on it: 404 if it may not even read it."""
    record = await runtime.service(token_service).get(token_id)
    if principal.superuser:
        return record
    if record.owner == _owner_of(principal):
        if action != "read":
            await _require_writable(runtime, principal)
        return record
    org = record.organization_id
    if await _org_allows(runtime, principal, action, org, token_id):
        return record
    if action != "read" and await _org_allows(runtime, principal, "read", org, token_id):
        raise PermissionDenied(f"you may not {action} token {token_id!r}")
    raise NotFound(f"no token {token_id!r}")


async def _require_writable(runtime: Runtime, principal: Principal) -> TokenRecord:
    """The caller's own token record, which must be read-write to change tokens."""
    mine = await runtime.service(token_service).get(principal.id)
    if mine.permission is not Permission.READ_WRITE:
        raise PermissionDenied("a read-only token cannot create, rotate or revoke tokens")
    return mine


async def _spec_for(runtime: Runtime, principal: Principal, body: TokenCreate) -> NewToken:
    kind = TokenKind.from_label(body.kind)
    permission = Permission(body.permission)
    scopes = frozenset(body.scopes)
    expires_at = body.expires_at
    if principal.superuser:
        if body.owner_subject is None:
            raise InvalidInput("owner_subject is required", pointer="/owner_subject")
        owner = Owner(body.owner_issuer or runtime.settings.issuer_url, body.owner_subject)
        organization_id = body.organization_id
    elif kind is TokenKind.SERVICE_ACCOUNT:
        owner, organization_id = await _service_account_owner(runtime, principal, body)
    else:
        owner = _owner_of(principal)
        if (body.owner_subject or owner.subject) != owner.subject or (
            body.owner_issuer or owner.issuer
        ) != owner.issuer:
            raise PermissionDenied("a token may only create tokens for its own owner")
        if kind is not TokenKind.PERSONAL:
            raise PermissionDenied("a token may only create personal tokens")
        if body.organization_id not in (None, principal.organization_id):
            raise PermissionDenied("a token may only create tokens for its own organization")
        organization_id = principal.organization_id
        mine = await _require_writable(runtime, principal)
        if not covers(mine.scopes, mine.permission, scopes, permission):
            raise PermissionDenied("the new token's scopes must be within the caller's own")
        if mine.expires_at is not None and (expires_at is None or expires_at > mine.expires_at):
            expires_at = mine.expires_at  # a child never outlives the token that made it
    return NewToken(
        kind=kind,
        name=body.name,
        owner=owner,
        scopes=scopes,
        permission=permission,
        organization_id=organization_id,
        expires_at=expires_at,
    )


async def _service_account_owner(
    runtime: Runtime, principal: Principal, body: TokenCreate
) -> tuple[Owner, str]:
    """A service-account token made by an organization's administrator."""
    org = body.organization_id
    if org is None:
        raise InvalidInput(
            "organization_id is required for a service account token", pointer="/organization_id"
        )
    subject = body.owner_subject or ""
    if not subject.startswith("sa:"):
        raise InvalidInput(
            "owner_subject must be sa:<service account id>", pointer="/owner_subject"
        )
    if body.owner_issuer not in (None, runtime.settings.issuer_url):
        raise InvalidInput("service accounts belong to watchword's issuer", pointer="/owner_issuer")
    if not await _org_allows(runtime, principal, "create", org):
        if await _org_allows(runtime, principal, "read", org):
            raise PermissionDenied(f"you may not create tokens in organization {org!r}")
        raise NotFound(f"organization {org!r} does not exist")
    # The service account must be this organization's (a foreign one is simply not found).
    await get_service_account(store_context(runtime), subject[3:], organization_id=org)
    return Owner(runtime.settings.issuer_url, subject), org


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a token (shown once)",
    dependencies=[NO_STORE],
)
async def create_token(
    body: TokenCreate, principal: PrincipalDep, runtime: RuntimeDep
) -> TokenCreated:
    spec = await _spec_for(runtime, principal, body)
    issued = await runtime.service(token_service).create(spec)
    return _created(issued, runtime.clock.now())


@router.get("", summary="List tokens (never their secrets), oldest first")
async def list_tokens(
    *,
    principal: PrincipalDep,
    runtime: RuntimeDep,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    owner_subject: Annotated[str | None, Query(max_length=255)] = None,
    owner_issuer: Annotated[str | None, Query(max_length=500)] = None,
    organization_id: Annotated[str | None, Query(max_length=64)] = None,
) -> TokenList:
    owner: Owner | None
    if organization_id is not None and not principal.superuser:
        # An organization's tokens, for those the engine lets read them.
        if not await _org_allows(runtime, principal, "read", organization_id):
            raise NotFound(f"organization {organization_id!r} does not exist")
        owner = None
    elif principal.superuser:
        owner = (
            Owner(owner_issuer or runtime.settings.issuer_url, owner_subject)
            if owner_subject is not None
            else None
        )
    else:
        owner = _owner_of(principal)
    page = await runtime.service(token_service).list(
        owner=owner, cursor=cursor, limit=limit, organization_id=organization_id
    )
    now = runtime.clock.now()
    return TokenList(
        items=[TokenOut.model_validate(_out(r, now)) for r in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{token_id}", summary="One token (never its secret)")
async def get_token(token_id: str, principal: PrincipalDep, runtime: RuntimeDep) -> TokenOut:
    record = await _visible(runtime, principal, token_id)
    return TokenOut.model_validate(_out(record, runtime.clock.now()))


@router.post(
    "/{token_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    summary="Replace a token; the old one stays valid for the grace period",
    dependencies=[NO_STORE],
)
async def rotate_token(token_id: str, principal: PrincipalDep, runtime: RuntimeDep) -> TokenCreated:
    record = await _visible(runtime, principal, token_id, "update")
    if not principal.superuser and record.owner == _owner_of(principal):
        # Rotation hands out a new secret with the old token's scopes: the same rule as
        # create, or a narrow token could obtain a broader sibling's powers.
        mine = await runtime.service(token_service).get(principal.id)
        if not covers(mine.scopes, mine.permission, record.scopes, record.permission):
            raise PermissionDenied("the rotated token's scopes must be within the caller's own")
        if principal.organization_id not in (None, record.organization_id):
            raise PermissionDenied("a token may only rotate tokens of its own organization")
    issued = await runtime.service(token_service).rotate(token_id)
    return _created(issued, runtime.clock.now())


@router.post("/{token_id}/revoke", summary="Revoke a token now (idempotent)")
async def revoke_token(token_id: str, principal: PrincipalDep, runtime: RuntimeDep) -> TokenOut:
    await _visible(runtime, principal, token_id, "delete")
    record = await runtime.service(token_service).revoke(token_id)
    return TokenOut.model_validate(_out(record, runtime.clock.now()))
