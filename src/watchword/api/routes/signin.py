"""Sign-in through upstream OpenID providers (``/auth/…``) and the pages a browser sees.

A browser (``Accept: text/html``) gets pages and redirects; an API client gets problem+json
with the same stable codes. Cookies: the session cookie (``__Host-watchword_session`` outside
development: Secure, HttpOnly, SameSite=Lax, Path=/) and, while a sign-in is under way, the
binding cookie (``__Host-watchword_signin``) that ties ``state`` to this browser.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from watchword.api.caching import NO_STORE
from watchword.api.deps import (
    ServicesDep,
    authentication_attempt,
    check_same_origin,
    session_cookie_name,
)
from watchword.api.forms import form_body, form_field
from watchword.api.problem import error_headers, error_response, status_for
from watchword.api.ratelimit import FailedAuthLimiter
from watchword.errors import SigninDenied, WatchwordError
from watchword.secret import Secret
from watchword.services import Services

__all__ = ["router", "wants_html"]

router = APIRouter(tags=["sign-in"], dependencies=[NO_STORE])

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "templates"),
    autoescape=select_autoescape(["html"], default=True),
    auto_reload=False,
)
BINDING_COOKIE = "watchword_signin"
_MAX_LOGOUT_FORM = 65536
_HTML_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "provider_unknown, return_to_refused, signin_state_invalid, …"},
    401: {"description": "signin_denied, signin_code_rejected, id_token_invalid"},
    429: {"description": "too_many_signins, too_many_failed_authentications (Retry-After)"},
    503: {"description": "provider_unavailable: the provider cannot be reached"},
}


def wants_html(request: Request) -> bool:
    """Whether the caller is a browser: it asks for HTML before JSON."""
    accept = request.headers.get("accept", "")
    html = accept.find("text/html")
    if html < 0:
        return False
    json_at = accept.find("json")
    return json_at < 0 or html < json_at


def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = _templates.get_template(template).render(
        request_id=getattr(request.state, "request_id", None), **context
    )
    return HTMLResponse(
        body,
        status_code=status,
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'",
            "X-Content-Type-Options": "nosniff",
            # same-origin, not no-referrer: under no-referrer a browser sends ``Origin: null``
            # (and no Referer) with a form POST, and the "Sign out" button is then refused as
            # cross-site (check_same_origin). Other origins still get no Referer.
            "Referrer-Policy": "same-origin",
        },
    )


def _error(request: Request, exc: WatchwordError, *, provider: str | None = None) -> Response:
    """A sign-in error: a page for a browser, problem+json for an API client."""
    if not wants_html(request):
        extra = {}
        if isinstance(exc, SigninDenied) and exc.provider_error:
            extra["provider_error"] = exc.provider_error
        return error_response(request, exc, extra=extra or None)
    retry = "/auth/login" + (f"?{urlencode({'provider': provider})}" if provider else "")
    page = _page(
        request,
        "error.html",
        status_for(exc),
        title=exc.title,
        detail=exc.detail,
        code=exc.code,
        provider_error=exc.provider_error if isinstance(exc, SigninDenied) else None,
        retry_href=retry,
    )
    page.headers.update(error_headers(exc))
    return page


def _cookie_options(services: Services) -> dict[str, Any]:
    secure = not services.runtime.settings.is_development
    return {"httponly": True, "samesite": "lax", "secure": secure, "path": "/"}


def _binding_cookie_name(services: Services) -> str:
    return (
        BINDING_COOKIE if services.runtime.settings.is_development else "__Host-" + BINDING_COOKIE
    )


@router.get(
    "/auth/login",
    response_model=None,
    summary="Start signing in (redirect to the provider), or choose a provider",
    responses={
        302: {"description": "To the provider's authorization endpoint."},
        200: {"description": "A page to choose a provider.", "content": {"text/html": {}}},
        **_HTML_ERRORS,
    },
)
async def login(
    request: Request,
    services: ServicesDep,
    provider: Annotated[str | None, Query(max_length=64)] = None,
    return_to: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response:
    signin = services.signin
    try:
        if provider is None and len(signin.clients) != 1:
            destination = signin.return_to.check(return_to)
            choices = [
                {
                    "label": label,
                    "href": "/auth/login?"
                    + urlencode({"provider": name, "return_to": destination}),
                }
                for name, label in signin.provider_choices()
            ]
            return _page(request, "choose.html", providers=choices)
        if provider is None:
            provider = next(iter(signin.clients))
        # Each started sign-in holds a flow row until it is used or expires: bounded per
        # client address, so a flood of anonymous /auth/login cannot fill the table.
        limiter: FailedAuthLimiter = request.app.state.signin_limiter
        address = request.client.host if request.client is not None else "unknown"
        await limiter.check(address)
        await limiter.failed(address)
        binding_name = _binding_cookie_name(services)
        started = await signin.start(provider, return_to, request.cookies.get(binding_name))
    except WatchwordError as exc:
        return _error(request, exc, provider=provider)
    response = RedirectResponse(started.authorization_url, status_code=302)
    response.set_cookie(
        binding_name,
        started.binding,
        max_age=int(services.runtime.settings.oidc.signin_timeout.total_seconds()),
        **_cookie_options(services),
    )
    return response


@router.get(
    "/auth/callback",
    response_model=None,
    summary="The provider's redirect back: finish signing in",
    responses={
        302: {"description": "Signed in: to return_to, with the session cookie."},
        **_HTML_ERRORS,
    },
)
async def callback(request: Request, services: ServicesDep) -> Response:
    params = dict(request.query_params)
    binding = request.cookies.get(_binding_cookie_name(services))
    attempt = await authentication_attempt(request)
    try:
        finished = await services.signin.finish(params, binding)
    except WatchwordError as exc:
        await attempt.failed()
        return _error(request, exc)
    previous = request.cookies.get(session_cookie_name(services))
    if previous:
        # A browser signs in again over a live session: the old one ends (and its upstream
        # refresh token is revoked) rather than linger unreachable until it expires.
        try:
            replaced = await services.sessions.resolve(Secret(previous))
        except WatchwordError:
            replaced = None
        if replaced is not None and replaced.id != finished.record.id:
            await services.signin.end_sessions([replaced.id], reason="replaced")
    response = RedirectResponse(finished.return_to, status_code=302)
    settings = services.runtime.settings
    response.set_cookie(
        session_cookie_name(services),
        finished.cookie.reveal(),
        max_age=int(settings.sessions.absolute_timeout.total_seconds()),
        **_cookie_options(services),
    )
    return response


@router.post(
    "/auth/logout",
    response_model=None,
    summary="Sign out: end the session, revoke upstream, go to the provider's logout",
    responses={
        303: {"description": "To the provider's end-session endpoint, or /auth/signed-out."},
        403: {"description": "csrf_origin_mismatch"},
    },
)
async def logout(request: Request, services: ServicesDep) -> Response:
    name = session_cookie_name(services)
    cookie = request.cookies.get(name)
    upstream: str | None = None
    if cookie:
        try:
            check_same_origin(request, services)
        except WatchwordError as exc:
            return _error(request, exc)
        try:
            record = await services.sessions.resolve(Secret(cookie))
        except WatchwordError:
            record = None  # already ended, expired or forged: only the cookie goes
        if record is not None:
            upstream = await services.signin.logout(record.id)
    target = upstream or "/auth/signed-out"
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(name, **_cookie_options(services))
    return response


@router.get(
    "/auth/signed-out",
    response_model=None,
    summary="The page after signing out",
    responses={200: {"content": {"text/html": {}}}},
)
async def signed_out(request: Request) -> Response:
    return _page(request, "signed_out.html", login_href="/auth/login", upstream=False)


@router.post(
    "/auth/backchannel-logout",
    response_model=None,
    summary="OpenID Connect Back-Channel Logout: the provider ends sessions",
    responses={
        200: {"description": "The sessions the logout token names have ended."},
        400: {"description": "logout_token_invalid"},
    },
    openapi_extra=form_body("logout_token"),
)
async def backchannel_logout(request: Request, services: ServicesDep) -> Response:
    try:
        logout_token = await form_field(request, "logout_token", max_bytes=_MAX_LOGOUT_FORM)
        await services.signin.backchannel_logout(logout_token)
    except WatchwordError as exc:
        # Anyone can post here: the reason goes to the log (signin.backchannel_logout logs
        # it), the answer says only what kind of failure it was.
        generic = exc.code == "logout_token_invalid"
        return error_response(
            request, exc, detail="the logout token is not valid" if generic else None
        )
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


@router.get(
    "/",
    response_model=None,
    include_in_schema=True,
    summary="Home: who is signed in in this browser (or a redirect to sign in)",
    responses={302: {"description": "Not signed in: to /auth/login."}},
)
async def home(request: Request, services: ServicesDep) -> Response:
    cookie = request.cookies.get(session_cookie_name(services))
    if cookie:
        try:
            record = await services.sessions.resolve(Secret(cookie))
        except WatchwordError:
            record = None
        if record is not None:
            return _page(
                request,
                "signed_in.html",
                name=record.display_name or record.subject,
                email=record.email,
                logout_href="/auth/logout",
            )
    return RedirectResponse("/auth/login", status_code=302)
