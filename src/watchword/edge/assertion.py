"""Signed identity assertions for apps behind the edge, and the keys to verify them.

A route with ``assertion: {audience: …}`` sends the app ``X-Watchword-Jwt-Assertion``: a
short-lived JWT (ES256) naming who is calling, for that audience only, so an app that does
not trust its network can verify the identity itself against the public keys at
``/.well-known/watchword/jwks.json``.

The signing key is derived from ``WATCHWORD_SECRET_KEY`` (HKDF, its own purpose label), so
every replica signs with the same key and publishes the same JWKS without storing a private
key anywhere; rotating the secret key rotates it. Claims: ``iss`` (watchword's issuer URL),
``aud``, ``sub`` (the subject id) and ``idp`` (its issuer: the identity is the pair),
``iat``, ``nbf``, ``exp``, ``jti``, and ``email``, ``groups``, ``organizations`` when known.
A signature costs about half a millisecond, so an assertion is reused for the same caller
and audience until half its lifetime has passed.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from watchword.clock import Clock

__all__ = ["ALGORITHM", "AssertionSigner", "Identity", "signing_key_from_seed"]

ALGORITHM = "ES256"
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_CACHE_SIZE = 4096


def signing_key_from_seed(seed: bytes) -> ec.EllipticCurvePrivateKey:
    """The P-256 key of a 32-byte seed (a purpose key derived from the secret key)."""
    if len(seed) < 32:
        raise ValueError("the seed must have at least 32 bytes")
    scalar = int.from_bytes(seed[:32], "big") % (_P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


@dataclass(frozen=True, slots=True)
class Identity:
    issuer: str
    subject: str
    email: str | None = None
    groups: Sequence[str] = ()
    organizations: Sequence[str] = ()


class AssertionSigner:
    def __init__(
        self,
        private_key: ec.EllipticCurvePrivateKey,
        *,
        issuer: str,
        clock: Clock,
        lifetime: timedelta = timedelta(minutes=1),
    ) -> None:
        self._key = ECKey.import_key(private_key)
        self.kid = self._key.thumbprint()
        self._issuer = issuer
        self._clock = clock
        self._lifetime = int(lifetime.total_seconds())
        self._cache: OrderedDict[tuple[object, ...], tuple[str, int]] = OrderedDict()

    def __repr__(self) -> str:
        return f"AssertionSigner(kid={self.kid!r}, issuer={self._issuer!r})"

    def jwks(self) -> dict[str, Any]:
        public = dict(self._key.as_dict(private=False))
        public.update({"kid": self.kid, "use": "sig", "alg": ALGORITHM})
        return {"keys": [public]}

    def assertion(self, who: Identity, audience: str) -> str:
        now = int(self._clock.now().timestamp())
        key = (
            who.issuer,
            who.subject,
            who.email,
            tuple(who.groups),
            tuple(who.organizations),
            audience,
        )
        hit = self._cache.get(key)
        if hit is not None and now < hit[1]:
            self._cache.move_to_end(key)
            return hit[0]
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": audience,
            "sub": who.subject,
            "idp": who.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + self._lifetime,
            "jti": secrets.token_urlsafe(12),
        }
        if who.email:
            claims["email"] = who.email
        if who.groups:
            claims["groups"] = list(who.groups)
        if who.organizations:
            claims["organizations"] = list(who.organizations)
        token = jwt.encode({"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}, claims, self._key)
        self._cache[key] = (token, now + self._lifetime // 2)
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return token
