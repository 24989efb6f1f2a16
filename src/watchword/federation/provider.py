"""One upstream OpenID provider: its discovery document and signing keys, fetched and cached.

Discovery (``ISSUER/.well-known/openid-configuration``) is fetched with the configured timeout
and kept for :data:`METADATA_TTL`; the document's ``issuer`` must equal the configured issuer
exactly, and every endpoint must be https (or loopback http where the operator allowed it).
A provider that cannot be reached at start does not stop the process: sign-in tries again
(at most once per :data:`DISCOVERY_BACKOFF`), answering 503 ``provider_unavailable`` while it
stays down, and ``status()`` says why for ``/readyz``. A stale document is used for at most
:data:`STALE_GRACE` past its TTL when a refresh fails.

Keys (the JWKS) are fetched on first use and re-fetched when a token names a ``kid`` the set
does not have, at most once per ``jwks_refresh_interval``: a flood of tokens with forged
``kid`` values costs the provider at most one request per interval, and concurrent misses
share one fetch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet
from opentelemetry import trace

from watchword.clock import Clock
from watchword.config import OidcProviderSettings, is_loopback_host
from watchword.errors import ProviderUnavailable
from watchword.observability.logging import get_logger

__all__ = ["METADATA_TTL", "ProviderMetadata", "UpstreamProvider"]

METADATA_TTL = timedelta(hours=1)
STALE_GRACE = timedelta(hours=24)
DISCOVERY_BACKOFF = timedelta(seconds=5)
_MAX_BODY = 512 * 1024  # discovery and JWKS documents are small; refuse anything huge

log = get_logger("watchword.federation")
tracer = trace.get_tracer("watchword.federation")


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """What watchword reads from a provider's discovery document."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None = None
    revocation_endpoint: str | None = None
    end_session_endpoint: str | None = None
    backchannel_logout_supported: bool = False
    code_challenge_methods: tuple[str, ...] = ()

    @classmethod
    def from_document(
        cls, doc: Mapping[str, Any], *, issuer: str, allow_insecure_http: bool
    ) -> ProviderMetadata:
        if doc.get("issuer") != issuer:
            # No addresses in the message: it reaches /readyz (the log has the configuration).
            raise ValueError("the discovery document names another issuer than the configured one")

        def endpoint(name: str, *, required: bool) -> str | None:
            value = doc.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not _allowed_url(value, allow_insecure_http):
                raise ValueError(f"{name} is missing or not an https URL")
            return value

        methods = doc.get("code_challenge_methods_supported") or ()
        return cls(
            issuer=issuer,
            authorization_endpoint=endpoint("authorization_endpoint", required=True) or "",
            token_endpoint=endpoint("token_endpoint", required=True) or "",
            jwks_uri=endpoint("jwks_uri", required=True) or "",
            userinfo_endpoint=endpoint("userinfo_endpoint", required=False),
            revocation_endpoint=endpoint("revocation_endpoint", required=False),
            end_session_endpoint=endpoint("end_session_endpoint", required=False),
            backchannel_logout_supported=doc.get("backchannel_logout_supported") is True,
            code_challenge_methods=tuple(m for m in methods if isinstance(m, str)),
        )


def _allowed_url(url: str, allow_insecure_http: bool) -> bool:
    parts = urlsplit(url)
    if not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and allow_insecure_http and is_loopback_host(parts.hostname)


