"""Bearer JWTs from an upstream issuer the app trusts (an IdP's access or ID tokens).

RFC 7519 (https://www.rfc-editor.org/rfc/rfc7519#section-7.2) and RFC 9068 for access
tokens; watchword's own code does the JOSE work:

1. The token's ``iss`` is read **unverified**, only to pick the configured issuer (exact
   match); an issuer that is not configured is refused before any key is fetched.
2. :func:`watchword.federation.jwt.verify_signature` checks the header's ``alg`` against the
   issuer's allow-list (asymmetric only: never ``none`` nor HMAC), finds the key by ``kid``
   in the issuer's JWKS (:class:`~watchword.federation.provider.UpstreamProvider`: discovery,
   cached keys, an unknown ``kid`` re-fetches at most once per interval), and lets joserfc
   verify the signature with that one key and algorithm.
3. :func:`check_claims` (joserfc's claims registry): ``iss`` equal, the configured audience
   in ``aud``, ``exp`` present and not past, ``nbf`` and ``iat`` not in the future, each
   within the issuer's leeway; then the subject claim is a non-empty string.

Every refusal is an :class:`~watchword.errors.AuthenticationError` (401 ``unauthenticated``)
except an expired token, :class:`~watchword.errors.TokenExpired` (401 ``token_expired``);
a key set that cannot be read is :class:`~watchword.errors.ProviderUnavailable` (503). No
message carries the token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from urllib.parse import urlsplit

import httpx
from joserfc.errors import ExpiredTokenError, InvalidClaimError, MissingClaimError
from joserfc.jwt import JWTClaimsRegistry

from watchword.clock import Clock
from watchword.config import ASYMMETRIC_ALGORITHMS, MAX_LEEWAY, OidcProviderSettings
from watchword.errors import AuthenticationError, ConfigurationError, TokenExpired
from watchword.federation.jwt import KeySource, unverified_issuer, verify_signature
from watchword.federation.provider import UpstreamProvider

__all__ = [
    "DEFAULT_ALGORITHMS",
    "BearerIssuer",
    "BearerVerifier",
    "VerifiedBearer",
    "check_claims",
    "looks_like_jwt",
    "upstream_provider",
]

DEFAULT_ALGORITHMS = ("RS256", "PS256", "ES256", "EdDSA")


@dataclass(frozen=True, slots=True)
class BearerIssuer:
    """An upstream issuer whose bearer JWTs an app accepts.

    ``audience`` must be in the token's ``aud`` (the app's client id or API identifier, as
    the issuer puts it there). ``subject_claim`` names the subject id (``sub``). ``leeway``
    absorbs clock skew on ``exp``, ``nbf`` and ``iat`` (at most 5 minutes). ``name`` is what
    logs and 503 answers call the issuer (default: its host).
    """

    issuer: str
    audience: str
    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    subject_claim: str = "sub"
    leeway: timedelta = timedelta(seconds=60)
    name: str = field(default="")

    def __post_init__(self) -> None:
        if not urlsplit(self.issuer).hostname:
            raise ConfigurationError("a bearer issuer needs its issuer URL")
        if not self.audience:
            raise ConfigurationError(f"bearer issuer {self.issuer}: audience is required")
        refused = sorted(set(self.algorithms) - ASYMMETRIC_ALGORITHMS)
        if refused or not self.algorithms:
            raise ConfigurationError(
                f"bearer issuer {self.issuer}: algorithms must be asymmetric and at least "
                f"one (refused: {', '.join(refused) or 'none given'})"
            )
        if not timedelta(0) <= self.leeway <= MAX_LEEWAY:
            raise ConfigurationError(f"bearer issuer {self.issuer}: leeway is 0 to 5 minutes")
        if not self.subject_claim:
            raise ConfigurationError(f"bearer issuer {self.issuer}: subject_claim is required")
        if not self.name:
            object.__setattr__(self, "name", urlsplit(self.issuer).hostname)


@dataclass(frozen=True, slots=True)
class VerifiedBearer:
    """A bearer JWT that passed every check: its issuer, subject and claims."""

    issuer: str
    subject: str
    claims: Mapping[str, object] = field(repr=False)


def looks_like_jwt(value: str) -> bool:
    """Whether a bearer value has the shape of a compact JWS (three dot-separated parts).
    watchword's own tokens and keys never contain a dot, so the two never collide."""
    return value.count(".") == 2


def check_claims(
    claims: dict[str, object], issuer: BearerIssuer, *, now: datetime
) -> VerifiedBearer:
    """The registered claims of a verified token (RFC 7519 4.1) and its subject; ``now`` is
    a parameter (tests move it)."""
    registry = JWTClaimsRegistry(
        now=int(now.timestamp()),
        leeway=int(issuer.leeway.total_seconds()),
        iss={"essential": True, "value": issuer.issuer},
        aud={"essential": True, "value": issuer.audience},
        exp={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise TokenExpired("the bearer token has expired") from None
    except MissingClaimError as exc:
        raise AuthenticationError(f"the bearer token lacks {exc.claim}") from None
    except InvalidClaimError as exc:
        reason = {"aud": "is not issued for this app (audience)", "iss": "names another issuer"}
        why = reason.get(exc.claim, f"has an invalid {exc.claim} claim")
        raise AuthenticationError(f"the bearer token {why}") from None
    subject = claims.get(issuer.subject_claim)
    if not isinstance(subject, str) or not subject:
        raise AuthenticationError(f"the bearer token lacks its subject ({issuer.subject_claim})")
    return VerifiedBearer(issuer.issuer, subject, MappingProxyType(claims))


def upstream_provider(
    issuer: BearerIssuer,
    *,
    http: httpx.AsyncClient,
    clock: Clock,
    timeout: timedelta,
    jwks_refresh_interval: timedelta,
    allow_insecure_http: bool,
) -> UpstreamProvider:
    """The discovery and key cache of ``issuer``: watchword's own provider class."""
    # The provider settings' validation demands OAuth client credentials for sign-in; these
    # keys only verify tokens (the provider reads name and issuer alone), so none are given.
    settings = OidcProviderSettings.model_construct(
        name=issuer.name, issuer=issuer.issuer, client_id=issuer.audience
    )
    return UpstreamProvider(
        settings,
        http=http,
        clock=clock,
        timeout=timeout,
        jwks_refresh_interval=jwks_refresh_interval,
        allow_insecure_http=allow_insecure_http,
    )


class BearerVerifier:
    """Verifies bearer JWTs of the configured issuers, each with its own key source."""

    __slots__ = ("_clock", "_issuers")

    def __init__(self, issuers: Sequence[tuple[BearerIssuer, KeySource]], *, clock: Clock) -> None:
        by_url: dict[str, tuple[BearerIssuer, KeySource]] = {}
        for issuer, keys in issuers:
            if issuer.issuer in by_url:
                raise ConfigurationError(f"bearer issuer {issuer.issuer} is configured twice")
            by_url[issuer.issuer] = (issuer, keys)
        self._issuers = MappingProxyType(by_url)
        self._clock = clock

    def __bool__(self) -> bool:
        return bool(self._issuers)

    async def verify(self, token: str) -> VerifiedBearer:
        """The issuer, subject and claims of ``token``; see the module's steps."""
        iss, _ = unverified_issuer(token, AuthenticationError)
        entry = self._issuers.get(iss) if iss is not None else None
        if entry is None:
            raise AuthenticationError("the bearer token's issuer is not one this app accepts")
        issuer, keys = entry
        claims = await verify_signature(
            keys, token, algorithms=issuer.algorithms, error=AuthenticationError
        )
        return check_claims(claims, issuer, now=self._clock.now())
