"""The port every lock backend implements, and the wake-up signal it hands to waiters.

The front (:class:`watchword.locks.front.Locks`) drives the backends with one loop::

    async with backend.watch(key) as signal:      # subscribe first ...
        while True:
            attempt = await backend.try_acquire(key, holder, ttl)   # ... then try
            if attempt.lease: return attempt.lease
            await signal.wait(min(remaining, attempt.retry_after, fallback_poll))

Subscribing before trying means a release that lands between a failed attempt and the
wait still sets the signal, so no wake-up is lost.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Protocol

from watchword.locks.lease import Attempt, Lease

__all__ = ["LockBackend", "ReleaseSignal"]


class ReleaseSignal(Protocol):
    """Level-triggered: set by a release of the watched key, cleared by :meth:`wait`."""

    async def wait(self, limit: timedelta) -> bool:
        """Return ``True`` when a release was announced, ``False`` after ``limit``."""
        ...


class LockBackend(Protocol):
    """Compare-and-swap leases with fencing numbers, plus release notifications."""

    @property
    def name(self) -> str:
        """Short label for metrics and logs: ``memory``, ``redis``, ``postgres``, ``sqlite``."""
        ...

    async def try_acquire(self, key: str, holder: str, ttl: timedelta) -> Attempt:
        """Grant ``key`` to ``holder`` for ``ttl`` if it is free or its lease expired."""
        ...

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease | None:
        """Extend a live lease to now + ``ttl``; ``None`` when it is no longer held."""
        ...

    async def release(self, lease: Lease) -> bool:
        """Free a live lease and wake waiters; ``False`` (and no change) if not held."""
        ...

    def watch(self, key: str) -> AbstractAsyncContextManager[ReleaseSignal]:
        """Subscribe to releases of ``key`` for as long as the context is open."""
        ...

    async def aclose(self) -> None:
        """Stop listeners and free connections the backend owns."""
        ...
