"""Sign-in in a real browser: headless Chromium against a live ``watchword serve`` and a real
``oidc-provider``, from the provider choice page to the provider's sign-out confirmation.

Screenshots of every step land in ``artifacts/<test>/``.
"""

from __future__ import annotations

import json

from playwright.async_api import Page
from tests.integration.signin.conftest import live_env
from tests.oidc.plugin import DEFAULT_CLIENT_ID, OidcClient, OidcProviderFactory
from tests.support.browser import shot
from tests.support.live import LiveWatchword, free_port

STEP_MS = 30_000  # per navigation or element: generous for a loaded machine


async def test_a_browser_signs_in_through_the_choice_page_and_signs_out_at_the_provider(
    oidc_provider_factory: OidcProviderFactory,
    live_watchword: LiveWatchword,
    browser_page: Page,
) -> None:
    page = browser_page
    page.set_default_timeout(STEP_MS)
    # The redirect URIs name the live server's port, so choose it before either starts.
    # 127.0.0.1 throughout: cookies belong to a host name, and localhost is another one.
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    provider = oidc_provider_factory(
        clients=[
            OidcClient(
                client_id=DEFAULT_CLIENT_ID,
                redirect_uris=[f"{base}/auth/callback"],
                post_logout_redirect_uris=[f"{base}/auth/signed-out"],
            )
        ]
    )
    # Two providers (one provider process, one client): /auth/login shows the choice page.
    server = live_watchword(
        live_env(provider, providers=[("alpha", "Alpha IdP"), ("beta", "Beta IdP")]),
        port=port,
    )
    assert server.url == base

    # 1. The choice page.
    response = await page.goto(f"{base}/auth/login")
    assert response is not None and response.status == 200
    alpha = page.get_by_role("link", name="Continue with Alpha IdP")
    beta = page.get_by_role("link", name="Continue with Beta IdP")
    assert await alpha.count() == 1 and await beta.count() == 1
    await shot(page, "choose-provider")

    # 2. The provider's login form.
    await beta.click()
    await page.wait_for_url(f"{provider.issuer}/interaction/**")
    login = page.locator("input[name=login]")
    await login.wait_for()
    await shot(page, "provider-login")
    await login.fill("alice")
    await page.locator("input[name=password]").fill("correct horse battery staple")
    await page.locator("button[type=submit]").first.click()

    # 3. Back through /auth/callback to the signed-in page (no consent page here).
    await page.wait_for_url(f"{base}/")
    await page.get_by_text("Alice Example").wait_for()
    await shot(page, "signed-in")
    assert "Alice Example" in await page.locator("body").inner_text()
    cookies = {c["name"]: c for c in await page.context.cookies(base)}
    assert "watchword_session" in cookies and cookies["watchword_session"]["httpOnly"]

    # 4. Who am I: the JSON names alice and the provider chosen on the first page.
    await page.get_by_role("link", name="Who am I (JSON)").click()
    await page.wait_for_url(f"{base}/v1/me")
    me = json.loads(await page.locator("body").inner_text())
    assert me["subject"] == {"issuer": provider.issuer, "id": "alice-0001"}, me
    assert me["session"]["provider"] == "beta", me
    assert me["claims"]["name"] == "Alice Example", me
    await shot(page, "who-am-i")

    # 5. Sign out: watchword ends the session and sends the browser to the provider, which
    # asks to confirm, then comes back to /auth/signed-out.
    await page.goto(f"{base}/")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url(f"{provider.issuer}/session/end**")
    confirm = page.get_by_role("button", name="Yes, sign me out")
    await confirm.wait_for()
    await shot(page, "provider-sign-out")
    await confirm.click()
    await page.wait_for_url(f"{base}/auth/signed-out**")
    await page.get_by_text("signed out").first.wait_for()
    await shot(page, "signed-out")
    assert "signed out" in await page.locator("body").inner_text()
    events = [event.get("event") for event in provider.events()]
    assert "end_session.success" in events, events

    # 6. The same browser is no longer signed in.
    assert "watchword_session" not in {c["name"] for c in await page.context.cookies(base)}
    response = await page.goto(f"{base}/v1/me")
    assert response is not None and response.status == 401
