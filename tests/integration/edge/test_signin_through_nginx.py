"""A real browser signs in through nginx in front of an app, with a real OpenID provider.

Headless Chromium asks nginx for an app page; nginx asks watchword (``auth_request``), which
sends the browser to sign in on the app's own origin; after the provider's login form the
browser is back on the page it asked for, and the app (an echo of the headers it receives)
shows who is calling and the session's upstream access token. After the access token's
lifetime has passed, the app receives a fresh one (sessions kept fresh, no new cookie
needed). An ended session sends the browser to sign in again.

Screenshots of every step land in ``artifacts/<test>/``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from pathlib import Path

import httpx
from playwright.async_api import Page
from tests.integration.signin.conftest import live_env
from tests.oidc.plugin import DEFAULT_CLIENT_ID, OidcClient, OidcProviderFactory
from tests.support.browser import shot
from tests.support.echo_app import EchoApp
from tests.support.live import LiveWatchword, free_port
from tests.support.proxies import LiveNginx

from watchword.bootstrap import create_admin_key
from watchword.clock import SystemClock
from watchword.edge import proxyconf
from watchword.storage.db import create_engine_for_url

STEP_MS = 30_000  # per navigation or element: generous for a loaded machine
ACCESS_TOKEN_TTL = 15  # seconds, at the provider
ROUTES = """\
routes:
  - {name: app, path: /app/**, allow: authenticated, access_token: true}
"""


async def _echoed(page: Page) -> dict[str, str]:
    headers: dict[str, str] = json.loads(await page.locator("body").inner_text())["headers"]
    return headers


def _cookie_names(headers: dict[str, str]) -> set[str]:
    """The names of the cookies in the echoed Cookie header (none without one)."""
    pairs = headers.get("cookie", "").split(";")
    return {pair.split("=", 1)[0].strip() for pair in pairs if pair.strip()}


WATCHWORDS_COOKIES = {
    "watchword_session",
    "__Host-watchword_session",
    "watchword_signin",
    "__Host-watchword_signin",
}


async def test_a_browser_signs_in_through_nginx_and_the_app_gets_fresh_tokens(
    tmp_path: Path,
    oidc_provider_factory: OidcProviderFactory,
    live_watchword: LiveWatchword,
    live_nginx: LiveNginx,
    echo_app: EchoApp,
    browser_page: Page,
) -> None:
    page = browser_page
    page.set_default_timeout(STEP_MS)
    ww_port = free_port()
    ww = f"http://127.0.0.1:{ww_port}"
    proxy = live_nginx(
        lambda listen: proxyconf.nginx_server(
            listen=listen, server_name="_", watchword=ww, app=echo_app.url
        )
    )
    base = proxy.url  # the app's origin, and watchword's public one
    provider = oidc_provider_factory(
        clients=[
            OidcClient(
                client_id=DEFAULT_CLIENT_ID,
                redirect_uris=[f"{base}/auth/callback"],
                post_logout_redirect_uris=[f"{base}/auth/signed-out"],
            )
        ],
        ttl={"AccessToken": ACCESS_TOKEN_TTL},
    )
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    server = live_watchword(
        {
            **live_env(provider, secret_key=secrets.token_urlsafe(32)),
            "WATCHWORD_ISSUER_URL": base,
            "WATCHWORD_EDGE__ROUTES_FILE": str(routes),
            "WATCHWORD_REFRESHER__GRACE": "5s",
            "WATCHWORD_REFRESHER__COOL_OFF": "1s",
        },
        port=ww_port,
    )

    # 1. An app page: nginx -> watchword (401) -> /auth/start -> sign-in -> the provider.
    # The app has a cookie of its own, which must reach it as watchword's must not.
    await page.context.add_cookies([{"name": "app_pref", "value": "dark", "url": base}])
    wanted = f"{base}/app/reports?year=2026&q=a%20b"
    await page.goto(wanted)
    await page.wait_for_url(f"{provider.issuer}/interaction/**")
    await shot(page, "provider-login")
    assert echo_app.requests == []
    await page.locator("input[name=login]").fill("alice")
    await page.locator("input[name=password]").fill("correct horse battery staple")
    await page.locator("button[type=submit]").first.click()

    # 2. Back, through /auth/callback on the app's origin, to the page first asked for.
    await page.wait_for_url(wanted)
    await shot(page, "app-page")
    seen = await _echoed(page)
    signed_in_at = time.monotonic()
    assert seen["x-watchword-subject"] == "alice-0001", seen
    assert seen["x-watchword-issuer"] == provider.issuer
    assert seen["x-watchword-email"] == "alice@example.com"
    first_token = seen["x-forwarded-access-token"]
    assert first_token
    assert "authorization" not in seen  # the app gets headers, never the session cookie's
    cookies = {c["name"]: c for c in await page.context.cookies(base)}
    assert cookies["watchword_session"]["httpOnly"]
    # The browser sent its session cookie; nginx kept it (and the binding cookie) from the app.
    assert not _cookie_names(seen) & WATCHWORDS_COOKIES, seen.get("cookie")
    assert "watchword_" not in seen.get("cookie", "")
    assert "app_pref=dark" in seen.get("cookie", "").split("; "), seen.get("cookie")

    # 3. After the access token's lifetime: a fresh token reaches the app, valid upstream.
    await asyncio.sleep(max(0.0, ACCESS_TOKEN_TTL + 1 - (time.monotonic() - signed_in_at)))
    await page.reload()
    later = await _echoed(page)
    assert "watchword_" not in later.get("cookie", "")
    fresh = later["x-forwarded-access-token"]
    assert fresh and fresh != first_token
    async with httpx.AsyncClient(timeout=30) as client:
        userinfo = (await client.get(provider.discovery_url)).json()["userinfo_endpoint"]
        valid = await client.get(userinfo, headers={"Authorization": f"Bearer {fresh}"})
        assert valid.status_code == 200 and valid.json()["sub"] == "alice-0001"
        expired = await client.get(userinfo, headers={"Authorization": f"Bearer {first_token}"})
        assert expired.status_code == 401
    await shot(page, "fresh-token")

    # 4. The session ended by an administrator: the next page asks to sign in again.
    engine = create_engine_for_url(server.database_url)
    try:
        _, admin = await create_admin_key(engine, SystemClock())
    finally:
        await engine.dispose()
    async with httpx.AsyncClient(base_url=ww, timeout=30) as client:
        auth = {"Authorization": f"Bearer {admin.reveal()}"}
        listed = (await client.get("/v1/sessions", headers=auth)).json()["items"]
        assert len(listed) == 1
        ended = await client.delete(f"/v1/sessions/{listed[0]['id']}", headers=auth)
        assert ended.status_code == 204
    before = len(echo_app.requests)
    await page.goto(f"{base}/app/reports")
    await page.wait_for_url(f"{provider.issuer}/**")
    await shot(page, "signed-out-asks-again")
    assert len(echo_app.requests) == before
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        session = cookies["watchword_session"]["value"]
        api = await client.get(
            "/app/reports",
            headers={"Accept": "application/json", "Cookie": f"watchword_session={session}"},
        )
        assert api.status_code == 401
