"""Forward-auth decisions over HTTP, in process: route table, credentials, policy, headers.

The real proxies in front of it are tested in ``test_proxies_watchword.py``; here each
proxy's convention is spoken by the test itself.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import event
from tests.support.seed import add_members, personal_token

from watchword.api.app import create_app
from watchword.api.deps import session_cookie_name
from watchword.clock import FakeClock
from watchword.config import EdgeSettings, load_settings
from watchword.rbac.store.organizations import create_organization
from watchword.runtime import Runtime
from watchword.services import Services
from watchword.storage.db import create_engine_for_url
from watchword.storage.migrate import upgrade_engine
from watchword.tokens.scope import Permission

AUDIENCE = "https://app.example"
OWNED = (
    "x-watchword-subject",
    "x-watchword-issuer",
    "x-watchword-email",
    "x-watchword-groups",
    "x-watchword-organizations",
    "x-watchword-jwt-assertion",
    "x-forwarded-access-token",
)
ROUTES = [
    {"name": "public", "path": "/public/**", "allow": "anonymous"},
    {
        "name": "me",
        "path": "/me",
        "allow": "authenticated",
        "assertion": {"audience": AUDIENCE},
    },
    {
        "name": "projects",
        "path": "/orgs/{org}/projects/{project}/**",
        "resource": "watchword:projects",
        "actions": {"GET": "read", "HEAD": "read"},
        "action": "update",
        "object": {"id": "{project}", "organization": "{org}", "project": "{project}"},
    },
]


@dataclass
class World:
    services: Services
    app: FastAPI
    client: httpx.AsyncClient
    clock: FakeClock
    acme: str
    globex: str
    bob: dict[str, str]  # an org-reader of acme


async def _world(tmp_path: Path, edge: EdgeSettings, **environ: str) -> tuple[Services, FakeClock]:
    engine = create_engine_for_url(f"sqlite+aiosqlite:///{tmp_path / 'edge.sqlite3'}")
    await upgrade_engine(engine)
    settings = load_settings(environ={"WATCHWORD_SECRET_KEY": secrets.token_urlsafe(32), **environ})
    settings = settings.model_copy(update={"edge": edge})
    clock = FakeClock()
    return Services.build(Runtime(settings=settings, engine=engine, clock=clock)), clock


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    services, clock = await _world(tmp_path, EdgeSettings(routes=ROUTES))
    iss = services.runtime.settings.issuer_url
    acme = await create_organization(services.store, name="acme")
    globex = await create_organization(services.store, name="globex")
    await add_members(services.store, acme.id, iss, ["bob"])
    issued = await personal_token(services, iss, "bob")
    bob = {"Authorization": f"Bearer {issued.token.reveal()}"}
    app = create_app(services=services)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://ww.test") as client:
        yield World(services, app, client, clock, acme.id, globex.id, bob)
    await services.aclose()
    await services.runtime.close()


def nginx(uri: str, method: str = "GET", **headers: str) -> dict[str, str]:
    return {"X-Original-URI": uri, "X-Original-Method": method, "Host": "app.test", **headers}


def caddy(uri: str, method: str = "GET", **headers: str) -> dict[str, str]:
    return {
        "X-Forwarded-Uri": uri,
        "X-Forwarded-Method": method,
        "X-Forwarded-Host": "app.test",
        "X-Forwarded-Proto": "https",
        **headers,
    }


def owned(response: httpx.Response) -> dict[str, str | None]:
    return {name: response.headers.get(name) for name in OWNED}


async def test_a_member_passes_on_read_and_is_denied_the_write_and_other_organizations(
    world: World,
) -> None:
    c, bob = world.client, world.bob
    uri = f"/orgs/{world.acme}/projects/web/pages?x=1"
    ok = await c.get("/auth/verify", headers={**nginx(uri), **bob})
    assert ok.status_code == 200, ok.text
    assert ok.headers["x-watchword-subject"] == "bob"
    assert ok.headers["x-watchword-issuer"] == world.services.runtime.settings.issuer_url
    assert ok.headers["x-watchword-organizations"] == world.acme
    assert ok.headers["x-watchword-route"] == "projects"
    assert ok.headers["cache-control"] == "no-store"
    assert set(OWNED) <= set(ok.headers)  # every owned header, set or empty

    write = await c.get("/auth/verify", headers={**nginx(uri, "POST"), **bob})
    assert write.status_code == 403 and write.json()["code"] == "forbidden"
    assert all(v == "" for v in owned(write).values())  # blanked, never absent
    foreign = await c.get(
        "/auth/verify", headers={**nginx(f"/orgs/{world.globex}/projects/web/"), **bob}
    )
    assert foreign.status_code == 403


async def test_no_credential_is_401_for_nginx_and_a_sign_in_redirect_for_a_caddy_browser(
    world: World,
) -> None:
    c = world.client
    api = await c.get("/auth/verify", headers=nginx("/me", Accept="text/html"))
    assert api.status_code == 401  # nginx turns anything else into a 500
    assert api.headers["content-type"] == "application/problem+json"
    assert api.headers["www-authenticate"].startswith("Bearer")
    browser = await c.get("/auth/verify", headers=caddy("/me?tab=1", Accept="text/html"))
    assert browser.status_code == 302
    target = urlsplit(browser.headers["location"])
    assert target.path == "/auth/login"
    assert parse_qs(target.query)["return_to"] == ["https://app.test/me?tab=1"]
    client = await c.get("/auth/verify", headers=caddy("/me", Accept="application/json"))
    assert client.status_code == 401
    # nginx's error_page target: the browser to sign-in, the API client a 401.
    start = await c.get("/auth/start", headers=nginx("/me?a=b&c=d", Accept="text/html"))
    assert start.status_code == 302
    assert parse_qs(urlsplit(start.headers["location"]).query)["return_to"] == [
        "http://app.test/me?a=b&c=d"
    ]
    assert (await c.get("/auth/start", headers=nginx("/me"))).status_code == 401


async def test_anonymous_routes_pass_with_blank_headers_and_unknown_paths_are_denied(
    world: World,
) -> None:
    c = world.client
    public = await c.get("/auth/verify", headers=nginx("/public/a.css"))
    assert public.status_code == 200 and all(v == "" for v in owned(public).values())
    nowhere = await c.get("/auth/verify", headers={**nginx("/admin"), **world.bob})
    assert nowhere.status_code == 403 and "no route" in nowhere.json()["detail"]
    for sneaky in (
        f"/public/../orgs/{world.acme}/projects/web/",
        "/public/%2e%2e/admin",
        "/public//admin",
        "/public/a%2Fb",
        "/public/%ff",
    ):
        refused = await c.get("/auth/verify", headers=nginx(sneaky))
        assert refused.status_code == 403, sneaky
        assert refused.json()["code"] == "non_canonical_path", sneaky


async def test_a_revoked_token_is_401_and_an_admin_key_passes_without_a_subject(
    world: World,
) -> None:
    c, services = world.client, world.services
    iss = services.runtime.settings.issuer_url
    issued = await personal_token(
        services, iss, "bob", name="gone", permission=Permission.READ_ONLY
    )
    headers = {"Authorization": f"Bearer {issued.token.reveal()}"}
    assert (await c.get("/auth/verify", headers={**nginx("/me"), **headers})).status_code == 200
    await services.tokens.revoke(issued.record.id)
    revoked = await c.get("/auth/verify", headers={**nginx("/me"), **headers})
    assert revoked.status_code == 401 and revoked.json()["code"] == "unauthenticated"


async def test_proxy_headers_from_an_untrusted_address_are_refused(world: World) -> None:
    transport = httpx.ASGITransport(
        app=world.app, raise_app_exceptions=False, client=("192.0.2.7", 40000)
    )
    async with httpx.AsyncClient(transport=transport, base_url="http://ww.test") as outsider:
        forged = await outsider.get("/auth/verify", headers={**nginx("/public/x"), **world.bob})
        assert forged.status_code == 403 and forged.json()["code"] == "untrusted_proxy"
        # Nor does X-Forwarded-For from there make it look like loopback.
        spoofed = await outsider.get(
            "/auth/verify", headers={**nginx("/public/x"), "X-Forwarded-For": "127.0.0.1"}
        )
        assert spoofed.status_code == 403 and spoofed.json()["code"] == "untrusted_proxy"


async def test_the_assertion_verifies_against_the_published_keys_for_its_audience(
    world: World,
) -> None:
    c = world.client
    answer = await c.get("/auth/verify", headers={**nginx("/me"), **world.bob})
    assert answer.status_code == 200
    token = answer.headers["x-watchword-jwt-assertion"]
    keys = KeySet.import_key_set((await c.get("/.well-known/watchword/jwks.json")).json())
    decoded = jwt.decode(token, keys)
    claims = decoded.claims
    assert decoded.header["alg"] == "ES256"
    assert claims["aud"] == AUDIENCE and claims["sub"] == "bob"
    assert claims["iss"] == world.services.runtime.settings.issuer_url
    assert claims["organizations"] == [world.acme]
    assert claims["exp"] - claims["iat"] == 60
    # Not for another route: the projects route asked for none.
    other = await c.get(
        "/auth/verify", headers={**nginx(f"/orgs/{world.acme}/projects/web/"), **world.bob}
    )
    assert other.headers["x-watchword-jwt-assertion"] == ""


async def test_a_decision_on_a_warm_cache_reads_no_database(world: World) -> None:
    c, bob = world.client, world.bob
    uri = nginx(f"/orgs/{world.acme}/projects/web/")
    assert (await c.get("/auth/verify", headers={**uri, **bob})).status_code == 200
    seen: list[str] = []
    engine = world.services.runtime.engine.sync_engine

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(3):
            assert (await c.get("/auth/verify", headers={**uri, **bob})).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert seen == []


async def test_the_route_file_reloads_and_a_bad_edit_keeps_the_active_table(
    tmp_path: Path,
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - {name: a, path: /a, allow: anonymous}\n")
    services, clock = await _world(tmp_path, EdgeSettings(routes_file=str(routes)))
    try:
        source = services.edge.routes
        assert [r.name for r in source.current().routes] == ["a"]
        routes.write_text("routes:\n  - {name: b, path: /b, allow: anonymous}\n")
        assert [r.name for r in source.current().routes] == ["a"]  # checked every second
        clock.advance(timedelta(seconds=1))
        assert [r.name for r in source.current().routes] == ["b"]
        routes.write_text("routes:\n  - {name: c, path: /c/**/d, allow: anonymous}\n")
        clock.advance(timedelta(seconds=1))
        assert [r.name for r in source.current().routes] == ["b"]
        assert source.last_error is not None and "/routes/0/path" in source.last_error
    finally:
        await services.aclose()
        await services.runtime.close()


async def test_start_takes_ingress_nginx_rd_and_refuses_a_foreign_one(world: World) -> None:
    c = world.client
    own = world.services.runtime.settings.issuer_url
    sent = await c.get(
        "/auth/start", params={"rd": f"{own}/orgs/x?y=1"}, headers={"Accept": "text/html"}
    )
    assert sent.status_code == 302
    assert parse_qs(urlsplit(sent.headers["location"]).query)["return_to"] == [f"{own}/orgs/x?y=1"]
    evil = await c.get(
        "/auth/start", params={"rd": "https://evil.example/"}, headers={"Accept": "text/html"}
    )
    assert evil.status_code == 400 and evil.json()["code"] == "return_to_refused"


async def test_two_conventions_naming_different_requests_are_refused(world: World) -> None:
    both = {**nginx("/public/x"), "X-Forwarded-Uri": f"/orgs/{world.acme}/projects/web/"}
    refused = await world.client.get("/auth/verify", headers={**both, **world.bob})
    assert refused.status_code == 403 and refused.json()["code"] == "no_original_request"
    same = {**nginx("/public/x"), "X-Forwarded-Uri": "/public/x"}
    assert (await world.client.get("/auth/verify", headers=same)).status_code == 200


async def test_a_route_naming_what_the_policy_lacks_denies_without_a_server_error(
    tmp_path: Path,
) -> None:
    routes = [{"name": "ghost", "path": "/g", "resource": "nowhere:things", "action": "read"}]
    services, _ = await _world(tmp_path, EdgeSettings(routes=routes))
    try:
        iss = services.runtime.settings.issuer_url
        token = (await personal_token(services, iss, "bob")).token.reveal()
        transport = httpx.ASGITransport(app=create_app(services=services))
        async with httpx.AsyncClient(transport=transport, base_url="http://ww.test") as c:
            answer = await c.get(
                "/auth/verify", headers={**nginx("/g"), "Authorization": f"Bearer {token}"}
            )
        assert answer.status_code == 403
        assert "nowhere:things" in answer.json()["detail"]
    finally:
        await services.aclose()
        await services.runtime.close()


async def test_envoy_sends_the_original_path_after_its_prefix(world: World) -> None:
    c, bob = world.client, world.bob
    path = f"/auth/envoy/orgs/{world.acme}/projects/web/x"
    allowed = await c.get(path, params={"q": "1"}, headers={"Host": "app.test", **bob})
    assert allowed.status_code == 200 and allowed.headers["x-watchword-route"] == "projects"
    assert allowed.headers["x-watchword-subject"] == "bob"
    written = await c.post(path, headers={"Host": "app.test", **bob})
    assert written.status_code == 403
    browser = await c.get(path, headers={"Host": "app.test", "Accept": "text/html"})
    assert browser.status_code == 302  # Envoy relays a denied answer as it is
    assert parse_qs(urlsplit(browser.headers["location"]).query)["return_to"] == [
        f"http://app.test/orgs/{world.acme}/projects/web/x"
    ]


async def test_envoy_paths_are_decided_as_sent_never_decoded_twice(world: World) -> None:
    c, bob = world.client, world.bob
    for sneaky in ("/auth/envoy/public/x%3F/%2E%2E/%2E%2E/me", "/auth/envoy/public/a%2Fb"):
        answer = await c.get(sneaky, headers={"Host": "app.test", **bob})
        assert answer.status_code == 403, sneaky
        assert answer.json()["code"] == "non_canonical_path", sneaky


async def test_a_cross_site_write_with_the_session_cookie_is_refused(world: World) -> None:
    c = world.client
    cookie = {"Cookie": f"{session_cookie_name(world.services)}=ses_whatever"}
    uri = f"/orgs/{world.acme}/projects/web/x"
    forged = await c.get(
        "/auth/verify",
        headers={**caddy(uri, "POST"), **cookie, "Origin": "https://evil.example"},
    )
    assert forged.status_code == 403 and forged.json()["code"] == "csrf_origin_mismatch"
    blind = await c.get("/auth/verify", headers={**caddy(uri, "POST"), **cookie})
    assert blind.status_code == 403  # neither Origin nor Referer: refused too
    same = await c.get(
        "/auth/verify",
        headers={**caddy(uri, "POST"), **cookie, "Origin": "https://app.test"},
    )
    assert same.status_code == 401  # on to authentication (this cookie is no session)
    fetched = await c.get(
        "/auth/verify",
        headers={**caddy(uri, "DELETE"), **cookie, "Sec-Fetch-Site": "same-origin"},
    )
    assert fetched.status_code == 401
    read = await c.get("/auth/verify", headers={**caddy(uri), **cookie})
    assert read.status_code == 401  # a read is never a CSRF question
    bearer = await c.get(
        "/auth/verify",
        headers={**caddy(uri, "POST"), **world.bob, "Origin": "https://evil.example"},
    )
    assert bearer.status_code == 403 and bearer.json()["code"] == "forbidden"  # the policy's


async def test_past_the_failed_authentication_limit_only_anonymous_routes_pass(
    tmp_path: Path,
) -> None:
    services, _ = await _world(
        tmp_path, EdgeSettings(routes=ROUTES), WATCHWORD_AUTH__FAILED_LIMIT="2/minute"
    )
    try:
        app = create_app(services=services)
        transport = httpx.ASGITransport(app=app)
        bad = {"Authorization": "Bearer wwp_not-a-real-token"}
        async with httpx.AsyncClient(transport=transport, base_url="http://ww.test") as c:
            for _ in range(3):
                assert (
                    await c.get("/auth/verify", headers={**nginx("/me"), **bad})
                ).status_code == 401
            limited = await c.get("/auth/verify", headers={**nginx("/me"), **bad})
            assert limited.status_code == 401  # never a 429: nginx would make it a 500
            assert int(limited.headers["retry-after"]) >= 1
            public = await c.get("/auth/verify", headers={**nginx("/public/a.css"), **bad})
            assert public.status_code == 200
    finally:
        await services.aclose()
        await services.runtime.close()


async def test_the_router_free_lane_answers_as_the_router_does(world: World) -> None:
    """``/auth/verify`` without a query string skips the router (api.routes.edge.EdgeLane);
    with one it goes through the router: both answer alike, with the request id, and count
    under the route's template."""
    c, bob = world.client, world.bob
    asks = [
        {**nginx(f"/orgs/{world.acme}/projects/web/"), **bob},  # 200
        {**nginx(f"/orgs/{world.acme}/projects/web/", "POST"), **bob},  # 403 by policy
        nginx("/me"),  # 401
        nginx("/me/../admin"),  # 403 non-canonical
        {"Host": "app.test", **bob},  # 403 no original request
        {**nginx("/me"), "Authorization": "Bearer wwp_not_a_real_token"},  # 401, bad token
    ]
    registry = world.services.runtime.registry
    before = registry.get_sample_value(
        "watchword_http_requests_total",
        {"method": "GET", "route": "/auth/verify", "status": "200"},
    )
    for headers in asks:
        lane = await c.get("/auth/verify", headers=headers)
        routed = await c.get("/auth/verify?via=router", headers=headers)
        assert lane.status_code == routed.status_code, (headers, lane.text, routed.text)
        assert owned(lane) == owned(routed)
        assert lane.headers.get("x-watchword-route") == routed.headers.get("x-watchword-route")
        assert lane.headers["x-request-id"] and routed.headers["x-request-id"]
        assert lane.headers["x-request-id"] != routed.headers["x-request-id"]
        if lane.status_code >= 400:
            assert lane.json()["code"] == routed.json()["code"]
            assert lane.json()["request_id"] == lane.headers["x-request-id"]
    after = registry.get_sample_value(
        "watchword_http_requests_total",
        {"method": "GET", "route": "/auth/verify", "status": "200"},
    )
    assert (after or 0) - (before or 0) == 2  # the one allowed ask, once each way
    # A method the route does not take still gets the router's 405.
    assert (await c.request("TRACE", "/auth/verify", headers=bob)).status_code == 405
