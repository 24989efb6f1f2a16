"""ID and logout token checks: the algorithm allow-list before any key, then the signature
with the provider's key, then every claim rule with its own reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey

from watchword.errors import IdTokenInvalid, LogoutTokenInvalid
from watchword.federation.jwt import (
    BACKCHANNEL_LOGOUT_EVENT,
    check_id_token_claims,
    check_logout_token_claims,
    verify_signature,
)

ISS = "https://idp.example.com"
CLIENT = "watchword"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LEEWAY = timedelta(seconds=60)
RSA = RSAKey.generate_key(2048, parameters={"kid": "r1"})
EC = ECKey.generate_key("P-256", parameters={"kid": "e1"})


class Published:
    """The provider's published keys (public halves), as its JWKS would give them."""

    def __init__(self, *keys: Key) -> None:
        self.keys = {k.kid: k.__class__.import_key(k.as_dict(private=False)) for k in keys}
        self.asked: list[str | None] = []

    async def key_for(self, kid: str | None, alg: str) -> Key:
        self.asked.append(kid)
        if kid not in self.keys:
            raise LookupError(kid)
        return self.keys[kid]


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _claims(**over: Any) -> dict[str, Any]:
    stamp = int(NOW.timestamp())
    base = {"iss": ISS, "aud": CLIENT, "sub": "alice", "exp": stamp + 300, "iat": stamp}
    base.update(nonce="n-1")
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


async def test_a_well_signed_token_verifies_with_rs256_and_es256() -> None:
    keys = Published(RSA, EC)
    for key, alg in ((RSA, "RS256"), (EC, "ES256")):
        token = jwt.encode({"alg": alg, "kid": key.kid}, _claims(), key)
        claims = await verify_signature(keys, token, algorithms=["RS256", "ES256"])
        check_id_token_claims(
            claims, issuer=ISS, client_id=CLIENT, nonce="n-1", now=NOW, leeway=LEEWAY
        )


async def test_alg_none_and_disallowed_algorithms_are_refused_before_any_key_lookup() -> None:
    keys = Published(RSA)
    unsigned = _b64({"alg": "none", "kid": "r1"}) + "." + _b64(_claims()) + ".x"
    with pytest.raises(IdTokenInvalid, match="algorithm 'none' is not allowed"):
        await verify_signature(keys, unsigned, algorithms=["RS256"])
    es = jwt.encode({"alg": "ES256", "kid": "e1"}, _claims(), EC)
    with pytest.raises(IdTokenInvalid, match="not allowed"):
        await verify_signature(keys, es, algorithms=["RS256"])
    assert keys.asked == []


async def test_hs256_signed_with_the_providers_public_key_is_refused() -> None:
    # Forged by hand (joserfc itself refuses a public key as an HMAC secret).
    public_pem = RSA.as_pem(private=False)
    signing_input = _b64({"alg": "HS256", "kid": "r1"}) + "." + _b64(_claims())
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    with pytest.raises(IdTokenInvalid, match="algorithm 'HS256' is not allowed"):
        await verify_signature(Published(RSA), forged, algorithms=["RS256", "PS256"])


async def test_unknown_key_and_bad_signature_are_refused() -> None:
    stranger = RSAKey.generate_key(2048, parameters={"kid": "r9"})
    token = jwt.encode({"alg": "RS256", "kid": "r9"}, _claims(), stranger)
    with pytest.raises(IdTokenInvalid, match="does not publish"):
        await verify_signature(Published(RSA), token, algorithms=["RS256"])
    impostor = RSAKey.generate_key(2048, parameters={"kid": "r1"})
    token = jwt.encode({"alg": "RS256", "kid": "r1"}, _claims(), impostor)
    with pytest.raises(IdTokenInvalid, match="signature does not verify"):
        await verify_signature(Published(RSA), token, algorithms=["RS256"])


@pytest.mark.parametrize(
    "token",
    ["", "a.b", "a.b.c.d.e", "!!!.e30.x", _b64({"alg": "RS256"})[:-2] + "..", "x" * 70000],
)
async def test_malformed_tokens_are_refused_cleanly(token: str) -> None:
    with pytest.raises(IdTokenInvalid):
        await verify_signature(Published(RSA), token, algorithms=["RS256"])


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"iss": "https://evil.example"}, "another issuer"),
        ({"aud": "someone-else"}, "audience"),
        ({"aud": ["someone-else", "x"]}, "audience"),
        ({"aud": [CLIENT, "other"]}, "several audiences and no azp"),
        ({"azp": "other"}, "azp"),
        ({"exp": int(NOW.timestamp()) - 61}, "expired"),
        ({"exp": None}, "exp is missing"),
        ({"iat": int(NOW.timestamp()) + 61}, "future"),
        ({"iat": "yesterday"}, "iat is missing or not a number"),
        ({"nonce": "n-2"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"sub": ""}, "subject"),
    ],
)
def test_each_id_token_claim_rule_has_its_reason(over: dict[str, Any], reason: str) -> None:
    with pytest.raises(IdTokenInvalid, match=reason):
        check_id_token_claims(
            _claims(**over), issuer=ISS, client_id=CLIENT, nonce="n-1", now=NOW, leeway=LEEWAY
        )


def test_leeway_accepts_small_skew_only() -> None:
    stamp = int(NOW.timestamp())
    check_id_token_claims(
        _claims(exp=stamp - 59, iat=stamp + 59, aud=[CLIENT, "x"], azp=CLIENT),
        issuer=ISS,
        client_id=CLIENT,
        nonce="n-1",
        now=NOW,
        leeway=LEEWAY,
    )


def _logout(**over: Any) -> dict[str, Any]:
    stamp = int(NOW.timestamp())
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": CLIENT,
        "iat": stamp,
        "jti": "j-1",
        "sid": "sid-1",
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    ("over", "reason"),
    [
        ({"events": None}, "not a back-channel logout event"),
        ({"events": {"other": {}}}, "not a back-channel logout event"),
        ({"nonce": "n"}, "no nonce"),
        ({"sid": None}, "neither"),
        ({"jti": None}, "jti"),
        ({"iat": int(NOW.timestamp()) - 3600}, "too old"),
        ({"aud": "other"}, "audience"),
        ({"iss": "https://evil.example"}, "another issuer"),
    ],
)
def test_logout_token_rules(over: dict[str, Any], reason: str) -> None:
    with pytest.raises(LogoutTokenInvalid, match=reason):
        check_logout_token_claims(
            _logout(**over), issuer=ISS, client_id=CLIENT, now=NOW, leeway=LEEWAY
        )
    check_logout_token_claims(
        _logout(sid=None, sub="alice"), issuer=ISS, client_id=CLIENT, now=NOW, leeway=LEEWAY
    )


def test_time_module_is_not_needed_for_claims() -> None:
    # The checks take ``now`` from the caller: a token valid "now" by the wall clock but
    # not at the given instant is refused.
    stamp = int(time.time())
    with pytest.raises(IdTokenInvalid, match="expired"):
        check_id_token_claims(
            _claims(exp=stamp + 300, iat=stamp),
            issuer=ISS,
            client_id=CLIENT,
            nonce="n-1",
            now=datetime.fromtimestamp(stamp + 3600, UTC),
            leeway=LEEWAY,
        )
