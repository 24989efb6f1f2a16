"""The app factory. No module-level app: ``create_app()`` builds one per call.

``uvicorn --factory watchword.api.app:create_app`` works too (settings from the
environment).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from watchword import __version__
from watchword.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from watchword.api.openapi import install_openapi
from watchword.api.problem import install_problem_handlers
from watchword.api.routes import (
    acl,
    admin,
    authz,
    groups,
    health,
    issuers,
    oauth,
    organizations,
    resource_types,
    role_bindings,
    roles,
    service_accounts,
    system_accounts,
    tokens,
)
from watchword.api.text import printable_parameters
from watchword.config import Settings, load_settings
from watchword.observability.metrics import HttpMetrics
from watchword.observability.tracing import configure_tracing
from watchword.runtime import Runtime

__all__ = ["background_jobs", "create_app"]


DESCRIPTION = """\
watchword: identity broker and authorization engine for multi-tenant platforms.

Errors are RFC 9457 `application/problem+json` bodies with a stable `code`.
"""


Job = Callable[[Runtime, asyncio.Event], Coroutine[Any, Any, None]]


def background_jobs() -> list[Job]:
    """Long-running tasks of a serving process, each stopping when the event is set.

    - token revocations published by other replicas, applied to this one's caches at once;
    - the token janitor, every ``token_janitor_every``, under a lease (one replica at a time).
    """
    from watchword.tokens.invalidation import run_invalidation_listener
    from watchword.tokens.janitor import run_janitor_forever

    async def invalidations(runtime: Runtime, stop: asyncio.Event) -> None:
        await run_invalidation_listener(runtime, stop=stop)

    async def janitor(runtime: Runtime, stop: asyncio.Event) -> None:
        await run_janitor_forever(runtime, every=runtime.settings.token_janitor_every, stop=stop)

    return [invalidations, janitor]


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the app. With ``runtime`` given, the caller owns (opens and closes) it."""
    if runtime is None:
        runtime = Runtime.create(settings or load_settings())
        owned = True
    else:
        owned = False
    configure_tracing(runtime.settings.otlp_endpoint, runtime.settings.service_name)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not owned:  # the caller runs the runtime and its background jobs
            yield
            return
        try:
            await runtime.prepare_schema()
        except BaseException:
            await runtime.close()
            raise
        stop = asyncio.Event()
        jobs = [asyncio.create_task(job(runtime, stop)) for job in background_jobs()]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*jobs, return_exceptions=True)
            await runtime.close()

    app = FastAPI(
        title="watchword",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
        dependencies=[Depends(printable_parameters)],
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware)  # inside the request context: 413s carry its id
    app.add_middleware(RequestContextMiddleware, metrics=HttpMetrics.create(runtime.registry))
    for module in (
        health,
        admin,
        authz,
        resource_types,
        roles,
        organizations,
        groups,
        service_accounts,
        system_accounts,
        role_bindings,
        issuers,
        acl,
        tokens,
        oauth,
    ):
        app.include_router(module.router)
    install_openapi(app)
    return app
