"""The lock API the rest of watchword uses: :class:`Locks` over any :class:`LockBackend`.

::

    async with locks.hold("refresh:" + session_id, ttl=timedelta(seconds=15),
                          wait=timedelta(seconds=15)) as lease:
        ...  # at most one holder of this key at a time; lease.fence fences writes

Waiting is event-driven: the backend announces releases (in-process event, Redis
pub/sub, PostgreSQL ``NOTIFY``), and the waiter also wakes when the current lease
expires or, as a fallback for a lost announcement, every ``fallback_poll``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from watchword.errors import LockTimeout, Unavailable, WatchwordError
from watchword.locks.backend import LockBackend
from watchword.locks.errors import LockLost
from watchword.locks.lease import Lease, new_holder_id
from watchword.locks.metrics import AcquireOutcome, LockMetrics

__all__ = ["MAX_KEY_LENGTH", "Locks"]

MAX_KEY_LENGTH = 200  # PostgreSQL NOTIFY payloads and index entries stay small
_MAX_TRACKED = 10_000  # acquisition times kept for the hold-time histogram
_MIN_PAUSE_S = 0.001  # a retry_after rounded to zero must not become a busy loop


class Locks:
    """Front object: acquire, hold, renew and release leases on one backend.

    Wait limits and hold times are measured on the event loop's clock, the one asyncio
    timers run on; lease expiry is the backend's business (its own clock or its
    server's, see each backend).
    """

    __slots__ = ("_acquired", "_backend", "_fallback_poll", "_gates", "_metrics")

    def __init__(
        self,
        backend: LockBackend,
        *,
        metrics: LockMetrics | None = None,
        fallback_poll: timedelta = timedelta(seconds=1),
    ) -> None:
        if fallback_poll <= timedelta(0):
            raise ValueError("fallback_poll must be positive")
        self._backend = backend
        self._metrics = metrics
        self._fallback_poll = fallback_poll.total_seconds()
        self._acquired: dict[tuple[str, int], float] = {}
        self._gates: dict[str, _Gate] = {}

    @property
    def backend(self) -> LockBackend:
        return self._backend

    @asynccontextmanager
    async def hold(self, key: str, *, ttl: timedelta, wait: timedelta) -> AsyncIterator[Lease]:
        """Hold ``key`` for the body; released on exit, also on error or cancellation.

        The body should finish within ``ttl`` (or :meth:`renew`); past it the lease may
        be broken by a waiter, and writes must then be refused by their fence. If the
        backend is unreachable at release, the body's outcome stands and the lease is
        left to expire (counted as a release with outcome ``error``).
        """
        lease = await self.acquire(key, ttl=ttl, wait=wait)
        try:
            yield lease
        finally:
            try:
                await self.release(lease)
            except Unavailable:
                self._acquired.pop((key, lease.fence), None)
                if self._metrics is not None:
                    self._metrics.releases.labels(self._backend.name, "error").inc()

    async def acquire(self, key: str, *, ttl: timedelta, wait: timedelta) -> Lease:
        """Take ``key``, waiting up to ``wait``; raises :class:`LockTimeout` past it."""
        _check(key, ttl, wait)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + wait.total_seconds()
        holder = new_holder_id()
        name = self._backend.name
        gate = self._gates.setdefault(key, _Gate())
        gate.users += 1
        try:
            # One task per key and process contends with the backend at a time; the
            # others queue here (FIFO, woken in-process at once). Without this every
            # release would wake every local waiter into a round trip it mostly loses.
            try:
                async with asyncio.timeout_at(deadline):
                    await gate.lock.acquire()
            except TimeoutError:
                raise LockTimeout(key, loop.time() - started) from None
            try:
                lease, broken = await self._contend(key, holder, ttl, started, deadline)
            finally:
                gate.lock.release()
        except LockTimeout:
            if self._metrics is not None:
                self._metrics.failed(name, AcquireOutcome.TIMEOUT, loop.time() - started)
            raise
        except WatchwordError:
            if self._metrics is not None:
                self._metrics.failed(name, AcquireOutcome.ERROR, loop.time() - started)
            raise
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[key]
        now = loop.time()
        if len(self._acquired) >= _MAX_TRACKED:
            # Leases acquired and never released (left to expire) must not pile up.
            del self._acquired[next(iter(self._acquired))]
        self._acquired[(key, lease.fence)] = now
        if self._metrics is not None:
            self._metrics.acquired(name, now - started, broken=broken)
        return lease

    async def _contend(
        self, key: str, holder: str, ttl: timedelta, started: float, deadline: float
    ) -> tuple[Lease, bool]:
        """Try, then wait for a release (or the current lease's expiry), until granted;
        returns the lease and whether it broke an expired one."""
        loop = asyncio.get_running_loop()
        async with self._backend.watch(key) as signal:
            while True:
                attempt = await self._backend.try_acquire(key, holder, ttl)
                if attempt.lease is not None:
                    return attempt.lease, attempt.broken
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise LockTimeout(key, loop.time() - started)
                pause = min(remaining, self._fallback_poll)
                if attempt.retry_after is not None:
                    pause = min(pause, attempt.retry_after.total_seconds())
                await signal.wait(timedelta(seconds=max(pause, _MIN_PAUSE_S)))

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease:
        """Extend a live lease to now + ``ttl``; raises :class:`LockLost` if it is gone."""
        if ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        renewed = await self._backend.renew(lease, ttl)
        if renewed is None:
            raise LockLost(lease.key, lease.fence)
        return renewed

    async def release(self, lease: Lease) -> bool:
        """Release ``lease``; ``False`` (nothing changed) if it was not held any more."""
        held = await self._backend.release(lease)
        started = self._acquired.pop((lease.key, lease.fence), None)
        if self._metrics is not None and started is not None:
            held_s = asyncio.get_running_loop().time() - started
            self._metrics.released(self._backend.name, held_s, held=held)
        return held

    async def aclose(self) -> None:
        await self._backend.aclose()


class _Gate:
    """The in-process queue of tasks waiting for one key."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


def _check(key: str, ttl: timedelta, wait: timedelta) -> None:
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"lock keys are 1 to {MAX_KEY_LENGTH} characters")
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    if wait < timedelta(0):
        raise ValueError("wait must not be negative")
