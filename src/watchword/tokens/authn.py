"""Authentication with an API token (``Authorization: Bearer ww?_…``)."""

from __future__ import annotations

from watchword.principal import Credential, CredentialSource, Principal, PrincipalKind
from watchword.tokens.model import TokenRecord
from watchword.tokens.scope import effective_scopes
from watchword.tokens.service import TokenService

__all__ = ["ApiTokenAuthenticator", "principal_for"]


def principal_for(record: TokenRecord) -> Principal:
    """The caller a token stands for: its owner (issuer, subject), narrowed by its scopes
    (and, for a read-only token, to read-only actions)."""
    return Principal(
        kind=PrincipalKind.API_TOKEN,
        id=record.id,
        issuer=record.owner.issuer,
        subject=record.owner.subject,
        superuser=False,
        scopes=effective_scopes(record.scopes, record.permission),
        organization_id=record.organization_id,
    )


class ApiTokenAuthenticator:
    """Any bearer credential not claimed by an authenticator before it (it comes last), so
    that a mistyped token is answered ``token_malformed``, not a generic refusal."""

    __slots__ = ("_tokens",)

    def __init__(self, tokens: TokenService) -> None:
        self._tokens = tokens

    def accepts(self, credential: Credential) -> bool:
        return credential.source is CredentialSource.BEARER

    async def authenticate(self, credential: Credential) -> Principal:
        """Raises ``TokenMalformed``, ``TokenUnknown``, ``TokenExpired`` or ``TokenRevoked``
        (all 401)."""
        return principal_for(await self._tokens.verify(credential.value))
