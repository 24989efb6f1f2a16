"""Who may create, see, rotate and revoke which API token.

The rules are over a :class:`Caller` (the authenticated principal and, when it presented an
API token, that token's own record) and answer with a value or a domain error; they do no
I/O of their own. Organization-level grants come from the policy engine through the
:data:`OrgGrant` the face passes in (``watchword:tokens`` ``read``/``create``/``update``/
``delete`` in an organization, e.g. the seeded ``org-admin`` role).

Rules:

- a superuser (bootstrap admin key) may create tokens for any owner (the way a person or a
  service gets a first token before signing in exists), and read and revoke any token;
- **a personal token is its owner's secret**: only a credential of its owner rotates it
  (rotation hands out the successor's plaintext, which acts as that person everywhere);
  anyone else, superusers and organization administrators included, may at most revoke it;
- **a personal token belongs to no organization**: the organization label says who
  administers a token (service-account and integration tokens of an organization), not what
  it may do, so it is refused on personal tokens (a token acts as its whole owner, narrowed
  only by its scopes);
- a caller may list and get the tokens of its own owner (issuer, subject); to create, rotate or
  revoke it must be writable: a read-only token may not (a session or any other credential
  without a token record of its own is writable);
- a token creates only **personal** tokens, for its own owner, within its own scopes and
  permission, expiring no later than itself (a token cannot mint a stronger or longer-lived one,
  neither new nor as a successor: rotation is held to the same bound);
- beyond its own, a caller may act on the tokens of an organization where the engine grants it
  ``watchword:tokens`` ``action``; it may list them, revoke them, and create and rotate the
  tokens of that organization's **service accounts**, **bounded by its own credential**: when
  it presents a token, the new or rotated token's scopes and permission must be within that
  token's, the rotated token expires no later than that token, and a token labelled with
  another organization may not act there;
- anything else on a token that is not the caller's answers 404, not 403: a caller learns
  nothing about other owners' tokens (403 only where it may read the token).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from watchword.errors import InvalidInput, NotFound, PermissionDenied
from watchword.principal import SERVICE_ACCOUNT_PREFIX, Principal
from watchword.tokens.format import TokenKind
from watchword.tokens.model import NewToken, Owner, TokenRecord
from watchword.tokens.scope import Permission, covers

__all__ = [
    "Caller",
    "OrgGrant",
    "ServiceAccountCheck",
    "TokenRequest",
    "check_rotate",
    "check_visible",
    "list_owner",
    "new_token",
    "owner_of",
]

OrgGrant = Callable[[str, str, str], Awaitable[bool]]
"""``grant(action, organization_id, token_id)``: whether the engine grants the caller
``watchword:tokens`` ``action`` on that token (``""``: any) in that organization."""

ServiceAccountCheck = Callable[[str, str], Awaitable[None]]
"""``check(service_account_id, organization_id)``: returns if that organization has that
service account, else raises :class:`NotFound`."""


@dataclass(frozen=True, slots=True)
class Caller:
    """The principal, and its own token record when it authenticated with an API token."""

    principal: Principal
    token: TokenRecord | None = None

    @property
    def superuser(self) -> bool:
        return self.principal.superuser


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """What a caller asked to create, as given (nothing defaulted yet)."""

    kind: TokenKind
    name: str
    scopes: frozenset[str]
    permission: Permission
    expires_at: datetime | None = None
    owner_subject: str | None = None
    owner_issuer: str | None = None
    organization_id: str | None = None
    parent_id: str | None = None  # the caller's own token, recorded as the new one's parent


def owner_of(principal: Principal) -> Owner:
    if principal.issuer is None or principal.subject is None:
        raise PermissionDenied("this credential does not act for a subject")
    return Owner(issuer=principal.issuer, subject=principal.subject)


def _require_within_credential(
    caller: Caller, scopes: frozenset[str], permission: Permission, organization_id: str | None
) -> None:
    """A caller hands out (creates or rotates into) no more than its own credential holds."""
    if caller.principal.organization_id not in (None, organization_id):
        raise PermissionDenied("a token may only act on tokens of its own organization")
    mine = caller.token
    if mine is not None and not covers(mine.scopes, mine.permission, scopes, permission):
        raise PermissionDenied("the token's scopes must be within the caller's own")


def _require_writable(caller: Caller) -> None:
    if caller.token is not None and caller.token.permission is not Permission.READ_WRITE:
        raise PermissionDenied("a read-only token cannot create, rotate or revoke tokens")


async def _org_allows(
    grant: OrgGrant, caller: Caller, action: str, org: str | None, token_id: str = ""
) -> bool:
    if org is None or not caller.principal.names_subject:
        return False
    return await grant(action, org, token_id)


async def check_visible(caller: Caller, record: TokenRecord, action: str, grant: OrgGrant) -> None:
    """Pass if the caller may do ``action`` on ``record``; else 404 (may not even read it)
    or 403 (may read it, not do ``action``)."""
    if caller.superuser:
        return
    if record.owner == owner_of(caller.principal):
        if action != "read":
            _require_writable(caller)
        return
    org = record.organization_id
    if await _org_allows(grant, caller, action, org, record.id):
        return
    if action != "read" and await _org_allows(grant, caller, "read", org, record.id):
        raise PermissionDenied(f"you may not {action} token {record.id!r}")
    raise NotFound(f"no token {record.id!r}")


async def check_rotate(caller: Caller, record: TokenRecord, grant: OrgGrant) -> datetime | None:
    """Pass if the caller may rotate ``record`` and so receive its successor's plaintext; the
    answer is the latest expiry the successor may have (``None``: no cap): a token never
    hands out, new or as a successor, a token that outlives itself."""
    owner = None if caller.principal.subject is None else owner_of(caller.principal)
    if record.kind is TokenKind.PERSONAL and record.owner != owner:
        # A person's secret is never handed to anyone else: others may at most revoke.
        await check_visible(caller, record, "read", grant)
        raise PermissionDenied(
            f"token {record.id!r} is a personal token: only its owner may rotate it"
        )
    await check_visible(caller, record, "update", grant)
    if caller.superuser:
        return None
    if record.owner != owner:
        _require_administrable(record.owner, record.organization_id)
        _require_writable(caller)
    # Rotation hands out a new secret with the old token's scopes: the same bound as create,
    # or a narrow token could obtain a broader sibling's powers.
    _require_within_credential(caller, record.scopes, record.permission, record.organization_id)
    return None if caller.token is None else caller.token.expires_at


def _require_administrable(owner: Owner, organization_id: str | None) -> None:
    """An organization's administrators act on the tokens of that organization's service
    accounts only: a token owned by a person (whatever its label) acts as that person
    everywhere, so its secret is not theirs to receive."""
    if organization_id is None or not owner.subject.startswith(SERVICE_ACCOUNT_PREFIX):
        raise PermissionDenied(
            "an organization's administrators rotate only its service accounts' tokens"
        )


async def new_token(
    caller: Caller,
    request: TokenRequest,
    *,
    grant: OrgGrant,
    service_account_exists: ServiceAccountCheck,
    local_issuer: str,
) -> NewToken:
    """The token ``caller`` may create for ``request``, or a domain error."""
    kind = request.kind
    expires_at = request.expires_at
    principal = caller.principal
    if kind is TokenKind.PERSONAL and request.organization_id is not None:
        raise InvalidInput(
            "a personal token belongs to no organization: it acts as its whole owner "
            "(use a service_account or integration token for an organization)",
            pointer="/organization_id",
        )
    if caller.superuser:
        if request.owner_subject is None:
            raise InvalidInput("owner_subject is required", pointer="/owner_subject")
        owner = Owner(request.owner_issuer or local_issuer, request.owner_subject)
        organization_id = request.organization_id
    elif kind is TokenKind.SERVICE_ACCOUNT:
        owner, organization_id = await _service_account_owner(
            caller, request, grant, service_account_exists, local_issuer
        )
    else:
        owner = owner_of(principal)
        if (request.owner_subject or owner.subject) != owner.subject or (
            request.owner_issuer or owner.issuer
        ) != owner.issuer:
            raise PermissionDenied("a token may only create tokens for its own owner")
        if kind is not TokenKind.PERSONAL:
            raise PermissionDenied("a token may only create personal tokens")
        organization_id = None
        _require_writable(caller)
        mine = caller.token
        if mine is not None:
            if not covers(mine.scopes, mine.permission, request.scopes, request.permission):
                raise PermissionDenied("the new token's scopes must be within the caller's own")
            if mine.expires_at is not None and (expires_at is None or expires_at > mine.expires_at):
                expires_at = mine.expires_at  # a child never outlives the token that made it
    return NewToken(
        kind=kind,
        name=request.name,
        owner=owner,
        scopes=request.scopes,
        permission=request.permission,
        organization_id=organization_id,
        expires_at=expires_at,
        parent_id=request.parent_id,
    )


async def _service_account_owner(
    caller: Caller,
    request: TokenRequest,
    grant: OrgGrant,
    service_account_exists: ServiceAccountCheck,
    local_issuer: str,
) -> tuple[Owner, str]:
    """A service-account token made by an organization's administrator."""
    org = request.organization_id
    if org is None:
        raise InvalidInput(
            "organization_id is required for a service account token", pointer="/organization_id"
        )
    subject = request.owner_subject or ""
    if not subject.startswith(SERVICE_ACCOUNT_PREFIX):
        raise InvalidInput(
            "owner_subject must be sa:<service account id>", pointer="/owner_subject"
        )
    if request.owner_issuer not in (None, local_issuer):
        raise InvalidInput("service accounts belong to watchword's issuer", pointer="/owner_issuer")
    if not await _org_allows(grant, caller, "create", org):
        if await _org_allows(grant, caller, "read", org):
            raise PermissionDenied(f"you may not create tokens in organization {org!r}")
        raise NotFound(f"organization {org!r} does not exist")
    _require_writable(caller)
    _require_within_credential(caller, request.scopes, request.permission, org)
    # The service account must be this organization's (a foreign one is simply not found).
    await service_account_exists(subject.removeprefix(SERVICE_ACCOUNT_PREFIX), org)
    return Owner(local_issuer, subject), org


async def list_owner(
    caller: Caller,
    *,
    owner_subject: str | None,
    owner_issuer: str | None,
    organization_id: str | None,
    grant: OrgGrant,
    local_issuer: str,
) -> Owner | None:
    """Whose tokens a list shows (``None``: every owner, within ``organization_id`` if set).

    A superuser lists anyone's; a caller granted ``read`` in an organization lists that
    organization's; anyone else lists its own owner's (other filters ignored)."""
    if organization_id is not None and not caller.superuser:
        if not await _org_allows(grant, caller, "read", organization_id):
            raise NotFound(f"organization {organization_id!r} does not exist")
        return None
    if caller.superuser:
        if owner_subject is None:
            return None
        return Owner(owner_issuer or local_issuer, owner_subject)
    return owner_of(caller.principal)
