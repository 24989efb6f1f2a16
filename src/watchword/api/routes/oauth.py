"""OAuth 2.0 endpoints for resource servers: token introspection and revocation.

- Introspection, RFC 7662 (https://www.rfc-editor.org/rfc/rfc7662#section-2):
  ``POST /v1/oauth/introspect`` with a form-encoded ``token``; the caller authenticates
  (any watchword credential: a resource server typically uses a service-account token).
  An active token answers its claims; a malformed, unknown, expired or revoked one
  answers ``{"active": false}`` and nothing else (section 2.2), so the answer never says
  why. Introspection goes through the verification cache.
- Revocation, RFC 7009 (https://www.rfc-editor.org/rfc/rfc7009#section-2.1):
  ``POST /v1/oauth/revoke`` with a form-encoded ``token``; 200 whether or not the token
  existed (section 2.2). Holding the token is the authority to revoke it, so any
  authenticated caller may revoke a token it presents (as GitHub's credential
  revocation API does); revoking someone else's token needs its plaintext.
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from watchword.api.deps import PrincipalDep, ServicesDep
from watchword.api.forms import form_body, form_field
from watchword.api.ratelimit import Attempt, FailedAuthLimiter
from watchword.errors import AuthenticationError, TokenUnknown
from watchword.principal import Principal
from watchword.secret import Secret

__all__ = ["BEARER", "IntrospectionResponse", "router"]

router = APIRouter(prefix="/v1/oauth", tags=["oauth"])

BEARER: Final = "bearer"
_MAX_FORM_BYTES: Final = 4096
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# The body is read by hand (one `token`, a size cap): described here for the document.
_TOKEN_FORM: Final = form_body("token", "token_type_hint")


class IntrospectionResponse(BaseModel):
    active: bool
    scope: str | None = None
    client_id: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    sub: str | None = None
    iss: str | None = None
    organization_id: str | None = None
    permission: str | None = None
    kind: str | None = None


async def _unknown_budget(request: Request, caller: Principal) -> Attempt:
    """Admit one more look-up of a presented token under the caller's own budget of unknown
    ones (``auth.introspect_unknown_limit``). Not the failed-authentication limit of the
    caller's address: a resource server introspects whatever its clients send, and counting
    those against its address let anyone lock it out of every endpoint. Past this budget
    only introspection and revocation answer that caller 429."""
    limiter: FailedAuthLimiter = request.app.state.introspect_limiter
    return await limiter.attempt(f"principal:{caller.id}")


async def _token_param(request: Request) -> Secret:
    return Secret(await form_field(request, "token", max_bytes=_MAX_FORM_BYTES))


@router.post(
    "/introspect",
    summary="RFC 7662 token introspection",
    response_model=IntrospectionResponse,
    response_model_exclude_none=True,
    openapi_extra=_TOKEN_FORM,
)
async def introspect(request: Request, _caller: PrincipalDep, services: ServicesDep) -> Response:
    presented = await _token_param(request)
    attempt = await _unknown_budget(request, _caller)
    try:
        record = await services.tokens.verify(presented)
    except TokenUnknown:
        await attempt.failed()
        return JSONResponse({"active": False}, headers=_NO_STORE)
    except AuthenticationError:
        return JSONResponse({"active": False}, headers=_NO_STORE)
    body = IntrospectionResponse(
        active=True,
        scope=" ".join(sorted(record.scopes)),
        client_id=record.id,
        token_type=BEARER,
        exp=int(record.expires_at.timestamp()) if record.expires_at else None,
        iat=int(record.created_at.timestamp()),
        sub=record.owner.subject,
        iss=record.owner.issuer,
        organization_id=record.organization_id,
        permission=record.permission.value,
        kind=record.kind.label,
    )
    return JSONResponse(body.model_dump(exclude_none=True), headers=_NO_STORE)


@router.post(
    "/revoke",
    summary="RFC 7009 token revocation (200 even for unknown tokens)",
    response_class=Response,
    responses={200: {"description": "Revoked, or no such token: the empty answer is the same."}},
    openapi_extra=_TOKEN_FORM,
)
async def revoke(request: Request, _caller: PrincipalDep, services: ServicesDep) -> Response:
    presented = await _token_param(request)
    attempt = await _unknown_budget(request, _caller)
    service = services.tokens
    record = await service.find_presented(presented)
    if record is None:
        await attempt.failed()
    elif record.revoked_at is None:
        await service.revoke(record.id)
    return Response(status_code=200, headers=_NO_STORE)
