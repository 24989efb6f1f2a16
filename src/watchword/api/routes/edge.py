"""Forward-auth for reverse proxies: ``/auth/verify``, ``/auth/start``, Envoy, the JWKS.

- ``/auth/verify`` (any method): nginx ``auth_request``, Caddy ``forward_auth``, Traefik
  ``forwardAuth``. 200 with the identity headers; 401 without a valid credential (a
  browser under the Caddy/Traefik convention gets 302 to sign-in instead: those proxies
  relay it, nginx cannot, so under nginx's convention it is 401 and nginx's ``error_page``
  sends the browser to ``/auth/start``); 403 when the route table or the policy says no.
- ``/auth/start``: where nginx sends a 401: a browser to sign-in with the original URL as
  ``return_to``, an API client a problem+json 401.
- ``/auth/envoy/{path}``: Envoy's ``ext_authz`` HTTP service (``path_prefix: /auth/envoy``).
- ``/.well-known/watchword/jwks.json``: the keys that verify the identity assertions.

The proxy's headers (``X-Original-*``, ``X-Forwarded-*``) are believed only from
``edge.trusted_proxies``, checked against the connection's own address.
"""

from __future__ import annotations

import functools
import ipaddress
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from watchword.api.deps import (
    ServicesDep,
    authentication_attempt,
    request_credential,
    same_origin,
)
from watchword.api.openapi import problem_response_doc
from watchword.api.problem import error_headers, error_response, problem_response
from watchword.api.routes.signin import wants_html
from watchword.edge.original import OriginalRequest, original_request
from watchword.edge.service import Verdict
from watchword.errors import (
    AuthenticationError,
    CsrfOriginMismatch,
    NoOriginalRequest,
    PermissionDenied,
    TooManyFailedAttempts,
    UntrustedProxy,
    WatchwordError,
)
from watchword.principal import Credential, CredentialSource, Principal
from watchword.services import Services

__all__ = ["PEER_KEY", "EdgeLane", "PeerMiddleware", "router"]

router = APIRouter(tags=["edge"])

PEER_KEY = "watchword.peer"
"""The scope key holding the connection's own address, before X-Forwarded-For rewrites it."""

ENVOY_PREFIX = "/auth/envoy"
ANY_METHOD = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
_NO_STORE = {"Cache-Control": "no-store"}


class PeerMiddleware:
    """Records the connection's address in the scope before the proxy-headers middleware
    replaces it with the client's (the edge trusts headers by the former)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in {"http", "websocket"}:
            client = scope.get("client")
            scope[PEER_KEY] = client[0] if client else None
        await self.app(scope, receive, send)


def _trusted(request: Request, services: Services) -> bool:
    peer = request.scope.get(PEER_KEY)
    if peer is None:
        client = request.client
        peer = client.host if client is not None else None
    if not peer:
        return False
    return _peer_trusted(peer, tuple(services.runtime.settings.edge.trusted_proxies))


@functools.lru_cache(maxsize=1024)
def _peer_trusted(peer: str, proxies: tuple[str, ...]) -> bool:
    """Whether the connection's address is in ``edge.trusted_proxies`` (remembered: a proxy
    connects from few addresses)."""
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in net for net in _networks(proxies))


@functools.cache
def _networks(
    proxies: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``edge.trusted_proxies`` parsed once (settings validated them)."""
    return tuple(ipaddress.ip_network(net, strict=False) for net in proxies)


async def _principal(
    request: Request, services: Services, credential: Credential
) -> tuple[Principal | None, WatchwordError | None]:
    """The caller, or ``None`` with the reason. Past the failed-authentication limit the
    credential is not even checked: the request counts as anonymous (an anonymous route
    still passes; nginx would turn a 429 into a 500)."""
    try:
        attempt = await authentication_attempt(request)
    except TooManyFailedAttempts as exc:
        return None, exc
    try:
        return await services.authenticate(credential), None
    except AuthenticationError as exc:
        await attempt.failed()
        return None, exc


