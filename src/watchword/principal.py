"""Who is calling: the :class:`Principal` every face (HTTP, CLI, proxy edge) hands to the rules.

A request presents a :class:`Credential` (a bearer token today; a session cookie when sign-in
lands). An :class:`Authenticator` that accepts it turns it into a :class:`Principal` or raises
an :class:`~watchword.errors.AuthenticationError`. Adding a kind of credential is one new
authenticator and one :class:`PrincipalKind` member; nothing else learns how it is verified.

A principal names its subject as the pair (issuer, subject id), the key RBAC and the policy
engine use for everyone, whatever the credential. ``claims`` are the verified claims the
authenticator vouches for (empty for credentials that carry none, such as API tokens); RBAC
reads membership from them only for trusted issuers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Protocol

from watchword.errors import AuthenticationError
from watchword.secret import Secret

__all__ = [
    "Authenticator",
    "authenticate",
    "Claims",
    "Credential",
    "CredentialSource",
    "Principal",
    "PrincipalKind",
    "SERVICE_ACCOUNT_PREFIX",
]

SERVICE_ACCOUNT_PREFIX = "sa:"
"""A local service account's subject id is this prefix and its id, under watchword's issuer."""

Claims = Mapping[str, object]
_NO_CLAIMS: Claims = MappingProxyType({})


class PrincipalKind(StrEnum):
    """The kind of credential a principal authenticated with."""

    ADMIN_KEY = "admin_key"
    API_TOKEN = "token"  # noqa: S105 - a kind name, not a secret
    SESSION = "session"


class CredentialSource(StrEnum):
    """Where in the request the credential was found."""

    BEARER = "bearer"  # Authorization: Bearer …
    COOKIE = "cookie"  # the session cookie


@dataclass(frozen=True, slots=True)
class Credential:
    """A presented credential, not yet verified; its value never prints."""

    source: CredentialSource
    value: Secret


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. ``superuser`` principals pass every authorization check.

    ``id`` identifies the credential (admin key id, token id, session id), not the person;
    ``scopes`` narrow what the credential may do (``None``: not narrowed);
    ``organization_id`` is the organization a credential is bound to, if any.
    """

    kind: PrincipalKind
    id: str
    issuer: str | None = None
    subject: str | None = None
    claims: Claims = field(default_factory=lambda: _NO_CLAIMS)
    superuser: bool = False
    scopes: frozenset[str] | None = None
    organization_id: str | None = None

    @property
    def names_subject(self) -> bool:
        """Whether the principal acts for an (issuer, subject) that RBAC can resolve."""
        return self.issuer is not None and self.subject is not None


class Authenticator(Protocol):
    """Verifies one kind of credential.

    ``accepts`` is cheap and offline (a prefix, a cookie name): the first authenticator that
    accepts a credential is the only one asked to verify it, so a credential is never tried
    against several stores.
    """

    def accepts(self, credential: Credential) -> bool: ...

    async def authenticate(self, credential: Credential) -> Principal: ...


async def authenticate(
    authenticators: Sequence[Authenticator], credential: Credential
) -> Principal:
    """The principal of ``credential``, verified by the first authenticator that accepts it."""
    for authenticator in authenticators:
        if authenticator.accepts(credential):
            return await authenticator.authenticate(credential)
    raise AuthenticationError("credentials are not valid")
