"""Remote mode: ask a watchword server through :class:`watchword.client.AsyncClient`.

Per credential:

- **API token**: the format and checksum are checked offline first (a typo costs no call),
  then ``POST /v1/oauth/introspect``. An active token gives its owner (``iss``, ``sub``),
  its scopes narrowed by its permission (``tokens.scope.effective_scopes``: a read-only
  token keeps only its read-only actions, as in process). An inactive one is 401
  ``token_unknown``: introspection never says why (RFC 7662 2.2), so an expired or revoked
  token is not told apart here, unlike in embedded mode.
- **Bearer JWT**: verified here (:mod:`._bearer`, the app fetches the issuer's keys itself),
  then asked about as ``subject_ref`` (issuer, id, verified claims): watchword resolves it
  from its RBAC data as ``/v1/acl`` does.
- **Session cookie**: not supported. The cookie is watchword's own, set for watchword's
  domain at sign-in and only meaningful to the server that holds the session; an app on
  another origin never receives it. Constructing a remote guard with session cookies on
  raises :class:`~watchword.errors.ConfigurationError`.

A check is ``POST /v1/authz/check`` with the ``subject_ref`` and the object on the wire.
``subject_ref`` carries no token scope, so the scope's part of the decision (effective =
roles AND scope, ``docs/authz.md``) is applied here, beside the server's answer: the same
decision as the embedded engine's for the same token.

The app's own credential (a service account token bound to ``authz-client``, which holds
``watchword:authz`` ``check``) is the client's. The server refusing *it* (401, 403) or a
request the integration built (400) is the app's misconfiguration, not the caller's:
:class:`~watchword.errors.ConfigurationError` (500), never the caller's 401 or 403. A
server that limits the app (429) is :class:`~watchword.errors.Unavailable` (503).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Final

import httpx

from watchword.authz.mapping import ObjectMappings, ObjectView, as_object
from watchword.authz.model import Object, TokenScope
from watchword.authz.residual import FALSE, Node, residual_from_dict
from watchword.client import AsyncClient, Resource, SubjectRef
from watchword.clock import Clock
from watchword.errors import (
    AuthenticationError,
    ConfigurationError,
    InvalidInput,
    MalformedClaim,
    PermissionDenied,
    ServiceAccountForeignOrg,
    TokenUnknown,
    TooManyFailedAttempts,
    Unavailable,
    UnknownAction,
    UnknownResourceType,
    WrongOrganizationCount,
)
from watchword.federation.jwt import KeySource
from watchword.integrations._backend import TYPE_LEVEL_ID, Pair
from watchword.integrations._bearer import (
    BearerIssuer,
    BearerVerifier,
    VerifiedBearer,
    upstream_provider,
)
from watchword.integrations._caller import Caller, CallerKind
from watchword.principal import Credential, CredentialSource
from watchword.tokens.format import parse
from watchword.tokens.scope import Permission, effective_scopes

__all__ = ["SESSIONS_UNSUPPORTED", "RemoteBackend", "remote_verifier"]

SESSIONS_UNSUPPORTED: Final = (
    "session cookies are not supported in remote mode: the cookie belongs to the watchword "
    "server's own domain and sessions live in its database; use embedded mode, or have the "
    "app's callers send an API token or a bearer JWT"
)
# The subject of start-up validation: an inline document with no roles (decides nothing).
_PROBE: Final = {"issuer": "urn:watchword:integration", "id": "policy-validation"}


@contextmanager
def _server_errors() -> Iterator[None]:
    """The server's refusals of the app's own credential or request, as the app's errors."""
    try:
        yield
    except (UnknownResourceType, UnknownAction):
        raise  # the caller of the backend turns these into a configuration error
    except (MalformedClaim, WrongOrganizationCount, ServiceAccountForeignOrg):
        raise  # the caller's own claims and memberships, 400 as in process
    except (AuthenticationError, PermissionDenied) as exc:
        raise ConfigurationError(
            f"the watchword server refused this app's credential ({exc.code}): it needs "
            "watchword:authz check (the authz-client role)"
        ) from exc
    except InvalidInput as exc:
        raise ConfigurationError(
            f"the watchword server refused a request of this app ({exc.code}: {exc.detail})"
        ) from exc
    except TooManyFailedAttempts as exc:
        raise Unavailable("the watchword server is limiting this app; try again later") from exc


