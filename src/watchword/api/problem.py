"""RFC 9457 problem details: the one place where errors become HTTP responses.

Every error body is ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and watchword's stable ``code`` (plus ``pointer`` for a bad field and
``request_id``). Domain errors map to statuses by class, walking the MRO, so a new
subclass inherits its parent's status.
"""

from __future__ import annotations

from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from watchword import errors
from watchword.observability.logging import get_logger

__all__ = [
    "HTTP_CODES",
    "PROBLEM_JSON",
    "Problem",
    "allowed_methods",
    "error_headers",
    "error_response",
    "ProblemField",
    "install_problem_handlers",
    "internal_error_response",
    "problem_response",
    "status_for",
]

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://watchword.dev/problems/"

_STATUS: dict[type[errors.WatchwordError], int] = {
    errors.ConfigurationError: 500,
    errors.InvalidInput: 400,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.VersionConflict: 412,
    errors.AuthenticationError: 401,
    errors.PermissionDenied: 403,
    errors.Unavailable: 503,
    errors.LockTimeout: 503,
    errors.TooManyFailedAttempts: 429,
}

HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    412: ("precondition_failed", "Precondition failed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    428: ("precondition_required", "Precondition required"),
    429: ("too_many_requests", "Too many requests"),
}

log = get_logger("watchword.api")


class ProblemField(BaseModel):
    """One invalid field of a 422."""

    pointer: str = Field(description="RFC 6901 pointer into the body, or /path/…, /query/….")
    detail: str


class Problem(BaseModel):
    """The body of every error response (``application/problem+json``, RFC 9457)."""

    model_config = ConfigDict(extra="allow", title="Problem")

    type: str = Field(description="A URI naming the problem type: " + TYPE_BASE + "<code>.")
    title: str
    status: int
    code: str = Field(description="watchword's stable, machine-readable error code.")
    detail: str
    instance: str = Field(description="The request path.")
    pointer: str | None = Field(default=None, description="RFC 6901 pointer to the bad field.")
    request_id: str | None = Field(default=None, description="As in X-Request-ID.")
    errors: list[ProblemField] | None = Field(default=None, description="422: every invalid field.")
    checks: dict[str, dict[str, str]] | None = Field(
        default=None, description="/readyz 503: each dependency's state."
    )


def status_for(exc: errors.WatchwordError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    pointer: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": title,
        "status": status,
        "code": code,
        "detail": detail or title,
        "instance": request.url.path,
    }
    if pointer is not None:
        body["pointer"] = pointer
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _pointer(loc: tuple[Any, ...]) -> str:
    # ("body", "roles", 0, "name") -> "/roles/0/name"
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc[1:]]
    return "/" + "/".join(parts) if loc and loc[0] == "body" else "/" + "/".join(map(str, loc))


def error_headers(exc: errors.WatchwordError) -> dict[str, str]:
    """The headers an error's answer carries: ``WWW-Authenticate`` on a 401,
    ``Retry-After`` when the caller must wait."""
    if isinstance(exc, errors.TooManyFailedAttempts):
        return {"Retry-After": str(exc.retry_after_s)}
    if status_for(exc) == 401:
        return {"WWW-Authenticate": 'Bearer realm="watchword"'}
    return {}


def error_response(
    request: Request,
    exc: errors.WatchwordError,
    *,
    detail: str | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    """The problem+json answer of a domain error (``detail`` replaces the error's own, for
    answers to anonymous callers that must not say more)."""
    status = status_for(exc)
    if status >= 500:
        log.error("request_failed", code=exc.code, detail=exc.detail)
    return problem_response(
        request,
        status=status,
        code=exc.code,
        title=exc.title,
        detail=exc.detail if detail is None else detail,
        pointer=exc.pointer,
        headers=error_headers(exc) or None,
        extra=extra,
    )


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(request, cast(errors.WatchwordError, exc))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(RequestValidationError, exc)
    problems = [{"pointer": _pointer(tuple(e["loc"])), "detail": e["msg"]} for e in exc.errors()]
    first = problems[0] if problems else {"pointer": None, "detail": "invalid request"}
    return problem_response(
        request,
        status=422,
        code="invalid_request",
        title="Invalid request",
        detail=f"{first['pointer']}: {first['detail']}",
        pointer=first["pointer"],
        extra={"errors": problems},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = cast(StarletteHTTPException, exc)
    code, title = HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route matches {request.method} {request.url.path}"
    headers = dict(exc.headers) if exc.headers else {}
    if exc.status_code == 405:
        # Starlette names the methods of the first route matching the path only.
        headers["Allow"] = ", ".join(allowed_methods(request))
    return problem_response(
        request,
        status=exc.status_code,
        code=code,
        title=title,
        detail=detail,
        headers=headers or None,
    )


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app serves at the request's path (RFC 9110 §10.2.1)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(route.methods or ())
    return sorted(methods)


def internal_error_response(request: Request) -> JSONResponse:
    """The 500 of an unexpected exception: nothing of it but the request id.

    The request middleware sends it (and logs the exception once, with the request id),
    inside the layer that adds ``X-Request-ID``; an ``Exception`` handler would run outside
    it, in Starlette's outermost middleware, which re-raises for the server to log again.
    """
    return problem_response(
        request,
        status=500,
        code="internal",
        title="Internal error",
        detail="an unexpected error occurred; the request id identifies it in the logs",
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.WatchwordError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
