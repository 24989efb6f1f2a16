"""Sessions across live ``watchword serve`` processes: two replicas on one PostgreSQL database
share sessions and learn at once (LISTEN/NOTIFY) of one ended on the other; a provider's
back-channel logout ends a session in a live server.

The browser is played by httpx clients: one per watchword server (a session cookie is moved
from one replica to the other by hand, as a load balancer would send it) and one at the
provider (``agent``, which keeps the provider's own session).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
from sqlalchemy.engine import make_url
from tests.conftest import PgDatabases
from tests.integration.signin.conftest import live_env
from tests.oidc.plugin import DEFAULT_CLIENT_ID, OidcClient, OidcProvider, OidcProviderFactory
from tests.support.live import LiveServer, LiveWatchword, free_port

COOKIE = "watchword_session"  # development: no __Host- prefix, not Secure
POLL_S = 30.0  # generous upper bounds; every wait returns as soon as its condition holds


def _query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def _client(*urls: str) -> OidcClient:
    return OidcClient(
        client_id=DEFAULT_CLIENT_ID,
        redirect_uris=[f"{url}/auth/callback" for url in urls],
        post_logout_redirect_uris=[f"{url}/auth/signed-out" for url in urls],
    )


async def _sign_in(
    server: LiveServer, provider: OidcProvider, browser: httpx.AsyncClient, agent: httpx.AsyncClient
) -> tuple[str, dict[str, str]]:
    """Sign alice in through ``server``; her session cookie and the callback's parameters."""
    started = await browser.get(f"{server.url}/auth/login", params={"provider": "test"})
    assert started.status_code == 302, started.text
    back = await provider.authorize(started.headers["location"], login="alice", agent=agent)
    assert back.startswith(f"{server.url}/auth/callback?"), back
    done = await browser.get(back)
    assert done.status_code == 302, done.text
    cookie = browser.cookies.get(COOKIE)
    assert cookie, done.headers
    return cookie, _query(back)


async def _me(server: LiveServer, cookie: str) -> httpx.Response:
    """``/v1/me`` with only this cookie (a fresh client: no jar shared between hosts)."""
    async with httpx.AsyncClient(timeout=30.0) as fresh:
        return await fresh.get(f"{server.url}/v1/me", headers={"Cookie": f"{COOKIE}={cookie}"})


async def _home(server: LiveServer, cookie: str) -> httpx.Response:
    """``GET /`` with this cookie: 200 (the signed-in page) while the process accepts the
    session, 302 to /auth/login once it does not. It only resolves the cookie (from the
    session cache when there), unlike /v1/me, which also reads the session row."""
    async with httpx.AsyncClient(timeout=30.0) as fresh:
        return await fresh.get(
            f"{server.url}/", headers={"Cookie": f"{COOKIE}={cookie}", "Accept": "text/html"}
        )


async def _feed_listeners(conninfo: str, database: str) -> int:
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND application_name = 'watchword-feed' AND query LIKE 'LISTEN %%'",
            (database,),
        )
        row = await cursor.fetchone()
    return int(row[0]) if row else 0


