"""Embedded mode: watchword's services in the app's own process, on the app's database.

Authentication goes through the process's authenticators (``Services.authenticators``:
the session cookie, then API tokens) with one exception: watchword's bootstrap admin keys
are superuser credentials of watchword itself, not of the apps embedding it, so their
authenticator is left out and such a key is refused like any other malformed token.

A caller's subject is compiled by the RBAC service exactly as watchword's own API compiles
it (``api/access.Access.compiled``): issuer trust, the namespaced authz claim, group
memberships, role bindings and the credential's token scope, cached per generation. Checks
ask the process's policy engine with that compiled subject.

Cost per request, all cached: authenticating an API token is the token service's verify
(in-process cache, then Redis, then one SELECT); compiling is a cache hit unless the RBAC
generation moved; a check is the engine's, a few microseconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import assert_never, cast

from watchword.authz.compile import CompiledSubject
from watchword.authz.model import Object, TokenScope
from watchword.authz.residual import Node
from watchword.bootstrap import AdminKeyAuthenticator
from watchword.errors import (
    AuthenticationError,
    ConfigurationError,
    UnknownAction,
    UnknownResourceType,
)
from watchword.federation.jwt import KeySource
from watchword.integrations._backend import Pair, as_object
from watchword.integrations._bearer import (
    BearerIssuer,
    BearerVerifier,
    VerifiedBearer,
    upstream_provider,
)
from watchword.integrations._caller import Caller, CallerKind
from watchword.principal import Authenticator, Credential, PrincipalKind, authenticate
from watchword.services import Services

__all__ = ["EmbeddedBackend", "embedded_verifier"]


def _caller_kind(kind: PrincipalKind) -> CallerKind | None:
    match kind:
        case PrincipalKind.API_TOKEN:
            return CallerKind.API_TOKEN
        case PrincipalKind.SESSION:
            return CallerKind.SESSION
        case PrincipalKind.ADMIN_KEY:
            return None  # watchword's own superuser keys (never reached: filtered out)
        case _:
            assert_never(kind)


class EmbeddedBackend:
    """Authentication and checks by the process's own :class:`Services`."""

    __slots__ = ("_authenticators", "_services")

    def __init__(self, services: Services) -> None:
        self._services = services
        self._authenticators: tuple[Authenticator, ...] = tuple(
            a for a in services.authenticators if not isinstance(a, AdminKeyAuthenticator)
        )

    async def authenticate(self, credential: Credential) -> Caller:
        principal = await authenticate(self._authenticators, credential)
        kind = _caller_kind(principal.kind)
        issuer, subject = principal.issuer, principal.subject
        if kind is None or principal.superuser or issuer is None or subject is None:
            raise AuthenticationError("this credential is not accepted here")
        scope = None if principal.scopes is None else TokenScope(principal.scopes)
        compiled = await self._services.rbac.compiled_for(
            issuer, subject, principal.claims, scope=scope
        )
        return Caller(
            kind=kind,
            issuer=issuer,
            subject=subject,
            authz_subject=compiled,
            scopes=principal.scopes,
            credential_id=principal.id,
            organization_id=principal.organization_id,
            claims=principal.claims,
        )

    async def caller_for_bearer(self, verified: VerifiedBearer) -> Caller:
        compiled = await self._services.rbac.compiled_for(
            verified.issuer, verified.subject, verified.claims
        )
        return Caller(
            kind=CallerKind.BEARER_JWT,
            issuer=verified.issuer,
            subject=verified.subject,
            authz_subject=compiled,
            claims=verified.claims,
        )

    async def allowed(self, caller: Caller, action: str, target: object) -> bool:
        compiled = caller.authz_subject
        if not isinstance(compiled, CompiledSubject):
            raise ConfigurationError("this caller was authenticated in remote mode")
        engine = self._services.policy_engine
        # The app's own objects reach the engine as they are: it maps them (or refuses).
        obj = cast(Object, as_object(target))
        return engine.check(engine.refresh(compiled), action, obj).allowed

    async def residual(self, caller: Caller, action: str, type_name: str) -> Node:
        compiled = caller.authz_subject
        if not isinstance(compiled, CompiledSubject):
            raise ConfigurationError("this caller was authenticated in remote mode")
        engine = self._services.policy_engine
        return engine.prepare(engine.refresh(compiled), action, type_name).residual

    async def unknown_pairs(self, pairs: Iterable[Pair]) -> list[str]:
        await self._services.rbac.generation()  # the engine now holds the stored policy
        registry = self._services.policy_engine.policy.registry
        reasons: list[str] = []
        for type_name, action in pairs:
            try:
                registry.require_action(type_name, action)
            except (UnknownResourceType, UnknownAction) as exc:
                reasons.append(exc.detail)
        return reasons

    async def aclose(self) -> None:
        """Nothing to close: the services belong to the app."""


def embedded_verifier(services: Services, issuers: Sequence[BearerIssuer]) -> BearerVerifier:
    """A verifier of ``issuers``' bearer JWTs. An issuer that is also a sign-in provider
    shares that provider's discovery and key cache; the others get their own, on the
    services' HTTP client, clock and ``oidc.*`` timeouts."""
    settings = services.runtime.settings.oidc
    signin = {c.provider.issuer: c.provider for c in services.signin.clients.values()}
    sources: list[tuple[BearerIssuer, KeySource]] = []
    for issuer in issuers:
        keys = signin.get(issuer.issuer) or upstream_provider(
            issuer,
            http=services.http,
            clock=services.runtime.clock,
            timeout=settings.http_timeout,
            jwks_refresh_interval=settings.jwks_refresh_interval,
            allow_insecure_http=settings.allow_insecure_http,
        )
        sources.append((issuer, keys))
    return BearerVerifier(sources, clock=services.runtime.clock)
