"""Token values: the stored record (never the secret), the owner, the state at a time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from watchword.tokens.format import TokenKind
from watchword.tokens.scope import Permission

__all__ = ["Owner", "TokenRecord", "TokenState"]


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

    def state_at(self, now: datetime) -> TokenState:
        """Revoked wins over expired: a revoked token says so even after its expiry."""
        if self.revoked_at is not None and self.revoked_at <= now:
            return TokenState.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return TokenState.EXPIRED
        return TokenState.ACTIVE