async def test_replicas_on_one_postgres_share_sessions_and_an_ended_one_is_refused_at_once(
    oidc_provider_factory: OidcProviderFactory,
    live_watchword: LiveWatchword,
    pg_databases: PgDatabases,
) -> None:
    database_url = str(pg_databases.create("ww_replicas"))
    port_a, port_b = free_port(), free_port()
    url_a, url_b = f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}"
    provider = oidc_provider_factory(clients=[_client(url_a, url_b)])
    shared = {
        "WATCHWORD_DATABASE__URL": database_url,
        "WATCHWORD_SECRET_KEY": secrets.token_urlsafe(32),  # the same key: B opens A's seals
    }
    # A trusts its session cache for an hour, so only the change feed can make it refuse a
    # session that B ended within this test's time (its next database touch is a minute off).
    a = live_watchword(
        live_env(provider) | shared | {"WATCHWORD_SESSIONS__CACHE_TTL": "1h"}, name="a", port=port_a
    )
    # One after the other: each migrates the (shared) database on start in development.
    b = live_watchword(live_env(provider) | shared, name="b", port=port_b)

    url = make_url(database_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    deadline = time.monotonic() + POLL_S
    while (listening := await _feed_listeners(conninfo, str(url.database))) < 2:
        assert time.monotonic() < deadline, f"{listening} feed listener(s), expected A's and B's"
        await asyncio.sleep(0.1)
    for server in (a, b):
        started = [r.get("job") for r in server.log_records() if r.get("event") == "job_started"]
        assert "session_feed" in started, (server.name, started)

    async with (
        httpx.AsyncClient(timeout=30.0) as browser_a,
        httpx.AsyncClient(timeout=30.0) as browser_b,
        httpx.AsyncClient(timeout=30.0) as agent,
    ):
        cookie, callback = await _sign_in(a, provider, browser_a, agent)
        on_a = await _me(a, cookie)  # in A's session cache since the callback
        assert on_a.status_code == 200, on_a.text
        assert (await _home(a, cookie)).status_code == 200
        on_b = await _me(b, cookie)  # the same session, read by B from the database
        assert on_b.status_code == 200, on_b.text
        assert on_b.json()["subject"] == {"issuer": provider.issuer, "id": "alice-0001"}
        assert on_b.json()["session"]["id"] == on_a.json()["session"]["id"]

        # Sign out through B.
        out = await browser_b.post(
            f"{b.url}/auth/logout",
            headers={"Origin": b.url, "Cookie": f"{COOKIE}={cookie}"},
        )
        assert out.status_code == 303, out.text
        end_session = out.headers["location"]
        assert end_session.startswith(provider.end_session_endpoint), end_session
        id_token = _query(end_session)["id_token_hint"]
        assert _query(end_session)["post_logout_redirect_uri"] == f"{b.url}/auth/signed-out"
        gone_b = await _me(b, cookie)
        assert gone_b.status_code == 401 and gone_b.json()["code"] == "session_invalid"

        # A has the session cached (for an hour); B's NOTIFY drops it there.
        deadline = time.monotonic() + POLL_S
        while (home := await _home(a, cookie)).status_code == 200:
            assert time.monotonic() < deadline, "A still accepts the session B ended"
            await asyncio.sleep(0.1)
        assert home.status_code == 302 and home.headers["location"] == "/auth/login", home.text
        gone_a = await _me(a, cookie)
        assert gone_a.status_code == 401 and gone_a.json()["code"] == "session_invalid"

    # No secret of the sign-in reached either log.
    secrets_seen = {
        "session cookie": cookie,
        "session secret": cookie.split(".", 1)[1],
        "id token": id_token,
        "authorization code": callback["code"],
    }
    assert "signin_completed" in a.log_text()  # the logs were written: the search means something
    for server in (a, b):
        log = server.log_text()
        for what, value in secrets_seen.items():
            assert value not in log, f"the {what} is in {server.name}'s log"


async def test_a_back_channel_logout_from_the_provider_ends_the_session_in_a_live_server(
    oidc_provider_factory: OidcProviderFactory, live_watchword: LiveWatchword
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    client = _client(base)
    client.backchannel_logout_uri = f"{base}/auth/backchannel-logout"
    client.backchannel_logout_session_required = True
    provider = oidc_provider_factory(clients=[client])
    server = live_watchword(live_env(provider), port=port)

    async with (
        httpx.AsyncClient(timeout=30.0) as browser,
        httpx.AsyncClient(timeout=30.0) as agent,
    ):
        cookie, _ = await _sign_in(server, provider, browser, agent)
        assert (await _me(server, cookie)).status_code == 200

        # Signed out at the provider from somewhere else: no id_token_hint, only client_id.
        # end_session returns once the provider has posted its logout token (or failed to).
        landed = await provider.end_session(
            {"client_id": client.client_id, "post_logout_redirect_uri": f"{base}/auth/signed-out"},
            agent=agent,
        )
        assert landed.startswith(f"{base}/auth/signed-out"), landed
        events = provider.events()
        errors = [e for e in events if e.get("event") == "backchannel.error"]
        assert not errors, errors
        assert any(e.get("event") == "backchannel.success" for e in events), events

        gone = await _me(server, cookie)
        assert gone.status_code == 401 and gone.json()["code"] == "session_invalid", gone.text
        assert (await _home(server, cookie)).status_code == 302  # not only the row: the cache
    ended = [r for r in server.log_records() if r.get("event") == "backchannel_logout"]
    assert [r.get("ended") for r in ended] == [1], ended