def _signin_location(original: OriginalRequest) -> str:
    return "/auth/login?return_to=" + quote(original.url, safe="")


def _answer(
    request: Request,
    verdict: Verdict,
    original: OriginalRequest,
    failure: WatchwordError | None = None,
) -> Response:
    headers = {**verdict.headers, **_NO_STORE}
    if verdict.route is not None:
        headers["X-Watchword-Route"] = verdict.route
    if verdict.status == 200:
        return Response(status_code=200, headers=headers)
    if verdict.status == 401:
        if original.convention != "nginx" and wants_html(request):
            headers["Location"] = _signin_location(original)
            return Response(status_code=302, headers=headers)
        exc: WatchwordError = AuthenticationError(verdict.detail)
        headers.update(error_headers(failure or exc))
    else:
        exc = PermissionDenied(verdict.detail)
    return problem_response(
        request,
        status=verdict.status,
        code=exc.code if verdict.outcome != "non_canonical_path" else "non_canonical_path",
        title=exc.title,
        detail=verdict.detail,
        headers=headers,
    )


def _refused(request: Request, services: Services, exc: WatchwordError) -> Response:
    """403 before any decision, with every identity header blank."""
    return problem_response(
        request,
        status=403,
        code=exc.code,
        title=exc.title,
        detail=exc.detail,
        headers={**services.edge.blank_headers(), **_NO_STORE},
    )


async def _verify(request: Request, services: Services, *, envoy_uri: str | None) -> Response:
    try:
        original = original_request(
            request.headers,  # case-insensitive, as the proxies' names are
            method=request.method,
            trusted=_trusted(request, services),
            envoy_uri=envoy_uri,
        )
    except (UntrustedProxy, NoOriginalRequest) as exc:
        return _refused(request, services, exc)
    credential = request_credential(request, services)
    principal: Principal | None = None
    failure: WatchwordError | None = None
    if credential is not None:
        if credential.source is CredentialSource.COOKIE and not same_origin(
            request, services, method=original.method, also=original.url
        ):
            refused = CsrfOriginMismatch(
                "a state-changing request with the session cookie must come from the app's "
                "own origin (Origin or Referer)"
            )
            return _refused(request, services, refused)
        principal, failure = await _principal(request, services, credential)
    verdict = await services.edge.verify(original, principal, credential_error=failure)
    return _answer(request, verdict, original, failure)


_VERIFY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Allowed: the identity headers (each set, empty when unknown)."},
    302: {"description": "A browser without a credential (Caddy, Traefik, Envoy): sign in."},
    401: problem_response_doc(401, "No valid credential."),
    403: problem_response_doc(
        403,
        "Denied by the policy, no route, a non-canonical path, or a proxy outside "
        "edge.trusted_proxies.",
    ),
    429: problem_response_doc(429),
}


async def verify(request: Request) -> Response:
    # The decision hot path: nothing injected (each FastAPI dependency costs per request).
    return await _verify(request, request.app.state.services, envoy_uri=None)


VERIFY_PATH = "/auth/verify"
_LANE_METHODS = frozenset(ANY_METHOD)


