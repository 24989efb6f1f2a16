"""The app factory. No module-level app: ``create_app()`` builds one per call.

``uvicorn --factory --no-proxy-headers watchword.api.app:create_app`` works too (settings
from the environment). ``--no-proxy-headers``: the app believes ``X-Forwarded-*`` from
``edge.trusted_proxies`` itself, and forward-auth checks the connection's own address,
which uvicorn's rewrite would replace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from watchword import __version__
from watchword.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from watchword.api.openapi import install_openapi
from watchword.api.problem import install_problem_handlers
from watchword.api.ratelimit import FailedAuthLimiter
from watchword.api.routes import (
    acl,
    admin,
    authz,
    edge,
    groups,
    health,
    issuers,
    oauth,
    organizations,
    resource_types,
    role_bindings,
    roles,
    service_accounts,
    sessions,
    signin,
    system_accounts,
    tokens,
)
from watchword.api.routes.edge import EdgeLane, PeerMiddleware
from watchword.api.text import printable_parameters
from watchword.config import Settings, load_settings
from watchword.errors import TooManySignins
from watchword.jobs import background_jobs, start_jobs, stop_jobs
from watchword.observability.metrics import HttpMetrics
from watchword.observability.tracing import configure_tracing
from watchword.runtime import Runtime
from watchword.services import Services

__all__ = ["create_app"]


DESCRIPTION = """\
watchword: identity broker and authorization engine for multi-tenant platforms.

Errors are RFC 9457 `application/problem+json` bodies with a stable `code`.
"""


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    run_jobs: bool | None = None,
) -> FastAPI:
    """Build the app.

    Without ``services``, the app opens a runtime and its services in its lifespan, runs
    the background jobs (:mod:`watchword.jobs`) unless ``run_jobs`` is false, and closes
    everything at shutdown. With ``services`` given, the caller owns them (opens, closes,
    and runs jobs where it wants them).
    """
    owned = services is None
    if services is None:
        services = Services.build(Runtime.create(settings or load_settings()))
    runtime = services.runtime
    jobs_on = owned if run_jobs is None else run_jobs
    configure_tracing(
        runtime.settings.telemetry.otlp_endpoint, runtime.settings.telemetry.service_name
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if not owned:
            yield
            return
        try:
            await runtime.prepare_schema()
            await services.sync_provider_issuers()
            services.signin.warm_up()
        except BaseException:
            await services.aclose()
            await runtime.close()
            raise
        stop = asyncio.Event()
        tasks = start_jobs(background_jobs(services, serving=True), stop) if jobs_on else []
        try:
            yield
        finally:
            await stop_jobs(tasks, stop)
            await services.aclose()
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
    app.state.services = services
    app.state.failed_auth_limiter = FailedAuthLimiter(runtime.settings.auth.failed_limit)
    app.state.introspect_limiter = FailedAuthLimiter(runtime.settings.auth.introspect_unknown_limit)
    app.state.signin_limiter = FailedAuthLimiter(
        runtime.settings.auth.signin_limit, error=TooManySignins
    )
    install_problem_handlers(app)
    app.add_middleware(EdgeLane)  # /auth/verify past the router, inside everything else
    app.add_middleware(BodyLimitMiddleware)  # inside the request context: 413s carry its id
    app.add_middleware(RequestContextMiddleware, metrics=HttpMetrics.create(runtime.registry))
    # The client address and scheme from X-Forwarded-For/-Proto, believed from
    # edge.trusted_proxies only (uvicorn's own rewrite is off: `watchword serve`); outermost,
    # the connection's own address is kept for the edge's trust check.
    app.add_middleware(
        ProxyHeadersMiddleware,
        trusted_hosts=list(runtime.settings.edge.trusted_proxies),
    )
    app.add_middleware(PeerMiddleware)
    for module in (
        health,
        edge,  # the decision hot path: matched early (routes are tried in order)
        authz,
        admin,
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
        sessions,
        signin,
    ):
        app.include_router(module.router)
    install_openapi(app)
    return app
