"""Refresh-once: however many tasks and replicas ask, one upstream refresh per generation.

::

    outcome = await refresh_once(locks, "refresh:" + session_id, target,
                                 ttl=timedelta(seconds=15), wait=timedelta(seconds=15))

1. (optional fast path) read; if no refresh is needed, return without locking;
2. take the lock on ``key``;
3. **read again**: another holder may have refreshed while we waited; then return its
   result (``refreshed=False``) instead of calling the upstream a second time;
4. **renew the lease** right before the upstream call; if it is gone (expired, maybe
   taken over) raise :class:`~watchword.locks.errors.LockLost` without calling it;
5. refresh (the upstream call) only if still needed, renewing the lease every
   ``ttl / 3`` while the call runs;
6. store under the lease's fence: ``store(fresh, fence)`` must write only if ``fence``
   is newer than the fence stored beside the record
   (:func:`watchword.storage.optimistic.update_fenced`), so a holder whose lease expired
   and was taken over cannot overwrite its successor; a refused write raises
   :class:`~watchword.locks.errors.LockLost`;
7. release.

The race step 4 closes: a holder that stalled (GC or VM pause, slow reads) past its
``ttl`` between taking the lock and calling the upstream has been replaced by a
successor that read the same record; both would present the same single-use refresh
token, and the fence only refuses the later *write*, after the upstream has seen the
token twice. Renewing first makes the backend, not the holder's own clock, say whether
the lease still stands, and starts a full ``ttl`` for the call. What no check can close:
a lease lost *during* the call (a stall longer than ``ttl / 3`` plus the rest of the
lease, or a backend unreachable for that long); the call is not cancelled then (the
upstream may already have rotated the token, and its answer is the only copy of the new
one), and the fenced store decides whether its result is kept.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Generic, Protocol, TypeVar

from watchword.errors import Unavailable
from watchword.locks.errors import LockLost
from watchword.locks.front import Locks
from watchword.locks.lease import Lease

__all__ = ["RefreshOutcome", "RefreshSteps", "Refreshable", "kept_alive", "refresh_once"]

_T = TypeVar("_T")


class Refreshable(Protocol[_T]):
    """The four steps of refreshing one record."""

    async def load(self) -> _T:
        """Read the record as it is now."""
        ...

    def needs_refresh(self, current: _T) -> bool:
        """Whether ``current`` must be refreshed (pure: no I/O, no clock reads of its own)."""
        ...

    async def refresh(self, current: _T) -> _T:
        """Call the upstream; the only step that must happen at most once per generation."""
        ...

    async def store(self, fresh: _T, fence: int) -> bool:
        """Write ``fresh`` if ``fence`` is newer than the stored one; ``False`` if refused."""
        ...


@dataclass(frozen=True, slots=True)
class RefreshSteps(Generic[_T]):
    """A :class:`Refreshable` made of four callables."""

    load_fn: Callable[[], Awaitable[_T]]
    needs_refresh_fn: Callable[[_T], bool]
    refresh_fn: Callable[[_T], Awaitable[_T]]
    store_fn: Callable[[_T, int], Awaitable[bool]]

    async def load(self) -> _T:
        return await self.load_fn()

    def needs_refresh(self, current: _T) -> bool:
        return self.needs_refresh_fn(current)

    async def refresh(self, current: _T) -> _T:
        return await self.refresh_fn(current)

    async def store(self, fresh: _T, fence: int) -> bool:
        return await self.store_fn(fresh, fence)


@dataclass(frozen=True, slots=True)
class RefreshOutcome(Generic[_T]):
    """``value`` is the record after the call; ``refreshed`` says whether this call did
    the upstream refresh, under lease ``fence``."""

    value: _T
    refreshed: bool
    fence: int | None = None


async def refresh_once(
    locks: Locks,
    key: str,
    target: Refreshable[_T],
    *,
    ttl: timedelta,
    wait: timedelta,
    check_first: bool = True,
) -> RefreshOutcome[_T]:
    """Refresh ``target`` unless it is fresh or somebody else just refreshed it."""
    if check_first:
        current = await target.load()
        if not target.needs_refresh(current):
            return RefreshOutcome(current, refreshed=False)
    async with locks.hold(key, ttl=ttl, wait=wait) as lease:
        current = await target.load()
        if not target.needs_refresh(current):
            return RefreshOutcome(current, refreshed=False)
        renewed = await locks.renew(lease, ttl)  # LockLost: the upstream is not called
        async with kept_alive(locks, renewed, ttl):
            fresh = await target.refresh(current)
        if not await target.store(fresh, lease.fence):
            raise LockLost(key, lease.fence)
        return RefreshOutcome(fresh, refreshed=True, fence=lease.fence)


@asynccontextmanager
async def kept_alive(locks: Locks, lease: Lease, ttl: timedelta) -> AsyncIterator[None]:
    """Renew ``lease`` to ``ttl`` every ``ttl / 3`` for as long as the body runs."""
    stop = asyncio.Event()
    renewer = asyncio.create_task(_renew_until(locks, lease, ttl, stop))
    try:
        yield
    finally:
        # Stopped rather than cancelled, so a renewal in flight is not cut off in the
        # middle of a backend round trip; cancelling this task cancels the renewer too.
        stop.set()
        await renewer


async def _renew_until(locks: Locks, lease: Lease, ttl: timedelta, stop: asyncio.Event) -> None:
    period = ttl.total_seconds() / 3
    while True:
        try:
            async with asyncio.timeout(period):
                await stop.wait()
            return
        except TimeoutError:
            pass
        try:
            await locks.renew(lease, ttl)
        except LockLost:
            return  # nothing left to keep; the fenced store decides
        except Unavailable:
            continue  # the lease may still stand; try again next period