def _wire(target: object, objects: ObjectMappings | None) -> Resource:
    if isinstance(target, ObjectView) or (
        objects is not None and not isinstance(target, Object | Resource)
    ):
        target = as_object(target, objects)
    if isinstance(target, Object):
        return Resource(
            type=target.type,
            id=target.id,
            org_id=target.org_id,
            project_id=target.project_id,
            owner=target.owner,
            acl_users={key: sorted(v) for key, v in target.acl_users.items()} or None,
            acl_groups={key: sorted(v) for key, v in target.acl_groups.items()} or None,
        )
    if isinstance(target, Resource):
        return target
    raise ConfigurationError(
        "remote mode asks about an authz Object, a client Resource or an object the "
        f"guard's object mappings read, not a {type(target).__name__}: give "
        "Guard.remote(..., objects=ObjectMappings({...}))"
    )


def _permission(value: str | None) -> Permission:
    try:
        return Permission(value or "")
    except ValueError:
        return Permission.READ_ONLY  # an answer without it narrows, never widens


class RemoteBackend:
    """Authentication and checks by a watchword server."""

    __slots__ = ("_client", "_objects")

    def __init__(self, client: AsyncClient, objects: ObjectMappings | None = None) -> None:
        self._client = client
        self._objects = objects

    async def authenticate(self, credential: Credential) -> Caller:
        if credential.source is not CredentialSource.BEARER:
            raise AuthenticationError(SESSIONS_UNSUPPORTED)
        parse(credential.value.reveal())  # TokenMalformed, offline, as the token service
        with _server_errors():
            answer = await self._client.introspect(credential.value)
        if not answer.active or not answer.iss or not answer.sub:
            raise TokenUnknown("the token is not active (unknown, expired or revoked)")
        return Caller(
            kind=CallerKind.API_TOKEN,
            issuer=answer.iss,
            subject=answer.sub,
            authz_subject=SubjectRef(answer.iss, answer.sub),
            scopes=effective_scopes(frozenset(answer.scopes), _permission(answer.permission)),
            credential_id=answer.client_id,
            organization_id=answer.organization_id,
        )

    async def caller_for_bearer(self, verified: VerifiedBearer) -> Caller:
        return Caller(
            kind=CallerKind.BEARER_JWT,
            issuer=verified.issuer,
            subject=verified.subject,
            authz_subject=SubjectRef(verified.issuer, verified.subject, dict(verified.claims)),
            claims=verified.claims,
        )

    async def allowed(self, caller: Caller, action: str, target: object) -> bool:
        ref = caller.authz_subject
        if not isinstance(ref, SubjectRef):
            raise ConfigurationError("this caller was authenticated in embedded mode")
        wire = _wire(target, self._objects)
        with _server_errors():
            decision = await self._client.check(ref, action, wire)
        if not decision.allowed or caller.scopes is None:
            return decision.allowed
        return TokenScope(caller.scopes).allows_name(wire.type, action)

    async def residual(self, caller: Caller, action: str, type_name: str) -> Node:
        ref = caller.authz_subject
        if not isinstance(ref, SubjectRef):
            raise ConfigurationError("this caller was authenticated in embedded mode")
        with _server_errors():
            result = await self._client.filter(ref, action, type_name)
        if caller.scopes is not None and not TokenScope(caller.scopes).allows_name(
            type_name, action
        ):
            return FALSE  # the token may not do this to any object of the type
        return residual_from_dict(result.residual)

    async def unknown_pairs(self, pairs: Iterable[Pair]) -> list[str]:
        reasons: list[str] = []
        for type_name, action in pairs:
            try:
                with _server_errors():
                    await self._client.check(_PROBE, action, Resource(type_name, TYPE_LEVEL_ID))
            except (UnknownResourceType, UnknownAction) as exc:
                reasons.append(exc.detail)
        return reasons

    async def aclose(self) -> None:
        """Nothing to close: the client belongs to the app."""


def remote_verifier(
    issuers: Sequence[BearerIssuer],
    *,
    http: httpx.AsyncClient,
    clock: Clock,
    timeout: timedelta,
    jwks_refresh_interval: timedelta,
    allow_insecure_http: bool,
) -> BearerVerifier:
    """A verifier of ``issuers``' bearer JWTs, fetching their keys over ``http``."""
    sources: list[tuple[BearerIssuer, KeySource]] = [
        (
            issuer,
            upstream_provider(
                issuer,
                http=http,
                clock=clock,
                timeout=timeout,
                jwks_refresh_interval=jwks_refresh_interval,
                allow_insecure_http=allow_insecure_http,
            ),
        )
        for issuer in issuers
    ]
    return BearerVerifier(sources, clock=clock)
