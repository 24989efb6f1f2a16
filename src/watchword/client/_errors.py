"""Problem+json answers turned back into watchword's own exceptions.

The server answers every error as RFC 9457 ``application/problem+json`` with a stable
``code`` (``watchword.api.problem``). The client raises the class of ``watchword.errors``
that owns that code, the very class the library raises in-process, so one ``except`` works
for both. The code-to-class map is read from the classes of ``watchword.errors`` (each
defines its own ``code``), never written out by hand.

Every raised error carries, as instance attributes, ``status`` (the HTTP status, ``None``
when no answer came), ``request_id`` (the server's ``X-Request-ID``), ``retry_after``
(seconds, from ``Retry-After``) and ``problem`` (the parsed body, :class:`Problem`);
:func:`problem_of` reads it with its type.

A code the library does not know (a newer server, ``payload_too_large``, a proxy's HTML
page) is raised as the ``watchword.errors`` class that stands for its status (404:
``NotFound``, 401: ``AuthenticationError``, 4xx input errors: ``InvalidInput``, 503:
``Unavailable``, …; otherwise ``WatchwordError``) with the server's code kept in
``exc.code``. No new exception class is defined here: ``watchword.errors`` holds every one
(``tests/test_errors.py`` enforces it), so ``except WatchwordError`` catches everything the
client raises.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import httpx

from watchword import errors

__all__ = [
    "CLASSES_BY_CODE",
    "FieldProblem",
    "Problem",
    "error_from_response",
    "error_from_transport",
    "parse_retry_after",
    "problem_of",
]

PROBLEM_MEMBERS: Final = frozenset(
    {"type", "title", "status", "code", "detail", "instance", "pointer", "request_id", "errors"}
)


def _classes_by_code() -> Mapping[str, type[errors.WatchwordError]]:
    found: dict[str, type[errors.WatchwordError]] = {}
    for value in vars(errors).values():
        if (
            isinstance(value, type)
            and issubclass(value, errors.WatchwordError)
            and value.__module__ == errors.__name__
            and "code" in vars(value)  # its own code, not one inherited
        ):
            found.setdefault(value.code, value)
    return MappingProxyType(found)


CLASSES_BY_CODE: Final = _classes_by_code()

# For codes the library does not know: the class that stands for the status.
_BY_STATUS: Final[Mapping[int, type[errors.WatchwordError]]] = MappingProxyType(
    {
        400: errors.InvalidInput,
        401: errors.AuthenticationError,
        403: errors.PermissionDenied,
        404: errors.NotFound,
        409: errors.Conflict,
        412: errors.VersionConflict,
        413: errors.InvalidInput,
        415: errors.InvalidInput,
        422: errors.InvalidInput,
        428: errors.InvalidInput,
        503: errors.Unavailable,
    }
)


@dataclass(frozen=True, slots=True)
class FieldProblem:
    """One invalid field of a 422: an RFC 6901 pointer and what is wrong with it."""

    pointer: str
    detail: str


@dataclass(frozen=True, slots=True)
class Problem:
    """An error answer: the problem+json members, and any others in ``extra``."""

    status: int
    code: str
    title: str
    detail: str
    type: str | None = None
    instance: str | None = None
    pointer: str | None = None
    request_id: str | None = None
    retry_after: float | None = None
    errors: tuple[FieldProblem, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110 §10.2.3: delay-seconds or an
    HTTP-date); ``None`` when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return _date(value, now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _date(value: str, now: float | None) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _problem(response: httpx.Response) -> Problem:
    status = response.status_code
    body: Any = None
    if "json" in response.headers.get("content-type", ""):
        with contextlib.suppress(ValueError):
            body = response.json()
    data: Mapping[str, Any] = body if isinstance(body, dict) else {}
    phrase = response.reason_phrase or "HTTP error"
    code = data.get("code")
    found = data.get("errors")
    request_id = data.get("request_id") or response.headers.get("x-request-id")
    return Problem(
        status=status,
        code=code if isinstance(code, str) and code else "http_error",
        title=str(data.get("title") or phrase),
        detail=str(data.get("detail") or data.get("title") or f"HTTP {status} {phrase}"),
        type=None if data.get("type") is None else str(data["type"]),
        instance=None if data.get("instance") is None else str(data["instance"]),
        pointer=None if data.get("pointer") is None else str(data["pointer"]),
        request_id=None if request_id is None else str(request_id),
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        errors=tuple(
            FieldProblem(str(e.get("pointer", "")), str(e.get("detail", "")))
            for e in (found if isinstance(found, list) else ())
            if isinstance(e, dict)
        ),
        extra={k: v for k, v in data.items() if k not in PROBLEM_MEMBERS},
    )


def _attach(
    exc: errors.WatchwordError,
    *,
    status: int | None,
    request_id: str | None,
    retry_after: float | None,
    problem: Problem | None,
) -> errors.WatchwordError:
    vars(exc).update(status=status, request_id=request_id, retry_after=retry_after, problem=problem)
    return exc


def error_from_response(response: httpx.Response) -> errors.WatchwordError:
    """The exception an error answer stands for (see the module docstring)."""
    problem = _problem(response)
    cls = CLASSES_BY_CODE.get(problem.code)
    known = cls is not None
    if cls is None:
        cls = _BY_STATUS.get(problem.status, errors.WatchwordError)
    # Built without the class's own __init__: a few take other arguments (LockTimeout's
    # key, TooManyFailedAttempts' retry_after_s), and the server's detail is what to show.
    exc = cls.__new__(cls)
    errors.WatchwordError.__init__(exc, problem.detail, pointer=problem.pointer)
    if not known:
        exc.code = problem.code
    if isinstance(exc, errors.TooManyFailedAttempts):
        exc.retry_after_s = max(1, round(problem.retry_after or 1))
    if isinstance(exc, errors.SigninDenied):
        exc.provider_error = problem.extra.get("provider_error")
    return _attach(
        exc,
        status=problem.status,
        request_id=problem.request_id,
        retry_after=problem.retry_after,
        problem=problem,
    )


def error_from_transport(exc: httpx.TransportError, base_url: str) -> errors.WatchwordError:
    """The server could not be reached, or the answer did not arrive: ``Unavailable``
    (the httpx error is its ``__cause__``; its text is not copied)."""
    error = errors.Unavailable(
        f"no answer from the watchword server at {base_url} ({type(exc).__name__})"
    )
    return _attach(error, status=None, request_id=None, retry_after=None, problem=None)


def problem_of(exc: BaseException) -> Problem | None:
    """The problem+json answer a client error was raised from (``None`` for an error raised
    without one: a transport failure, or an error not raised by the client)."""
    problem = vars(exc).get("problem") if hasattr(exc, "__dict__") else None
    return problem if isinstance(problem, Problem) else None
