"""Request id, access log, metrics and a trace span for every request; the request body
limit (pure ASGI).

An exception no handler took is answered here, as a 500 problem carrying the request id
in its body and in ``X-Request-ID``, and logged once, with the request id.

A request body longer than ``MAX_BODY_BYTES`` is refused with 413 ``payload_too_large``:
at once when ``Content-Length`` says so, else when the bytes read pass the limit.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Final

import structlog
from fastapi import HTTPException
from opentelemetry import trace
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from watchword.api.problem import internal_error_response, problem_response
from watchword.observability.logging import get_logger
from watchword.observability.metrics import HttpMetrics

__all__ = ["MAX_BODY_BYTES", "BodyLimitMiddleware", "RequestContextMiddleware"]

MAX_BODY_BYTES: Final = 1024 * 1024  # docs/operations.md

_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = get_logger("watchword.http")
tracer = trace.get_tracer("watchword.http")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _VALID_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        method = scope["method"]
        with (
            structlog.contextvars.bound_contextvars(request_id=request_id),
            tracer.start_as_current_span(f"{method} request", kind=trace.SpanKind.SERVER) as span,
        ):
            started = False

            async def send_tracked(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send_with_id(message)

            try:
                await self.app(scope, receive, send_tracked)
            except Exception as exc:
                log.exception("unhandled_error", error_type=type(exc).__name__)
                status = 500
                if started:  # too late for a response: the server drops the connection
                    raise
                response = internal_error_response(Request(scope))
                await response(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - start
                route = _route_template(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                span.set_attribute("watchword.request_id", request_id)
                self.metrics.observe(method, route, status, elapsed)
                log.info(
                    "request",
                    method=method,
                    path=scope["path"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 3),
                )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = problem_response(
                Request(scope),
                status=413,
                code="payload_too_large",
                title="Payload too large",
                detail=self._detail(),
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise HTTPException(status_code=413, detail=self._detail())
            return message

        await self.app(scope, counted, send)

    def _detail(self) -> str:
        return f"the request body is limited to {self.max_bytes} bytes"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:
                return None
    return None


def _route_template(scope: Scope) -> str:
    # The template, not the raw path, keeps label cardinality bounded.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
