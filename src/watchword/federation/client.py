"""Talking to one provider as its OAuth client: the authorization URL, the code exchange,
userinfo, RFC 7009 revocation and the RP-initiated logout URL.

Errors are sorted by what they mean for the caller: a 400 answer to the code exchange
(``invalid_grant``: a used, expired or forged code) is :class:`SigninCodeRejected`; a timeout,
a dropped connection or a 5xx is :class:`ProviderUnavailable`. The provider's error text is
never copied into an error (it may echo what was sent); its ``error`` code is.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey
from opentelemetry import trace

from watchword.clock import Clock
from watchword.config import ClientAuthMethod
from watchword.errors import ProviderUnavailable, SigninCodeRejected
from watchword.federation.provider import ProviderMetadata, UpstreamProvider
from watchword.observability.logging import get_logger
from watchword.secret import Secret

__all__ = ["OidcClient", "TokenSet", "UpstreamError", "UpstreamUnreachable"]

log = get_logger("watchword.federation")
tracer = trace.get_tracer("watchword.federation")

# Parameters of the authorization request watchword sets itself; authorize_params cannot
# override them.
_PROTOCOL_PARAMS = frozenset(
    {
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
        "code_challenge_method",
        "request",
        "request_uri",
    }
)
_JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_MAX_RESPONSE = 1024 * 1024  # token and userinfo answers are small


@dataclass(frozen=True, slots=True)
class TokenSet:
    """A token response. Values are :class:`Secret`: they never print."""

    access_token: Secret
    id_token: Secret | None
    refresh_token: Secret | None
    expires_at: datetime | None
    scope: str | None


class UpstreamError(Exception):
    """A provider's refusal: ``status``, its ``error`` code (``invalid_grant``, …) and the
    ``Retry-After`` it asked for, in seconds."""

    def __init__(self, status: int, error: str | None, retry_after_s: float | None = None) -> None:
        self.status = status
        self.error = error
        self.retry_after_s = retry_after_s
        super().__init__(f"HTTP {status} {error or ''}".strip())


class UpstreamUnreachable(Exception):
    """No answer from the provider. ``sent``: the request may have reached it (a read
    timeout, a connection dropped mid-answer), so it may have acted on it; ``False`` when it
    surely did not (the connection was refused or never made)."""

    def __init__(self, kind: str, *, sent: bool) -> None:
        self.kind = kind
        self.sent = sent
        super().__init__(f"{kind} ({'maybe delivered' if sent else 'not delivered'})")


def _retry_after(response: httpx.Response, now: datetime) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


class OidcClient:
    """The OAuth client of one provider (its settings, discovery and keys)."""

    def __init__(
        self, provider: UpstreamProvider, *, http: httpx.AsyncClient, clock: Clock
    ) -> None:
        self.provider = provider
        self.settings = provider.settings
        self._http = http
        self._clock = clock
        self._timeout = provider.timeout_s
        self._signing_key = _client_key(self.settings.private_key)

    # --- authorization request ---

    def authorization_url(
        self,
        metadata: ProviderMetadata,
        *,
        redirect_uri: str,
        state: str,
        nonce: str,
        code_challenge: str,
    ) -> str:
        params: dict[str, str] = {
            key: value
            for key, value in self.settings.authorize_params.items()
            if key not in _PROTOCOL_PARAMS
        }
        params.update(
            response_type="code",
            client_id=self.settings.client_id,
            redirect_uri=redirect_uri,
            scope=" ".join(self.settings.scopes),
            state=state,
            nonce=nonce,
            code_challenge=code_challenge,
            code_challenge_method="S256",
        )
        separator = "&" if "?" in metadata.authorization_endpoint else "?"
        return metadata.authorization_endpoint + separator + urlencode(params)

    # --- token endpoint ---

    async def exchange_code(self, code: str, *, redirect_uri: str, code_verifier: str) -> TokenSet:
        metadata = await self.provider.metadata()
        with tracer.start_as_current_span("oidc.token") as span:
            span.set_attribute("oidc.provider", self.provider.name)
            span.set_attribute("oidc.grant_type", "authorization_code")
            try:
                body = await self._token_request(
                    metadata,
                    {
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": redirect_uri,
                        "code_verifier": code_verifier,
                    },
                )
            except UpstreamError as exc:
                if 400 <= exc.status < 500:
                    raise SigninCodeRejected(
                        f"the provider refused the authorization code ({exc.error or exc.status})"
                    ) from None
                raise ProviderUnavailable(
                    f"provider {self.provider.name!r} token endpoint answered {exc.status}"
                ) from None
        return self._token_set(body)

    async def refresh(self, refresh_token: Secret) -> TokenSet:
        """Redeem ``refresh_token``. Raises :class:`UpstreamError` (the provider answered an
        error), :class:`UpstreamUnreachable` (no usable answer: ``sent`` says whether the
        request may have arrived) or :class:`ProviderUnavailable` (discovery failed: nothing
        was sent)."""
        metadata = await self.provider.metadata()
        with tracer.start_as_current_span("oidc.token") as span:
            span.set_attribute("oidc.provider", self.provider.name)
            span.set_attribute("oidc.grant_type", "refresh_token")
            try:
                body = await self._post(
                    metadata.token_endpoint,
                    {"grant_type": "refresh_token", "refresh_token": refresh_token.reveal()},
                    audience=metadata.token_endpoint,
                    unreachable=True,
                )
                return self._token_set(body)
            except ProviderUnavailable as exc:
                # The request reached the provider and its answer is unusable (not JSON, too
                # large, no access token): it may have rotated the token all the same.
                raise UpstreamUnreachable(
                    f"unusable answer ({exc.detail})"[:200], sent=True
                ) from None

    def _token_set(self, body: dict[str, Any]) -> TokenSet:
        access = body.get("access_token")
        if not isinstance(access, str) or not access:
            raise ProviderUnavailable(
                f"provider {self.provider.name!r} answered without an access token"
            )
        expires_in = body.get("expires_in")
        expires_at = None
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            expires_at = self._clock.now() + timedelta(seconds=max(0.0, float(expires_in)))
        id_token, refresh = body.get("id_token"), body.get("refresh_token")
        scope = body.get("scope")
        return TokenSet(
            access_token=Secret(access),
            id_token=Secret(id_token) if isinstance(id_token, str) and id_token else None,
            refresh_token=Secret(refresh) if isinstance(refresh, str) and refresh else None,
            expires_at=expires_at,
            scope=scope if isinstance(scope, str) else None,
        )

    async def _token_request(
        self, metadata: ProviderMetadata, form: dict[str, str]
    ) -> dict[str, Any]:
        return await self._post(metadata.token_endpoint, form, audience=metadata.token_endpoint)

    async def _post(
        self, url: str, form: dict[str, str], *, audience: str, unreachable: bool = False
    ) -> dict[str, Any]:
        """POST a form; the JSON answer. No answer: :class:`ProviderUnavailable`, or with
        ``unreachable`` :class:`UpstreamUnreachable` saying whether it may have arrived."""
        auth, extra = self._client_auth(audience)
        try:
            response = await self._http.post(
                url,
                data={**form, **extra},
                auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                timeout=self._timeout,
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            if unreachable:
                # No connection was made (refused, timed out, or none free in the pool).
                not_sent = isinstance(
                    exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                )
                raise UpstreamUnreachable(type(exc).__name__, sent=not not_sent) from None
            raise ProviderUnavailable(
                f"provider {self.provider.name!r} did not answer ({type(exc).__name__})"
            ) from None
        body: Any = None
        if len(response.content) > _MAX_RESPONSE:
            raise ProviderUnavailable(f"provider {self.provider.name!r} answered oversized")
        try:
            body = response.json() if response.content else {}
        except ValueError:
            body = None
        if response.status_code != 200:
            error = body.get("error") if isinstance(body, dict) else None
            raise UpstreamError(
                response.status_code,
                error if isinstance(error, str) else None,
                _retry_after(response, self._clock.now()),
            )
        if not isinstance(body, dict):
            raise ProviderUnavailable(f"provider {self.provider.name!r} answered with no JSON")
        return body

    def _client_auth(self, audience: str) -> tuple[httpx.BasicAuth | None, dict[str, str]]:
        method = self.settings.client_auth_method
        client_id = self.settings.client_id
        secret = self.settings.client_secret or ""
        if method is ClientAuthMethod.CLIENT_SECRET_BASIC:
            # RFC 6749 2.3.1: form-encode the id and the secret before Basic encodes them.
            return httpx.BasicAuth(quote(client_id, safe=""), quote(secret, safe="")), {}
        if method is ClientAuthMethod.CLIENT_SECRET_POST:
            return None, {"client_id": client_id, "client_secret": secret}
        return None, {
            "client_id": client_id,
            "client_assertion_type": _JWT_BEARER,
            "client_assertion": self._client_assertion(audience),
        }

    def _client_assertion(self, audience: str) -> str:
        key = self._signing_key
        if key is None:  # settings validation makes this unreachable
            raise ProviderUnavailable("private_key_jwt without a private key")
        now = int(self._clock.now().timestamp())
        header: dict[str, Any] = {"alg": _alg_of(key)}
        if self.settings.private_key_id:
            header["kid"] = self.settings.private_key_id
        claims = {
            "iss": self.settings.client_id,
            "sub": self.settings.client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + 60,
        }
        return jwt.encode(header, claims, key)

    # --- userinfo, revocation, logout ---

    async def userinfo(self, access_token: Secret) -> dict[str, Any]:
        metadata = await self.provider.metadata()
        if metadata.userinfo_endpoint is None:
            return {}
        with tracer.start_as_current_span("oidc.userinfo") as span:
            span.set_attribute("oidc.provider", self.provider.name)
            try:
                response = await self._http.get(
                    metadata.userinfo_endpoint,
                    headers={
                        "Authorization": f"Bearer {access_token.reveal()}",
                        "Accept": "application/json",
                    },
                    timeout=self._timeout,
                )
            except httpx.HTTPError as exc:
                raise ProviderUnavailable(
                    f"provider {self.provider.name!r} userinfo did not answer "
                    f"({type(exc).__name__})"
                ) from None
        if response.status_code != 200 or len(response.content) > _MAX_RESPONSE:
            raise ProviderUnavailable(
                f"provider {self.provider.name!r} userinfo answered {response.status_code}"
                + (" oversized" if len(response.content) > _MAX_RESPONSE else "")
            )
        try:
            body = response.json()
        except ValueError:
            # A signed (JWT) userinfo response is not supported: ask for JSON.
            raise ProviderUnavailable(
                f"provider {self.provider.name!r} userinfo is not JSON"
            ) from None
        return body if isinstance(body, dict) else {}

    async def revoke(self, token: Secret, *, hint: str = "refresh_token") -> bool:
        """RFC 7009. ``True`` when the provider accepted; ``False`` when it offers no
        revocation or refused (the local session ends anyway)."""
        metadata = await self.provider.metadata()
        if metadata.revocation_endpoint is None:
            return False
        try:
            await self._post(
                metadata.revocation_endpoint,
                {"token": token.reveal(), "token_type_hint": hint},
                audience=metadata.revocation_endpoint,
            )
        except (UpstreamError, ProviderUnavailable) as exc:
            log.warning(
                "oidc_revocation_failed", provider=self.provider.name, reason=str(exc)[:200]
            )
            return False
        return True

    def end_session_url(
        self,
        metadata: ProviderMetadata,
        *,
        id_token_hint: Secret | None,
        post_logout_redirect_uri: str,
    ) -> str | None:
        if metadata.end_session_endpoint is None:
            return None
        params = {
            "client_id": self.settings.client_id,
            "post_logout_redirect_uri": post_logout_redirect_uri,
        }
        if id_token_hint is not None:
            params["id_token_hint"] = id_token_hint.reveal()
        separator = "&" if "?" in metadata.end_session_endpoint else "?"
        return metadata.end_session_endpoint + separator + urlencode(params)


def _client_key(pem: str | None) -> RSAKey | ECKey | OKPKey | None:
    if not pem:
        return None
    for kind in (RSAKey, ECKey, OKPKey):
        try:
            return kind.import_key(pem)
        except (ValueError, TypeError, JoseError):
            continue
    raise ValueError("private_key is not a PEM RSA, EC or Ed25519 private key")


def _alg_of(key: RSAKey | ECKey | OKPKey) -> str:
    if isinstance(key, RSAKey):
        return "RS256"
    if isinstance(key, OKPKey):
        return "EdDSA"
    return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[key.curve_name]
