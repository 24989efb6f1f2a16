"""A watchword app signing people in through a real ``oidc-provider`` (tests/oidc).

``signin_app(provider, database_url=…, **settings)`` builds the real services and app over
the given database (migrated), with the provider configured as ``test``; the test talks to
the app over ASGI as ``http://testserver`` (the redirect URI the provider's default client
registers). Every app built is closed after the test.

``live_env(provider, providers=[(name, display_name), …])`` is the environment of a live
``watchword serve`` (``tests/support/live.py``) signing in through ``provider``'s client.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from tests.oidc.plugin import DEFAULT_CLIENT_ID, OidcProvider

from watchword.api.app import create_app
from watchword.clock import Clock, FakeClock
from watchword.config import load_settings
from watchword.runtime import Runtime
from watchword.services import Services

BASE = "http://testserver"


@dataclass
class SigninApp:
    services: Services
    app: FastAPI
    client: httpx.AsyncClient  # the browser talking to watchword (keeps its cookies)
    agent: httpx.AsyncClient  # the same browser at the provider
    provider: OidcProvider
    clock: Clock

    async def sign_in(
        self, *, login: str = "alice", return_to: str | None = None
    ) -> httpx.Response:
        """Start at /auth/login, sign in at the provider, and call back; the callback's
        response (302 with the session cookie when it worked)."""
        params = {"provider": "test"}
        if return_to is not None:
            params["return_to"] = return_to
        started = await self.client.get("/auth/login", params=params)
        assert started.status_code == 302, started.text
        back = await self.provider.authorize(
            started.headers["location"], login=login, agent=self.agent
        )
        assert back.startswith(BASE + "/auth/callback?"), back
        return await self.client.get(back.removeprefix(BASE))

    def cookie(self) -> str | None:
        return self.client.cookies.get("watchword_session")


SigninFactory = Callable[..., Awaitable[SigninApp]]


def live_env(
    provider: OidcProvider,
    *,
    providers: Sequence[tuple[str, str]] = (("test", "Test IdP"),),
    client_id: str = DEFAULT_CLIENT_ID,
    secret_key: str | None = None,
) -> dict[str, str]:
    """``WATCHWORD_*`` variables of a live server (development: plain-http cookie) with one
    configured provider per ``(name, display_name)``, all on ``provider``'s ``client_id``."""
    client = provider.clients[client_id]
    env = {
        "WATCHWORD_SECRET_KEY": secret_key or secrets.token_urlsafe(32),
        "WATCHWORD_OIDC__ALLOW_INSECURE_HTTP": "true",
        "WATCHWORD_AUTH__FAILED_LIMIT": "off",
    }
    for index, (name, display_name) in enumerate(providers):
        prefix = f"WATCHWORD_OIDC__PROVIDERS__{index}__"
        env |= {
            prefix + "NAME": name,
            prefix + "DISPLAY_NAME": display_name,
            prefix + "ISSUER": provider.issuer,
            prefix + "CLIENT_ID": client.client_id,
            prefix + "CLIENT_SECRET": client.client_secret or "",
            prefix + "SCOPES": "openid email profile groups authz offline_access",
            prefix + "GROUPS_CLAIM": "groups",
        }
    return env


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


@pytest.fixture(params=["sqlite", "postgres"])
def signin_database(request: pytest.FixtureRequest) -> str | None:
    """Every sign-in test runs on both: ``None`` (a SQLite file per app) or a fresh
    PostgreSQL database (one per test; mandatory with CI=true)."""
    if request.param == "sqlite":
        return None
    databases = request.getfixturevalue("pg_databases")
    return str(databases.create("ww_signin"))


@pytest.fixture
async def signin_app(tmp_path: Path, signin_database: str | None) -> AsyncIterator[SigninFactory]:
    built: list[SigninApp] = []

    async def build(
        provider: OidcProvider,
        *,
        database_url: str | None = None,
        clock: Clock | None = None,
        client_id: str = DEFAULT_CLIENT_ID,
        provider_settings: dict[str, Any] | None = None,
        **settings: Any,
    ) -> SigninApp:
        client = provider.clients[client_id]
        entry: dict[str, Any] = {
            "name": "test",
            "display_name": "Test IdP",
            "issuer": provider.issuer,
            "client_id": client.client_id,
            "client_secret": client.client_secret,
            "scopes": ["openid", "email", "profile", "groups", "authz", "offline_access"],
            "groups_claim": "groups",
            **(provider_settings or {}),
        }
        url = (
            database_url
            or signin_database
            or f"sqlite+aiosqlite:///{tmp_path / f'signin-{len(built)}.sqlite3'}"
        )
        values: dict[str, Any] = {
            "env": "development",
            "issuer_url": BASE,
            "secret_key": secrets.token_urlsafe(32),
            "database": {"url": url},
            "auth": {"failed_limit": "off"},
            "oidc": {"allow_insecure_http": True, "providers": [entry]},
        }
        for key, value in settings.items():
            if isinstance(value, dict) and isinstance(values.get(key), dict):
                values[key] = {**values[key], **value}
            else:
                values[key] = value
        runtime_clock = clock or FakeClock(datetime.now(UTC))
        runtime = Runtime.create(load_settings(environ={}, **values), clock=runtime_clock)
        await runtime.prepare_schema()
        services = Services.build(runtime)
        await services.sync_provider_issuers()
        app = create_app(services=services)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        browser = httpx.AsyncClient(transport=transport, base_url=BASE)
        agent = httpx.AsyncClient()
        made = SigninApp(services, app, browser, agent, provider, runtime_clock)
        built.append(made)
        return made

    try:
        yield build
    finally:
        for made in built:
            await made.client.aclose()
            await made.agent.aclose()
            await made.services.aclose()
            await made.services.runtime.close()
