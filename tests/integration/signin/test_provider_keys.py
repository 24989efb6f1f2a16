"""Discovery and keys against the real provider: a flood of forged ``kid`` values costs the
provider at most one JWKS fetch per interval; a rotated key is found by one re-fetch; a client
authenticating with ``private_key_jwt`` signs in."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from joserfc.jwk import ECKey
from tests.integration.signin.conftest import BASE, SigninFactory
from tests.oidc.plugin import OidcClient, OidcProviderFactory

from watchword.clock import FakeClock
from watchword.config import OidcProviderSettings
from watchword.errors import ProviderUnavailable
from watchword.federation.provider import UpstreamProvider


def _upstream(issuer: str, clock: FakeClock, http: httpx.AsyncClient) -> UpstreamProvider:
    settings = OidcProviderSettings(
        name="test", issuer=issuer, client_id="watchword-test", client_secret="x"
    )
    return UpstreamProvider(
        settings,
        http=http,
        clock=clock,
        timeout=timedelta(seconds=5),
        jwks_refresh_interval=timedelta(seconds=60),
        allow_insecure_http=True,
    )


async def test_forged_kids_fetch_the_jwks_at_most_once_per_interval(
    oidc_provider_factory: OidcProviderFactory,
) -> None:
    provider = oidc_provider_factory()
    clock = FakeClock(datetime.now(UTC))
    async with httpx.AsyncClient() as http:
        upstream = _upstream(provider.issuer, clock, http)
        for _ in range(50):
            with pytest.raises(LookupError):
                await upstream.key_for(secrets.token_hex(8), "RS256")
        assert upstream.jwks_fetches == 1  # the first fetch; misses within the interval reuse it
        clock.advance(timedelta(seconds=61))
        for _ in range(50):
            with pytest.raises(LookupError):
                await upstream.key_for(secrets.token_hex(8), "RS256")
        assert upstream.jwks_fetches == 2

        # A real new key (the provider rotated) is found by the one re-fetch it triggers.
        known = await upstream.key_for(None, "ES256")
        provider.rotate_keys()
        clock.advance(timedelta(seconds=61))
        async with httpx.AsyncClient() as raw:
            jwks = (await raw.get(provider.jwks_uri)).json()
        new = [k for k in jwks["keys"] if k["kid"] != known.kid]
        for jwk in new:
            alg = "RS256" if jwk["kty"] == "RSA" else "ES256"
            found = await upstream.key_for(jwk["kid"], alg)
            assert found.kid == jwk["kid"]
        assert upstream.jwks_fetches == 3


async def test_a_provider_whose_discovery_names_another_issuer_is_unavailable(
    oidc_provider_factory: OidcProviderFactory,
) -> None:
    provider = oidc_provider_factory()
    clock = FakeClock(datetime.now(UTC))
    async with httpx.AsyncClient() as http:
        # The same server under another spelling of its address: the issuer must match exactly.
        upstream = _upstream(provider.issuer.replace("127.0.0.1", "localhost"), clock, http)
        with pytest.raises(ProviderUnavailable):
            await upstream.metadata()
        status = upstream.status()
        assert status["status"] == "failing" and "discovery" in status["detail"]
        assert "127.0.0.1" not in status["detail"] and "localhost" not in status["detail"]


async def test_private_key_jwt_client_signs_in(
    oidc_provider_factory: OidcProviderFactory, signin_app: SigninFactory
) -> None:
    key = ECKey.generate_key("P-256", parameters={"kid": "rp-1"}, private=True)
    client = OidcClient(
        client_id="watchword-pkjwt",
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]},
    )
    provider = oidc_provider_factory(clients=[client])
    made = await signin_app(
        provider,
        client_id="watchword-pkjwt",
        provider_settings={
            "client_id": "watchword-pkjwt",
            "client_secret": None,
            "client_auth_method": "private_key_jwt",
            "private_key": key.as_pem(private=True).decode(),
            "private_key_id": "rp-1",
        },
    )
    done = await made.sign_in(login="bob")
    assert done.status_code == 302, done.text
    me = await made.client.get("/v1/me")
    assert me.status_code == 200 and me.json()["subject"]["id"] == "bob-0002"
    assert BASE  # the app is the ASGI testserver


async def test_unreadable_keys_and_failed_discovery_are_not_fetched_again_at_once(
    oidc_provider_factory: OidcProviderFactory,
) -> None:
    provider = oidc_provider_factory()
    clock = FakeClock(datetime.now(UTC))
    async with httpx.AsyncClient() as http:
        upstream = _upstream(provider.issuer, clock, http)
        await upstream.metadata()  # discovery cached, keys never read
        provider.stop()
        for _ in range(20):
            with pytest.raises(ProviderUnavailable):
                await upstream.key_for(secrets.token_hex(8), "RS256")
        assert upstream.jwks_fetches == 1

        cold = _upstream(provider.issuer, clock, http)
        for _ in range(20):
            with pytest.raises(ProviderUnavailable):
                await cold.metadata()
        assert cold.status()["status"] == "failing"
        provider.start()
        with pytest.raises(ProviderUnavailable):
            await cold.metadata()  # still within the back-off
        clock.advance(timedelta(seconds=6))
        assert (await cold.metadata()).issuer == provider.issuer
        assert cold.status()["status"] == "ok"
