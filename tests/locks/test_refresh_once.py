"""The refresh-once pattern over the memory backend."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchword.clock import FakeClock
from watchword.locks import (
    Lease,
    LockLost,
    Locks,
    MemoryBackend,
    RefreshSteps,
    new_holder_id,
    refresh_once,
)

TTL = timedelta(seconds=10)
# Renewals run on the event loop's clock every TTL / 3; expiry on the fake clock.
SHORT_TTL = timedelta(milliseconds=300)


@dataclass(frozen=True)
class Record:
    generation: int
    fence: int = 0


class Store:
    """A record with a fence beside it, and an upstream that counts its calls."""

    def __init__(self) -> None:
        self.record = Record(generation=0)
        self.calls: list[int] = []

    async def load(self) -> Record:
        await asyncio.sleep(0)
        return self.record

    async def refresh(self, current: Record) -> Record:
        self.calls.append(current.generation)
        await asyncio.sleep(0.001)
        return replace(current, generation=current.generation + 1)

    async def store(self, fresh: Record, fence: int) -> bool:
        if fence <= self.record.fence:
            return False
        self.record = replace(fresh, fence=fence)
        return True

    def steps(self, want: int) -> RefreshSteps[Record]:
        return RefreshSteps(self.load, lambda r: r.generation < want, self.refresh, self.store)


async def test_refresh_once_concurrent_callers_call_upstream_once() -> None:
    locks, store = Locks(MemoryBackend()), Store()
    outcomes = await asyncio.gather(
        *(refresh_once(locks, "s", store.steps(1), ttl=TTL, wait=TTL) for _ in range(30))
    )
    assert store.calls == [0]
    assert sum(o.refreshed for o in outcomes) == 1
    assert all(o.value.generation == 1 for o in outcomes)


async def test_refresh_once_fresh_record_returns_without_locking() -> None:
    backend, store = MemoryBackend(), Store()
    locks = Locks(backend)
    async with locks.hold("s", ttl=TTL, wait=timedelta(0)):
        outcome = await refresh_once(locks, "s", store.steps(0), ttl=TTL, wait=timedelta(0))
    assert not outcome.refreshed
    assert outcome.fence is None
    assert store.calls == []


async def test_refresh_once_refused_store_raises_lock_lost() -> None:
    locks, store = Locks(MemoryBackend()), Store()
    store.record = Record(generation=0, fence=10**9)  # a newer grant already wrote
    with pytest.raises(LockLost):
        await refresh_once(locks, "s", store.steps(1), ttl=TTL, wait=TTL)
    assert store.record.generation == 0


def _stalling(store: Store, stall: Callable[[], Awaitable[None]]) -> RefreshSteps[Record]:
    """``store.steps(1)`` whose read under the lock (the second one) stalls first."""
    loads = 0

    async def load() -> Record:
        nonlocal loads
        loads += 1
        if loads == 2:
            await stall()
        return await store.load()

    return RefreshSteps(load, lambda r: r.generation < 1, store.refresh, store.store)


async def test_refresh_once_lease_taken_over_before_upstream_call_never_calls_it() -> None:
    clock = FakeClock()
    backend, store = MemoryBackend(clock), Store()
    locks, successor = Locks(backend), Locks(backend)
    taken: list[Lease] = []

    async def stall() -> None:
        clock.advance(TTL)  # the holder paused past its lease ...
        taken.append(await successor.acquire("s", ttl=TTL, wait=timedelta(0)))  # ... and lost it

    with pytest.raises(LockLost):
        await refresh_once(locks, "s", _stalling(store, stall), ttl=TTL, wait=TTL)
    assert store.calls == []
    # The successor still holds its lease and refreshes once.
    assert backend.holder_of("s") == taken[0]
    await successor.release(taken[0])
    outcome = await refresh_once(successor, "s", store.steps(1), ttl=TTL, wait=TTL)
    assert outcome.refreshed and store.calls == [0]


async def test_refresh_once_lease_expired_before_upstream_call_never_calls_it() -> None:
    clock = FakeClock()
    store = Store()
    locks = Locks(MemoryBackend(clock))

    async def stall() -> None:
        clock.advance(TTL)  # expired, though nobody took it over (yet)

    with pytest.raises(LockLost):
        await refresh_once(locks, "s", _stalling(store, stall), ttl=TTL, wait=TTL)
    assert store.calls == []
    assert store.record == Record(generation=0)


async def test_refresh_once_lease_renewed_right_before_upstream_call() -> None:
    clock = FakeClock()
    backend, store = MemoryBackend(clock), Store()
    locks = Locks(backend)
    seen: list[Lease | None] = []

    async def stall() -> None:
        clock.advance(TTL - timedelta(seconds=1))  # nearly out, still held

    async def upstream(current: Record) -> Record:
        seen.append(backend.holder_of("s"))
        return await store.refresh(current)

    steps = replace(_stalling(store, stall), refresh_fn=upstream)
    outcome = await refresh_once(locks, "s", steps, ttl=TTL, wait=TTL)
    assert outcome.refreshed and store.calls == [0]
    lease = seen[0]
    assert lease is not None and lease.fence == outcome.fence
    assert lease.expires_at == clock.now() + TTL  # a whole ttl for the call


class _RenewSignalling(MemoryBackend):
    """Sets ``renewed`` on every renewal."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.renewed = asyncio.Event()

    async def renew(self, lease: Lease, ttl: timedelta) -> Lease | None:
        renewed = await super().renew(lease, ttl)
        self.renewed.set()
        return renewed


