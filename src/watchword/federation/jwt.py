"""Verifying the provider's JWTs: ID tokens (sign-in) and logout tokens (back-channel logout).

Order matters: the header's ``alg`` is checked against the provider's allow-list *before* a key
is looked up (``none`` and the HMAC family are never on it: an HMAC "signed" with a provider's
public key would otherwise verify), then the key is found by ``kid`` in the provider's JWKS
(embedded ``jwk``/``jku``/``x5u`` headers are ignored), then joserfc checks the signature with
that one algorithm, then the claims are checked here, each failure with its reason.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import Key

from watchword.errors import IdTokenInvalid, LogoutTokenInvalid, WatchwordError
from watchword.secret import constant_time_equal

__all__ = [
    "BACKCHANNEL_LOGOUT_EVENT",
    "KeySource",
    "check_id_token_claims",
    "check_logout_token_claims",
    "unverified_issuer",
    "verify_signature",
]

BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
_MAX_TOKEN = 64 * 1024


class KeySource(Protocol):
    """Where a token's verification key comes from (a provider's JWKS)."""

    async def key_for(self, kid: str | None, alg: str) -> Key: ...


def _segment(token: str, index: int, what: str, error: type[WatchwordError]) -> dict[str, Any]:
    """Part ``index`` of a compact JWS (0: header, 1: payload), decoded, not verified."""
    parts = token.split(".")
    if len(token) > _MAX_TOKEN or len(parts) != 3 or not all(parts):
        raise error("not a signed JWT (compact JWS with three parts)")
    try:
        padded = parts[index] + "=" * (-len(parts[index]) % 4)
        value = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, UnicodeDecodeError):
        raise error(f"the JWT {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise error(f"the JWT {what} is not a JSON object")
    return value


def _header(token: str, error: type[WatchwordError]) -> dict[str, Any]:
    return _segment(token, 0, "header", error)


def unverified_issuer(token: str, error: type[WatchwordError]) -> tuple[str | None, list[str]]:
    """The ``iss`` and audiences a JWT claims, **not verified**: only to choose the provider
    whose keys then verify it."""
    payload = _segment(token, 1, "payload", error)
    iss, aud = payload.get("iss"), payload.get("aud")
    if isinstance(aud, str):
        audiences = [aud]
    elif isinstance(aud, list):
        audiences = [a for a in aud if isinstance(a, str)]
    else:
        audiences = []
    return (iss if isinstance(iss, str) else None), audiences


async def verify_signature(
    provider: KeySource,
    token: str,
    *,
    algorithms: Sequence[str],
    error: type[WatchwordError] = IdTokenInvalid,
) -> dict[str, Any]:
    """The claims of ``token`` once its signature verifies with one of the provider's keys."""
    header = _header(token, error)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        raise error(f"algorithm {alg!r} is not allowed (allowed: {', '.join(algorithms)})")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise error("the JWT header's kid is not a string")
    try:
        key = await provider.key_for(kid, alg)
    except LookupError:
        raise error("signed by a key the provider does not publish") from None
    try:
        decoded = jwt.decode(token, key, algorithms=[alg])
    except JoseError as exc:
        raise error(f"the signature does not verify ({exc.error})") from None
    except (ValueError, TypeError):
        raise error("the JWT cannot be decoded") from None
    claims = decoded.claims
    if not isinstance(claims, dict):
        raise error("the JWT payload is not a JSON object")
    return claims


def _audience_ok(claims: Mapping[str, Any], client_id: str) -> bool:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return aud == client_id
    return isinstance(aud, list) and client_id in aud


def _time(claims: Mapping[str, Any], name: str, error: type[WatchwordError]) -> float:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise error(f"{name} is missing or not a number")
    return float(value)


def check_id_token_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: datetime,
    leeway: timedelta,
    subject_claim: str = "sub",
) -> None:
    """OpenID Connect Core 3.1.3.7: issuer, audience, azp, exp, iat, nonce, subject."""
    if claims.get("iss") != issuer:
        raise IdTokenInvalid("issued by another issuer than the provider's")
    if not _audience_ok(claims, client_id):
        raise IdTokenInvalid("not issued for this client (audience)")
    aud = claims.get("aud")
    azp = claims.get("azp")
    if isinstance(aud, list) and len(aud) > 1 and azp is None:
        raise IdTokenInvalid("several audiences and no azp")
    if azp is not None and azp != client_id:
        raise IdTokenInvalid("authorized party (azp) is another client")
    stamp, slack = now.timestamp(), leeway.total_seconds()
    if _time(claims, "exp", IdTokenInvalid) <= stamp - slack:
        raise IdTokenInvalid("expired")
    if _time(claims, "iat", IdTokenInvalid) > stamp + slack:
        raise IdTokenInvalid("issued in the future (iat)")
    got = claims.get("nonce")
    if not isinstance(got, str) or not constant_time_equal(got, nonce):
        raise IdTokenInvalid("nonce does not match this sign-in")
    subject = claims.get(subject_claim)
    if not isinstance(subject, str) or not subject:
        raise IdTokenInvalid(f"the subject claim {subject_claim!r} is missing")


def check_logout_token_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    client_id: str,
    now: datetime,
    leeway: timedelta,
    max_age: timedelta = timedelta(minutes=5),
) -> None:
    """OpenID Connect Back-Channel Logout 1.0, 2.6: iss, aud, iat, jti, events, sid or sub,
    no nonce. ``max_age`` bounds how old an accepted token may be (replays are refused by
    ``jti`` for that long)."""
    if claims.get("iss") != issuer:
        raise LogoutTokenInvalid("issued by another issuer than the provider's")
    if not _audience_ok(claims, client_id):
        raise LogoutTokenInvalid("not issued for this client (audience)")
    stamp, slack = now.timestamp(), leeway.total_seconds()
    iat = _time(claims, "iat", LogoutTokenInvalid)
    if iat > stamp + slack:
        raise LogoutTokenInvalid("issued in the future (iat)")
    if iat < stamp - slack - max_age.total_seconds():
        raise LogoutTokenInvalid("too old (iat)")
    if "exp" in claims and _time(claims, "exp", LogoutTokenInvalid) <= stamp - slack:
        raise LogoutTokenInvalid("expired")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise LogoutTokenInvalid("jti is missing")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(BACKCHANNEL_LOGOUT_EVENT), dict):
        raise LogoutTokenInvalid("not a back-channel logout event")
    if "nonce" in claims:
        raise LogoutTokenInvalid("a logout token carries no nonce")
    sid, sub = claims.get("sid"), claims.get("sub")
    if not (isinstance(sid, str) and sid) and not (isinstance(sub, str) and sub):
        raise LogoutTokenInvalid("names neither a session (sid) nor a subject (sub)")
