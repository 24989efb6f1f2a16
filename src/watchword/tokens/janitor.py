"""The token janitor: deletes what can never authenticate again, under a lease.

What it deletes is decided by :func:`watchword.tokens.rotation.deletion_reason`:
tokens expired or revoked longer than the retention (``token_retention``) ago (kept until then so an
operator can still see why a caller failed), and legacy tokens of rotated kinds with no
expiry at all (made before integration tokens always got one). A database pre-filter
selects candidates in id order, in batches; the pure rule has the last word on each.

One replica at a time: the run holds the lease ``tokens:janitor`` from
:mod:`watchword.locks` (the process's shared locks: Redis if configured, else the
database) and does not wait for it; a replica that finds it taken skips the run.
``dry_run`` counts and deletes nothing. Deletions are counted in
``watchword_token_janitor_deleted_total{reason}``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from watchword.clock import Clock
from watchword.errors import DatabaseUnavailable, LockTimeout, WatchwordError
from watchword.locks import Lease, Locks
from watchword.observability.logging import get_logger
from watchword.tokens import store
from watchword.tokens.metrics import TokenMetrics
from watchword.tokens.rotation import DeletionReason, deletion_reason, janitor_cutoff

__all__ = ["LEASE_KEY", "JanitorReport", "TokenJanitor"]

LEASE_KEY: Final = "tokens:janitor"
log = get_logger("watchword.tokens")


@dataclass(frozen=True, slots=True)
class JanitorReport:
    """``ran`` is false when another replica held the lease; in a dry run ``deleted``
    counts what would have been deleted."""

    ran: bool
    dry_run: bool
    deleted: Mapping[DeletionReason, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.deleted.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "ran": self.ran,
            "dry_run": self.dry_run,
            "deleted": {reason.value: self.deleted.get(reason, 0) for reason in DeletionReason},
            "total": self.total,
        }


class TokenJanitor:
    """Deletes tokens that can never authenticate again, one replica at a time."""

    __slots__ = ("_clock", "_engine", "_every", "_locks", "_metrics", "_retention")

    def __init__(
        self,
        engine: AsyncEngine,
        clock: Clock,
        *,
        locks: Locks,
        metrics: TokenMetrics,
        retention: timedelta,
        every: timedelta = timedelta(days=1),
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._locks = locks
        self._metrics = metrics
        self._retention = retention
        self._every = every

    async def run(
        self,
        *,
        dry_run: bool = False,
        batch_size: int = 500,
        lease_ttl: timedelta = timedelta(minutes=5),
    ) -> JanitorReport:
        """One pass; returns what was (or, in a dry run, would be) deleted, by reason."""
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        metrics = self._metrics
        try:
            lease = await self._locks.acquire(LEASE_KEY, ttl=lease_ttl, wait=timedelta(0))
        except LockTimeout:
            metrics.janitor_runs.labels("skipped").inc()
            return JanitorReport(ran=False, dry_run=dry_run)
        try:
            counts = await self._sweep(
                dry_run=dry_run, batch_size=batch_size, lease=lease, lease_ttl=lease_ttl
            )
        except (SQLAlchemyError, OSError) as exc:
            # Only the class name: a driver's message can carry the database URL.
            raise DatabaseUnavailable(
                f"token janitor: database failed ({type(exc).__name__})"
            ) from exc
        finally:
            await self._locks.release(lease)
        if not dry_run:
            for reason, n in counts.items():
                metrics.janitor_deleted.labels(reason.value).inc(n)
        metrics.janitor_runs.labels("dry_run" if dry_run else "done").inc()
        return JanitorReport(ran=True, dry_run=dry_run, deleted=dict(counts))

    async def _sweep(
        self, *, dry_run: bool, batch_size: int, lease: Lease, lease_ttl: timedelta
    ) -> Counter[DeletionReason]:
        now = self._clock.now()
        cutoff = janitor_cutoff(now, self._retention)
        counts: Counter[DeletionReason] = Counter()
        after_id: str | None = None
        while True:
            async with self._engine.begin() as conn:
                batch = await store.find_janitor_candidates(
                    conn, cutoff, limit=batch_size, after_id=after_id
                )
                doomed = []
                for c in batch:
                    reason = deletion_reason(
                        c.kind, c.expires_at, c.revoked_at, now, self._retention
                    )
                    if reason is not None:
                        counts[reason] += 1
                        doomed.append(c.id)
                if not dry_run:
                    await store.delete_tokens(conn, doomed)
            if len(batch) < batch_size:
                return counts
            after_id = batch[-1].id
            lease = await self._locks.renew(lease, lease_ttl)

    async def run_forever(
        self, *, every: timedelta | None = None, stop: asyncio.Event | None = None
    ) -> None:
        """Run every ``every`` (default: the period it was built with) until ``stop`` is set
        (or the task is cancelled).

        A failed run is logged and retried at the next period; nothing is lost by skipping
        one, since the next run selects by time again.
        """
        every = self._every if every is None else every
        if every <= timedelta(0):
            raise ValueError("every must be positive")
        stop = stop or asyncio.Event()
        while not stop.is_set():
            try:
                report = await self.run()
                log.info("token_janitor_done", **report.as_dict())
            except WatchwordError as exc:
                log.warning("token_janitor_failed", code=exc.code, detail=exc.detail)
            try:
                await asyncio.wait_for(stop.wait(), timeout=every.total_seconds())
            except TimeoutError:
                continue
