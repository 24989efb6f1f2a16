"""FastAPI dependencies: the services, the authenticated principal, the administrator check.

A request authenticates with ``Authorization: Bearer <credential>`` or, from a browser, with
the session cookie set at sign-in (the bearer wins when both are present); the process's
authenticators (:mod:`watchword.services`) turn it into a :class:`~watchword.principal.Principal`.
What a non-superuser principal may do is decided by the policy engine (:mod:`watchword.api.access`),
not here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from watchword.api.ratelimit import Attempt, FailedAuthLimiter
from watchword.errors import AuthenticationError, CsrfOriginMismatch, PermissionDenied
from watchword.federation.returnto import origin_of
from watchword.principal import Credential, CredentialSource, Principal
from watchword.runtime import Runtime
from watchword.secret import Secret
from watchword.services import Services

__all__ = [
    "AdminDep",
    "BearerDep",
    "authentication_attempt",
    "check_same_origin",
    "session_cookie_name",
    "PrincipalDep",
    "RuntimeDep",
    "ServicesDep",
    "current_principal",
    "get_runtime",
    "get_services",
    "principal_of",
    "request_credential",
    "same_origin",
    "require_admin",
]

_bearer = HTTPBearer(
    auto_error=False, description="A bootstrap admin key (wwb_…) or an API token (ww?_…)."
)


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_runtime(services: ServicesDep) -> Runtime:
    return services.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def authentication_attempt(request: Request) -> Attempt:
    """Admit an authentication from the request's address under the failed-authentication
    limit (429 past it); the caller counts a failure with ``Attempt.failed``. The address is
    the connection's (uvicorn rewrites it from ``X-Forwarded-For`` only for its trusted proxy
    addresses, loopback by default)."""
    limiter: FailedAuthLimiter = request.app.state.failed_auth_limiter
    address = request.client.host if request.client is not None else "unknown"
    return await limiter.attempt(address)


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_cookie_name(services: Services) -> str:
    """``__Host-<name>`` (Secure, Path=/, no Domain) outside development, ``<name>`` in it."""
    settings = services.runtime.settings
    name = settings.sessions.cookie_name
    return name if settings.is_development else "__Host-" + name


def same_origin(
    request: Request, services: Services, *, method: str | None = None, also: str | None = None
) -> bool:
    """Whether a cookie-authenticated request may change state (CSRF defence): a safe
    ``method`` (the request's own unless given), or the browser says ``Sec-Fetch-Site:
    same-origin``, or its ``Origin`` (when it sends none, the ``Referer``'s origin) is
    watchword's own, one of ``oidc.return_to_origins``, or ``also``. A request naming none of
    them is refused too."""
    if (method or request.method) in _SAFE_METHODS:
        return True
    if request.headers.get("sec-fetch-site") == "same-origin":
        return True  # set by the browser itself (a forbidden header name: pages cannot forge it)
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        referer = request.headers.get("referer")
        origin = origin_of(referer) if referer else None
    if origin is None:
        return False
    origin = origin_of(origin)
    return origin in services.signin.return_to.origins or (
        also is not None and origin == origin_of(also)
    )


def check_same_origin(request: Request, services: Services) -> None:
    """:func:`same_origin`, or :class:`CsrfOriginMismatch`."""
    if not same_origin(request, services):
        raise CsrfOriginMismatch(
            "a request made with the session cookie that changes state must come from this "
            "site (Origin or Referer); API clients use Authorization: Bearer"
        )


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def current_principal(
    request: Request, services: ServicesDep, credentials: BearerDep
) -> Principal:
    return await principal_of(request, services, credentials)


def bearer_credentials(request: Request) -> HTTPAuthorizationCredentials | None:
    """``Authorization: Bearer <credential>`` as :class:`HTTPBearer` reads it, without
    going through dependency injection."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return HTTPAuthorizationCredentials(scheme=scheme, credentials=value.strip())


def request_credential(
    request: Request,
    services: Services,
    credentials: HTTPAuthorizationCredentials | None = None,
) -> Credential | None:
    """The request's credential, not yet verified: a bearer (``credentials`` when injected)
    wins over the session cookie."""
    if credentials is None:
        credentials = bearer_credentials(request)
    if credentials is not None:
        return Credential(CredentialSource.BEARER, Secret(credentials.credentials))
    cookie = request.cookies.get(session_cookie_name(services))
    return Credential(CredentialSource.COOKIE, Secret(cookie)) if cookie else None


async def principal_of(
    request: Request,
    services: Services,
    credentials: HTTPAuthorizationCredentials | None = None,
) -> Principal:
    """The authenticated caller of ``request`` (what :func:`current_principal` injects)."""
    credential = request_credential(request, services, credentials)
    if credential is None:
        raise AuthenticationError(
            "this endpoint needs a credential (Authorization: Bearer …, or the session "
            "cookie after signing in at /auth/login)"
        )
    if credential.source is CredentialSource.COOKIE:
        check_same_origin(request, services)
    attempt = await authentication_attempt(request)
    try:
        return await services.authenticate(credential)
    except AuthenticationError:
        await attempt.failed()
        raise


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.superuser:
        raise PermissionDenied("this endpoint needs an administrator")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
