"""Refreshing one session's upstream tokens: through the refresh-once lock, each refresh token
presented at most once, even across a crash.

The steps for session ``S`` (lock key ``session-refresh:S``):

1. read ``S``; if it is not active, or its refresh is not due (and not forced), return it as
   it is (a waiter that queued behind the winner lands here and gets the winner's result);
2. take the lock; **read again**;
3. an **intent** left in the row (``intent_fence`` set) means a previous holder died between
   recording its intent and recording the outcome: the provider may have rotated the token,
   so it is not presented again. The session needs a new sign-in (``refresh_interrupted``),
   unless the provider is configured as non-rotating (then the intent is cleared and the
   refresh proceeds);
4. record the intent (fenced write: ``intent_fence = lease.fence``), then **renew the lease**
   right before the call; a lease that is gone raises :class:`LockLost` and nothing is sent;
5. call the token endpoint (per-call timeout; the lease is renewed while it runs);
6. record the outcome in one fenced write that also clears the intent:
   - success: the new tokens (sealed), the new access expiry, claims of a new ID token,
     failures reset, the next due time;
   - a permanent refusal (``invalid_grant``, …): the session needs a new sign-in, reason kept;
   - a temporary failure the provider answered (5xx, 429 with ``Retry-After``), or no
     connection at all: failures + 1, the error kept, retried later (backoff);
   - no answer after the request may have arrived (read timeout, connection dropped): like
     an interrupted holder, the token may be spent: a new sign-in (non-rotating providers:
     retried).

Every write is fenced (``fence <= lease.fence``, then ``fence = lease.fence``): a holder whose
lease was taken over cannot overwrite its successor. No token ever reaches a log line.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.clock import Clock, utc
from watchword.errors import IdTokenInvalid, NotFound, ProviderUnavailable, SessionInvalid
from watchword.federation.client import OidcClient, TokenSet, UpstreamError, UpstreamUnreachable
from watchword.federation.jwt import verify_signature
from watchword.locks import LockLost, Locks, kept_alive
from watchword.observability.logging import get_logger
from watchword.secret import Secret
from watchword.sessions.model import ACTIVE, REAUTH_REQUIRED, SessionRecord
from watchword.sessions.schedule import (
    Failure,
    RefreshPolicy,
    RefreshState,
    classify,
    refresh_due,
)
from watchword.sessions.sealing import SealedColumn, Sealer, UnsealError
from watchword.sessions.service import SessionService
from watchword.sessions.signin import signed_only_claims
from watchword.sessions.store import record_of
from watchword.sessions.tables import sessions

__all__ = ["AccessToken", "Outcome", "RefreshMetrics", "RefreshResult", "SessionRefresher"]

log = get_logger("watchword.refresher")
_WANT_RECORD: ContextVar[bool] = ContextVar("watchword_refresh_want_record", default=True)


class Outcome(StrEnum):
    REFRESHED = "refreshed"
    NOT_DUE = "not_due"  # fresh enough, or refreshed by someone else meanwhile
    INACTIVE = "inactive"  # needs sign-in already, or gone
    TEMPORARY = "temporary_failure"
    PERMANENT = "permanent_failure"
    INTERRUPTED = "interrupted"  # an earlier holder died mid-call: sign-in needed
    LOST = "lock_lost"


@dataclass(frozen=True, slots=True)
class RefreshResult:
    outcome: Outcome
    record: SessionRecord | None


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A session's current upstream access token (never printed)."""

    token: Secret
    expires_at: datetime | None
    token_type: str = "Bearer"  # noqa: S105 - a token type name


class RefreshMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refreshes = Counter(
            "watchword_session_refreshes_total",
            "Session refreshes by provider and outcome.",
            ["provider", "outcome"],
            registry=registry,
        )
        self.lag = Histogram(
            "watchword_session_refresh_lag_seconds",
            "When a refresh ran minus when it was due.",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.left = Histogram(
            "watchword_session_token_time_left_seconds",
            "Time left on the upstream access token when it was refreshed.",
            buckets=(0, 5, 10, 20, 30, 45, 60, 120, 300, 600),
            registry=registry,
        )
        self.last_success = Gauge(
            "watchword_session_refresh_last_success_timestamp",
            "Unix time of the last successful refresh in this process.",
            registry=registry,
        )


def _as_of(row: Mapping[str, Any]) -> RefreshState:
    return RefreshState(
        access_expires_at=row["access_expires_at"],
        has_refresh_token=row["refresh_token"] is not None,
        last_attempt_at=row["refresh_attempt_at"],
        failures=row["refresh_failures"],
        retry_after=row["retry_after"],
    )


class SessionRefresher:
    """Refreshes sessions one at a time each, through the lock; shared by the background
    refresher, ``GET /v1/me/token`` and ``watchword sessions refresh``."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        locks: Locks,
        sessions: SessionService,
        sealer: Sealer | None,
        clients: Mapping[str, OidcClient],
        policy: RefreshPolicy,
        call_timeout: timedelta,
        leeway: timedelta,
        metrics: RefreshMetrics,
        rng: random.Random | None = None,
        authz_claim: str = "https://watchword.dev/authz",
    ) -> None:
        self._authz_claim = authz_claim
        self._engine = engine
        self._clock = clock
        self._locks = locks
        self._sessions = sessions
        self._sealer = sealer
        self.clients = clients
        self.policy = policy
        self._call_timeout = call_timeout
        self._leeway = leeway
        self.metrics = metrics
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        # The lease covers the call and the writes around it; renewed every third of it.
        self._lock_ttl = call_timeout * 2 + timedelta(seconds=5)
        self._lock_wait = call_timeout * 2 + timedelta(seconds=10)
        self.last_error: tuple[datetime, str] | None = None

    def due_at(self, row: Mapping[str, Any]) -> datetime | None:
        return refresh_due(_as_of(row), self.policy, jitter=self._rng.random())

    # --- one session ---

    async def refresh(
        self,
        session_id: str,
        *,
        force: bool = False,
        want_record: bool = True,
        known_due: bool = False,
    ) -> RefreshResult:
        """Refresh ``session_id`` if it is due (or ``force``), at most once across every
        process; the session as it is afterwards (``want_record=False``: not read again, for
        the background refresher, which does not look at it; ``known_due``: the caller just
        read it as due, so the first read is skipped — the read under the lock decides)."""
        _WANT_RECORD.set(want_record)  # this task's own (contextvars): concurrent calls differ
        row: dict[str, Any] | None = None
        if not known_due:  # the background pass just read it as due: straight to the lock
            row = await self._read(session_id)
            if row is None:
                return RefreshResult(Outcome.INACTIVE, None)
            # Someone is mid-refresh (an intent is recorded): queue behind it for its result.
            busy = row["intent_fence"] is not None
            if not busy and not self._wanted(row, force):
                return RefreshResult(self._idle_outcome(row), record_of_row(row))
        try:
            async with self._locks.hold(
                _lock_key(session_id), ttl=self._lock_ttl, wait=self._lock_wait
            ) as lease:
                row = await self._read(session_id)
                if row is None:
                    return RefreshResult(Outcome.INACTIVE, None)
                provider = row["provider"]
                client = self.clients.get(provider)
                if row["intent_fence"] is not None:
                    rotating = client is None or client.settings.rotating_refresh_tokens
                    if rotating:
                        return await self._interrupted(row, lease.fence, provider)
                if not self._wanted(row, force):
                    return RefreshResult(self._idle_outcome(row), record_of_row(row))
                if client is None:
                    # Another process may still know it (a configuration being rolled out):
                    # retried later, never a reason to end the session here.
                    return await self._finish_temporary(
                        row, lease.fence, provider, "provider not configured here", None
                    )
                return await self._redeem(row, client, lease)
        except LockLost:
            self.metrics.refreshes.labels(provider_of(row), Outcome.LOST.value).inc()
            return RefreshResult(Outcome.LOST, None)

    async def access_token(self, session_id: str) -> AccessToken:
        """The session's upstream access token, refreshed first (inline, through the lock)
        when it is inside the grace period. :class:`SessionInvalid` when the session needs a
        new sign-in; :class:`ProviderUnavailable` when the token has expired and the provider
        cannot refresh it now."""
        row = await self._read(session_id)
        if row is None or row["state"] != ACTIVE:
            raise SessionInvalid(_why(row))
        expires = row["access_expires_at"]
        now = self._clock.now()
        if expires is not None and now >= expires - self.policy.grace:
            result = await self.refresh(session_id)
            row = await self._read(session_id)
            if row is None or row["state"] != ACTIVE:
                raise SessionInvalid(_why(row))
            expires = row["access_expires_at"]
            if expires is not None and self._clock.now() >= expires:
                raise ProviderUnavailable(
                    "the upstream access token has expired and could not be refreshed now "
                    f"({result.outcome.value}); retry later"
                )
        sealed = row["access_token"]
        if sealed is None or self._sealer is None:
            raise SessionInvalid("the session holds no upstream access token")
        try:
            token = self._sealer.open(
                sealed, session_id=session_id, column=SealedColumn.ACCESS_TOKEN
            )
        except UnsealError:
            raise SessionInvalid("the session's upstream token cannot be read") from None
        return AccessToken(token, expires)

    # --- steps ---

    def _wanted(self, row: Mapping[str, Any], force: bool) -> bool:
        if row["state"] != ACTIVE or row["refresh_token"] is None:
            return False
        if force:
            return True
        due = refresh_due(_as_of(row), self.policy)
        return due is not None and due <= self._clock.now()

    @staticmethod
    def _idle_outcome(row: Mapping[str, Any]) -> Outcome:
        return Outcome.NOT_DUE if row["state"] == ACTIVE else Outcome.INACTIVE

    async def _redeem(
        self, row: Mapping[str, Any], client: OidcClient, lease: Any
    ) -> RefreshResult:
        session_id, provider = row["id"], row["provider"]
        sealer = self._require_sealer()
        try:
            refresh_token = sealer.open(
                row["refresh_token"], session_id=session_id, column=SealedColumn.REFRESH_TOKEN
            )
        except UnsealError:
            return await self._finish_permanent(row, lease.fence, provider, "token_unreadable")
        now = self._clock.now()
        due = refresh_due(_as_of(row), self.policy)
        intent = await self._write(
            session_id,
            lease.fence,
            intent_fence=lease.fence,
            intent_at=now,
            refresh_attempt_at=now,
        )
        if not intent:
            raise LockLost(lease.key, lease.fence)
        renewed = await self._locks.renew(lease, self._lock_ttl)  # LockLost: nothing is sent
        if due is not None:
            self.metrics.lag.observe(max(0.0, (now - due).total_seconds()))
        if row["access_expires_at"] is not None:
            left = (row["access_expires_at"] - now).total_seconds()
            self.metrics.left.observe(max(0.0, left))
        try:
            async with kept_alive(self._locks, renewed, self._lock_ttl):
                async with asyncio.timeout(self._call_timeout.total_seconds()):
                    fresh = await client.refresh(refresh_token)
        except UpstreamError as exc:
            reason = f"{exc.status} {exc.error or ''}".strip()
            if classify(exc.status, exc.error) is Failure.PERMANENT:
                return await self._finish_permanent(row, lease.fence, provider, reason)
            retry_at = now + timedelta(seconds=exc.retry_after_s) if exc.retry_after_s else None
            return await self._finish_temporary(row, lease.fence, provider, reason, retry_at)
        except ProviderUnavailable as exc:  # discovery failed: nothing was sent
            return await self._finish_temporary(row, lease.fence, provider, exc.detail, None)
        except (UpstreamUnreachable, TimeoutError) as exc:
            sent = exc.sent if isinstance(exc, UpstreamUnreachable) else True
            reason = str(exc) if isinstance(exc, UpstreamUnreachable) else "call timed out"
            if sent and client.settings.rotating_refresh_tokens:
                # The provider may have rotated the token and its answer is lost: presenting
                # it again would revoke the whole family. A new sign-in instead.
                return await self._finish_permanent(
                    row, lease.fence, provider, f"refresh_interrupted: {reason}"
                )
            return await self._finish_temporary(row, lease.fence, provider, reason, None)
        return await self._finish_success(row, lease.fence, client, fresh, attempted_at=now)

    async def _finish_success(
        self,
        row: Mapping[str, Any],
        fence: int,
        client: OidcClient,
        fresh: TokenSet,
        *,
        attempted_at: datetime,
    ) -> RefreshResult:
        session_id, provider = row["id"], row["provider"]
        sealer = self._require_sealer()
        now = self._clock.now()
        claims: dict[str, Any] | None = None
        if fresh.id_token is not None:
            claims = await self._check_refreshed_id_token(row, client, fresh.id_token)
        userinfo_at = row["userinfo_at"]
        if client.settings.userinfo and (
            userinfo_at is None or now >= utc(userinfo_at) + self.policy.userinfo_interval
        ):
            claims = await self._refresh_userinfo(
                row, client, fresh.access_token, claims, signed=fresh.id_token is not None
            )
            userinfo_at = now
        values: dict[str, Any] = {
            "access_token": sealer.seal(
                fresh.access_token.reveal(),
                session_id=session_id,
                column=SealedColumn.ACCESS_TOKEN,
            ),
            "access_expires_at": fresh.expires_at,
            "key_id": sealer.primary_id,
            "refreshed_at": now,
            "refresh_failures": 0,
            "retry_after": None,
            "last_error": None,
            "last_error_at": None,
            "userinfo_at": userinfo_at,
        }
        # Re-seal every token column under the current key (the row carries one key id).
        if fresh.refresh_token is not None:
            values["refresh_token"] = sealer.seal(
                fresh.refresh_token.reveal(),
                session_id=session_id,
                column=SealedColumn.REFRESH_TOKEN,
            )
        elif row["key_id"] != sealer.primary_id:
            values["refresh_token"] = sealer.reseal(
                row["refresh_token"], session_id=session_id, column=SealedColumn.REFRESH_TOKEN
            )
        if fresh.id_token is not None:
            values["id_token"] = sealer.seal(
                fresh.id_token.reveal(), session_id=session_id, column=SealedColumn.ID_TOKEN
            )
        elif row["id_token"] is not None and row["key_id"] != sealer.primary_id:
            values["id_token"] = sealer.reseal(
                row["id_token"], session_id=session_id, column=SealedColumn.ID_TOKEN
            )
        if claims is not None:
            values["claims"] = json.dumps(claims, separators=(",", ":"), sort_keys=True)
        values["refresh_due_at"] = refresh_due(
            RefreshState(
                fresh.expires_at,
                has_refresh_token=fresh.refresh_token is not None
                or row["refresh_token"] is not None,
                last_attempt_at=now,
            ),
            self.policy,
            jitter=self._rng.random(),
        )
        await self._conclude(
            session_id, fence, provider, Outcome.REFRESHED, announce=True, **values
        )
        self.metrics.last_success.set(now.timestamp())
        # How long the replaced access token had left when its refresh was decided: at most
        # ``grace`` unless forced, so a session is refreshed once per token lifetime.
        left = row["access_expires_at"]
        log.info(
            "session_refreshed",
            session_id=session_id,
            provider=provider,
            time_left_s=None if left is None else round((left - attempted_at).total_seconds(), 3),
        )
        return RefreshResult(Outcome.REFRESHED, await self._record(session_id))

    async def _check_refreshed_id_token(
        self, row: Mapping[str, Any], client: OidcClient, id_token: Secret
    ) -> dict[str, Any] | None:
        """OpenID Connect Core 12.2: a refreshed ID token keeps iss, sub and aud; its claims
        replace the snapshot. One that does not verify is ignored (the refresh stands)."""
        try:
            claims = await verify_signature(
                client.provider, id_token.reveal(), algorithms=client.settings.id_token_algorithms
            )
        except (IdTokenInvalid, ProviderUnavailable) as exc:
            log.warning("refreshed_id_token_ignored", session_id=row["id"], code=exc.code)
            return None
        same = (
            claims.get("iss") == client.provider.issuer
            and claims.get(client.settings.subject_claim) == row["subject"]
        )
        if not same:
            log.warning("refreshed_id_token_ignored", session_id=row["id"], code="other_subject")
            return None
        kept = dict(json.loads(row["claims"]))
        kept.update(
            {k: v for k, v in claims.items() if k not in {"nonce", "at_hash", "c_hash", "s_hash"}}
        )
        return kept

    async def _refresh_userinfo(
        self,
        row: Mapping[str, Any],
        client: OidcClient,
        access_token: Secret,
        claims: dict[str, Any] | None,
        *,
        signed: bool,
    ) -> dict[str, Any] | None:
        """User info on its own interval (as in the seed): its values replace the snapshot's
        for claims that a signed ID token does not carry (a new ID token's claims win, and
        the identity and authorization claims never come from userinfo). A failure keeps
        the snapshot; the refresh stands."""
        try:
            info = await client.userinfo(access_token)
        except ProviderUnavailable as exc:
            log.warning("userinfo_refresh_failed", session_id=row["id"], code=exc.code)
            return claims
        if not info or info.get("sub") != row["subject"]:
            return claims
        kept = dict(claims if claims is not None else json.loads(row["claims"]))
        blocked = signed_only_claims(client.settings, self._authz_claim)
        if signed and claims is not None:
            blocked |= set(claims)
        kept.update({k: v for k, v in info.items() if k not in blocked})
        return kept

    async def _finish_temporary(
        self,
        row: Mapping[str, Any],
        fence: int,
        provider: str,
        reason: str,
        retry_at: datetime | None,
    ) -> RefreshResult:
        now = self._clock.now()
        failures = int(row["refresh_failures"]) + 1
        due = refresh_due(
            RefreshState(
                row["access_expires_at"],
                has_refresh_token=True,
                last_attempt_at=now,
                failures=failures,
                retry_after=retry_at,
            ),
            self.policy,
            jitter=self._rng.random(),
        )
        await self._conclude(
            row["id"],
            fence,
            provider,
            Outcome.TEMPORARY,
            announce=False,  # claims and state unchanged: caches stay right
            refresh_failures=failures,
            retry_after=retry_at,
            last_error=reason[:500],
            last_error_at=now,
            refresh_due_at=due,
        )
        self.last_error = (now, f"{provider}: {reason}"[:500])
        log.warning(
            "session_refresh_failed",
            session_id=row["id"],
            provider=provider,
            kind="temporary",
            reason=reason[:200],
            failures=failures,
        )
        return RefreshResult(Outcome.TEMPORARY, await self._record(row["id"]))

    async def _finish_permanent(
        self, row: Mapping[str, Any], fence: int, provider: str, reason: str
    ) -> RefreshResult:
        now = self._clock.now()
        outcome = (
            Outcome.INTERRUPTED if reason.startswith("refresh_interrupted") else Outcome.PERMANENT
        )
        await self._conclude(
            row["id"],
            fence,
            provider,
            outcome,
            announce=True,
            state=REAUTH_REQUIRED,
            state_reason=reason[:500],
            last_error=reason[:500],
            last_error_at=now,
            refresh_due_at=None,
        )
        self.last_error = (now, f"{provider}: {reason}"[:500])
        log.warning(
            "session_refresh_failed",
            session_id=row["id"],
            provider=provider,
            kind="permanent",
            reason=reason[:200],
        )
        return RefreshResult(outcome, await self._record(row["id"]))

    async def _interrupted(
        self, row: Mapping[str, Any], fence: int, provider: str
    ) -> RefreshResult:
        return await self._finish_permanent(
            row,
            fence,
            provider,
            "refresh_interrupted: a refresh died between its intent and its outcome",
        )

    # --- plumbing ---

    def _require_sealer(self) -> Sealer:
        if self._sealer is None:
            raise SessionInvalid("no key to open upstream tokens is configured")
        return self._sealer

    async def _read(self, session_id: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            found = (
                await conn.execute(select(sessions).where(sessions.c.id == session_id))
            ).first()
        if found is None:
            return None
        row = dict(found._mapping)
        for name in ("access_expires_at", "refresh_attempt_at", "retry_after"):
            if row[name] is not None:
                row[name] = utc(row[name])
        return row

    async def _record(self, session_id: str) -> SessionRecord | None:
        if not _WANT_RECORD.get():
            return None
        try:
            return await self._sessions.get(session_id)
        except NotFound:
            return None

    async def _conclude(
        self,
        session_id: str,
        fence: int,
        provider: str,
        outcome: Outcome,
        *,
        announce: bool,
        **values: Any,
    ) -> None:
        """Record a refresh's outcome and clear its intent in one fenced write (a refused
        write: :class:`LockLost`); announce the change to every process's cache when claims
        or state changed; count it."""
        if not await self._write(session_id, fence, intent_fence=None, intent_at=None, **values):
            raise LockLost(_lock_key(session_id), fence)
        if announce:
            await self._sessions.changed([session_id])
        self.metrics.refreshes.labels(provider, outcome.value).inc()

    async def _write(self, session_id: str, fence: int, **values: Any) -> bool:
        """Write under ``fence``: refused once a newer lease has written (a holder writes
        several times under its own fence: intent, then outcome)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(sessions)
                .where(
                    sessions.c.id == session_id,
                    or_(sessions.c.fence.is_(None), sessions.c.fence <= fence),
                )
                .values(**values, fence=fence)
            )
            return result.rowcount == 1


def record_of_row(row: Mapping[str, Any]) -> SessionRecord:
    """The record of a full row as :meth:`SessionRefresher._read` returns it."""
    return record_of({**row, "has_refresh_token": row["refresh_token"] is not None})


def _lock_key(session_id: str) -> str:
    return f"session-refresh:{session_id}"


def provider_of(row: Mapping[str, Any] | None) -> str:
    return str(row["provider"]) if row is not None else "unknown"


def _why(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return "the session has ended"
    return f"sign in again: {row.get('state_reason') or row['state']}"
