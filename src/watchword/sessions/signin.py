"""Sign-in through an upstream provider, sign-out, and back-channel logout.

**Start** (``GET /auth/login``): a ``state`` (32 random bytes) is stored as its SHA-256 beside
the SHA-256 of the browser's *binding* secret, a random value in a short-lived HttpOnly
cookie (kept across sign-ins of one browser, so two tabs can sign in at once). The PKCE
verifier and the nonce are derived from the binding secret and the state (HMAC-SHA256), so
nothing that redeems the code is stored anywhere but in that browser's cookie.

**Finish** (``GET /auth/callback``): the flow row is deleted by (state, binding) in one step, so
a state works once and only in the browser that started it (login CSRF: an attacker's code
and state arrive in a browser whose binding secret is another one). Then the code is
exchanged with the verifier, the ID token verified (signature with the algorithm
allow-list, issuer, audience, azp, exp/iat with leeway, nonce), userinfo fetched when
configured (its ``sub`` must be the ID token's), and a new session made.

**Sign-out**: the session is deleted; its refresh token is revoked at the provider (RFC 7009)
where offered, and the browser is sent to the provider's end-session endpoint (with
``id_token_hint`` and ``post_logout_redirect_uri``) where offered.

**Back-channel logout**: a logout token (a JWT the provider posts) is verified like an ID token
with the logout-token rules, its ``jti`` remembered so a replay is refused, and the sessions it
names (``sid``, else every session of ``sub``) end.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from sqlalchemy import and_
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.clock import Clock
from watchword.config import OidcProviderSettings
from watchword.errors import (
    IdTokenInvalid,
    LogoutTokenInvalid,
    ProviderUnknown,
    SigninCodeRejected,
    SigninDenied,
    SigninStateInvalid,
    WatchwordError,
)
from watchword.federation.client import OidcClient
from watchword.federation.jwt import (
    check_id_token_claims,
    check_logout_token_claims,
    unverified_issuer,
    verify_signature,
)
from watchword.federation.returnto import ReturnTo
from watchword.observability.logging import get_logger
from watchword.secret import Secret, sha256_hex
from watchword.sessions import store
from watchword.sessions.model import SessionRecord
from watchword.sessions.service import EndedSession, NewSession, SessionFilter, SessionService
from watchword.sessions.tables import sessions as sessions_table

__all__ = [
    "Finished",
    "OrganizationsOf",
    "SigninService",
    "Started",
    "is_binding",
    "signed_only_claims",
]

OrganizationsOf = Callable[[str, str, Mapping[str, Any]], Awaitable[Sequence[str]]]
"""(issuer, subject, claims) → the organizations the subject belongs to (RBAC decides)."""

log = get_logger("watchword.signin")
_BINDING = re.compile(r"^[A-Za-z0-9_-]{43}$")
# Claims of the ID token that are about the exchange, not the person: not kept.
_EXCHANGE_CLAIMS = frozenset({"nonce", "at_hash", "c_hash", "s_hash"})
_MAX_PARAM = 4096
_MAX_SUBJECT = 255  # the sessions.subject column
_PROTECTED_CLAIMS = frozenset({"iss", "aud", "sub", "exp", "iat", "nbf", "azp", "sid", "auth_time"})
JANITOR_EVERY = timedelta(minutes=1)
LOGOUT_TOKEN_MAX_AGE = timedelta(minutes=5)


def signed_only_claims(settings: OidcProviderSettings, default_authz_claim: str) -> set[str]:
    """Claims taken only from a signed ID token, never from userinfo: the protocol's own,
    and those identity and authorization are read from."""
    return {
        *_PROTECTED_CLAIMS,
        settings.subject_claim,
        settings.authz_claim or default_authz_claim,
        *([settings.groups_claim] if settings.groups_claim else []),
    }


def is_binding(value: str | None) -> bool:
    return value is not None and _BINDING.match(value) is not None


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _derive(binding: str, purpose: str, state: str) -> str:
    return _b64(hmac.new(binding.encode(), f"{purpose}\0{state}".encode(), "sha256").digest())


@dataclass(frozen=True, slots=True)
class Started:
    authorization_url: str
    binding: str  # the browser's binding secret (set as a cookie)


@dataclass(frozen=True, slots=True)
class Finished:
    record: SessionRecord
    cookie: Secret
    return_to: str


class SigninService:
    """Sign-in, sign-out and back-channel logout over the configured providers."""

    def __init__(
        self,
        *,
        clients: Sequence[OidcClient],
        sessions: SessionService,
        engine: AsyncEngine,
        clock: Clock,
        public_url: str,
        return_to: ReturnTo,
        signin_timeout: timedelta,
        leeway: timedelta,
        registry: CollectorRegistry,
        organizations_of: OrganizationsOf | None = None,
        authz_claim: str = "https://watchword.dev/authz",
    ) -> None:
        self._authz_claim = authz_claim
        self._organizations_of = organizations_of
        self._background: set[asyncio.Task[None]] = set()
        self.clients = {client.provider.name: client for client in clients}
        self.sessions = sessions
        self._engine = engine
        self._clock = clock
        base = public_url.rstrip("/")
        self.redirect_uri = base + "/auth/callback"
        self.signed_out_uri = base + "/auth/signed-out"
        self.return_to = return_to
        self._timeout = signin_timeout
        self._leeway = leeway
        self._latency = Histogram(
            "watchword_signin_callback_seconds",
            "Time to finish a sign-in at the callback (code exchange, ID token, userinfo).",
            ["provider"],
            registry=registry,
        )

    def client(self, name: str | None) -> OidcClient:
        if name is None or name not in self.clients:
            raise ProviderUnknown(
                f"no sign-in provider named {name!r}" if name else "name a provider",
                pointer="/query/provider",
            )
        return self.clients[name]

    # --- start ---

    async def start(
        self, provider: str | None, return_to: str | None, binding: str | None
    ) -> Started:
        client = self.client(provider)
        destination = self.return_to.check(return_to)
        metadata = await client.provider.metadata()
        if binding is None or not is_binding(binding):
            binding = secrets.token_urlsafe(32)
        state = secrets.token_urlsafe(32)
        now = self._clock.now()
        async with self._engine.begin() as conn:
            await store.insert_flow(
                conn,
                state_hash=sha256_hex(state),
                binding_hash=sha256_hex(binding),
                provider=client.provider.name,
                return_to=destination,
                now=now,
                expires_at=now + self._timeout,
            )
        verifier = _derive(binding, "pkce", state)
        url = client.authorization_url(
            metadata,
            redirect_uri=self.redirect_uri,
            state=state,
            nonce=_derive(binding, "nonce", state),
            code_challenge=_b64(hashlib.sha256(verifier.encode()).digest()),
        )
        return Started(url, binding)

    # --- finish ---

    async def finish(self, params: Mapping[str, str], binding: str | None) -> Finished:
        """Finish the sign-in a callback's query ``params`` answer. Every failure is counted
        and logged with its reason (never a token)."""
        started = time.perf_counter()
        provider = "unknown"
        try:
            flow = await self._take_flow(params, binding)
            provider = flow.provider
            result = await self._finish(flow, params, binding or "")
        except WatchwordError as exc:
            self.sessions.metrics.signins.labels(provider, exc.code).inc()
            log.warning("signin_failed", provider=provider, code=exc.code, reason=exc.detail)
            raise
        self._latency.labels(provider).observe(time.perf_counter() - started)
        self.sessions.metrics.signins.labels(provider, "ok").inc()
        log.info(
            "signin_completed",
            provider=provider,
            session_id=result.record.id,
            issuer=result.record.issuer,
            subject=result.record.subject,
        )
        return result

    async def _take_flow(self, params: Mapping[str, str], binding: str | None) -> store.FlowRow:
        state = params.get("state")
        if not state or len(state) > _MAX_PARAM:
            raise SigninStateInvalid("the callback carries no state")
        if binding is None or not is_binding(binding):
            raise SigninStateInvalid(
                "this browser did not start this sign-in (or its sign-in cookie expired)"
            )
        async with self._engine.begin() as conn:
            flow = await store.take_flow(
                conn, state_hash=sha256_hex(state), binding_hash=sha256_hex(binding)
            )
        if flow is None:
            raise SigninStateInvalid(
                "unknown or used state, or a sign-in started in another browser"
            )
        if self._clock.now() >= flow.expires_at:
            raise SigninStateInvalid("this sign-in took too long; start again")
        if flow.provider not in self.clients:
            raise SigninStateInvalid("the provider of this sign-in is no longer configured")
        return flow

    async def _finish(
        self, flow: store.FlowRow, params: Mapping[str, str], binding: str
    ) -> Finished:
        client = self.clients[flow.provider]
        state = params["state"]
        error = params.get("error")
        if error:
            raise SigninDenied(
                f"the provider ended the sign-in: {error[:100]}", provider_error=error[:100]
            )
        code = params.get("code")
        if not code or len(code) > _MAX_PARAM:
            raise SigninCodeRejected("the callback carries no authorization code")
        tokens = await client.exchange_code(
            code, redirect_uri=self.redirect_uri, code_verifier=_derive(binding, "pkce", state)
        )
        if tokens.id_token is None:
            raise IdTokenInvalid("the provider answered without an ID token")
        settings = client.settings
        claims = await verify_signature(
            client.provider, tokens.id_token.reveal(), algorithms=settings.id_token_algorithms
        )
        check_id_token_claims(
            claims,
            issuer=client.provider.issuer,
            client_id=settings.client_id,
            nonce=_derive(binding, "nonce", state),
            now=self._clock.now(),
            leeway=self._leeway,
            subject_claim=settings.subject_claim,
        )
        kept = {k: v for k, v in claims.items() if k not in _EXCHANGE_CLAIMS}
        if settings.userinfo:
            info = await client.userinfo(tokens.access_token)
            if info:
                if info.get("sub") != claims.get("sub"):
                    raise IdTokenInvalid("userinfo names another subject than the ID token")
                # The signed, nonce-bound ID token wins: userinfo only adds claims it lacks,
                # and never the ones identity and authorization are read from.
                signed_only = signed_only_claims(settings, self._authz_claim)
                kept.update(
                    {k: v for k, v in info.items() if k not in kept and k not in signed_only}
                )
        subject = claims[settings.subject_claim]
        if not isinstance(subject, str) or len(subject) > _MAX_SUBJECT:
            raise IdTokenInvalid(
                f"the subject is not a string of at most {_MAX_SUBJECT} characters"
            )
        organizations: Sequence[str] = ()
        if self._organizations_of is not None:
            organizations = await self._organizations_of(client.provider.issuer, subject, kept)
        record, cookie = await self.sessions.create(
            NewSession(
                provider=flow.provider,
                issuer=client.provider.issuer,
                subject=subject,
                upstream_sid=_text(claims.get("sid"), 255),
                email=_text(kept.get(settings.email_claim), 320),
                display_name=_text(kept.get(settings.name_claim), 200),
                claims=kept,
                organization_ids=organizations,
                access_token=tokens.access_token,
                refresh_token=tokens.refresh_token,
                id_token=tokens.id_token,
                access_expires_at=tokens.expires_at,
            )
        )
        return Finished(record, cookie, flow.return_to)

    # --- sign-out ---

    async def logout(self, session_id: str) -> str | None:
        """End the session; revoke its refresh token upstream; the provider's end-session
        URL to send the browser to, if it offers one (else ``None``)."""
        try:
            ended = await self.sessions.end(session_id, reason="logout")
        except WatchwordError:
            return None
        client = self.clients.get(ended.record.provider)
        if client is None:
            return None
        await self._revoke([ended])
        if not client.settings.rp_logout:
            return None
        try:
            metadata = await client.provider.metadata()
        except WatchwordError:
            return None
        return client.end_session_url(
            metadata, id_token_hint=ended.id_token, post_logout_redirect_uri=self.signed_out_uri
        )

    # --- back-channel logout ---

    async def backchannel_logout(self, logout_token: str) -> int:
        """End the sessions a provider's logout token names; how many ended. A refusal is
        logged with its reason."""
        try:
            return await self._backchannel_logout(logout_token)
        except WatchwordError as exc:
            log.warning("backchannel_logout_refused", code=exc.code, reason=exc.detail)
            raise

    async def _backchannel_logout(self, logout_token: str) -> int:
        issuer, audiences = unverified_issuer(logout_token, LogoutTokenInvalid)
        candidates = [
            c
            for c in self.clients.values()
            if c.provider.issuer == issuer and c.settings.client_id in audiences
        ]
        if not candidates:
            raise LogoutTokenInvalid("issued by no configured provider for this client")
        client = candidates[0]
        claims = await verify_signature(
            client.provider,
            logout_token,
            algorithms=client.settings.id_token_algorithms,
            error=LogoutTokenInvalid,
        )
        now = self._clock.now()
        check_logout_token_claims(
            claims,
            issuer=client.provider.issuer,
            client_id=client.settings.client_id,
            now=now,
            leeway=self._leeway,
            max_age=LOGOUT_TOKEN_MAX_AGE,
        )
        # Remembered as long as the token could be accepted: iat may be up to the leeway in
        # the future and is accepted until max age plus the leeway after it.
        fresh = await self.sessions.remember_logout_token(
            f"{issuer}\0{claims['jti']}",
            expires_at=now + LOGOUT_TOKEN_MAX_AGE + 2 * self._leeway + timedelta(minutes=1),
        )
        if not fresh:
            raise LogoutTokenInvalid("this logout token was already used (jti)")
        sid, sub = claims.get("sid"), claims.get("sub")
        ended = await self.sessions.end_for_upstream(
            client.provider.issuer,
            sid=sid if isinstance(sid, str) and sid else None,
            subject=sub if isinstance(sub, str) and sub else None,
            reason="backchannel",
        )
        log.info("backchannel_logout", provider=client.provider.name, ended=len(ended))
        return len(ended)

    async def end_sessions(self, session_ids: Sequence[str], *, reason: str) -> int:
        """End sessions by id and revoke their upstream refresh tokens; how many ended."""
        ended = await self.sessions.end_where(
            sessions_table.c.id.in_(list(session_ids)), reason=reason
        )
        await self._revoke(ended)
        return len(ended)

    async def end_subject(
        self, issuer: str, subject: str, *, organization_id: str | None = None
    ) -> int:
        """Sign a subject out everywhere (in one organization's sessions, when named)."""
        where = SessionFilter(
            issuer=issuer, subject=subject, organization_id=organization_id
        ).where()
        ended = await self.sessions.end_where(and_(*where), reason="admin")
        await self._revoke(ended)
        return len(ended)

    async def _revoke(self, ended: Sequence[EndedSession]) -> None:
        for session in ended:
            client = self.clients.get(session.record.provider)
            if client is None or session.refresh_token is None:
                continue
            if client.settings.revoke_on_logout:
                try:
                    await client.revoke(session.refresh_token)
                except WatchwordError as exc:
                    log.warning(
                        "oidc_revocation_failed", provider=client.provider.name, code=exc.code
                    )

    async def run_janitor(self, *, stop: asyncio.Event, every: timedelta = JANITOR_EVERY) -> None:
        """Delete expired sessions, sign-in flows and remembered logout tokens every
        ``every`` until ``stop`` (each pass is idempotent: replicas need no lock)."""
        while not stop.is_set():
            try:
                counts = await self.sessions.delete_expired()
                if any(counts.values()):
                    log.info("session_janitor_pass", **counts)
            except WatchwordError as exc:
                log.warning("session_janitor_failed", code=exc.code, reason=exc.detail)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every.total_seconds())

    def warm_up(self) -> None:
        """Fetch every provider's discovery document in the background (so ``/readyz`` knows
        at once which are down); a provider that is down delays nothing."""

        async def fetch(client: OidcClient) -> None:
            with contextlib.suppress(WatchwordError):
                await client.provider.metadata()

        for client in self.clients.values():
            task = asyncio.create_task(fetch(client), name=f"oidc-warm-up-{client.provider.name}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def provider_status(self) -> dict[str, dict[str, str]]:
        return {name: c.provider.status() for name, c in self.clients.items()}

    def provider_choices(self) -> list[tuple[str, str]]:
        return [(name, c.settings.display_name or name) for name, c in self.clients.items()]


def _text(value: object, limit: int) -> str | None:
    return value[:limit] if isinstance(value, str) and value else None
