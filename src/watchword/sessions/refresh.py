"""Refreshing one session's upstream tokens, each refresh token presented at most once, even
across a crash and however many processes race for it.

**The lock is the session's row.** A refresher *claims* a session with one compare-and-swap
``UPDATE``: ``fence`` goes up by one, and the claim is recorded as the **intent** to redeem
the refresh token (``intent_fence`` = the new fence, ``intent_at``) with a lease
(``lease_until`` = now + lease, ``lease_holder``). Nobody else can claim a row whose intent is
set and whose lease runs; the claim is also the first write of the refresh, so taking the
lock and recording the intent are one statement, and the background refresher claims a whole
batch of due sessions in one statement (``claim_due``).

The steps for session ``S``:

1. **claim** ``S`` (interactive: read it, and if it is due, or forced, claim it by
   compare-and-swap on the ``fence`` and ``intent_fence`` just read; someone else's running
   claim: wait for its outcome and return that, a waiter never refreshes again. Background:
   ``claim_due`` takes the due rows of its shards, oldest first);
2. a claim taken over an **intent whose lease lapsed** means its holder died between the
   intent and the outcome: the provider may have rotated the token, so it is not presented
   again. The session needs a new sign-in (``refresh_interrupted``), unless the provider is
   configured as non-rotating (then the refresh proceeds);
3. right before the call, **check the lease** (by this process's monotonic clock since the
   claim was sent) and renew it (fenced) if less than a call's length is left; a renewal the
   row refuses raises :class:`LockLost` and nothing is sent;
4. call the token endpoint (per-call timeout, shorter than the lease);
5. record the outcome in one write fenced on ``fence = the claim's fence`` that also clears the
   intent and the lease:
   - success: the new tokens (sealed), the new access expiry, claims of a new ID token,
     failures reset, the next due time;
   - a permanent refusal (``invalid_grant``, …): the session needs a new sign-in, reason kept;
   - a temporary failure the provider answered (5xx, 429 with ``Retry-After``), or no
     connection at all: failures + 1, the error kept, retried later (backoff);
   - no answer after the request may have arrived (read timeout, connection dropped): like
     an interrupted holder, the token may be spent: a new sign-in (non-rotating providers:
     retried).

A holder whose lease lapsed and was taken over finds ``fence`` raised: every write it tries is
refused (:class:`LockLost`). Lease times are the application clock's (``lease_until``), so
replicas' clocks must agree to well within the call timeout (NTP); the holder itself checks
its lease by the monotonic clock from *before* its claim was sent, which is conservative.
No token ever reaches a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Collection, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from sqlalchemy import ColumnElement, bindparam, func, or_, select, true, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.clock import Clock, utc
from watchword.errors import (
    IdTokenInvalid,
    LockTimeout,
    NotFound,
    ProviderUnavailable,
    SessionInvalid,
)
from watchword.federation.client import OidcClient, TokenSet, UpstreamError, UpstreamUnreachable
from watchword.federation.jwt import verify_signature
from watchword.locks import LockLost, new_holder_id
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

__all__ = [
    "AccessToken",
    "Claim",
    "Outcome",
    "RefreshMetrics",
    "RefreshResult",
    "SessionRefresher",
]

log = get_logger("watchword.refresher")
_WANT_RECORD: ContextVar[bool] = ContextVar("watchword_refresh_want_record", default=True)
_GATHER_ANNOUNCEMENTS: ContextVar[bool] = ContextVar("watchword_refresh_gather", default=False)
_ANNOUNCE_DELAY = timedelta(milliseconds=20)
# Answers after which a rotating provider may have rotated the token anyway (unlike 429, 503,
# 408: "not processed, come back").
_MAYBE_PROCESSED = frozenset({500, 502, 504})
# What ends a claim (an outcome, a release): no intent, no lease.
_CLAIM_ENDED: dict[str, Any] = {
    "intent_fence": None,
    "intent_at": None,
    "lease_until": None,
    "lease_holder": None,
}
# Left on a lease before the call for the outcome's write (on top of a call's length).
_OUTCOME_MARGIN = timedelta(seconds=5)


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


@dataclass(slots=True)
class Claim:
    """A session this process has claimed: the row as claimed, its fence, and when the claim
    was sent (monotonic: the lease is checked against it)."""

    row: dict[str, Any]
    fence: int
    since: float
    took_over: bool = False  # claimed over an intent whose holder's lease lapsed
    force: bool = False
    sent: bool = False  # the refresh token went out (or may have): never released then
    concluded: bool = False  # the outcome is recorded (the claim is over)

    @property
    def session_id(self) -> str:
        return str(self.row["id"])


class SessionRefresher:
    """Refreshes sessions, each through its row's claim; shared by the background refresher,
    ``GET /v1/me/token`` and ``watchword sessions refresh``."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
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
        self._sessions = sessions
        self._sealer = sealer
        self.clients = clients
        self.policy = policy
        self._call_timeout = call_timeout
        self._leeway = leeway
        self.metrics = metrics
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        # The lease covers a call and the writes around it, with room to spare.
        self.lease = call_timeout * 2 + timedelta(seconds=5)
        self._wait = self.lease + timedelta(seconds=5)  # a waiter outlives one lease
        self.holder = new_holder_id()
        self.last_error: tuple[datetime, str] | None = None
        self._writes = _FencedWrites(engine)
        self._announce_pending: set[str] = set()
        self._announcer: asyncio.Task[None] | None = None

    def due_at(self, row: Mapping[str, Any]) -> datetime | None:
        return refresh_due(_as_of(row), self.policy, jitter=self._rng.random())

    # --- one session, on demand ---

    async def refresh(
        self, session_id: str, *, force: bool = False, want_record: bool = True
    ) -> RefreshResult:
        """Refresh ``session_id`` if it is due (or ``force``), at most once across every
        process; the session as it is afterwards (``want_record=False``: not read again).
        Another claim running on the session: wait for its outcome and return that."""
        _WANT_RECORD.set(want_record)  # this task's own (contextvars): concurrent calls differ
        give_up = time.monotonic() + self._wait.total_seconds()
        pause = 0.01
        while True:
            row = await self._read(session_id)
            if row is None:
                return RefreshResult(Outcome.INACTIVE, None)
            now = self._clock.now()
            if row["intent_fence"] is not None and not _lapsed(row, now):
                # Someone is mid-refresh: its outcome is this caller's answer.
                if time.monotonic() >= give_up:
                    raise LockTimeout(_lock_key(session_id), self._wait.total_seconds())
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.25)
                continue
            took_over = row["intent_fence"] is not None
            if not took_over and not self._wanted(row, force):
                return RefreshResult(self._idle_outcome(row), record_of_row(row))
            claim = await self._claim_one(row, now, took_over=took_over, force=force)
            if claim is not None:
                return await self.run(claim)
            # Another process claimed or concluded it between the read and the claim: again.

    async def access_token(self, session_id: str) -> AccessToken:
        """The session's upstream access token, refreshed first (inline, through the claim)
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

    # --- claims: the background refresher's batches ---

    async def claim_due(
        self,
        where: ColumnElement[bool],
        now: datetime,
        limit: int,
        *,
        provider: str | None,
        exclude: Collection[str] = (),
    ) -> list[Claim]:
        """Claim up to ``limit`` due sessions of ``provider`` (``None``: of any provider but
        those in ``exclude``) among those ``where`` picks (a refresher's shards,
        :func:`~watchword.sessions.store.in_shards`), oldest due first, in one statement
        (PostgreSQL: rows another claimer is taking are skipped, not waited for)."""
        if provider is not None:
            of_provider = sessions.c.provider == provider
        else:
            of_provider = sessions.c.provider.not_in(exclude) if exclude else true()
        picked = (
            select(sessions.c.id)
            .where(
                of_provider,
                sessions.c.state == ACTIVE,
                where,
                sessions.c.refresh_due_at <= now,
                sessions.c.intent_fence.is_(None),
            )
            .order_by(sessions.c.refresh_due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        next_fence = func.coalesce(sessions.c.fence, 0) + 1
        since = time.monotonic()
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    update(sessions)
                    .where(
                        sessions.c.id.in_(picked.scalar_subquery()),
                        sessions.c.state == ACTIVE,  # rechecked on a row claimed meanwhile
                        sessions.c.intent_fence.is_(None),
                    )
                    .values(fence=next_fence, intent_fence=next_fence, **self._lease_values(now))
                    .returning(*sessions.c)
                )
            ).all()
        claims = [Claim(_normalized(r._mapping), int(r.fence), since) for r in rows]
        # Oldest due first (the pool starts them in this order; RETURNING has none).
        claims.sort(key=lambda c: refresh_due(_as_of(c.row), self.policy) or now)
        return claims

    async def claim_abandoned(
        self, where: ColumnElement[bool], now: datetime, limit: int
    ) -> list[Claim]:
        """Claim sessions (of those ``where`` picks) whose claim's holder died (its lease
        lapsed with the intent still set): :meth:`run` resolves each without replaying its
        token."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(sessions)
                    .where(
                        sessions.c.intent_fence.is_not(None),
                        or_(sessions.c.lease_until.is_(None), sessions.c.lease_until <= now),
                        where,
                    )
                    .order_by(sessions.c.lease_until)
                    .limit(limit)
                )
            ).all()
        claims = []
        for found in rows:
            claim = await self._claim_one(_normalized(found._mapping), now, took_over=True)
            if claim is not None:
                claims.append(claim)
        return claims

    async def run(self, claim: Claim, *, want_record: bool = True) -> RefreshResult:
        """Refresh a claimed session and record the outcome (which ends the claim)."""
        _WANT_RECORD.set(want_record)
        row = claim.row
        provider = row["provider"]
        client = self.clients.get(provider)
        try:
            if claim.took_over:
                rotating = client is None or client.settings.rotating_refresh_tokens
                if rotating:
                    return await self._interrupted(claim)
                if row["state"] != ACTIVE or not self._wanted(row, claim.force):
                    await self._conclude(
                        claim, Outcome.NOT_DUE, announce=False, refresh_due_at=self.due_at(row)
                    )
                    return RefreshResult(self._idle_outcome(row), await self._record(row["id"]))
            if client is None:
                # Another process may still know it (a configuration being rolled out):
                # retried later, never a reason to end the session here.
                return await self._finish_temporary(
                    claim, "provider not configured here", None, attempted_at=self._clock.now()
                )
            return await self._redeem(claim, client)
        except LockLost:
            await self._release(claim)
            self.metrics.refreshes.labels(provider, Outcome.LOST.value).inc()
            return RefreshResult(Outcome.LOST, None)
        except BaseException:
            # A database error, a bug, a cancelled request: the claim is released when
            # nothing was sent, so the session is refreshed again rather than interrupted.
            await asyncio.shield(self._release(claim))
            raise

    async def _release(self, claim: Claim) -> None:
        """End a claim under which nothing was sent: intent and lease cleared, due again as
        the schedule says (a write fenced on the claim's fence: a claim taken over is left
        to its new holder). Never raises. A claim taken over from a dead holder is never
        released: its intent stands for what that holder may have sent."""
        if claim.sent or claim.concluded or claim.took_over:
            return
        try:
            released = await self._write(
                claim.session_id,
                claim.fence,
                **_CLAIM_ENDED,
                refresh_due_at=self.due_at(claim.row),
            )
        except Exception as exc:  # the lease runs out, then the claim is taken over
            log.warning(
                "session_claim_release_failed",
                session_id=claim.session_id,
                error_type=type(exc).__name__,
            )
            return
        claim.concluded = released

    # --- steps ---

    def _lease_values(self, now: datetime) -> dict[str, Any]:
        until = now + self.lease
        # While claimed, the row's due time is its lease's end: a holder that dies leaves a
        # row that comes due again exactly when it may be taken over.
        return {
            "intent_at": now,
            "lease_until": until,
            "lease_holder": self.holder,
            "refresh_due_at": until,
        }

    async def _claim_one(
        self, row: dict[str, Any], now: datetime, *, took_over: bool, force: bool = False
    ) -> Claim | None:
        """Claim a session as ``row`` shows it (compare-and-swap on its fence and intent);
        ``None`` when someone else claimed or concluded it since it was read."""
        fence = int(row["fence"] or 0) + 1
        since = time.monotonic()
        lapsed = or_(sessions.c.lease_until.is_(None), sessions.c.lease_until <= now)
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(sessions)
                .where(
                    sessions.c.id == row["id"],
                    sessions.c.fence.is_not_distinct_from(row["fence"]),
                    sessions.c.intent_fence.is_not_distinct_from(row["intent_fence"]),
                    # A running claim is taken over only once its lease is over (a holder
                    # may have renewed it since the row was read).
                    lapsed if row["intent_fence"] is not None else true(),
                )
                .values(fence=fence, intent_fence=fence, **self._lease_values(now))
            )
        if result.rowcount != 1:
            return None
        claimed = {**row, **self._lease_values(now), "fence": fence, "intent_fence": fence}
        return Claim(claimed, fence, since, took_over=took_over, force=force)

    async def _ensure_lease(self, claim: Claim, need: timedelta) -> None:
        """At least ``need`` left on the claim's lease, renewing it (fenced) if not; a claim
        taken over meanwhile raises :class:`LockLost`. What is left is the lesser of the
        lease less the monotonic time since the claim was sent, and ``lease_until`` less the
        application clock's now (which other processes judge it by)."""
        left = min(
            self.lease.total_seconds() - (time.monotonic() - claim.since),
            (claim.row["lease_until"] - self._clock.now()).total_seconds(),
        )
        if left >= need.total_seconds():
            return
        since = time.monotonic()
        now = self._clock.now()
        until = now + self.lease
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(sessions)
                .where(
                    sessions.c.id == claim.session_id,
                    sessions.c.fence == claim.fence,
                    sessions.c.intent_fence == claim.fence,
                    sessions.c.lease_until > now,  # a lapsed lease is gone, even if untaken
                )
                .values(lease_until=until, refresh_due_at=until)
            )
        if result.rowcount != 1:
            raise LockLost(_lock_key(claim.session_id), claim.fence)
        claim.since = since
        claim.row["lease_until"] = until

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

    async def _redeem(self, claim: Claim, client: OidcClient) -> RefreshResult:
        row = claim.row
        session_id = row["id"]
        sealer = self._require_sealer()
        try:
            refresh_token = sealer.open(
                row["refresh_token"], session_id=session_id, column=SealedColumn.REFRESH_TOKEN
            )
        except UnsealError:
            return await self._finish_permanent(claim, "token_unreadable")
        # The provider's discovery first (cached; ProviderUnavailable: nothing is sent), so a
        # slow discovery refresh is not taken for a call that may have reached the provider.
        try:
            async with asyncio.timeout(self._call_timeout.total_seconds()):
                await client.provider.metadata()
        except (ProviderUnavailable, TimeoutError) as exc:
            reason = exc.detail if isinstance(exc, ProviderUnavailable) else "discovery timed out"
            return await self._finish_temporary(claim, reason, None, attempted_at=self._clock.now())
        # A call's length, and the outcome's margin, still on the lease; else renew it
        # (LockLost, the lease lapsed or was taken over: nothing is sent).
        await self._ensure_lease(claim, self._call_timeout + _OUTCOME_MARGIN)
        now = self._clock.now()
        due = refresh_due(_as_of(row), self.policy)
        if due is not None:
            self.metrics.lag.observe(max(0.0, (now - due).total_seconds()))
        if row["access_expires_at"] is not None:
            left = (row["access_expires_at"] - now).total_seconds()
            self.metrics.left.observe(max(0.0, left))
        failure: Exception = RuntimeError("no answer")  # replaced by what the call raised
        fresh: TokenSet | None = None
        claim.sent = True
        try:
            async with asyncio.timeout(self._call_timeout.total_seconds()):
                fresh = await client.refresh(refresh_token)
        except (UpstreamError, UpstreamUnreachable, ProviderUnavailable, TimeoutError) as exc:
            failure = exc
            if isinstance(exc, ProviderUnavailable) or (
                isinstance(exc, UpstreamUnreachable) and not exc.sent
            ):
                claim.sent = False  # never delivered: the claim may be released
        # The outcome (and a new ID token's key fetch) must not outlive the lease, or the
        # claim is taken over meanwhile: extended when short. The outcome's write is fenced
        # whatever the lease, so it lands only if nobody took over.
        with contextlib.suppress(Exception):  # best effort: the outcome's write is fenced
            await self._ensure_lease(claim, _OUTCOME_MARGIN)
        if fresh is not None:
            return await self._finish_success(claim, client, fresh, attempted_at=now)
        return await self._finish_failed(claim, client, failure, attempted_at=now)

    async def _finish_failed(
        self, claim: Claim, client: OidcClient, failure: Exception, *, attempted_at: datetime
    ) -> RefreshResult:
        now = attempted_at
        if isinstance(failure, UpstreamError):
            reason = f"{failure.status} {failure.error or ''}".strip()
            if classify(failure.status, failure.error) is Failure.PERMANENT:
                return await self._finish_permanent(claim, reason, attempted_at=now)
            if failure.status in _MAYBE_PROCESSED and client.settings.rotating_refresh_tokens:
                # A 500, or a gateway's 502/504: the provider may have rotated the token before
                # failing. Presenting it again could revoke the family: a new sign-in instead.
                return await self._finish_permanent(
                    claim, f"refresh_interrupted: {reason}", attempted_at=now
                )
            retry_at = (
                now + timedelta(seconds=failure.retry_after_s) if failure.retry_after_s else None
            )
            return await self._finish_temporary(claim, reason, retry_at, attempted_at=now)
        if isinstance(failure, ProviderUnavailable):  # discovery failed: nothing was sent
            return await self._finish_temporary(claim, failure.detail, None, attempted_at=now)
        if isinstance(failure, UpstreamUnreachable | TimeoutError):
            sent = failure.sent if isinstance(failure, UpstreamUnreachable) else True
            reason = str(failure) if isinstance(failure, UpstreamUnreachable) else "call timed out"
            if sent and client.settings.rotating_refresh_tokens:
                # The provider may have rotated the token and its answer is lost: presenting
                # it again would revoke the whole family. A new sign-in instead.
                return await self._finish_permanent(
                    claim, f"refresh_interrupted: {reason}", attempted_at=now
                )
            return await self._finish_temporary(claim, reason, None, attempted_at=now)
        return await self._finish_temporary(claim, type(failure).__name__, None, attempted_at=now)

    async def _finish_success(
        self, claim: Claim, client: OidcClient, fresh: TokenSet, *, attempted_at: datetime
    ) -> RefreshResult:
        row = claim.row
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
            with contextlib.suppress(LockLost):  # the new tokens are recorded regardless
                await self._ensure_lease(claim, self._call_timeout + _OUTCOME_MARGIN)
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
            "refresh_attempt_at": attempted_at,
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
        await self._conclude(claim, Outcome.REFRESHED, announce=True, **values)
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
            async with asyncio.timeout(self._call_timeout.total_seconds()):
                info = await client.userinfo(access_token)
        except ProviderUnavailable as exc:
            log.warning("userinfo_refresh_failed", session_id=row["id"], code=exc.code)
            return claims
        except TimeoutError:
            log.warning("userinfo_refresh_failed", session_id=row["id"], code="timeout")
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
        claim: Claim,
        reason: str,
        retry_at: datetime | None,
        *,
        attempted_at: datetime,
    ) -> RefreshResult:
        row = claim.row
        provider = row["provider"]
        now = self._clock.now()
        failures = int(row["refresh_failures"]) + 1
        due = refresh_due(
            RefreshState(
                row["access_expires_at"],
                has_refresh_token=True,
                last_attempt_at=attempted_at,
                failures=failures,
                retry_after=retry_at,
            ),
            self.policy,
            jitter=self._rng.random(),
        )
        await self._conclude(
            claim,
            Outcome.TEMPORARY,
            announce=False,  # claims and state unchanged: caches stay right
            refresh_attempt_at=attempted_at,
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
        self, claim: Claim, reason: str, *, attempted_at: datetime | None = None
    ) -> RefreshResult:
        row = claim.row
        provider = row["provider"]
        now = self._clock.now()
        outcome = (
            Outcome.INTERRUPTED if reason.startswith("refresh_interrupted") else Outcome.PERMANENT
        )
        attempt = {} if attempted_at is None else {"refresh_attempt_at": attempted_at}
        await self._conclude(
            claim,
            outcome,
            announce=True,
            **attempt,
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

    async def _interrupted(self, claim: Claim) -> RefreshResult:
        return await self._finish_permanent(
            claim,
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
        return None if found is None else _normalized(found._mapping)

    async def _record(self, session_id: str) -> SessionRecord | None:
        if not _WANT_RECORD.get():
            return None
        try:
            return await self._sessions.get(session_id)
        except NotFound:
            return None

    async def _conclude(
        self, claim: Claim, outcome: Outcome, *, announce: bool, **values: Any
    ) -> None:
        """Record a refresh's outcome and end the claim (intent and lease cleared) in one
        write fenced on the claim's fence (a refused write: :class:`LockLost`); announce the
        change to every process's cache when claims or state changed; count it."""
        if not await self._write(claim.session_id, claim.fence, **_CLAIM_ENDED, **values):
            raise LockLost(_lock_key(claim.session_id), claim.fence)
        claim.concluded = True
        if announce:
            await self._announce(claim.session_id)
        self.metrics.refreshes.labels(claim.row["provider"], outcome.value).inc()

    async def _write(self, session_id: str, fence: int, **values: Any) -> bool:
        """Write as the holder of ``fence``: refused once the row was claimed again. Writes
        finishing together share one transaction (:class:`_FencedWrites`)."""
        return await self._writes.write(session_id, fence, values)

    # --- announcing changed sessions ---

    async def _announce(self, session_id: str) -> None:
        """This process's cache drops the session at once; the other processes hear of it
        through the change feed: at once on demand, gathered for up to
        :data:`_ANNOUNCE_DELAY` in a background batch (one message, not one per session)."""
        if not _GATHER_ANNOUNCEMENTS.get():
            await self._sessions.changed([session_id])
            return
        self._sessions.invalidate([session_id])
        self._announce_pending.add(session_id)
        if self._announcer is None or self._announcer.done():
            self._announcer = asyncio.create_task(self._announce_gathered())

    async def _announce_gathered(self) -> None:
        await asyncio.sleep(_ANNOUNCE_DELAY.total_seconds())
        await self._send_gathered()

    async def _send_gathered(self) -> None:
        ids, self._announce_pending = sorted(self._announce_pending), set()
        if ids:
            await self._sessions.changed(ids)

    async def flush_announcements(self) -> None:
        """Send the gathered announcements (a pass's end in tests, shutdown)."""
        task = self._announcer
        if task is not None and not task.done():
            await task  # at most the gathering delay, then its send
        await self._send_gathered()

    def gather_announcements(self) -> None:
        """Announce this task's (and its children's) refreshes in batches."""
        _GATHER_ANNOUNCEMENTS.set(True)


class _FencedWrites:
    """Fenced ``UPDATE`` statements of sessions, gathered: the writes asked for while one batch is
    being written (and within one event-loop turn) go together in one transaction, one
    ``executemany`` per set of columns. Under a storm that is one commit for many outcomes
    instead of one each (benchmarks/sessions). Each caller learns whether its own row was
    written: a row claimed again since (a higher ``fence``) is not."""

    _MAX = 200

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._pending: list[tuple[str, int, dict[str, Any], asyncio.Future[bool]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def write(self, session_id: str, fence: int, values: dict[str, Any]) -> bool:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((session_id, fence, values, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # Shielded: a caller cancelled while its write is under way still has it recorded.
        return await asyncio.shield(done)

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # the outcomes finishing in this turn join the batch
        while self._pending:
            batch, self._pending = self._pending[: self._MAX], self._pending[self._MAX :]
            try:
                written = await self._apply(batch)
            except (OperationalError, InterfaceError) as exc:
                # The database is unreachable: every write of the batch fails at once (row by
                # row would hold the later ones up for minutes).
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            except Exception:
                # One row's trouble, or a passing one (a deadlock): each write again on its
                # own, twice at most (a fenced write may be repeated), so one failure does not
                # cost the whole batch its outcomes.
                for entry in batch:
                    await self._alone(entry)
                continue
            for session_id, fence, _, done in batch:
                if not done.done():
                    done.set_result((session_id, fence) in written)

    async def _alone(self, entry: tuple[str, int, dict[str, Any], asyncio.Future[bool]]) -> None:
        session_id, fence, _, done = entry
        for attempt in range(2):
            try:
                written = await self._apply([entry])
            except Exception as exc:
                if attempt == 1:
                    if not done.done():
                        done.set_exception(exc)
                    return
                await asyncio.sleep(0.1)
                continue
            if not done.done():
                done.set_result((session_id, fence) in written)
            return

    async def _apply(
        self, batch: list[tuple[str, int, dict[str, Any], asyncio.Future[bool]]]
    ) -> set[tuple[str, int]]:
        """The (session, fence) pairs written."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for session_id, fence, values, _ in batch:
            params = {f"v_{name}": value for name, value in values.items()}
            groups.setdefault(tuple(sorted(values)), []).append(
                {"w_id": session_id, "w_fence": fence, **params}
            )
        changed = 0
        async with self._engine.begin() as conn:
            for names, rows in groups.items():
                statement = (
                    update(sessions)
                    .where(
                        sessions.c.id == bindparam("w_id"),
                        sessions.c.fence == bindparam("w_fence"),
                    )
                    .values(
                        {
                            **{n: bindparam(f"v_{n}", type_=sessions.c[n].type) for n in names},
                            # A new version: a key rotation that read the row before this write
                            # (its compare-and-swap on version) cannot put old tokens back.
                            "version": sessions.c.version + 1,
                        }
                    )
                )
                changed += (await conn.execute(statement, rows)).rowcount
            asked = {(session_id, fence) for session_id, fence, *_ in batch}
            if changed == len(batch):
                return asked
            # Some row was claimed again since: which ones (a write leaves fence as it was,
            # so a pair asked for is written exactly when the row still has that fence).
            found = await conn.execute(
                select(sessions.c.id, sessions.c.fence).where(
                    sessions.c.id.in_({session_id for session_id, _ in asked})
                )
            )
            return asked & {(row.id, row.fence) for row in found}


def _normalized(found: Mapping[Any, Any]) -> dict[str, Any]:
    row = dict(found)
    for name in ("access_expires_at", "refresh_attempt_at", "retry_after", "lease_until"):
        if row[name] is not None:
            row[name] = utc(row[name])
    return row


def _lapsed(row: Mapping[str, Any], now: datetime) -> bool:
    until = row["lease_until"]
    return until is None or until <= now


def record_of_row(row: Mapping[str, Any]) -> SessionRecord:
    """The record of a full row as :meth:`SessionRefresher._read` returns it."""
    return record_of({**row, "has_refresh_token": row["refresh_token"] is not None})


def _lock_key(session_id: str) -> str:
    return f"session-refresh:{session_id}"


def _why(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return "the session has ended"
    return f"sign in again: {row.get('state_reason') or row['state']}"
