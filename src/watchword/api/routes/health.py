"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from watchword.api.deps import RuntimeDep, ServicesDep
from watchword.api.problem import problem_response
from watchword.errors import WatchwordError
from watchword.storage import migrate
from watchword.storage.changes import watch_for
from watchword.storage.db import describe_error

router = APIRouter(tags=["health"])


class Check(BaseModel):
    status: Literal["ok", "failing"]
    code: str | None = None
    detail: str | None = None


class ProviderState(BaseModel):
    status: Literal["ok", "unknown", "failing"]
    detail: str | None = None
    since: str | None = None


class ChangeListener(BaseModel):
    listening: bool = Field(
        description="Other processes' policy and admin-key changes are heard as they commit "
        "(PostgreSQL LISTEN); false on SQLite and while the listener is down."
    )
    staleness_s: float = Field(
        description="Without a listener, how long a cached policy generation is trusted."
    )


class EdgeRoutes(BaseModel):
    routes: int = Field(description="Routes in the active forward-auth table.")
    loaded_at: str = Field(description="When the active table was loaded.")
    last_error: str | None = Field(
        default=None, description="Why the last edit of edge.routes_file was refused."
    )


class ReadyDetails(BaseModel):
    changes: ChangeListener
    edge: EdgeRoutes
    providers: dict[str, ProviderState] | None = Field(
        default=None,
        description="Each sign-in provider's last known state (never fails readiness).",
    )
    refresher: dict[str, str] | None = Field(
        default=None,
        description="The session refresher of this process: running or stopped, shards held, "
        "refreshes in flight, last pass, last error.",
    )


class Ready(BaseModel):
    status: Literal["ok"]
    checks: dict[str, Check] = Field(description="database, schema and, if configured, redis.")
    details: ReadyDetails | None = None


class Health(BaseModel):
    status: Literal["ok"]


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Database (and Redis, when configured) reachable, schema current",
    response_model=None,
    responses={
        200: {"model": Ready, "description": "Every dependency is ready."},
        503: {"description": "A dependency is not ready; `checks` names it."},
    },
)
async def readyz(request: Request, services: ServicesDep) -> Response:
    runtime = services.runtime
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
    body: dict[str, Any] = {"status": "ok", "checks": checks}
    watch = watch_for(runtime.engine)
    # Informational: without a listener, other processes' policy changes are seen within
    # the staleness bound instead of at once.
    details: dict[str, Any] = {
        "changes": {"listening": watch.listening, "staleness_s": watch.staleness},
        "edge": services.edge.routes.status(),
    }
    providers = services.signin.provider_status()
    if providers:
        # Informational: a provider that is down stops its sign-in (503), not the process.
        details["providers"] = providers
        details["refresher"] = services.background.status()
    body["details"] = details
    return JSONResponse(body)


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


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(runtime: RuntimeDep) -> Response:
    return Response(generate_latest(runtime.registry), media_type=CONTENT_TYPE_LATEST)
