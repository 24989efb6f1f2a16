"""watchword behind real reverse proxies: nginx ``auth_request`` and Caddy ``forward_auth``,
configured exactly as ``watchword edge config`` prints, in front of an app that echoes the
headers it receives.

Through each proxy: an anonymous browser is sent to sign-in, an API client gets 401, a
member's token passes with watchword's identity headers and none the client forged, a write
the policy refuses is 403, a public route passes with no identity, a revoked token is 401.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from tests.support.echo_app import EchoApp
from tests.support.live import LiveWatchword, free_port
from tests.support.proxies import LiveCaddy, LiveNginx, LiveProxy
from tests.support.seed import add_members, personal_token

from watchword.bootstrap import create_admin_key
from watchword.clock import SystemClock
from watchword.config import load_settings
from watchword.edge import proxyconf
from watchword.rbac.store.organizations import create_organization
from watchword.services import Services

ROUTES = """\
routes:
  - {name: public, path: /public/**, allow: anonymous}
  - name: projects
    path: /orgs/{org}/projects/{project}/**
    resource: watchword:projects
    actions: {GET: read, HEAD: read}
    action: update
    object: {id: "{project}", organization: "{org}", project: "{project}"}
  - {name: me, path: /me, allow: authenticated, assertion: {audience: app}}
"""
FORGED = {
    "X-Watchword-Subject": "admin",
    "X-Watchword-Organizations": "everything",
    "X-Forwarded-Access-Token": "forged",
    "X-Watchword-Jwt-Assertion": "forged",
    "X-Original-URI": "/public/x",  # a client naming another request to watchword
    "X-Forwarded-Uri": "/public/x",
}
IDENTITY = {name.lower() for name in proxyconf.DEFAULT_HEADERS}


@dataclass
class Seeded:
    url: str
    org: str
    bob: str  # an org-reader's token
    bob_token_id: str
    admin: str  # an admin key


async def _seed(url: str, issuer: str) -> Seeded:
    settings = load_settings(environ={}, env="development", database={"url": url})
    async with Services.open(settings) as services:
        await services.runtime.prepare_schema()
        org = await create_organization(services.store, name=f"acme-{secrets.token_hex(3)}")
        await add_members(services.store, org.id, issuer, ["bob"])
        issued = await personal_token(services, issuer, "bob")
        _, admin = await create_admin_key(services.runtime.engine, SystemClock())
    return Seeded(url, org.id, issued.token.reveal(), issued.record.id, admin.reveal())


Proxied = Callable[[int, str], LiveProxy]  # (watchword's port, app URL) -> the proxy


@pytest.fixture(params=["nginx", "caddy"])
def proxied(
    request: pytest.FixtureRequest, live_nginx: LiveNginx, live_caddy: LiveCaddy
) -> Proxied:
    def start(ww_port: int, app: str) -> LiveProxy:
        ww = f"http://127.0.0.1:{ww_port}"
        if request.param == "nginx":
            return live_nginx(
                lambda listen: proxyconf.nginx_server(
                    listen=listen, server_name="_", watchword=ww, app=app
                )
            )
        return live_caddy(
            lambda address: proxyconf.caddyfile_site(address=address, watchword=ww, app=app)
        )

    return start


def _last(app: EchoApp) -> dict[str, str]:
    assert app.requests, "the app received nothing"
    return app.requests[-1].headers


async def test_through_a_real_proxy_only_watchwords_yes_and_headers_reach_the_app(
    tmp_path: Path, proxied: Proxied, live_watchword: LiveWatchword, echo_app: EchoApp
) -> None:
    ww_port = free_port()
    proxy = proxied(ww_port, echo_app.url)
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    db = f"sqlite+aiosqlite:///{tmp_path / 'edge.sqlite3'}"
    seeded = await _seed(db, proxy.url)
    live_watchword(
        {
            "WATCHWORD_DATABASE__URL": db,
            "WATCHWORD_ISSUER_URL": proxy.url,  # the public origin: the proxy's
            "WATCHWORD_EDGE__ROUTES_FILE": str(routes),
            "WATCHWORD_SECRET_KEY": secrets.token_urlsafe(32),
            "WATCHWORD_AUTH__FAILED_LIMIT": "off",
        },
        port=ww_port,
    )
    project = f"/orgs/{seeded.org}/projects/web/runs?page=2"
    bob = {"Authorization": f"Bearer {seeded.bob}"}
    async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as client:
        # An anonymous browser: to sign-in on the app's own origin, back to where it was.
        browser = await client.get(project, headers={"Accept": "text/html"})
        assert browser.status_code == 302, browser.text
        target = urlsplit(browser.headers["location"])
        assert target.path == "/auth/login" and target.netloc in {"", f"127.0.0.1:{proxy.port}"}
        assert parse_qs(target.query)["return_to"] == [proxy.url + project]
        # An API client: 401 problem+json.
        api = await client.get(project, headers={"Accept": "application/json"})
        assert api.status_code == 401
        assert api.headers["content-type"].startswith("application/problem+json")
        assert len(echo_app.requests) == 0

        # A member's token: the app sees watchword's headers, none of the forged ones.
        allowed = await client.get(project, headers={**bob, **FORGED, "X_Watchword_Subject": "x"})
        assert allowed.status_code == 200, allowed.text
        seen = _last(echo_app)
        assert seen["x-watchword-subject"] == "bob"
        assert seen["x-watchword-issuer"] == proxy.url
        assert seen["x-watchword-organizations"] == seeded.org
        assert "x-forwarded-access-token" not in seen  # the route did not ask for it
        assert "x-watchword-jwt-assertion" not in seen
        assert "x_watchword_subject" not in seen
        assert json.loads(allowed.text)["path"] == project  # the app got the original path

        # The policy says read, not update: 403, and the app never sees the request.
        before = len(echo_app.requests)
        write = await client.post(project, headers=bob, content=b"{}")
        assert write.status_code == 403
        foreign = await client.get("/orgs/org_other/projects/web/", headers=bob)
        assert foreign.status_code == 403
        assert len(echo_app.requests) == before

        # A public route: passes without a credential, with no identity header at all.
        public = await client.get("/public/app.css", headers=FORGED)
        assert public.status_code == 200
        assert not IDENTITY & set(_last(echo_app))

        # An authenticated route with an assertion for the app: present, a JWT.
        me = await client.get("/me", headers=bob)
        assert me.status_code == 200
        assert _last(echo_app)["x-watchword-jwt-assertion"].count(".") == 2
        keys = await client.get("/.well-known/watchword/jwks.json")
        assert keys.status_code == 200 and keys.json()["keys"][0]["alg"] == "ES256"

        # Revoked (through watchword's API, as an operator would): 401 at once.
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ww_port}") as direct:
            done = await direct.post(
                f"/v1/tokens/{seeded.bob_token_id}/revoke",
                headers={"Authorization": f"Bearer {seeded.admin}"},
            )
            assert done.status_code in {200, 204}, done.text
        gone = await client.get(project, headers={**bob, "Accept": "application/json"})
        assert gone.status_code == 401
