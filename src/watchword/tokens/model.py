"""Token values: the stored record (never the secret), the owner, the state at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from watchword.tokens.format import TokenKind
from watchword.tokens.scope import Permission

__all__ = ["NewToken", "Owner", "TokenRecord", "TokenState"]


@dataclass(frozen=True, slots=True)
class Owner:
    """The subject a token acts as: the (issuer, subject id) pair the policy engine uses."""

    issuer: str
    subject: str


class TokenState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A stored token, without its secret; ``token_hash`` is the SHA-256 it is found by."""

    id: str
    kind: TokenKind
    name: str
    owner: Owner
    organization_id: str | None
    scopes: frozenset[str]
    permission: Permission
    display_prefix: str
    token_hash: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None
    rotated_from: str | None
    version: int
    parent_id: str | None = None  # the token that created this one, if a token did

    def public_view(self, now: datetime) -> dict[str, object]:
        """What a caller may see of the token (never its hash), as of ``now``."""
        return {
            "id": self.id,
            "kind": self.kind.label,
            "name": self.name,
            "owner_issuer": self.owner.issuer,
            "owner_subject": self.owner.subject,
            "organization_id": self.organization_id,
            "scopes": sorted(self.scopes),
            "permission": self.permission.value,
            "prefix": self.display_prefix,
            "state": self.state_at(now).value,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
            "rotated_from": self.rotated_from,
        }

    def state_at(self, now: datetime) -> TokenState:
        """Revoked wins over expired: a revoked token says so even after its expiry."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return TokenState.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return TokenState.EXPIRED
        return TokenState.ACTIVE


@dataclass(frozen=True, slots=True)
class NewToken:
    """What a token is to be minted with (owner, kind, scopes, permission, lifetime)."""

    kind: TokenKind
    name: str
    owner: Owner
    scopes: frozenset[str]
    permission: Permission = Permission.READ_ONLY
    organization_id: str | None = None
    expires_at: datetime | None = None
    parent_id: str | None = None  # the caller's token when a token creates a token
