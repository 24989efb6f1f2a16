"""Sign-in end to end against a real OpenID provider (npm ``oidc-provider`` on loopback):
the code flow with PKCE, the session row with sealed tokens, ``/v1/me``, sign-out with
upstream revocation, and every refusal with its stable code."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from tests.integration.signin.conftest import BASE, SigninFactory, query
from tests.oidc.plugin import AUTHZ_CLAIM, OidcProvider, OidcProviderFactory

from watchword.clock import FakeClock
from watchword.sessions.sealing import SealedColumn
from watchword.sessions.tables import sessions

HTML = {"Accept": "text/html,application/xhtml+xml"}
ORIGIN = {"Origin": BASE}


async def _tokens(made: Any) -> dict[str, str]:
    """The session's upstream tokens, opened with the process's key (the test's view)."""
    async with made.services.runtime.engine.connect() as conn:
        row = (await conn.execute(select(sessions))).one()._mapping
    sealer = made.services.sessions.sealer
    return {
        column: sealer.open(row[column], session_id=row["id"], column=column).reveal()
        for column in (SealedColumn.ACCESS_TOKEN, SealedColumn.REFRESH_TOKEN, SealedColumn.ID_TOKEN)
        if row[column] is not None
    }


async def _refresh_upstream(provider: OidcProvider, refresh_token: str) -> httpx.Response:
    client = provider.clients["watchword-test"]
    async with httpx.AsyncClient() as http:
        return await http.post(
            provider.token_endpoint,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client.client_id, client.client_secret or ""),
        )


