"""Bearer authentication with an API token, as :mod:`watchword.api.deps` expects it."""

from __future__ import annotations

from watchword.api.deps import Principal
from watchword.runtime import Runtime
from watchword.secret import Secret
from watchword.tokens.model import TokenRecord
from watchword.tokens.scope import effective_scopes
from watchword.tokens.service import token_service

__all__ = ["authenticate_bearer", "principal_for"]


def principal_for(record: TokenRecord) -> Principal:
    """The caller a token stands for: its owner (issuer, subject), narrowed by its scopes
    (and, for a read-only token, to read-only actions)."""
    return Principal(
        kind="token",
        id=record.id,
        issuer=record.owner.issuer,
        subject=record.owner.subject,
        superuser=False,
        scopes=effective_scopes(record.scopes, record.permission),
        organization_id=record.organization_id,
    )


async def authenticate_bearer(runtime: Runtime, presented: Secret) -> Principal:
    """Verify ``presented``; raises ``TokenMalformed``, ``TokenUnknown``, ``TokenExpired``
    or ``TokenRevoked`` (all 401)."""
    record = await runtime.service(token_service).verify(presented)
    return principal_for(record)
