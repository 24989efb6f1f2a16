"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from watchword.api.deps import RuntimeDep
from watchword.api.problem import problem_response
from watchword.errors import WatchwordError
from watchword.storage import migrate
from watchword.storage.db import describe_error

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Database (and Redis, when configured) reachable, schema current",
    responses={503: {"description": "A dependency is not ready; the body names it."}},
)
async def readyz(request: Request, runtime: RuntimeDep) -> Response:
    checks: dict[str, dict[str, Any]] = {}
    try:
        await runtime.check_database()
        checks["database"] = {"status": "ok"}
        await migrate.ensure_current(runtime.engine)
        checks["schema"] = {"status": "ok"}
    except WatchwordError as exc:
        part = "schema" if "database" in checks else "database"
        checks[part] = _failing(exc)
    if runtime.redis is not None:
        try:
            await runtime.check_redis()
            checks["redis"] = {"status": "ok"}
        except WatchwordError as exc:
            checks["redis"] = _failing(exc)
    failing = sorted(name for name, c in checks.items() if c["status"] != "ok")
    if failing:
        return problem_response(
            request,
            status=503,
            code="not_ready",
            title="Not ready",
            detail="failing: " + ", ".join(failing),
            extra={"checks": checks},
        )
    return JSONResponse({"status": "ok", "checks": checks})


def _failing(exc: WatchwordError) -> dict[str, Any]:
    # Anyone may call /readyz: say what failed and why, never where (the error's own detail
    # names the URL for operators' logs and the CLI).
    cause = exc.__cause__
    if cause is None:
        reason = exc.detail
    elif isinstance(cause, TimeoutError):
        reason = "timed out"
    else:
        reason = describe_error(cause)
    return {"status": "failing", "code": exc.code, "detail": reason}


@router.get("/metrics", summary="Prometheus metrics (text exposition format)")
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)
