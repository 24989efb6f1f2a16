"""Sessions as a credential: create one at sign-in, resolve the cookie on each request (no
database query on a cache hit), end one or many, list them, re-seal them under a new key.

Lookups are cached per process for ``sessions.cache_ttl`` by session id, with the secret's
hash beside the record, so a hit costs a hash and a dictionary lookup. Ending a session drops
it from this process's cache at once and from every other process's within ``cache_ttl`` (or
at once, when a change feed is connected: :meth:`SessionService.forget`).

Activity is written (``last_seen_at``, for the idle timeout) at most once per
:data:`TOUCH_EVERY` (or a tenth of the idle timeout, when shorter) per session, not on every
request.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.clock import Clock
from watchword.errors import ConfigurationError, NotFound, SessionInvalid
from watchword.ids import new_id
from watchword.observability.logging import get_logger
from watchword.principal import Credential, CredentialSource, Principal, PrincipalKind
from watchword.secret import Secret, constant_time_equal, sha256_hex
from watchword.sessions import store
from watchword.sessions.model import SessionRecord, parse_cookie, session_expired
from watchword.sessions.schedule import RefreshPolicy, RefreshState, refresh_due
from watchword.sessions.sealing import NO_SEALING_KEY, SealedColumn, Sealer, UnsealError
from watchword.sessions.store import organization_column
from watchword.sessions.tables import sessions
from watchword.storage.localcache import LocalTTLCache
from watchword.storage.paging import Page

__all__ = [
    "EndedSession",
    "NewSession",
    "SessionAuthenticator",
    "SessionFilter",
    "SessionMetrics",
    "SessionService",
    "TOUCH_EVERY",
]

TOUCH_EVERY = timedelta(minutes=1)
log = get_logger("watchword.sessions")


class SessionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.signins = Counter(
            "watchword_signins_total",
            "Sign-ins by provider and outcome (ok or the error code).",
            ["provider", "outcome"],
            registry=registry,
        )
        self.ended = Counter(
            "watchword_sessions_ended_total",
            "Sessions ended, by reason (logout, backchannel, admin, expired, idle).",
            ["reason"],
            registry=registry,
        )
        self.lookups = Counter(
            "watchword_session_lookups_total",
            "Session cookie lookups by result (cache_hit, database, invalid).",
            ["result"],
            registry=registry,
        )
        self.active = Gauge(
            "watchword_sessions_active",
            "Sessions in the database, as last counted by the session janitor.",
            registry=registry,
        )
        self.by_state = Gauge(
            "watchword_sessions_by_state",
            "Sessions by state (active, reauth_required), as last counted by the session janitor.",
            ["state"],
            registry=registry,
        )


@dataclass(frozen=True, slots=True)
class NewSession:
    """What sign-in hands over: who, and the upstream tokens (sealed here, never stored
    in the clear)."""

    provider: str
    issuer: str
    subject: str
    upstream_sid: str | None
    email: str | None
    display_name: str | None
    claims: Mapping[str, Any]
    organization_ids: Sequence[str]
    access_token: Secret
    refresh_token: Secret | None
    id_token: Secret | None
    access_expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class EndedSession:
    """A session that was just ended, with the tokens sign-out needs (opened)."""

    record: SessionRecord
    refresh_token: Secret | None
    id_token: Secret | None


@dataclass(frozen=True, slots=True)
class SessionFilter:
    issuer: str | None = None
    subject: str | None = None
    provider: str | None = None
    organization_id: str | None = None

    def where(self) -> list[ColumnElement[bool]]:
        out: list[ColumnElement[bool]] = []
        if self.issuer is not None:
            out.append(sessions.c.issuer == self.issuer)
        if self.subject is not None:
            out.append(sessions.c.subject == self.subject)
        if self.provider is not None:
            out.append(sessions.c.provider == self.provider)
        if self.organization_id is not None:
            needle = organization_column([self.organization_id])
            escaped = needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            out.append(sessions.c.organization_ids.like(f"%{escaped}%", escape="\\"))
        return out


@dataclass(frozen=True, slots=True)
class _Cached:
    record: SessionRecord
    touched_at: datetime


class SessionService:
    """Every session operation of one process."""

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        sealer: Sealer | None,
        absolute_timeout: timedelta,
        idle_timeout: timedelta,
        cache_ttl: timedelta,
        metrics: SessionMetrics,
        policy: RefreshPolicy | None = None,
        max_cached: int = 100_000,
    ) -> None:
        self.policy = policy or RefreshPolicy()
        self.engine = engine
        self.clock = clock
        self._sealer = sealer
        self.absolute_timeout = absolute_timeout
        self.idle_timeout = idle_timeout
        self.metrics = metrics
        self._cache: LocalTTLCache[_Cached] = LocalTTLCache(
            clock, ttl_s=cache_ttl.total_seconds(), max_entries=max_cached
        )
        # Sessions this process learned have ended, kept as long as a cached entry lives: a
        # lookup that read the row just before it was deleted cannot cache it afterwards.
        self._ended: LocalTTLCache[bool] = LocalTTLCache(
            clock, ttl_s=cache_ttl.total_seconds(), max_entries=max_cached
        )
        self._touch_every = (
            min(TOUCH_EVERY, idle_timeout / 10) if idle_timeout > timedelta(0) else TOUCH_EVERY
        )
        self._on_ended: list[Callable[[Sequence[str]], Awaitable[None]]] = []
        self._on_created: list[Callable[[Sequence[str]], Awaitable[None]]] = []

    @property
    def sealer_or_none(self) -> Sealer | None:
        return self._sealer

    @property
    def sealer(self) -> Sealer:
        if self._sealer is None:
            raise ConfigurationError(NO_SEALING_KEY)
        return self._sealer

    # --- create ---

    async def create(self, new: NewSession) -> tuple[SessionRecord, Secret]:
        """A new session (a new id at every sign-in) and its cookie value."""
        now = self.clock.now()
        session_id = new_id("ses")
        secret = secrets.token_urlsafe(32)
        sealer = self.sealer

        def seal(value: Secret | None, column: str) -> bytes | None:
            if value is None:
                return None
            return sealer.seal(value.reveal(), session_id=session_id, column=column)

        record = SessionRecord(
            id=session_id,
            provider=new.provider,
            issuer=new.issuer,
            subject=new.subject,
            upstream_sid=new.upstream_sid,
            email=new.email,
            display_name=new.display_name,
            claims=dict(new.claims),
            organization_ids=tuple(sorted(set(new.organization_ids))),
            key_id=sealer.primary_id,
            access_expires_at=new.access_expires_at,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.absolute_timeout,
            refreshed_at=None,
            version=1,
            secret_hash=sha256_hex(secret),
            has_refresh_token=new.refresh_token is not None,
            refresh_due_at=refresh_due(
                RefreshState(new.access_expires_at, new.refresh_token is not None), self.policy
            ),
            userinfo_at=now,
        )
        async with self.engine.begin() as conn:
            await store.insert_session(
                conn,
                record,
                access_token=seal(new.access_token, SealedColumn.ACCESS_TOKEN),
                refresh_token=seal(new.refresh_token, SealedColumn.REFRESH_TOKEN),
                id_token=seal(new.id_token, SealedColumn.ID_TOKEN),
            )
        self._cache.put(session_id, _Cached(record, now))
        for hook in self._on_created:
            await hook([session_id])
        return record, Secret(f"{session_id}.{secret}")

    # --- resolve ---

    async def resolve(self, cookie: Secret) -> SessionRecord:
        """The live session of a cookie value, or :class:`SessionInvalid`."""
        session_id, secret = parse_cookie(cookie.reveal())
        now = self.clock.now()
        cached = self._cache.get(session_id)
        if cached is None:
            async with self.engine.connect() as conn:
                record = await store.read_session(conn, session_id)
            if record is None or self._ended.get(session_id):
                self.metrics.lookups.labels("invalid").inc()
                raise SessionInvalid("the session has ended or never existed")
            cached = _Cached(record, record.last_seen_at)
            self._cache.put(session_id, cached)
            self.metrics.lookups.labels("database").inc()
        else:
            self.metrics.lookups.labels("cache_hit").inc()
        record = cached.record
        if not constant_time_equal(sha256_hex(secret), record.secret_hash):
            self.metrics.lookups.labels("invalid").inc()
            raise SessionInvalid("the session cookie is not valid")
        if not record.active:
            raise SessionInvalid(f"sign in again: {record.state_reason or record.state}")
        reason = session_expired(
            replace(record, last_seen_at=cached.touched_at), now, self.idle_timeout
        )
        if reason is not None:
            self._cache.pop(session_id)
            await self.end_where(sessions.c.id == session_id, reason=reason)
            raise SessionInvalid(f"the session has ended ({reason})")
        if now - cached.touched_at >= self._touch_every:
            async with self.engine.begin() as conn:
                alive = await store.touch_session(conn, session_id, now)
            if not alive:
                self._cache.pop(session_id)
                raise SessionInvalid("the session has ended")
            self._cache.put(session_id, _Cached(record, now))
        return record

    def principal(self, record: SessionRecord) -> Principal:
        return Principal(
            kind=PrincipalKind.SESSION,
            id=record.id,
            issuer=record.issuer,
            subject=record.subject,
            claims=record.frozen_claims,
        )

    # --- read ---

    async def get(self, session_id: str) -> SessionRecord:
        async with self.engine.connect() as conn:
            record = await store.read_session(conn, session_id)
        if record is None:
            raise NotFound(f"no session {session_id!r}")
        return record

    async def page(
        self, flt: SessionFilter, *, limit: int, cursor: str | None
    ) -> Page[SessionRecord]:
        return await store.list_sessions(self.engine, limit=limit, cursor=cursor, where=flt.where())

    # --- end ---

    def on_created(self, hook: Callable[[Sequence[str]], Awaitable[None]]) -> None:
        """Await ``hook(session ids)`` after a session is created (the refreshers wake)."""
        self._on_created.append(hook)

    def on_ended(self, hook: Callable[[Sequence[str]], Awaitable[None]]) -> None:
        """Await ``hook(session ids)`` after sessions end here (a change feed publishes)."""
        self._on_ended.append(hook)

    def forget(self, session_ids: Sequence[str]) -> None:
        """Drop sessions from this process's cache (another process ended them)."""
        for session_id in session_ids:
            self._cache.pop(session_id)
            self._ended.put(session_id, True)

    def invalidate(self, session_ids: Sequence[str]) -> None:
        """Drop changed sessions from this process's cache (they are read again)."""
        for session_id in session_ids:
            self._cache.pop(session_id)

    async def changed(self, session_ids: Sequence[str]) -> None:
        """Sessions changed here (a refresh: new claims, or a new state): dropped from this
        process's cache at once and announced to the others (the change feed)."""
        self.invalidate(session_ids)
        for hook in self._on_created:
            await hook(session_ids)

    def forget_all(self) -> None:
        """Drop every cached session (a change feed reconnected: it may have missed some)."""
        self._cache.clear()

    async def end(self, session_id: str, *, reason: str) -> EndedSession:
        ended = await self.end_where(sessions.c.id == session_id, reason=reason)
        if not ended:
            raise NotFound(f"no session {session_id!r}")
        return ended[0]

    async def end_for_subject(
        self, issuer: str, subject: str, *, reason: str
    ) -> list[EndedSession]:
        return await self.end_where(
            and_(sessions.c.issuer == issuer, sessions.c.subject == subject), reason=reason
        )

    async def end_for_upstream(
        self, issuer: str, *, sid: str | None, subject: str | None, reason: str
    ) -> list[EndedSession]:
        """Back-channel logout. With ``sid``: the sessions made from that provider session, and
        when ``subject`` is given too, that subject's sessions whose ID token named no ``sid``
        (they cannot be told apart, so they end rather than outlive the provider's logout).
        With only ``subject``: every session of the subject."""
        if sid is not None:
            match = sessions.c.upstream_sid == sid
            if subject is not None:
                match = or_(
                    and_(match, sessions.c.subject == subject),
                    and_(sessions.c.upstream_sid.is_(None), sessions.c.subject == subject),
                )
        elif subject is not None:
            match = sessions.c.subject == subject
        else:
            return []
        return await self.end_where(and_(sessions.c.issuer == issuer, match), reason=reason)

    async def end_where(self, where: ColumnElement[bool], *, reason: str) -> list[EndedSession]:
        async with self.engine.begin() as conn:
            deleted = await store.delete_sessions(conn, where)
        ids = [record.id for record, _ in deleted]
        self.forget(ids)
        if ids:
            self.metrics.ended.labels(reason).inc(len(ids))
            log.info("sessions_ended", reason=reason, count=len(ids), session_ids=ids[:20])
            for hook in self._on_ended:
                await hook(ids)
        return [self._opened(record, sealed) for record, sealed in deleted]

    def _opened(self, record: SessionRecord, sealed: store.SealedRow) -> EndedSession:
        def opened(value: bytes | None, column: str) -> Secret | None:
            if value is None or self._sealer is None:
                return None
            try:
                return self._sealer.open(value, session_id=record.id, column=column)
            except UnsealError as exc:
                log.warning("session_token_unreadable", session_id=record.id, reason=str(exc))
                return None

        return EndedSession(
            record,
            refresh_token=opened(sealed.refresh_token, SealedColumn.REFRESH_TOKEN),
            id_token=opened(sealed.id_token, SealedColumn.ID_TOKEN),
        )

    async def remember_logout_token(self, jti: str, *, expires_at: datetime) -> bool:
        """``True`` the first time a logout token's ``jti`` is seen; ``False`` for a replay."""
        try:
            async with self.engine.begin() as conn:
                return await store.claim_logout_token(
                    conn, jti_hash=sha256_hex(jti), expires_at=expires_at
                )
        except IntegrityError:
            return False

    async def delete_expired(self) -> dict[str, int]:
        async with self.engine.begin() as conn:
            counts = await store.delete_expired(conn, self.clock.now())
            by_state = await store.count_by_state(conn)
        self.metrics.active.set(sum(by_state.values()))
        for state, count in by_state.items():
            self.metrics.by_state.labels(state).set(count)
        if counts.get("sessions"):
            self.metrics.ended.labels("expired").inc(counts["sessions"])
        return counts

    # --- key rotation ---

    async def reseal_batch(self, *, limit: int, end_unreadable: bool = False) -> tuple[int, int]:
        """Re-seal up to ``limit`` sessions not yet under the first key: (done, unreadable).
        A row that does not open (sealed under a key no longer configured, or damaged) stops
        the rotation with :class:`ConfigurationError`, unless ``end_unreadable``: then its
        session ends (the person signs in again)."""
        sealer = self.sealer
        async with self.engine.connect() as conn:
            rows = await store.rows_to_reseal(conn, primary_key_id=sealer.primary_id, limit=limit)
        done = unreadable = 0
        for row in rows:
            try:
                values = {
                    column: None
                    if getattr(row, column) is None
                    else sealer.reseal(getattr(row, column), session_id=row.id, column=column)
                    for column in (
                        SealedColumn.ACCESS_TOKEN,
                        SealedColumn.REFRESH_TOKEN,
                        SealedColumn.ID_TOKEN,
                    )
                }
            except UnsealError as exc:
                log.warning("session_reseal_failed", session_id=row.id, reason=str(exc))
                if not end_unreadable:
                    raise ConfigurationError(
                        f"session {row.id} does not open ({exc}); configured keys: "
                        f"{', '.join(sealer.key_ids)}. Add the missing key back to "
                        "sessions.keys, or pass --end-unreadable to end such sessions"
                    ) from None
                await self.end_where(sessions.c.id == row.id, reason="unreadable")
                unreadable += 1
                continue
            async with self.engine.begin() as conn:
                if await store.update_sealed(conn, row, key_id=sealer.primary_id, **values):
                    done += 1
            self._cache.pop(row.id)
        return done, unreadable

    async def sealed_by_key(self) -> dict[str, int]:
        """How many sessions each key id sealed."""
        async with self.engine.connect() as conn:
            return await store.count_by_key(conn)

    async def count_to_reseal(self) -> int:
        async with self.engine.connect() as conn:
            return await store.count_sealed_under(conn, primary_key_id=self.sealer.primary_id)


class SessionAuthenticator:
    """The session cookie as a credential."""

    def __init__(self, service: SessionService) -> None:
        self._service = service

    def accepts(self, credential: Credential) -> bool:
        return credential.source is CredentialSource.COOKIE

    async def authenticate(self, credential: Credential) -> Principal:
        record = await self._service.resolve(credential.value)
        return self._service.principal(record)
