"""The refresh-once pattern over the memory backend."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchword.locks import LockLost, Locks, MemoryBackend, RefreshSteps, refresh_once

TTL = timedelta(seconds=10)


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
