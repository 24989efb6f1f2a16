"""One-process lock backend: a dict of leases, waiters woken at once on release.

For tests and the embedded single-process default. Time comes from the injected
:class:`~watchword.clock.Clock` (a :class:`~watchword.clock.FakeClock` in tests), so
expiry can be driven without sleeping. Fences restart at 1 with the process: nothing
here survives a restart, which is also why nothing outside the process can hold a
fence from before it.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import timedelta

from watchword.clock import Clock, SystemClock
from watchword.locks.backend import ReleaseSignal
from watchword.locks.lease import Attempt, Lease
from watchword.locks.signal import SignalHub

__all__ = ["MemoryBackend"]


@dataclass(slots=True)
class _Slot:
    fence: int
    lease: Lease | None


class MemoryBackend:
    """Leases in a dict; every operation is atomic because it never awaits."""

    __slots__ = ("_clock", "_hub", "_slots")

    def __init__(self, clock: Clock | None = None) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._slots: dict[str, _Slot] = {}
        self._hub = SignalHub()

    @property
    def name(self) -> str:
        return "memory"

    def _live(self, key: str) -> Lease | None:
        slot = self._slots.get(key)
        if slot is None or slot.lease is None:
            return None
        if slot.lease.expires_at <= self._clock.now():
            return None
        return slot.lease

    async def try_acquire(self, key: str, holder: str, ttl: timedelta) -> Attempt:
        now = self._clock.now()
        slot = self._slots.setdefault(key, _Slot(fence=0, lease=None))
        current = slot.lease
        if current is not None and current.expires_at > now:
            return Attempt(lease=None, retry_after=current.expires_at - now)
        slot.fence += 1
        slot.lease = Lease(key=key, holder=holder, fence=slot.fence, expires_at=now + ttl)
        return Attempt(lease=slot.lease, broken=current is not None)

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease | None:
        live = self._live(lease.key)
        if live is None or (live.holder, live.fence) != (lease.holder, lease.fence):
            return None
        renewed = Lease(lease.key, lease.holder, lease.fence, self._clock.now() + ttl)
        self._slots[lease.key].lease = renewed
        return renewed

    async def release(self, lease: Lease) -> bool:
        live = self._live(lease.key)
        if live is None or (live.holder, live.fence) != (lease.holder, lease.fence):
            return False
        self._slots[lease.key].lease = None
        self._hub.notify(lease.key)
        return True

    def watch(self, key: str) -> AbstractAsyncContextManager[ReleaseSignal]:
        return self._hub.watch(key)

    def holder_of(self, key: str) -> Lease | None:
        """The live lease on ``key``, if any (for tests and diagnostics)."""
        return self._live(key)

    async def aclose(self) -> None:
        return None
