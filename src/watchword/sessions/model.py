"""A signed-in session as the rest of watchword sees it: never its tokens.

:class:`SessionRecord` is what lookups, listings and ``/v1/me`` use; the sealed upstream
tokens stay in the row and are opened only where a token is needed (sign-out, refresh).
The cookie is ``<session id>.<secret>``: :func:`parse_cookie` refuses anything else before a
lookup, and only the SHA-256 of the secret is stored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from watchword.errors import SessionInvalid

__all__ = ["ACTIVE", "REAUTH_REQUIRED", "SessionRecord", "parse_cookie", "session_expired"]

ACTIVE = "active"
REAUTH_REQUIRED = "reauth_required"  # the upstream refresh token is dead: sign in again

_COOKIE = re.compile(r"^(ses_[0-9a-hjkmnp-tv-z]{26})\.([A-Za-z0-9_-]{43})$")


def parse_cookie(value: str) -> tuple[str, str]:
    """(session id, secret) of a cookie value, or :class:`SessionInvalid`."""
    match = _COOKIE.match(value)
    if match is None:
        raise SessionInvalid("the session cookie is malformed")
    return match[1], match[2]


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    provider: str
    issuer: str
    subject: str
    upstream_sid: str | None
    email: str | None
    display_name: str | None
    claims: Mapping[str, Any]
    organization_ids: tuple[str, ...]
    key_id: str
    access_expires_at: datetime | None
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    refreshed_at: datetime | None
    version: int
    secret_hash: str = field(repr=False, default="")
    # Kept fresh (written only by refresh attempts; see watchword.sessions.schedule):
    state: str = "active"  # active | reauth_required
    state_reason: str | None = None
    has_refresh_token: bool = False
    refresh_due_at: datetime | None = None
    refresh_attempt_at: datetime | None = None
    refresh_failures: int = 0
    retry_after: datetime | None = None
    userinfo_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.state == ACTIVE

    def public_view(self, idle_timeout: timedelta) -> dict[str, Any]:
        """What may be shown of a session (no tokens, no secret hash, no claims)."""
        idle_end = self.last_seen_at + idle_timeout if idle_timeout > timedelta(0) else None
        return {
            "id": self.id,
            "provider": self.provider,
            "issuer": self.issuer,
            "subject": self.subject,
            "email": self.email,
            "display_name": self.display_name,
            "organization_ids": list(self.organization_ids),
            "signed_in_at": self.created_at,
            "last_seen_at": self.last_seen_at,
            "expires_at": self.expires_at,
            "idle_expires_at": idle_end,
            "access_token_expires_at": self.access_expires_at,
            "refreshed_at": self.refreshed_at,
            "version": self.version,
            "state": self.state,
            "state_reason": self.state_reason,
            "refresh_due_at": self.refresh_due_at,
            "refresh_failures": self.refresh_failures,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
        }

    @property
    def frozen_claims(self) -> Mapping[str, Any]:
        return MappingProxyType(dict(self.claims))


def session_expired(record: SessionRecord, now: datetime, idle_timeout: timedelta) -> str | None:
    """Why ``record`` is over at ``now`` (``expired``, ``idle``), or ``None``."""
    if now >= record.expires_at:
        return "expired"
    if idle_timeout > timedelta(0) and now >= record.last_seen_at + idle_timeout:
        return "idle"
    return None
