"""The background refresher: every replica takes a fair share of the shards, refreshes what is
due in them, and hands its shards over when it dies.

**Shards.** Sessions live in 1,024 slots (``crc32(id) % 1024``, stored as ``sessions.shard``);
shard ``k`` of ``refresher.shards`` is the slots with ``slot % shards == k``. A shard is held by
a lease of the lock backend (``refresher-shard:k``, length ``refresher.lease``), renewed every
pass; a replica that dies stops renewing and its shards are free again within one lease.

**Fair share.** Each replica writes a heartbeat row (``refresher_members``) every pass;
``fair = ceil(shards / live members)``. A replica holding more than its share releases the
extra shards, one holding fewer takes free ones, so one replica alone holds them all and a
second one gets half within a pass or two. Two replicas never hold one shard (the lease), and
even if they did, the refresh-once lock keeps each refresh token to one presentation.

**A pass.** Renew held shards; claim, in one statement, the sessions due
(``refresh_due_at <= now``) in them, oldest due first, as many as the pool can start soon
(the claim is each session's refresh-once lock and its intent: see
:mod:`watchword.sessions.refresh`); claim the sessions whose previous holder died (lease
lapsed, intent left) to resolve them; start each in a bounded pool (``pool_size``) under a
per-provider limit (``per_provider_limit``), each refresh with its own call timeout, so a
hanging provider call delays no other session (and no other provider). Changed sessions are
announced to the other processes in batches. Then sleep until the earliest next due time in
the held shards, ``poll_interval`` at most, or until woken (a new session, by the change
feed; the pool running low while the last claim was full).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Gauge
from sqlalchemy import ColumnElement, delete, func, insert, select, true, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.clock import Clock, utc
from watchword.errors import LockTimeout, WatchwordError
from watchword.locks import Lease, LockLost, Locks, new_holder_id
from watchword.observability.logging import get_logger
from watchword.sessions.model import ACTIVE
from watchword.sessions.refresh import Claim, SessionRefresher
from watchword.sessions.store import in_shards
from watchword.sessions.tables import refresher_members, sessions

__all__ = ["BackgroundRefresher"]

log = get_logger("watchword.refresher")
_BATCH = 500
_FINISH_GRACE = timedelta(seconds=8)  # within the jobs' stop grace (watchword.jobs, 10 s)


class BackgroundRefresher:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        locks: Locks,
        refresher: SessionRefresher,
        shards: int,
        lease: timedelta,
        pool_size: int,
        per_provider_limit: int,
        poll_interval: timedelta,
        registry: CollectorRegistry,
        member_id: str | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._locks = locks
        self._refresher = refresher
        self.shards = shards
        self._lease = lease
        self._pool = asyncio.Semaphore(pool_size)
        self._pool_size = pool_size
        self._backlog = False  # the last claim took all it could: more may be due
        self._top_up_only = False  # woken for that: claim more without a full pass
        self._balanced_at = float("-inf")
        self._mine: ColumnElement[bool] | None = None  # the sessions of the shards held
        self._per_provider_limit = per_provider_limit
        self._per_provider: Counter[str] = Counter()  # claims in flight by provider
        self._poll = poll_interval
        self.member_id = member_id or new_holder_id()
        self.held: dict[int, Lease] = {}
        self._in_flight: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.wake = asyncio.Event()
        self.last_pass_at: datetime | None = None
        self.running = False
        self._shards_held = Gauge(
            "watchword_refresher_shards_held",
            "Refresher shards this process holds.",
            registry=registry,
        )
        self._in_flight_gauge = Gauge(
            "watchword_refresher_in_flight",
            "Refreshes running in this process.",
            registry=registry,
        )

    # --- the loop ---

    async def run(self, *, stop: asyncio.Event) -> None:
        self.running = True
        try:
            while not stop.is_set():
                self.wake.clear()  # before the pass: a wake-up during it is kept
                try:
                    if self._top_up_only and self._balanced_recently():
                        wait_s = await self.top_up()
                    else:
                        wait_s = await self.run_pass()
                except WatchwordError as exc:
                    log.warning("refresher_pass_failed", code=exc.code, reason=exc.detail)
                    wait_s = self._poll.total_seconds()
                except (SQLAlchemyError, OSError) as exc:
                    # The database refused or dropped a connection (too many clients, a
                    # restart): the next pass retries; a held shard's lease outlives a pass.
                    log.warning(
                        "refresher_pass_failed",
                        code="database_unavailable",
                        error_type=type(exc).__name__,
                    )
                    wait_s = self._poll.total_seconds()
                waits = [
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(self.wake.wait()),
                ]
                try:
                    await asyncio.wait(waits, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waits:
                        waiter.cancel()
        finally:
            self.running = False
            await self.aclose()

    async def run_pass(self) -> float:
        """One pass; how long to sleep before the next (seconds)."""
        now = self._clock.now()
        members = await self._heartbeat(now)
        await self._balance(members)
        self._balanced_at = time.monotonic()
        self._mine = (
            in_shards(list(self.held), self.shards, dialect=self._engine.dialect.name)
            if self.held
            else None
        )
        if self._mine is not None:
            self._start(await self._refresher.claim_abandoned(self._mine, now, _BATCH))
            await self._claim_due(now, unknown_providers=True)
        self.last_pass_at = now
        # While the pool or a provider is full, the finishing refreshes wake the loop; not
        # sleeping until a due time already past (a pass every 50 ms meanwhile).
        waiting = self._backlog and len(self._in_flight) >= self._pool_size
        next_due = None if self._mine is None or waiting else await self._next_due(self._mine)
        wait = self._poll.total_seconds()
        if next_due is not None:
            wait = min(wait, max(0.05, (next_due - self._clock.now()).total_seconds()))
        return min(wait, self._lease.total_seconds() / 3)

    async def top_up(self) -> float:
        """Claim more of what is due in the shards held, as slots free up (a storm): no
        heartbeat or shard renewal, which a full pass does every third of a lease."""
        self._top_up_only = False
        await self._claim_due(self._clock.now())
        return min(self._poll.total_seconds(), self._lease.total_seconds() / 3)

    def _balanced_recently(self) -> bool:
        return time.monotonic() - self._balanced_at < self._lease.total_seconds() / 3

    async def _claim_due(self, now: datetime, *, unknown_providers: bool = False) -> None:
        """Claim only what can start now, per provider under its limit: a claim is an
        intent, and a crash interrupts every session it claimed, sent or not (at most
        ``pool_size``); a provider at its limit gets no claims that would wait. A full pass
        also claims sessions of providers this process does not know (a configuration being
        rolled out): each is a temporary failure, retried with backoff."""
        if self._mine is None:
            return
        room = min(_BATCH, max(0, self._pool_size - len(self._in_flight)))
        self._backlog = False
        if room == 0:
            self._backlog = True  # the pool is full: claimed again as slots free up
            return
        known = sorted(self._refresher.clients, key=self._per_provider.__getitem__)
        for provider in known:
            free = min(room, self._per_provider_limit - self._per_provider[provider])
            if free <= 0:
                self._backlog = True  # claimed again as slots free up
                continue
            due = await self._refresher.claim_due(self._mine, now, free, provider=provider)
            self._backlog = self._backlog or len(due) == free
            room -= len(due)
            self._start(due)
        if unknown_providers and room > 0:
            free = min(room, self._per_provider_limit)
            self._start(
                await self._refresher.claim_due(self._mine, now, free, provider=None, exclude=known)
            )

    def _start(self, claims: list[Claim]) -> None:
        for claim in claims:
            self._per_provider[claim.row["provider"]] += 1
            task = asyncio.create_task(self._one(claim))
            self._in_flight[(claim.session_id, claim.fence)] = task
        self._in_flight_gauge.set(len(self._in_flight))

    async def drain(self) -> None:
        """Wait for the refreshes started so far, then announce them (tests, shutdown)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight.values()), return_exceptions=True)
        await self._refresher.flush_announcements()

    async def _one(self, claim: Claim) -> None:
        session_id = claim.session_id
        self._refresher.gather_announcements()  # this task's context only
        try:
            async with self._pool:
                await self._refresher.run(claim, want_record=False)
        except WatchwordError as exc:
            log.warning("background_refresh_failed", session_id=session_id, code=exc.code)
        except Exception:
            log.exception("background_refresh_crashed", session_id=session_id)
        finally:
            self._in_flight.pop((session_id, claim.fence), None)
            self._per_provider[claim.row["provider"]] -= 1
            self._in_flight_gauge.set(len(self._in_flight))
            # More was due than the last claim took: claim again once half the slots are
            # free (batches, not one claim per finished refresh).
            if self._backlog and (
                self._per_provider[claim.row["provider"]] <= self._per_provider_limit // 2
                or len(self._in_flight) <= self._pool_size // 2
            ):
                self._backlog = False
                self._top_up_only = True
                self.wake.set()

    # --- shards ---

    async def _heartbeat(self, now: datetime) -> int:
        """Record this member alive; how many members are alive."""
        async with self._engine.begin() as conn:
            updated = await conn.execute(
                update(refresher_members)
                .where(refresher_members.c.id == self.member_id)
                .values(seen_at=now)
            )
            if updated.rowcount == 0:
                with contextlib.suppress(IntegrityError):
                    await conn.execute(
                        insert(refresher_members).values(id=self.member_id, seen_at=now)
                    )
            await conn.execute(
                delete(refresher_members).where(refresher_members.c.seen_at < now - self._lease * 4)
            )
            alive = (
                await conn.execute(
                    select(func.count())
                    .select_from(refresher_members)
                    .where(refresher_members.c.seen_at >= now - self._lease)
                )
            ).scalar_one()
        return max(1, int(alive))

    async def _balance(self, members: int) -> None:
        fair = math.ceil(self.shards / members)
        for shard, lease in list(self.held.items()):  # renew (or lose) what is held
            try:
                self.held[shard] = await self._locks.renew(lease, self._lease)
            except LockLost:
                del self.held[shard]
                log.warning("refresher_shard_lost", shard=shard)
        while len(self.held) > fair:  # hand the extra over
            shard = max(self.held)
            lease = self.held.pop(shard)
            await self._locks.release(lease)
            log.info("refresher_shard_released", shard=shard, fair=fair)
        for shard in range(self.shards):
            if len(self.held) >= fair:
                break
            if shard in self.held:
                continue
            try:
                lease = await self._locks.acquire(
                    f"refresher-shard:{shard}", ttl=self._lease, wait=timedelta(0)
                )
            except LockTimeout:
                continue  # held by another replica
            self.held[shard] = lease
            log.info("refresher_shard_taken", shard=shard, fair=fair)
        self._shards_held.set(len(self.held))

    async def aclose(self) -> None:
        """Stop: refreshes already calling the provider get up to :data:`_FINISH_GRACE` to
        record their outcome (cancelled mid-call, they would leave an intent and their
        sessions would need a new sign-in); the rest are cancelled."""
        running = list(self._in_flight.values())
        if running:
            await asyncio.wait(running, timeout=_FINISH_GRACE.total_seconds())
        for task in list(self._in_flight.values()):
            task.cancel()
        await asyncio.gather(*list(self._in_flight.values()), return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._refresher.flush_announcements()
        for lease in list(self.held.values()):
            with contextlib.suppress(WatchwordError):
                await self._locks.release(lease)
        self.held.clear()
        self._shards_held.set(0)
        with contextlib.suppress(Exception):
            async with self._engine.begin() as conn:
                await conn.execute(
                    delete(refresher_members).where(refresher_members.c.id == self.member_id)
                )

    # --- queries ---

    async def _next_due(self, mine: ColumnElement[bool]) -> datetime | None:
        """The earliest due time in the shards held, but for providers at their limit (their
        sessions are claimed when slots free up, not by waking every 50 ms meanwhile)."""
        full = [p for p, n in self._per_provider.items() if n >= self._per_provider_limit]
        async with self._engine.connect() as conn:
            value = (
                await conn.execute(
                    select(func.min(sessions.c.refresh_due_at)).where(
                        sessions.c.state == ACTIVE,
                        mine,
                        sessions.c.provider.not_in(full) if full else true(),
                    )
                )
            ).scalar_one()
        return utc(value) if isinstance(value, datetime) else None

    def status(self) -> dict[str, str]:
        """For ``/readyz`` details."""
        out = {
            "status": "running" if self.running else "stopped",
            "shards_held": f"{len(self.held)}/{self.shards}",
            "in_flight": str(len(self._in_flight)),
        }
        if self.last_pass_at is not None:
            out["last_pass_at"] = self.last_pass_at.isoformat()
        if self._refresher.last_error is not None:
            at, message = self._refresher.last_error
            out["last_error"] = message
            out["last_error_at"] = at.isoformat()
        return out