async def test_sign_in_session_me_and_sign_out_with_upstream_revocation(
    oidc_provider_factory: OidcProviderFactory,
    signin_app: SigninFactory,
    signin_database: str | None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    provider = oidc_provider_factory(expires_with_session=True)
    made = await signin_app(provider)

    started = await made.client.get(
        "/auth/login", params={"provider": "test", "return_to": "/x?y=1"}
    )
    assert started.status_code == 302
    auth = query(started.headers["location"])
    assert auth["code_challenge_method"] == "S256" and len(auth["code_challenge"]) == 43
    assert auth["redirect_uri"] == BASE + "/auth/callback" and auth["nonce"] and auth["state"]
    back = await provider.authorize(started.headers["location"], login="alice", agent=made.agent)
    done = await made.client.get(back.removeprefix(BASE))
    assert done.status_code == 302 and done.headers["location"] == "/x?y=1"
    set_cookie = done.headers["set-cookie"]
    assert "watchword_session=ses_" in set_cookie
    assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie

    metrics = (await made.client.get("/metrics")).text
    assert 'watchword_signins_total{outcome="ok",provider="test"} 1.0' in metrics or (
        'watchword_signins_total{provider="test",outcome="ok"} 1.0' in metrics
    )
    assert 'watchword_signin_callback_seconds_count{provider="test"} 1.0' in metrics

    me = await made.client.get("/v1/me")
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["subject"] == {"issuer": provider.issuer, "id": "alice-0001"}
    assert body["credential"] == "session" and body["account_type"] == "user"
    assert body["claims"]["email"] == "alice@example.com"
    assert body["claims"]["groups"] == ["engineering", "admins"]
    assert body["session"]["provider"] == "test"
    assert body["acl"]["subject"]["id"] == "alice-0001"

    tokens = await _tokens(made)
    assert set(tokens) == {"access_token", "refresh_token", "id_token"}
    for value in tokens.values():
        assert value not in me.text
    if signin_database is None:  # the SQLite file holds no plaintext token
        raw = _database_bytes(tmp_path)
        for value in tokens.values():
            assert value.encode() not in raw
    logs = capsys.readouterr()
    for value in [*tokens.values(), made.cookie() or "?"]:
        assert value not in logs.out and value not in logs.err

    out = await made.client.post("/auth/logout", headers=ORIGIN)
    assert out.status_code == 303
    end = out.headers["location"]
    assert end.startswith(provider.end_session_endpoint)
    assert query(end)["id_token_hint"] == tokens["id_token"]
    assert query(end)["post_logout_redirect_uri"] == BASE + "/auth/signed-out"
    assert made.cookie() is None
    refused = await _refresh_upstream(provider, tokens["refresh_token"])
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    async with made.services.runtime.engine.connect() as conn:
        assert (await conn.execute(select(sessions))).first() is None

    landed = await provider.end_session(end, agent=made.agent)
    assert landed == BASE + "/auth/signed-out"
    page = await made.client.get("/auth/signed-out", headers=HTML)
    assert page.status_code == 200 and "signed out" in page.text


async def test_every_sign_in_is_a_new_session_that_replaces_the_browsers_old_one(
    oidc_provider: OidcProvider, signin_app: SigninFactory
) -> None:
    made = await signin_app(oidc_provider)
    assert (await made.sign_in()).status_code == 302
    first = made.cookie()
    assert (await made.sign_in()).status_code == 302
    second = made.cookie()
    assert first and second and first.split(".")[0] != second.split(".")[0]  # no fixation
    made.client.cookies.set("watchword_session", first)
    replaced = await made.client.get("/v1/me")
    assert replaced.status_code == 401 and replaced.json()["code"] == "session_invalid"
    made.client.cookies.set("watchword_session", second)
    assert (await made.client.get("/v1/me")).status_code == 200
    assert (await made.client.post("/auth/logout", headers=ORIGIN)).status_code == 303
    made.client.cookies.set("watchword_session", second)
    gone = await made.client.get("/v1/me")
    assert gone.status_code == 401 and gone.json()["code"] == "session_invalid"


async def test_a_session_ended_elsewhere_while_still_cached_here_is_refused_not_missing(
    oidc_provider: OidcProvider, signin_app: SigninFactory
) -> None:
    # Another process ended it: the row is gone, this process's cache still has the session
    # (until the change feed or sessions.cache_ttl drops it). /v1/me said 404 no session.
    made = await signin_app(oidc_provider)
    await made.sign_in()
    assert (await made.client.get("/v1/me")).status_code == 200
    async with made.services.runtime.engine.begin() as conn:
        await conn.execute(sessions.delete())
    gone = await made.client.get("/v1/me")
    assert gone.status_code == 401 and gone.json()["code"] == "session_invalid", gone.text


async def test_forged_used_and_foreign_states_are_refused(
    oidc_provider: OidcProvider, signin_app: SigninFactory
) -> None:
    made = await signin_app(oidc_provider)
    started = await made.client.get("/auth/login", params={"provider": "test"})
    back = await oidc_provider.authorize(
        started.headers["location"], login="alice", agent=made.agent
    )
    path = back.removeprefix(BASE)
    params = query(back)

    forged = await made.client.get("/auth/callback", params={**params, "state": "x" * 43})
    assert forged.status_code == 400 and forged.json()["code"] == "signin_state_invalid"

    # Another browser (no binding cookie, or its own) cannot use this state: login CSRF.
    other = httpx.AsyncClient(transport=made.client._transport, base_url=BASE)
    async with other:
        assert (await other.get("/auth/login", params={"provider": "test"})).status_code == 302
        foreign = await other.get(path)
        assert foreign.status_code == 400 and foreign.json()["code"] == "signin_state_invalid"
    # The attempt from the other browser did not burn the flow: its own browser finishes.
    assert (await made.client.get(path)).status_code == 302
    replay = await made.client.get(path)
    assert replay.status_code == 400 and replay.json()["code"] == "signin_state_invalid"


async def test_a_used_code_with_a_fresh_state_is_rejected_by_the_provider(
    oidc_provider: OidcProvider, signin_app: SigninFactory
) -> None:
    made = await signin_app(oidc_provider)
    started = await made.client.get("/auth/login", params={"provider": "test"})
    back = await oidc_provider.authorize(
        started.headers["location"], login="alice", agent=made.agent
    )
    assert (await made.client.get(back.removeprefix(BASE))).status_code == 302
    again = await made.client.get("/auth/login", params={"provider": "test"})
    state = query(again.headers["location"])["state"]
    replay = await made.client.get(
        "/auth/callback", params={"code": query(back)["code"], "state": state}
    )
    assert replay.status_code == 401 and replay.json()["code"] == "signin_code_rejected"


async def test_provider_errors_become_a_page_for_browsers_and_problem_json_for_clients(
    oidc_provider: OidcProvider, signin_app: SigninFactory
) -> None:
    made = await signin_app(oidc_provider)
    for headers in ({}, HTML):
        started = await made.client.get("/auth/login", params={"provider": "test"})
        back = await oidc_provider.authorize(started.headers["location"], login="nobody")
        assert query(back)["error"] == "access_denied"
        answer = await made.client.get(back.removeprefix(BASE), headers=headers)
        assert answer.status_code == 401
        if headers:
            assert answer.headers["content-type"].startswith("text/html")
            assert "signin_denied" in answer.text and "access_denied" in answer.text
            assert "Traceback" not in answer.text
        else:
            assert answer.json()["code"] == "signin_denied"
            assert answer.json()["provider_error"] == "access_denied"


@pytest.mark.parametrize(
    "return_to",
    ["//evil.example", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"],
)
async def test_open_redirects_are_refused_before_the_provider_is_asked(
    oidc_provider: OidcProvider, signin_app: SigninFactory, return_to: str
) -> None:
    made = await signin_app(oidc_provider)
    answer = await made.client.get(
        "/auth/login", params={"provider": "test", "return_to": return_to}
    )
    assert answer.status_code == 400 and answer.json()["code"] == "return_to_refused"
    page = await made.client.get(
        "/auth/login", params={"provider": "test", "return_to": return_to}, headers=HTML
    )
    assert page.status_code == 400 and "return_to_refused" in page.text
    assert "evil.example" not in page.headers.get("location", "")


async def test_tampered_and_expired_session_cookies_are_refused(
    oidc_provider: OidcProvider, signin_app: SigninFactory
) -> None:
    made = await signin_app(oidc_provider)
    await made.sign_in()
    cookie = made.cookie()
    assert cookie is not None
    session_id, secret = cookie.split(".")
    for bad in (
        f"{session_id}.{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}",
        f"{session_id}.",
        "garbage",
        f"ses_00000000000000000000000000.{secret}",
    ):
        made.client.cookies.set("watchword_session", bad)
        answer = await made.client.get("/v1/me")
        assert answer.status_code == 401 and answer.json()["code"] == "session_invalid"
    made.client.cookies.set("watchword_session", cookie)
    assert (await made.client.get("/v1/me")).status_code == 200
    assert isinstance(made.clock, FakeClock)
    made.clock.advance(timedelta(hours=1, seconds=1))  # the idle timeout
    expired = await made.client.get("/v1/me")
    assert expired.status_code == 401 and expired.json()["code"] == "session_invalid"
    assert "idle" in expired.json()["detail"]


async def test_cookie_requests_that_change_state_need_this_sites_origin(
    oidc_provider: OidcProvider, signin_app: SigninFactory
) -> None:
    made = await signin_app(oidc_provider)
    await made.sign_in()
    for headers in ({}, {"Origin": "https://evil.example"}, {"Referer": "https://evil.example/x"}):
        answer = await made.client.post("/v1/tokens", json={"name": "t"}, headers=headers)
        assert answer.status_code == 403 and answer.json()["code"] == "csrf_origin_mismatch"
    answer = await made.client.post("/v1/tokens", json={"name": "t"}, headers=ORIGIN)
    assert answer.status_code != 403 or answer.json()["code"] != "csrf_origin_mismatch"
    refused = await made.client.post("/auth/logout", headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and made.cookie() is not None


async def test_provider_down_at_discovery_and_at_the_token_endpoint(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    provider = oidc_provider_factory()
    provider.stop()
    made = await signin_app(provider)
    down = await made.client.get("/auth/login", params={"provider": "test"})
    assert down.status_code == 503 and down.json()["code"] == "provider_unavailable"
    ready = await made.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["details"]["providers"]["test"]["status"] == "failing"
    assert (await made.client.get("/healthz")).status_code == 200

    again = await made.client.get("/auth/login", params={"provider": "test"})
    assert again.status_code == 503  # within the back-off: answered without asking again
    provider.start()
    assert isinstance(made.clock, FakeClock)
    made.clock.advance(timedelta(seconds=6))  # past the discovery back-off
    started = await made.client.get("/auth/login", params={"provider": "test"})
    assert started.status_code == 302
    back = await provider.authorize(started.headers["location"], login="alice", agent=made.agent)
    provider.stop()
    failed = await made.client.get(back.removeprefix(BASE))
    assert failed.status_code == 503 and failed.json()["code"] == "provider_unavailable"


async def test_a_choice_page_lists_providers_and_escapes_their_names(
    oidc_provider: OidcProvider, signin_app: SigninFactory
) -> None:
    second = {
        "name": "second",
        "display_name": "<script>alert(1)</script>",
        "issuer": oidc_provider.issuer,
        "client_id": "watchword-test",
        "client_secret": oidc_provider.clients["watchword-test"].client_secret,
    }
    made = await signin_app(oidc_provider)
    made2 = await signin_app(
        oidc_provider,
        oidc={
            "allow_insecure_http": True,
            "providers": [
                {
                    "name": "test",
                    "issuer": oidc_provider.issuer,
                    "client_id": "watchword-test",
                    "client_secret": oidc_provider.clients["watchword-test"].client_secret,
                },
                second,
            ],
        },
    )
    del made
    page = await made2.client.get("/auth/login", headers=HTML)
    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>" not in page.text
    assert "provider=test" in page.text and "provider=second" in page.text
    unknown = await made2.client.get("/auth/login", params={"provider": "nope"})
    assert unknown.status_code == 400 and unknown.json()["code"] == "provider_unknown"


def _jwt_payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


def _database_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in folder.glob("signin-*.sqlite3*"))


async def test_outside_development_cookies_are_host_prefixed_and_secure(
    oidc_provider: OidcProvider, signin_app: SigninFactory, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'prod.sqlite3'}"
    await signin_app(oidc_provider, database_url=url)  # development: migrates the file
    made = await signin_app(oidc_provider, database_url=url, env="production")
    started = await made.client.get("/auth/login", params={"provider": "test"})
    assert started.status_code == 302
    binding = started.headers["set-cookie"]
    assert binding.startswith("__Host-watchword_signin=")
    assert "Secure" in binding and "HttpOnly" in binding and "Path=/" in binding
    assert "Domain" not in binding
    back = await oidc_provider.authorize(
        started.headers["location"], login="alice", agent=made.agent
    )
    # httpx keeps Secure cookies off http://; send the binding cookie as a browser on https would.
    value = binding.split(";")[0].split("=", 1)[1]
    done = await made.client.get(
        back.removeprefix(BASE), headers={"Cookie": f"__Host-watchword_signin={value}"}
    )
    assert done.status_code == 302, done.text
    session = done.headers["set-cookie"]
    assert session.startswith("__Host-watchword_session=ses_")
    assert "Secure" in session and "HttpOnly" in session and "samesite=lax" in session.lower()


async def test_userinfo_cannot_override_the_signed_id_tokens_claims(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    accounts = {
        "mallory": {
            "sub": "mallory-0009",
            "email": "mallory@example.com",
            "name": "Mallory",
            "groups": ["staff"],
            AUTHZ_CLAIM: {"acctype": "user", "orgIds": []},
            # What userinfo says instead (e.g. a user-editable attribute mapped there only).
            "userinfo_overrides": {
                "email": "ceo@example.com",
                "groups": ["admins"],
                AUTHZ_CLAIM: {"acctype": "system", "orgIds": ["o1"]},
            },
        }
    }
    provider = oidc_provider_factory(accounts=accounts)
    made = await signin_app(provider)
    assert (await made.sign_in(login="mallory")).status_code == 302
    claims = (await made.client.get("/v1/me")).json()["claims"]
    assert claims["email"] == "mallory@example.com"
    assert claims["groups"] == ["staff"]
    assert claims[AUTHZ_CLAIM] == {"acctype": "user", "orgIds": []}
