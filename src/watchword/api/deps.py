"""FastAPI dependencies: the runtime, the authenticated principal, the administrator check.

A request authenticates with ``Authorization: Bearer <credential>``. A bootstrap admin key
(``wwb_…``) is a superuser. Any other credential is handed to the API-token authenticator
(``watchword.tokens.authn.authenticate_bearer``) when that part is present. What a
non-superuser principal may do is decided by the policy engine, not here.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from watchword.bootstrap import KEY_PREFIX, verify_admin_key
from watchword.errors import AuthenticationError, PermissionDenied
from watchword.runtime import Runtime
from watchword.secret import Secret

__all__ = [
    "AdminDep",
    "Principal",
    "PrincipalDep",
    "RuntimeDep",
    "current_principal",
    "get_runtime",
    "require_admin",
]

_bearer = HTTPBearer(
    auto_error=False, description="A bootstrap admin key (wwb_…) or an API token (ww?_…)."
)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``superuser`` principals pass every authorization check."""

    kind: str  # "admin_key" | "token"
    id: str  # the admin key id or token id
    issuer: str | None = None
    subject: str | None = None
    superuser: bool = False
    scopes: frozenset[str] | None = None  # None: not narrowed
    organization_id: str | None = None


TokenAuthenticator = Callable[[Runtime, Secret], Awaitable[Principal]]


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def _token_authenticator() -> TokenAuthenticator | None:
    try:
        module = importlib.import_module("watchword.tokens.authn")
    except ModuleNotFoundError as exc:
        if exc.name != "watchword.tokens.authn":
            raise
        return None
    authenticator: TokenAuthenticator = module.authenticate_bearer
    return authenticator


async def current_principal(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise AuthenticationError("this endpoint needs a credential (Authorization: Bearer …)")
    presented = Secret(credentials.credentials)
    if credentials.credentials.startswith(KEY_PREFIX):
        key = await verify_admin_key(runtime.engine, presented)
        return Principal(kind="admin_key", id=key.id, superuser=True)
    authenticator = _token_authenticator()
    if authenticator is None:
        raise AuthenticationError("credentials are not valid")
    return await authenticator(runtime, presented)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    if not principal.superuser:
        raise PermissionDenied("this endpoint needs an administrator")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