class EdgeLane:
    """``/auth/verify`` answered without the router: the innermost middleware, so the
    request still gets its id, span, metrics, access log line and body limit, but not the
    router's walk over every route, dependency injection and exception middleware, which
    cost more than the decision itself (benchmarks/edge). Only the exact path with no query
    string and a method of the route takes this lane; anything else (a query string to
    check for control characters, a 405) goes the usual way. Domain errors become the same
    problem+json answers the app's handlers give."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._route: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] != VERIFY_PATH
            or scope.get("query_string")
            or scope["method"] not in _LANE_METHODS
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if self._route is None:
            self._route = _route_of(VERIFY_PATH)
        scope["route"] = self._route  # the metrics' and span's route label
        try:
            response = await _verify(request, request.app.state.services, envoy_uri=None)
        except WatchwordError as exc:
            response = error_response(request, exc)
        await response(scope, receive, send)


def _route_of(path: str) -> Any:
    for route in router.routes:
        if getattr(route, "path", None) == path:
            return route
    raise LookupError(path)  # pragma: no cover - declared below, at import


async def verify_envoy(request: Request, path: str) -> Response:
    services: Services = request.app.state.services
    # The path as Envoy sent it, still percent-encoded (``path`` is decoded once already:
    # deciding on it would decode twice, and an encoded ? or / would change the request).
    raw = request.scope.get("raw_path") or request.url.path.encode()
    uri = raw.decode("latin-1").removeprefix(ENVOY_PREFIX) or "/"
    query = request.url.query
    uri += f"?{query}" if query else ""
    return await _verify(request, services, envoy_uri=uri)


async def start(request: Request, services: ServicesDep) -> Response:
    rd = request.query_params.get("rd")
    if rd is not None:
        # ingress-nginx's auth-signin: the browser comes here itself, the original URL in
        # rd. Checked now as /auth/login would (no open redirect through this hop).
        target = services.signin.return_to.check(rd)
    else:
        try:
            target = original_request(
                request.headers,  # case-insensitive, as the proxies' names are
                method=request.method,
                trusted=_trusted(request, services),
            ).url
        except (UntrustedProxy, NoOriginalRequest) as exc:
            return problem_response(
                request, status=403, code=exc.code, title=exc.title, detail=exc.detail
            )
    if wants_html(request):
        location = "/auth/login?return_to=" + quote(target, safe="")
        return Response(status_code=302, headers={"Location": location, **_NO_STORE})
    needed = AuthenticationError(
        "this request needs a credential (Authorization: Bearer …, or sign in at /auth/login)"
    )
    return problem_response(
        request,
        status=401,
        code=needed.code,
        title=needed.title,
        detail=needed.detail,
        headers={**error_headers(needed), **_NO_STORE},
    )


_START_RESPONSES: dict[int | str, dict[str, Any]] = {
    302: {"description": "A browser: to /auth/login with the original URL as return_to."},
    400: problem_response_doc(400, "return_to_refused: rd leads outside the allowed origins."),
    401: problem_response_doc(401, "An API client: no valid credential."),
    403: problem_response_doc(403, "A proxy outside edge.trusted_proxies."),
}

# One route per path for every method (proxies call with the original request's method, nginx
# and Envoy, or GET, Caddy and Traefik); the OpenAPI document lists each method
# (api/openapi.py makes their operation ids unique).
for _path, _endpoint, _operation, _summary, _responses in (
    (
        "/auth/verify",
        verify,
        "edge_verify",
        "Forward-auth: may this request through the proxy pass? (nginx, Caddy, Traefik)",
        _VERIFY_RESPONSES,
    ),
    (
        "/auth/envoy/{path:path}",
        verify_envoy,
        "edge_verify_envoy",
        "Forward-auth for Envoy's ext_authz HTTP service (path_prefix /auth/envoy)",
        _VERIFY_RESPONSES,
    ),
    (
        "/auth/start",
        start,
        "edge_start",
        "Where nginx sends a 401: a browser to sign-in, an API client a 401",
        _START_RESPONSES,
    ),
):
    router.add_api_route(
        _path,
        _endpoint,
        methods=ANY_METHOD,
        operation_id=_operation,
        summary=_summary,
        response_class=Response,
        responses=_responses,
    )


@router.get(
    "/.well-known/watchword/jwks.json",
    summary="The public keys of the identity assertions sent to apps",
    responses={404: problem_response_doc(404, "No signing key: WATCHWORD_SECRET_KEY is unset.")},
)
async def jwks(request: Request, services: ServicesDep) -> Response:
    signer = services.edge.signer
    if signer is None:
        return problem_response(
            request,
            status=404,
            code="not_found",
            title="Not found",
            detail="no assertion signing key: WATCHWORD_SECRET_KEY is not set",
        )
    return JSONResponse(signer.jwks(), headers={"Cache-Control": "public, max-age=300"})