class UpstreamProvider:
    """Discovery and keys of one configured provider, shared by every request of a process."""

    def __init__(
        self,
        settings: OidcProviderSettings,
        *,
        http: httpx.AsyncClient,
        clock: Clock,
        timeout: timedelta,
        jwks_refresh_interval: timedelta,
        allow_insecure_http: bool,
    ) -> None:
        self.settings = settings
        self._http = http
        self._clock = clock
        self.timeout_s = timeout.total_seconds()
        self._jwks_interval = jwks_refresh_interval
        self._allow_http = allow_insecure_http
        self._metadata: ProviderMetadata | None = None
        self._metadata_at: datetime | None = None
        self._metadata_lock = asyncio.Lock()
        self._discovery_failed_at: datetime | None = None
        self._keys: KeySet | None = None
        self._keys_at: datetime | None = None
        self._keys_lock = asyncio.Lock()
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self.jwks_fetches = 0

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    # --- discovery ---

    async def metadata(self) -> ProviderMetadata:
        """The provider's metadata; :class:`ProviderUnavailable` when it cannot be had."""
        now = self._clock.now()
        if self._metadata is not None and self._fresh(self._metadata_at, METADATA_TTL, now):
            return self._metadata
        async with self._metadata_lock:
            now = self._clock.now()
            if self._metadata is not None and self._fresh(self._metadata_at, METADATA_TTL, now):
                return self._metadata
            if self._metadata is None and self._fresh(
                self._discovery_failed_at, DISCOVERY_BACKOFF, now
            ):
                # Failed a moment ago: answer at once instead of asking again (a flood of
                # sign-ins while the provider is down costs it one request per back-off).
                raise ProviderUnavailable(
                    f"provider {self.name!r} is unavailable (discovery failed)"
                )
            try:
                with tracer.start_as_current_span("oidc.discovery") as span:
                    span.set_attribute("oidc.provider", self.name)
                    doc = await self._get_json(
                        self.issuer.rstrip("/") + "/.well-known/openid-configuration"
                    )
                    metadata = ProviderMetadata.from_document(
                        doc, issuer=self.issuer, allow_insecure_http=self._allow_http
                    )
            except ProviderUnavailable as exc:
                self._failed("discovery", exc.detail)
                self._discovery_failed_at = now
            except ValueError as exc:
                self._failed("discovery", str(exc))
                self._discovery_failed_at = now
            else:
                self._metadata, self._metadata_at = metadata, now
                self._last_error = None
                return metadata
            stale_ok = self._fresh(self._metadata_at, METADATA_TTL + STALE_GRACE, now)
            if self._metadata is not None and stale_ok:
                return self._metadata
            raise ProviderUnavailable(f"provider {self.name!r} is unavailable (discovery failed)")

    # --- keys ---

    async def key_for(self, kid: str | None, alg: str) -> Key:
        """The provider's key named ``kid`` (the only key, when ``kid`` is absent and the set
        has one key usable with ``alg``); an unknown ``kid`` re-fetches the set at most once per
        interval. ``LookupError`` when there is no such key."""
        keys = self._keys
        if keys is None:
            keys = await self._refresh_keys(force=True)
        found = _pick(keys, kid, alg)
        if found is not None:
            return found
        keys = await self._refresh_keys(force=False)
        found = _pick(keys, kid, alg)
        if found is None:
            raise LookupError(f"no key {kid!r} for {alg} at provider {self.name!r}")
        return found

    async def _refresh_keys(self, *, force: bool) -> KeySet:
        seen_at = self._keys_at
        async with self._keys_lock:
            if self._keys is not None and self._keys_at != seen_at:
                return self._keys  # another task fetched while this one waited
            now = self._clock.now()
            if self._fresh(self._keys_at, self._jwks_interval, now):
                # Tried recently (successfully or not): an unknown kid, or a provider whose
                # keys could not be read, does not fetch again before the interval is over.
                if self._keys is not None and not force:
                    return self._keys
                if self._keys is None:
                    raise ProviderUnavailable(
                        f"provider {self.name!r} is unavailable (its signing keys cannot be read)"
                    )
            metadata = await self.metadata()
            try:
                with tracer.start_as_current_span("oidc.jwks") as span:
                    span.set_attribute("oidc.provider", self.name)
                    self.jwks_fetches += 1
                    doc = await self._get_json(metadata.jwks_uri)
                    keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
            except (ProviderUnavailable, JoseError, ValueError, TypeError, KeyError) as exc:
                self._keys_at = now  # a failed fetch counts against the interval too
                self._failed("jwks", type(exc).__name__)
                if self._keys is not None:
                    return self._keys
                raise ProviderUnavailable(
                    f"provider {self.name!r} is unavailable (its signing keys cannot be read)"
                ) from None
            self._keys, self._keys_at = keys, now
            return keys

    # --- status ---

    def status(self) -> dict[str, str]:
        """For ``/readyz`` details: ``ok``, ``unknown`` (not contacted yet) or ``failing``."""
        if self._last_error is not None:
            return {
                "status": "failing",
                "detail": self._last_error,
                "since": self._last_error_at.isoformat() if self._last_error_at else "",
            }
        return {"status": "ok" if self._metadata is not None else "unknown"}

    # --- plumbing ---

    def _failed(self, stage: str, reason: str) -> None:
        if self._last_error is None:
            self._last_error_at = self._clock.now()
        self._last_error = f"{stage} failed: {reason}"
        log.warning("oidc_provider_unavailable", provider=self.name, stage=stage, reason=reason)

    @staticmethod
    def _fresh(at: datetime | None, ttl: timedelta, now: datetime) -> bool:
        return at is not None and now - at < ttl

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(
                url, timeout=self.timeout_s, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            self._log_fetch(url, type(exc).__name__)
            raise ProviderUnavailable(type(exc).__name__) from None
        problem = None
        doc: Any = None
        if response.status_code != 200:
            problem = f"HTTP {response.status_code}"
        elif len(response.content) > _MAX_BODY:
            problem = "oversized document"
        else:
            try:
                doc = response.json()
            except ValueError:
                problem = "not JSON"
            else:
                if not isinstance(doc, dict):
                    problem = "not a JSON object"
        if problem is not None:
            self._log_fetch(url, problem)
            raise ProviderUnavailable(problem)
        return dict(doc)

    def _log_fetch(self, url: str, problem: str) -> None:
        # The address goes to the operators' log only (readyz and errors never name it).
        log.warning("oidc_fetch_failed", provider=self.name, url=_where(url), problem=problem)


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _pick(keys: KeySet, kid: str | None, alg: str) -> Key | None:
    candidates = [
        key
        for key in keys.keys
        if (kid is None or key.kid == kid)
        and key.get("use") in (None, "sig")
        and key.get("alg") in (None, alg)
    ]
    if kid is None and len(candidates) != 1:
        return None
    return candidates[0] if candidates else None