def _others() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


async def test_refresh_once_upstream_call_longer_than_ttl_keeps_lease_renewed() -> None:
    clock = FakeClock()
    backend, store = _RenewSignalling(clock), Store()
    locks = Locks(backend)
    rivals: list[Lease | None] = []

    async def upstream(current: Record) -> Record:
        for _ in range(4):  # 4 times 2/3 ttl: the call outlives the first lease
            clock.advance(SHORT_TTL * 2 / 3)
            backend.renewed.clear()
            rival = await backend.try_acquire("s", new_holder_id(), SHORT_TTL)
            rivals.append(rival.lease)
            async with asyncio.timeout(30):  # only a missing renewer comes near this
                await backend.renewed.wait()
            lease = backend.holder_of("s")
            assert lease is not None and lease.expires_at == clock.now() + SHORT_TTL
        return await store.refresh(current)

    steps = replace(store.steps(1), refresh_fn=upstream)
    outcome = await refresh_once(locks, "s", steps, ttl=SHORT_TTL, wait=TTL, check_first=False)
    assert rivals == [None] * 4
    assert outcome.refreshed and store.record == Record(generation=1, fence=1)
    assert backend.holder_of("s") is None
    assert _others() == []  # the renewer stopped with the call


async def test_refresh_once_failing_upstream_call_stops_renewing_and_releases() -> None:
    backend, store = MemoryBackend(), Store()

    async def upstream(current: Record) -> Record:
        raise RuntimeError("upstream down")

    steps = replace(store.steps(1), refresh_fn=upstream)
    with pytest.raises(RuntimeError, match="upstream down"):
        await refresh_once(Locks(backend), "s", steps, ttl=SHORT_TTL, wait=TTL)
    assert backend.holder_of("s") is None
    assert _others() == []


async def test_refresh_once_lease_lost_during_upstream_call_store_refused() -> None:
    clock = FakeClock()
    backend, store = MemoryBackend(clock), Store()
    locks, successor = Locks(backend), Locks(backend)

    async def upstream(current: Record) -> Record:
        clock.advance(SHORT_TTL)  # stalled for a whole ttl: no renewal could land
        lease = await successor.acquire("s", ttl=TTL, wait=timedelta(0))
        assert await store.store(Record(generation=7), lease.fence)  # the successor wrote
        await asyncio.sleep(SHORT_TTL.total_seconds())  # the renewer finds the lease gone
        return await store.refresh(current)

    steps = replace(store.steps(1), refresh_fn=upstream)
    with pytest.raises(LockLost):
        await refresh_once(locks, "s", steps, ttl=SHORT_TTL, wait=TTL, check_first=False)
    assert store.record == Record(generation=7, fence=2)


@settings(max_examples=30, deadline=None)
@given(wants=st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=40))
def test_refresh_once_any_demands_call_upstream_once_per_generation(wants: list[int]) -> None:
    async def run() -> Store:
        locks, store = Locks(MemoryBackend()), Store()
        await asyncio.gather(
            *(refresh_once(locks, "s", store.steps(w), ttl=TTL, wait=TTL) for w in wants)
        )
        return store

    store = asyncio.run(run())
    # Each generation was redeemed exactly once (no repeats, no gaps), never beyond what
    # somebody asked for, and by at most one call per caller who needed it.
    assert store.calls == list(range(len(store.calls)))
    assert store.record.generation == len(store.calls) <= max(wants)
    assert len(store.calls) <= sum(w > 0 for w in wants)
    assert (len(store.calls) > 0) == (max(wants) > 0)
