"""The test OIDC provider fixture against itself: plain httpx and joserfc, no watchword code.

Each test is what a relying party does: discovery, the code flow with PKCE S256 built by hand,
refresh (rotation and reuse), an outage (stop/start), key rotation, RP-initiated logout with a
back-channel logout token delivered to a receiver on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from tests.oidc.plugin import (
    AUTHZ_CLAIM,
    DEFAULT_CLIENT_ID,
    DEFAULT_POST_LOGOUT_REDIRECT_URI,
    DEFAULT_REDIRECT_URI,
    OidcClient,
    OidcProvider,
    OidcProviderFactory,
)

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
ALL_SCOPES = "openid profile email groups authz"


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class AuthRequest:
    url: str
    state: str
    nonce: str
    verifier: str


def authorization_request(
    provider: OidcProvider,
    client: OidcClient,
    *,
    scope: str = ALL_SCOPES,
    pkce: bool = True,
) -> AuthRequest:
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    params = {
        "client_id": client.client_id,
        "response_type": "code",
        "redirect_uri": client.redirect_uris[0],
        "scope": scope,
        "state": state,
        "nonce": nonce,
    }
    if pkce:
        params["code_challenge"] = _b64url(hashlib.sha256(verifier.encode()).digest())
        params["code_challenge_method"] = "S256"
    return AuthRequest(
        f"{provider.authorization_endpoint}?{urlencode(params)}", state, nonce, verifier
    )


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


async def redeem(
    provider: OidcProvider, client: OidcClient, request: AuthRequest, redirect: str
) -> dict[str, Any]:
    """Check the authorization response and exchange its code (client_secret_basic)."""
    params = query(redirect)
    assert redirect.startswith(client.redirect_uris[0] + "?"), redirect
    assert params["state"] == request.state and params["iss"] == provider.issuer
    assert client.client_secret is not None
    async with httpx.AsyncClient() as http:
        response = await http.post(
            provider.token_endpoint,
            auth=(client.client_id, client.client_secret),
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": client.redirect_uris[0],
                "code_verifier": request.verifier,
            },
        )
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    return tokens


async def refresh(provider: OidcProvider, client: OidcClient, refresh_token: str) -> httpx.Response:
    assert client.client_secret is not None
    async with httpx.AsyncClient() as http:
        return await http.post(
            provider.token_endpoint,
            auth=(client.client_id, client.client_secret),
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        )


async def provider_keys(provider: OidcProvider) -> KeySet:
    async with httpx.AsyncClient() as http:
        response = await http.get(provider.jwks_uri)
    response.raise_for_status()
    return KeySet.import_key_set(response.json())


async def verified_claims(provider: OidcProvider, token: str) -> tuple[dict[str, Any], str]:
    """The claims of a JWT signed by the provider, and the ``kid`` it was signed with."""
    decoded = jwt.decode(token, await provider_keys(provider))
    assert decoded.claims["iss"] == provider.issuer
    return decoded.claims, decoded.header["kid"]


async def test_discovery_advertises_the_endpoints_a_broker_needs(
    oidc_provider: OidcProvider,
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(oidc_provider.discovery_url)
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == oidc_provider.issuer
    assert metadata["end_session_endpoint"] == oidc_provider.end_session_endpoint
    assert metadata["revocation_endpoint"] == f"{oidc_provider.issuer}/token/revocation"
    assert metadata["token_endpoint"] == oidc_provider.token_endpoint
    assert metadata["jwks_uri"] == oidc_provider.jwks_uri
    assert metadata["backchannel_logout_supported"] is True
    assert metadata["backchannel_logout_session_supported"] is True
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert {"groups", "authz", "offline_access"} <= set(metadata["scopes_supported"])
    async with httpx.AsyncClient() as http:
        keys = (await http.get(oidc_provider.jwks_uri)).json()["keys"]
    assert {(key["alg"], key["kty"]) for key in keys} == {("RS256", "RSA"), ("ES256", "EC")}
    assert all(key["kid"] for key in keys) and all("d" not in key for key in keys)


async def test_code_flow_with_pkce_gives_tokens_with_the_claims_and_refresh_rotates(
    oidc_provider: OidcProvider,
) -> None:
    client = oidc_provider.clients[DEFAULT_CLIENT_ID]
    assert client.redirect_uris == [DEFAULT_REDIRECT_URI]
    request = authorization_request(oidc_provider, client)  # no offline_access, no consent

    tokens = await redeem(
        oidc_provider, client, request, await oidc_provider.authorize(request.url, login="alice")
    )

    assert tokens["token_type"].lower() == "bearer" and tokens["access_token"]
    assert tokens["refresh_token"], "the issueRefreshToken hook always issues one"
    claims, kid = await verified_claims(oidc_provider, tokens["id_token"])
    assert kid.startswith("rs256-")
    assert claims["aud"] == DEFAULT_CLIENT_ID and claims["nonce"] == request.nonce
    assert claims["sub"] == "alice-0001"
    assert "sid" not in claims, "sid only for clients with back-channel logout (session_required)"
    assert claims["email"] == "alice@example.com" and claims["email_verified"] is True
    assert claims["name"] == "Alice Example"
    assert claims["groups"] == ["engineering", "admins"]
    assert claims[AUTHZ_CLAIM] == {"acctype": "user", "orgIds": ["o1"]}

    async with httpx.AsyncClient() as http:
        userinfo = await http.get(
            f"{oidc_provider.issuer}/me",
            headers={"authorization": f"Bearer {tokens['access_token']}"},
        )
    assert userinfo.status_code == 200
    assert userinfo.json()["groups"] == ["engineering", "admins"]

    refreshed = await refresh(oidc_provider, client, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    rotated = refreshed.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert (await verified_claims(oidc_provider, rotated["id_token"]))[0]["sub"] == "alice-0001"

    reused = await refresh(oidc_provider, client, tokens["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
    # Reuse of a rotated refresh token ends the whole grant, the new refresh token too.
    after_reuse = await refresh(oidc_provider, client, rotated["refresh_token"])
    assert after_reuse.status_code == 400 and after_reuse.json()["error"] == "invalid_grant"


async def test_pkce_is_required(oidc_provider: OidcProvider) -> None:
    client = oidc_provider.clients[DEFAULT_CLIENT_ID]
    request = authorization_request(oidc_provider, client, pkce=False)
    redirect = await oidc_provider.authorize(request.url, login="alice")
    params = query(redirect)
    assert params["error"] == "invalid_request" and "code" not in params
    assert "PKCE" in params["error_description"]


async def test_an_unknown_login_is_refused(oidc_provider: OidcProvider) -> None:
    client = oidc_provider.clients[DEFAULT_CLIENT_ID]
    request = authorization_request(oidc_provider, client)
    redirect = await oidc_provider.authorize(request.url, login="mallory")
    assert redirect.startswith(DEFAULT_REDIRECT_URI + "?")
    params = query(redirect)
    assert params["error"] == "access_denied" and params["state"] == request.state


async def test_the_same_agent_reuses_the_provider_session(oidc_provider: OidcProvider) -> None:
    client = oidc_provider.clients[DEFAULT_CLIENT_ID]
    async with httpx.AsyncClient() as agent:
        first = authorization_request(oidc_provider, client)
        await oidc_provider.authorize(first.url, login="bob", agent=agent)
        again = authorization_request(oidc_provider, client)
        # No login form this time: the provider session says bob, whatever `login` says.
        redirect = await oidc_provider.authorize(again.url, login="alice", agent=agent)
    tokens = await redeem(oidc_provider, client, again, redirect)
    assert (await verified_claims(oidc_provider, tokens["id_token"]))[0]["sub"] == "bob-0002"


async def test_stop_refuses_connections_and_start_brings_back_the_same_grants(
    oidc_provider_factory: OidcProviderFactory,
) -> None:
    provider = oidc_provider_factory()
    client = provider.clients[DEFAULT_CLIENT_ID]
    request = authorization_request(provider, client)
    tokens = await redeem(
        provider, client, request, await provider.authorize(request.url, login="alice")
    )

    provider.stop()
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(provider.discovery_url)
    provider.start()

    async with httpx.AsyncClient() as http:
        assert (await http.get(provider.discovery_url)).status_code == 200
    # An outage is not a reset: the refresh token issued before it still works.
    refreshed = await refresh(provider, client, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert provider.log_path.is_file() and "oidc-provider ready" in provider.log_tail()


async def test_rotate_keys_signs_with_a_new_kid_and_keeps_the_old_key_published(
    oidc_provider_factory: OidcProviderFactory,
) -> None:
    provider = oidc_provider_factory()
    client = provider.clients[DEFAULT_CLIENT_ID]
    request = authorization_request(provider, client)
    before = await redeem(
        provider, client, request, await provider.authorize(request.url, login="alice")
    )
    old_kid = (await verified_claims(provider, before["id_token"]))[1]

    provider.rotate_keys()

    refreshed = await refresh(provider, client, before["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    new_kid = (await verified_claims(provider, refreshed.json()["id_token"]))[1]
    assert new_kid != old_kid and new_kid.startswith("rs256-")
    assert (await verified_claims(provider, before["id_token"]))[1] == old_kid


async def test_private_key_jwt_client_with_es256_id_tokens(
    oidc_provider_factory: OidcProviderFactory,
) -> None:
    client_key = ECKey.generate_key("P-256", parameters={"kid": "client-1", "alg": "ES256"})
    client = OidcClient(
        client_id="jwt-client",
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [client_key.as_dict(private=False)]},
        id_token_signed_response_alg="ES256",
    )
    provider = oidc_provider_factory(clients=[client])
    request = authorization_request(provider, client, scope="openid email")
    params = query(await provider.authorize(request.url, login="bob"))
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES256", "kid": "client-1"},
        {
            "iss": client.client_id,
            "sub": client.client_id,
            "aud": provider.issuer,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + 300,
        },
        client_key,
    )
    async with httpx.AsyncClient() as http:
        response = await http.post(
            provider.token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": client.redirect_uris[0],
                "code_verifier": request.verifier,
                "client_id": client.client_id,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
        )
    assert response.status_code == 200, response.text
    claims, kid = await verified_claims(provider, response.json()["id_token"])
    assert kid.startswith("es256-")
    assert claims["email"] == "bob@example.com" and "groups" not in claims


class _LogoutReceiver:
    """An RP's back-channel logout endpoint on 127.0.0.1: records each POSTed form."""

    def __init__(self) -> None:
        received: list[dict[str, list[str]]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                received.append(parse_qs(self.rfile.read(length).decode()))
                self.send_response(200)
                self.send_header("cache-control", "no-store")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/backchannel-logout"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _LogoutReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def logout_receiver() -> Iterator[_LogoutReceiver]:
    with _LogoutReceiver() as receiver:
        yield receiver


@pytest.mark.parametrize("expires_with_session", [False, True])
async def test_end_session_sends_a_backchannel_logout_token_and_redirects_back(
    oidc_provider_factory: OidcProviderFactory,
    logout_receiver: _LogoutReceiver,
    expires_with_session: bool,
) -> None:
    client = OidcClient(
        client_id="bcl-client",
        backchannel_logout_uri=logout_receiver.url,
        backchannel_logout_session_required=True,
    )
    provider = oidc_provider_factory(clients=[client], expires_with_session=expires_with_session)
    async with httpx.AsyncClient() as agent:
        request = authorization_request(provider, client)
        redirect = await provider.authorize(request.url, login="alice", agent=agent)
        tokens = await redeem(provider, client, request, redirect)
        id_claims = (await verified_claims(provider, tokens["id_token"]))[0]
        assert logout_receiver.received == []

        signed_out = await provider.end_session(
            {
                "id_token_hint": tokens["id_token"],
                "post_logout_redirect_uri": DEFAULT_POST_LOGOUT_REDIRECT_URI,
                "state": "bye",
            },
            agent,
        )

    assert signed_out == f"{DEFAULT_POST_LOGOUT_REDIRECT_URI}?state=bye"
    assert len(logout_receiver.received) == 1, provider.events()
    (logout_token,) = logout_receiver.received[0]["logout_token"]
    claims = (await verified_claims(provider, logout_token))[0]
    assert claims["aud"] == client.client_id
    assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
    assert claims["sub"] == id_claims["sub"] == "alice-0001"
    assert claims["sid"] == id_claims["sid"]
    assert "nonce" not in claims and claims["jti"]
    after_logout = await refresh(provider, client, tokens["refresh_token"])
    if expires_with_session:
        # Tokens tied to the provider session: the logout revoked the grant.
        assert after_logout.status_code == 400
        assert after_logout.json()["error"] == "invalid_grant"
    else:
        # oidc-provider keeps a grant whose tokens do not expire with the session ("persists
        # logout", as with offline_access): the refresh token outlives the logout.
        assert after_logout.status_code == 200, after_logout.text
